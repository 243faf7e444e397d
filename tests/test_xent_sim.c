/* test_xent_sim.c: the fused cross-entropy kernel itself
 * (kernels/xent_tiles.cuh, launched as kernels/model_kernels.cu does: a
 * block of XTHREADS per row) run on the CPU under tests/cuda_sim.h, against
 * tests/model_refs.h's in-place reference (the cpu ops' math): the
 * gradient written over the logits within 2e-5 of the row's largest (GPT's
 * fp32 form: the online sum and the tree add in another order than the
 * reference's left-to-right) or 1e-6 (the MLP's double form); the losses
 * within 2e-5 relative (fp32), or (double) 2^-23 of the row's range max z -
 * min z: the reference rounds each z - max to fp32 before its exp (the
 * cpu's MLP form), the kernel's online arguments are exact, and rounding
 * every argument by 2^-24 of itself moves log-sum-exp and z[target] by at
 * most 2^-24 of the range each; ignored rows 0; a target out of range sets
 * the flag and leaves its row alone. Rows wider and narrower than the
 * block (V 1000 and 100 on 256 threads) and a vocabulary of GPT-2's size.
 * Why: CI has no GPU, and test_model_emulated runs the cuda table with the
 * launcher replaced by the reference, which cannot see the kernel's
 * indexing, barriers or tree. This can. The check fires: launched on 192
 * threads (not a power of two) the tree drops a thread's partial, and the
 * result must land outside the bound. test_cuda_kernels runs the kernel on
 * a GPU.
 */
#include "check.h"
#include "cuda_sim.h"
#include "model_refs.h"

#include "xent_tiles.cuh"

typedef struct {
    float *logits;
    double *losses;
    const int32_t *targets;
    int N, V, double_math;
    float scale;
    int32_t *bad;
} xent_args;

static void run_kernel(const void *p)
{
    const xent_args *a = p;
    xent_kernel(0, a->logits, a->losses, a->targets, a->N, a->V, a->scale, a->double_math, a->bad);
}

/* Largest |got - want| over the largest |want|. */
static double rel_error(const float *got, const float *want, size_t n)
{
    double largest = 1e-30, worst = 0;
    for (size_t i = 0; i < n; i++) largest = fmax(largest, fabs(want[i]));
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)got[i] - want[i]));
    return worst / largest;
}

/* The kernel on `threads` threads a block against the reference; returns the gradient's error over its bound. */
static double run_case(const char *what, int N, int V, int double_math, int threads, bool report)
{
    size_t n = (size_t)N * V;
    float *got = malloc(n * 4), *want = malloc(n * 4);
    int32_t *targets = malloc((size_t)N * 4), bad = 0, ref_bad = 0;
    double *losses = calloc((size_t)N, 8), *want_losses = calloc((size_t)N, 8), *bound = malloc((size_t)N * 8);
    for (size_t i = 0; i < n; i++) got[i] = want[i] = 3.0f * zrt_random_normal(11, (uint64_t)V, i);
    for (int i = 0; i < N; i++) {
        float lo = got[(size_t)i * V], hi = lo;
        for (int v = 1; v < V; v++) lo = fminf(lo, got[(size_t)i * V + v]), hi = fmaxf(hi, got[(size_t)i * V + v]);
        bound[i] = double_math ? ldexp(hi - lo, -23) : 0;
    }
    for (int i = 0; i < N; i++) targets[i] = (int32_t)(((uint64_t)i * 104729u + 7) % (uint64_t)V);
    targets[N / 2] = ZRT_IGNORE_INDEX;
    ref_cross_entropy(want, want_losses, targets, N, V, 1024.0f, double_math, &ref_bad);
    xent_args a = {got, losses, targets, N, V, double_math, 1024.0f, &bad};
    CHECK(sim_launch(run_kernel, &a, N, 1, threads, xent_shared_bytes()));
    double tol = double_math ? 1e-6 : 2e-5, worst_loss = 0; /* losses: over each row's bound */
    double e = rel_error(got, want, n) / tol;
    for (int i = 0; i < N; i++) {
        double diff = fabs(losses[i] - want_losses[i]);
        worst_loss = fmax(worst_loss, targets[i] == ZRT_IGNORE_INDEX ? fabs(losses[i]) * 1e30
                                      : double_math                  ? diff / bound[i]
                                                                     : diff / (2e-5 * want_losses[i]));
    }
    if (report) {
        CHECK_MSG(e <= 1.0, "%s: gradient off by %.3g x the bound %.0e", what, e, tol);
        CHECK_MSG(worst_loss <= 1.0, "%s: losses off by %.3g x their bound", what, worst_loss);
        CHECK_MSG(bad == 0, "%s: the flag was set for targets in range", what);
        printf("%-40s gradient within %.2f of the bound %.0e, losses within %.2f of theirs\n", what, e, tol,
               worst_loss);
    }
    free(got), free(want), free(targets), free(losses), free(want_losses), free(bound);
    return fmax(e, worst_loss);
}

/* A target out of range: the flag, loss 0, the row untouched; the other rows still computed. */
static void check_bad_target(void)
{
    enum { N = 3, V = 50 };
    float z[N * V], before[N * V];
    for (int i = 0; i < N * V; i++) z[i] = before[i] = zrt_random_normal(12, 0, (uint64_t)i);
    int32_t targets[N] = {4, V, 9}, bad = 0;
    double losses[N] = {1, 1, 1};
    xent_args a = {z, losses, targets, N, V, 0, 1.0f, &bad};
    CHECK(sim_launch(run_kernel, &a, N, 1, XTHREADS, xent_shared_bytes()));
    CHECK_MSG(bad == 1 && losses[1] == 0.0 && memcmp(z + V, before + V, V * 4) == 0,
              "target %d of %d: flag %d, loss %g, row changed %d", V, V, bad, losses[1],
              memcmp(z + V, before + V, V * 4) != 0);
    CHECK_MSG(losses[0] > 0 && losses[2] > 0, "the rows beside a bad target were not computed");
    printf("a target out of range: the flag set, its loss 0, its row left alone\n");
}

int main(void)
{
    run_case("gpt form, 19 rows of 1000", 19, 1000, 0, XTHREADS, true);
    run_case("gpt form, rows narrower than the block", 7, 100, 0, XTHREADS, true);
    run_case("gpt form, 3 rows of 50257 (GPT-2)", 3, 50257, 0, XTHREADS, true);
    run_case("mlp form (double), 19 rows of 1000", 19, 1000, 1, XTHREADS, true);
    run_case("mlp form (double), 5 rows of 64", 5, 64, 1, XTHREADS, true);
    check_bad_target();
    double broken = run_case("", 19, 1000, 0, 192, false);
    CHECK_MSG(broken > 1.0, "192 threads (a partial dropped by the tree) pass (%.3g): the check cannot fail", broken);
    printf("on 192 threads (the tree drops a partial): %.3g x the bound, outside it\n", broken);
    return CHECK_DONE();
}
