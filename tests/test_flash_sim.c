/* test_flash_sim.c: the CUDA flash-attention kernels themselves
 * (kernels/flash_tiles.cuh, launched as kernels/flash_kernels.cu does) run
 * on the CPU under tests/cuda_sim.h -- 128 pthreads a block, barriers,
 * NaN-filled shared memory -- against tests/model_refs.h's quadratic loops
 * in double: out, lse, dq, dk, dv within 2e-5 of the largest
 * (tests/flash_cases.h), for MHA across several tiles, GQA at hs 128 with
 * T < S, a decode row, and a head size that is not a multiple of anything.
 * Why: CI has no GPU; test_model_emulated runs the cuda table with the
 * launchers replaced by the reference, which cannot see the kernels'
 * indexing, causal limits or barriers. This can (a tile read before it is
 * loaded is NaN). The check fires: the backward given an lse off by 0.5
 * must land outside the bound. test_cuda_kernels runs the same cases on a
 * GPU.
 */
#include "check.h"
#include "cuda_sim.h"
#include "flash_cases.h"

#include "flash_tiles.cuh"

typedef struct {
    zrt_attn_shape a;
    float *out, *lse, *dq, *dk, *dv;
    const float *q, *k, *v, *dout;
    float scale;
} flash_args;

static void forward(const void *p)
{
    const flash_args *f = p;
    flash_forward_kernel(f->a, 0, f->out, f->lse, f->q, f->k, f->v, f->scale);
}

static void backward_dkdv(const void *p)
{
    const flash_args *f = p;
    flash_backward_dkdv_kernel(f->a, 0, f->dk, f->dv, f->dout, f->out, f->lse, f->q, f->k, f->v, f->scale);
}

static void backward_dq(const void *p)
{
    const flash_args *f = p;
    flash_backward_dq_kernel(f->a, 0, f->dq, f->dout, f->out, f->lse, f->q, f->k, f->v, f->scale);
}

static void launch(sim_kernel kernel, const flash_args *f, flash_launch l)
{
    CHECK(sim_launch(kernel, f, l.x, l.y, FTHREADS, l.shared));
}

/* The three kernels on case c; got[] the outputs (NaN where a kernel left an element unwritten). */
static void run(const flash_case *c, float *got[FLASH_OUTPUTS], float lse_shift)
{
    for (int i = 0; i < FLASH_OUTPUTS; i++) {
        got[i] = malloc(c->n[i] * sizeof(float));
        for (size_t j = 0; j < c->n[i]; j++) got[i][j] = NAN;
    }
    flash_args f = {.a = c->a, .out = got[FLASH_OUT], .lse = got[FLASH_LSE], .dq = got[FLASH_DQ],
                    .dk = got[FLASH_DK], .dv = got[FLASH_DV], .q = c->q, .k = c->k, .v = c->v, .dout = c->dout,
                    .scale = 1.0f / sqrtf((float)c->a.hs)};
    launch(forward, &f, flash_forward_launch(&c->a));
    for (size_t j = 0; j < c->n[FLASH_LSE]; j++) got[FLASH_LSE][j] += lse_shift;
    launch(backward_dkdv, &f, flash_dkdv_launch(&c->a));
    launch(backward_dq, &f, flash_dq_launch(&c->a));
    for (size_t j = 0; j < c->n[FLASH_LSE]; j++) got[FLASH_LSE][j] -= lse_shift;
    const zrt_attn_shape *a = &c->a; /* the padding columns: the kernels leave them alone */
    flash_clear_padding(got[FLASH_DQ], c->n[FLASH_DQ], a->ld_q, a->NH * a->hs);
    flash_clear_padding(got[FLASH_DK], c->n[FLASH_DK], a->ld_kv, a->NKV * a->hs);
    flash_clear_padding(got[FLASH_DV], c->n[FLASH_DV], a->ld_kv, a->NKV * a->hs);
}

static void check_case(const char *what, int B, int T, int S, int NH, int NKV, int hs)
{
    flash_case c = flash_case_make(B, T, S, NH, NKV, hs, 7);
    float *got[FLASH_OUTPUTS], *wrong[FLASH_OUTPUTS];
    run(&c, got, 0.0f);
    for (int i = 0; i < FLASH_OUTPUTS; i++) {
        double e = flash_error(got[i], c.want[i], c.n[i]);
        CHECK_MSG(e <= FLASH_BOUND, "%s: %s off by %.3g of its largest (bound %.0e)", what, flash_output_names[i], e,
                  FLASH_BOUND);
        printf("%-40s %-3s within %.2g of the largest\n", what, flash_output_names[i], e);
    }
    run(&c, wrong, 0.5f);
    double e = flash_error(wrong[FLASH_DQ], c.want[FLASH_DQ], c.n[FLASH_DQ]);
    CHECK_MSG(e > FLASH_BOUND, "%s: dq from an lse off by 0.5 passes (%.3g): the check cannot fail", what, e);
    printf("%-40s dq from an lse off by 0.5: %.2g (outside the bound)\n", what, e);
    for (int i = 0; i < FLASH_OUTPUTS; i++) free(got[i]), free(wrong[i]);
    flash_case_free(&c);
}

int main(void)
{
    check_case("MHA 4, T = S 100 (4 tiles), hs 64", 2, 100, 100, 4, 4, 64);
    check_case("GQA 8 on 2, T 45 < S 130, hs 128", 1, 45, 130, 8, 2, 128);
    check_case("MQA 4 on 1, decode T 1 < S 77, hs 32", 1, 1, 77, 4, 1, 32);
    check_case("GQA 2 on 1, T = S 33, hs 6", 2, 33, 33, 2, 1, 6);
    return CHECK_DONE();
}
