/* flash_cases.h: the attention cases the flash kernels are held to, on the
 * GPU (test_cuda_kernels) and on the CPU (test_flash_sim): random q, k, v
 * and dout in rows padded past the heads (ld > the heads: the kernels must
 * index by ld), and what tests/model_refs.h's double loops make of them.
 * Bound: 2e-5 of each output's largest element (fp32 sums of up to S terms
 * in tile order against double); a NaN anywhere is outside it.
 */
#ifndef ZRT_TEST_FLASH_CASES_H
#define ZRT_TEST_FLASH_CASES_H

#include "model_refs.h"
#include "zrt/data.h"

enum { FLASH_OUT, FLASH_LSE, FLASH_DQ, FLASH_DK, FLASH_DV, FLASH_OUTPUTS };
static const char *const flash_output_names[FLASH_OUTPUTS] = {"out", "lse", "dq", "dk", "dv"};
#define FLASH_BOUND 2e-5

typedef struct {
    zrt_attn_shape a;
    float *q, *k, *v, *dout;        /* host */
    float *want[FLASH_OUTPUTS];     /* the references' */
    size_t n[FLASH_OUTPUTS];        /* elements of each output (dq: q's, dk and dv: k's) */
} flash_case;

/* Zeroes the columns past the heads of rows ld apart (nobody's: left 0 by inputs and gradients alike). */
static inline void flash_clear_padding(float *x, size_t n, int ld, int used)
{
    for (size_t i = 0; i < n; i++)
        if ((int)(i % (size_t)ld) >= used) x[i] = 0;
}

static inline float *flash_randoms(size_t n, uint64_t seed, uint64_t salt, int ld, int used)
{
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = zrt_random_normal(seed, salt, i);
    flash_clear_padding(x, n, ld, used);
    return x;
}

static inline flash_case flash_case_make(int B, int T, int S, int NH, int NKV, int hs, uint64_t seed)
{
    flash_case c = {.a = {.B = B, .T = T, .S = S, .NH = NH, .NKV = NKV, .hs = hs, .ld_q = NH * hs + 3,
                          .ld_kv = NKV * hs + 5, .ld_out = NH * hs}};
    size_t nq = (size_t)B * T * c.a.ld_q, nkv = (size_t)B * S * c.a.ld_kv, no = (size_t)B * T * c.a.ld_out;
    size_t n[FLASH_OUTPUTS] = {no, (size_t)B * NH * T, nq, nkv, nkv};
    memcpy(c.n, n, sizeof n);
    c.q = flash_randoms(nq, seed, 15, c.a.ld_q, NH * hs), c.k = flash_randoms(nkv, seed, 16, c.a.ld_kv, NKV * hs);
    c.v = flash_randoms(nkv, seed, 17, c.a.ld_kv, NKV * hs), c.dout = flash_randoms(no, seed, 18, c.a.ld_out, NH * hs);
    for (int i = 0; i < FLASH_OUTPUTS; i++) c.want[i] = calloc(n[i], sizeof(float));
    ref_attention_forward(&c.a, c.want[FLASH_OUT], c.want[FLASH_LSE], c.q, c.k, c.v);
    ref_attention_backward(&c.a, c.want[FLASH_DQ], c.want[FLASH_DK], c.want[FLASH_DV], c.dout, c.q, c.k, c.v);
    return c;
}

/* Largest |got - want| over the largest |want|; infinite where got has a NaN. */
static inline double flash_error(const float *got, const float *want, size_t n)
{
    double largest = 1e-30, worst = 0;
    for (size_t i = 0; i < n; i++) largest = fmax(largest, fabs(want[i]));
    for (size_t i = 0; i < n; i++) worst = isnan(got[i]) ? INFINITY : fmax(worst, fabs((double)got[i] - want[i]));
    return worst / largest;
}

static inline void flash_case_free(flash_case *c)
{
    free(c->q), free(c->k), free(c->v), free(c->dout);
    for (int i = 0; i < FLASH_OUTPUTS; i++) free(c->want[i]);
}

#endif
