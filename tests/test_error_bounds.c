/* test_error_bounds.c: error_bounds.h's GELU bounds, both ways, on the CPU
 * (the GPU test holds CUDA's GELU kernels to them; this shows they are
 * right): on a dense grid of [-20, 20] plus normal samples,
 *  (a) kernels/gelu.h in fp32 with the worst tanhf CUDA's 2-ulp contract
 *      allows (the correctly rounded tanh stepped away from the exact value
 *      as far as 2 ulp reach, up, and down), and with glibc's tanhf, stays
 *      within the bounds of the double-precision GELU, its derivative and
 *      GELU backward -- while the old bound, 1e-6 x max(1, |ref|) against
 *      the fp32 CPU reference, rejects the same derivative somewhere in
 *      3 <= |x| <= 6 (why the bound changed);
 *  (b) wrong math fails them: the constant 0.0447 for 0.044715, the
 *      derivative's sech^2 term without its 0.5, a 1e-4 relative error.
 */
#include "check.h"
#include "zrt.h"

#include <math.h>

/* gelu.h's tanhf, redirected: glibc's, or the worst conforming one. */
static float tested_tanhf(float u);
#define tanhf tested_tanhf
#include "gelu.h"
#undef tanhf

#include "error_bounds.h"

#define N_GRID 400001
#define N_NORMAL 4000
#define OLD_BOUND 1e-6

static int tanh_steps; /* 0: glibc's tanhf; +2 or -2: the worst conforming tanhf above or below */

static float tested_tanhf(float u)
{
    if (tanh_steps == 0) return tanhf(u);
    double exact = tanh_below_one(u);
    float r = (float)exact;
    for (int i = 0; i < 4; i++) { /* every step that stays within 2 ulp of the exact value */
        float next = nextafterf(r, tanh_steps > 0 ? INFINITY : -INFINITY);
        if (fabs((double)next - exact) > 2 * fp32_ulp(exact)) break;
        r = next;
    }
    return r;
}

/* The inputs, the exact values and bounds (computed once), the old test's fp32 reference. */
typedef struct {
    int64_t n;
    float *x, *dout, *ref_grad;
    double *gelu, *grad, *bound, *bound_grad, *bound_back;
} table;

static table make_table(void)
{
    table t = {.n = N_GRID + N_NORMAL};
    t.x = malloc(t.n * sizeof(float)), t.dout = malloc(t.n * sizeof(float)), t.ref_grad = malloc(t.n * sizeof(float));
    double **cols[] = {&t.gelu, &t.grad, &t.bound, &t.bound_grad, &t.bound_back};
    for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) *cols[c] = malloc(t.n * sizeof(double));
    for (int64_t i = 0; i < t.n; i++) {
        float x = i < N_GRID ? -20.0f + 40.0f * (float)i / (N_GRID - 1) : 3.0f * zrt_random_normal(5, 1, (uint64_t)i);
        t.x[i] = x, t.dout[i] = 1.0f + 0.25f * zrt_random_normal(6, 2, (uint64_t)i);
        t.ref_grad[i] = zrt_gelu_grad(x); /* tanh_steps 0: glibc */
        t.gelu[i] = gelu_exact(x), t.grad[i] = gelu_grad_exact(x);
        t.bound[i] = gelu_bound(x), t.bound_grad[i] = gelu_grad_bound(x);
        t.bound_back[i] = gelu_backward_bound(x, t.dout[i]);
    }
    return t;
}

static void free_table(table *t)
{
    void *cols[] = {t->x, t->dout, t->ref_grad, t->gelu, t->grad, t->bound, t->bound_grad, t->bound_back};
    for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) free(cols[c]);
}

/* Of one implementation: the largest |got - exact| / bound of each function, and the old bound's misses. */
typedef struct {
    double forward, grad, backward; /* > 1: outside the new bound */
    int64_t old_misses;             /* derivatives outside 1e-6 x max(1, |ref|) with 3 <= |x| <= 6 */
    double old_worst;               /* the largest |got - ref| / the old bound there */
    float old_worst_x;
} measured;

