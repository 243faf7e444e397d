/* test_device_kernels.c: the cpu device's engine kernels (casts, fill,
 * gradient statistics, Adam/AdamW) against the scalar reference and golden
 * values of tests/kernel_checks.h, bitwise, on odd lengths and unaligned
 * tails, in check mode and without; the statistics in kernels/grad_stats.h's
 * blocked order, told apart from index order on an input where they differ;
 * op timing refused on the cpu device (test_cuda_op_timer times a GPU).
 */
#include "kernel_checks.h"
#include "zrt/internal/op_timer.h"

/* The statistics' order is grad_stats.h's blocked one, and the check sees
 * the difference: g = 2^30, 2^18, then 0.5s -- 2^60 + 2^36 is an fp32 tie.
 * Index order loses every 0.25 against 2^60 in double (ulp 256) and rounds
 * the tie to even, 2^60; the blocked order sums the 0.25s in other lanes and
 * blocks first, passes the tie, and rounds up to 2^60 + 2^37. */
static void check_blocked_order(void)
{
    enum { N = 1 << 20 };
    uint16_t *g = malloc(N * 2);
    for (size_t i = 0; i < N; i++) g[i] = zrt_f32_to_bf16(i == 0 ? 0x1p30f : i == 1 ? 0x1p18f : 0.5f);
    double ordered = 0;
    int nonfinite = 0;
    for (size_t i = 0; i < N; i++) ordered += zrt_grad_square(zrt_bf16_to_f32(g[i]), 1.0f, &nonfinite);
    float blocked = (float)zrt_stats_blocked_sum(g, (int)ZRT_DTYPE_BF16, N, 1.0f, &nonfinite);
    CHECK_MSG((float)ordered == 0x1p60f && blocked == 0x1p60f + 0x1p37f,
              "index order %.17g, blocked %.17g: the example no longer separates the orders", (double)(float)ordered,
              (double)blocked);
    zrt_device *d = make_device(ZRT_DEVICE_CPU, 0);
    zrt_stream *s;
    CHECK_OK(zrt_stream_create(d, "order", &s));
    float got[2];
    run_stats(d, s, g, ZRT_DTYPE_BF16, N, 1.0f, 0, got);
    CHECK_MSG(got[0] == blocked && got[0] != (float)ordered, "cpu grad_stats %.17g: not the blocked order's %.17g",
              (double)got[0], (double)blocked);
    zrt_stream_destroy(s);
    zrt_device_destroy(d);
    free(g);
}

/* Op timing needs marks the cpu device has not (its ops run in host
 * functions): refused by name; collect without enable says so. */
static void check_op_timer_refused(void)
{
    zrt_device *d = make_device(ZRT_DEVICE_CPU, 0);
    double s[ZRT_OP_CLASSES] = {0};
    CHECK(zrt_op_timer_enable(d) == ZRT_ERR_UNSUPPORTED && strstr(zrt_last_error(), "cpu"));
    CHECK(zrt_op_timer_collect(d, s) == ZRT_ERR_INVALID && strstr(zrt_last_error(), "not enabled"));
    zrt_stream *st;
    int op = 0;
    CHECK_OK(zrt_stream_create(d, "untimed", &st));
    CHECK(zrt_op_timer_begin(st, ZRT_OP_MATMUL, &op) == ZRT_OK && op == -1); /* off: nothing recorded */
    CHECK(zrt_op_timer_end(st, op, ZRT_ERR_IO) == ZRT_ERR_IO);             /* the op's error comes back */
    CHECK(strcmp(zrt_op_class_name(ZRT_OP_STATS), "stats") == 0);
    zrt_stream_destroy(st);
    zrt_device_destroy(d);
}

int main(void)
{
    check_blocked_order();
    check_op_timer_refused();
    for (int check = 0; check <= 1; check++) {
        zrt_device *d = make_device(ZRT_DEVICE_CPU, check);
        check_all_kernels(d);
        zrt_device_destroy(d);
    }
    printf("cpu kernels: casts (9 dtype pairs x accumulate), fill, grad_stats (blocked order), adam: equal to the reference\n");
    return CHECK_DONE();
}