static measured measure(const table *t, float (*gelu)(float), float (*grad)(float))
{
    measured m = {0};
    for (int64_t i = 0; i < t->n; i++) {
        float x = t->x[i], g = grad(x);
        m.forward = fmax(m.forward, bound_ratio(gelu(x), t->gelu[i], t->bound[i]));
        m.grad = fmax(m.grad, bound_ratio(g, t->grad[i], t->bound_grad[i]));
        m.backward = fmax(m.backward, bound_ratio(t->dout[i] * g, t->dout[i] * t->grad[i], t->bound_back[i]));
        double old = bound_ratio(g, t->ref_grad[i], OLD_BOUND * fmax(1.0, fabs(t->ref_grad[i])));
        if (fabsf(x) < 3.0f || fabsf(x) > 6.0f) continue;
        m.old_misses += old > 1;
        if (old > m.old_worst) m.old_worst = old, m.old_worst_x = x;
    }
    return m;
}

static void print(const char *what, measured m)
{
    printf("%-30s %9.3g %9.3g %9.3g   %6lld misses, worst %.3g at x = %.4g\n", what, m.forward, m.grad, m.backward,
           (long long)m.old_misses, m.old_worst, m.old_worst_x);
}

/* (a): glibc's tanhf and the worst conforming ones. */
static void conforming(const table *t)
{
    const struct {
        int steps;
        const char *what;
    } cases[] = {{0, "glibc tanhf"}, {2, "tanhf + 2 ulp (worst above)"}, {-2, "tanhf - 2 ulp (worst below)"}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tanh_steps = cases[c].steps;
        measured m = measure(t, zrt_gelu, zrt_gelu_grad);
        print(cases[c].what, m);
        CHECK_MSG(m.forward <= 1 && m.grad <= 1 && m.backward <= 1, "%s: outside the bound (%g, %g, %g of it)",
                  cases[c].what, m.forward, m.grad, m.backward);
        if (cases[c].steps == 0) continue;
        CHECK_MSG(m.old_misses > 0, "%s: the old bound 1e-6 passes it at 3 <= |x| <= 6", cases[c].what);
        CHECK_MSG(m.forward >= 0.5 && m.grad >= 0.5, "%s: the bounds are loose: reached only %g, %g of them",
                  cases[c].what, m.forward, m.grad); /* derived, not padded: the worst tanhf comes near */
    }
    tanh_steps = 0;
}

/* gelu.h's formulas with their constant c and the sech^2 term's factor as parameters: wrong math for (b). */
static float mutant_gelu(float x, float c)
{
    return 0.5f * x * (1.0f + tanhf(ZRT_GELU_SCALE * (x + c * x * x * x)));
}

static float mutant_grad(float x, float c, float half)
{
    float t = tanhf(ZRT_GELU_SCALE * (x + c * x * x * x));
    return 0.5f * (1.0f + t) + x * half * (1.0f - t * t) * ZRT_GELU_SCALE * (1.0f + 3.0f * c * x * x);
}

static float gelu_c0447(float x) { return mutant_gelu(x, 0.0447f); }
static float grad_c0447(float x) { return mutant_grad(x, 0.0447f, 0.5f); }
static float grad_no_half(float x) { return mutant_grad(x, 0.044715f, 1.0f); }
static float gelu_off_1e4(float x) { return zrt_gelu(x) * (1.0f + 1e-4f); }
static float grad_off_1e4(float x) { return zrt_gelu_grad(x) * (1.0f + 1e-4f); }

/* (b): each fault outside the bound of what it changes. */
static void faults(const table *t)
{
    measured c = measure(t, gelu_c0447, grad_c0447), half = measure(t, zrt_gelu, grad_no_half);
    measured off = measure(t, gelu_off_1e4, grad_off_1e4);
    print("c = 0.0447", c);
    print("sech^2 term without 0.5", half);
    print("1e-4 relative error", off);
    CHECK_MSG(c.forward > 1 && c.grad > 1, "0.0447: within the bound (%g, %g of it)", c.forward, c.grad);
    CHECK_MSG(half.grad > 1 && half.backward > 1, "no 0.5: within the bound (%g, %g)", half.grad, half.backward);
    CHECK_MSG(off.forward > 1 && off.grad > 1, "1e-4: within the bound (%g, %g)", off.forward, off.grad);
}

int main(void)
{
    table t = make_table();
    printf("%-30s %9s %9s %9s   %s\n", "largest error / bound:", "GELU", "GELU'", "backward",
           "old bound 1e-6 on GELU' at 3 <= |x| <= 6");
    conforming(&t);
    faults(&t);
    free_table(&t);
    return CHECK_DONE();
}
