/* fake_cublaslt.c: a stand-in for libcublasLt, built as
 * BUILD/tests/libfake_cublaslt.so, that runs cublasLtMatmul on the host,
 * column-major, as cuBLASLt defines it (D = alpha op(A) op(B) + beta C,
 * strided batches, double accumulation), with the inputs rounded as the
 * compute type allows (FAST_16BF: bf16, FAST_TF32: TF32, FAST_16F: fp16;
 * round to nearest even) so that an emulated bf16 matmul has bf16's error.
 * $ZRT_FAKE_CUBLASLT_FAULT, read at each matmul, makes it wrong on purpose
 * for test_model_emulated's bound checks: "alpha" uses 2 alpha, "kblock"
 * leaves the last 32 terms out of each K sum. Loaded through
 * $ZRT_CUBLASLT by test_model_emulated, so runtime/model/cuda_blas.c's
 * row-major mapping and the CUDA models' matmul calls run in CI, where there
 * is no GPU. It refuses what cuBLASLt would refuse for these calls: a
 * leading dimension below the rows, shapes that do not chain, batches that
 * differ, a type in memory other than fp32, bf16 and fp16 (A and B of one
 * type; C and D of one type, fp32 or A's; 16-bit inputs only with
 * CUBLAS_COMPUTE_32F), a compute type other than the
 * four cuda_blas.c uses, a pointer (or batch stride) less aligned
 * than the preferences promised (256 bytes unless set: cuBLASLt's default)
 * -- and answers the heuristic with one algo that remembers the promise.
 */
#include "cast.h"

#include <cublasLt.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t rows, cols, ld, stride;
    int32_t batch;
    int32_t dtype; /* zrt_dtype of the cudaDataType: 0 fp32, 1 bf16, 2 fp16 */
} fake_layout; /* kept in the opaque layout's data[] */

_Static_assert(sizeof(fake_layout) <= sizeof(((cublasLtMatrixLayoutOpaque_t *)0)->data), "layout fits");

static fake_layout *layout_of(cublasLtMatrixLayout_t l) { return (fake_layout *)l->data; }

cublasStatus_t cublasLtCreate(cublasLtHandle_t *handle)
{
    *handle = malloc(16);
    return *handle ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle)
{
    free(handle);
    return CUBLAS_STATUS_SUCCESS;
}

const char *cublasLtGetStatusString(cublasStatus_t status)
{
    return status == CUBLAS_STATUS_SUCCESS ? "success (fake)" : "refused by the fake cuBLASLt";
}

/* data[2]: the compute type. */
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *desc, cublasComputeType_t compute, cudaDataType_t scale)
{
    if (scale != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (compute != CUBLAS_COMPUTE_32F && compute != CUBLAS_COMPUTE_32F_FAST_TF32 &&
        compute != CUBLAS_COMPUTE_32F_FAST_16BF && compute != CUBLAS_COMPUTE_32F_FAST_16F)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    *desc = calloc(1, sizeof **desc);
    if (!*desc) return CUBLAS_STATUS_ALLOC_FAILED;
    (*desc)->data[2] = (uint64_t)compute;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc)
{
    free(desc);
    return CUBLAS_STATUS_SUCCESS;
}

/* data[0], data[1]: op(A), op(B). */
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr,
                                              const void *buf, size_t size)
{
    if (size != sizeof(int32_t)) return CUBLAS_STATUS_INVALID_VALUE;
    int32_t op;
    memcpy(&op, buf, sizeof op);
    if (attr == CUBLASLT_MATMUL_DESC_TRANSA) desc->data[0] = (uint64_t)op;
    else if (attr == CUBLASLT_MATMUL_DESC_TRANSB) desc->data[1] = (uint64_t)op;
    else return CUBLAS_STATUS_NOT_SUPPORTED;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *out, cudaDataType type, uint64_t rows, uint64_t cols,
                                          int64_t ld)
{
    int32_t dtype = type == CUDA_R_32F ? 0 : type == CUDA_R_16BF ? 1 : type == CUDA_R_16F ? 2 : -1;
    if (dtype < 0) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (ld < (int64_t)rows || rows == 0 || cols == 0) return CUBLAS_STATUS_INVALID_VALUE;
    *out = calloc(1, sizeof **out);
    if (!*out) return CUBLAS_STATUS_ALLOC_FAILED;
    *layout_of(*out) =
        (fake_layout){.rows = (int64_t)rows, .cols = (int64_t)cols, .ld = ld, .batch = 1, .dtype = dtype};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout)
{
    free(layout);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t layout, cublasLtMatrixLayoutAttribute_t attr,
                                                const void *buf, size_t size)
{
    fake_layout *l = layout_of(layout);
    if (attr == CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT && size == sizeof(int32_t)) memcpy(&l->batch, buf, size);
    else if (attr == CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET && size == sizeof(int64_t)) memcpy(&l->stride, buf, size);
    else return CUBLAS_STATUS_NOT_SUPPORTED;
    return l->batch >= 1 ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
}

/* A preference's data[0..3]: the alignment promised for A, B, C, D (bytes). */
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *pref)
{
    *pref = calloc(1, sizeof **pref);
    if (!*pref) return CUBLAS_STATUS_ALLOC_FAILED;
    for (int i = 0; i < 4; i++) (*pref)->data[i] = 256;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref)
{
    free(pref);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void *buf,
                                                    size_t size)
{
    if (attr == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES && size == sizeof(uint64_t)) return CUBLAS_STATUS_SUCCESS;
    if (attr >= CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES && attr <= CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES &&
        size == sizeof(uint32_t)) {
        uint32_t bytes;
        memcpy(&bytes, buf, sizeof bytes);
        pref->data[attr - CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES] = bytes;
        return CUBLAS_STATUS_SUCCESS;
    }
    return CUBLAS_STATUS_NOT_SUPPORTED;
}

/* op(X)'s rows and columns. */
static void op_shape(const fake_layout *l, bool trans, int64_t *rows, int64_t *cols)
{
    *rows = trans ? l->cols : l->rows;
    *cols = trans ? l->rows : l->cols;
}

/* Whether the four layouts make one matmul (the shapes chain, batches agree). */
static bool chains(cublasLtMatmulDesc_t desc, const fake_layout *a, const fake_layout *b, const fake_layout *c,
                   const fake_layout *d)
{
    int64_t m, k, k2, n;
    op_shape(a, desc->data[0] != CUBLAS_OP_N, &m, &k);
    op_shape(b, desc->data[1] != CUBLAS_OP_N, &k2, &n);
    bool typed = a->dtype == b->dtype && (c->dtype == 0 || c->dtype == a->dtype) &&
                 (a->dtype == 0 || desc->data[2] == CUBLAS_COMPUTE_32F);
    return typed && k == k2 && c->rows == m && c->cols == n && d->rows == m && d->cols == n && a->batch == b->batch &&
           a->batch == c->batch && c->batch == d->batch && memcmp(c, d, sizeof *c) == 0;
}

static size_t dtype_bytes(int32_t dtype) { return dtype == 0 ? 4 : 2; }

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                                              cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                              cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t *results, int *returned)
{
    (void)handle;
    *returned = 0;
    if (requested < 1 || !chains(desc, layout_of(a), layout_of(b), layout_of(c), layout_of(d)))
        return CUBLAS_STATUS_INVALID_VALUE;
    memset(&results[0], 0, sizeof results[0]);
    memcpy(results[0].algo.data, pref->data, 4 * sizeof(uint64_t)); /* the algo relies on the promised alignment */
    results[0].state = CUBLAS_STATUS_SUCCESS;
    *returned = 1;
    return CUBLAS_STATUS_SUCCESS;
}

/* Whether x (and, batched, each matrix after it) is aligned as promised. */
static bool aligned(const void *x, const fake_layout *l, uint64_t promised)
{
    uintptr_t bits = (uintptr_t)x | (l->batch > 1 ? (uintptr_t)l->stride * dtype_bytes(l->dtype) : 0);
    return promised == 0 || bits % promised == 0;
}

/* Element (i, j) of op(X), X's elements from `base` on. */
static float element(const void *x, int64_t base, const fake_layout *l, bool trans, int64_t i, int64_t j)
{
    return zrt_load_f32(x, (size_t)(base + (trans ? j + i * l->ld : i + j * l->ld)), l->dtype);
}

/* x to the nearest (ties to even) value with `bits` fraction bits and
 * exponents down to min_exp (subnormal steps below), infinite beyond max. */
static float round_to(float x, int bits, int min_exp, double max)
{
    if (x == 0 || !isfinite(x)) return x;
    int e = ilogbf(x) < min_exp ? min_exp : ilogbf(x);
    double quantum = ldexp(1.0, e - bits), r = nearbyint(x / quantum) * quantum; /* the default mode: to even */
    return fabs(r) > max ? copysignf(INFINITY, x) : (float)r;
}

/* An input as the compute type reads it. */
static float as_input(float x, uint64_t compute)
{
    if (compute == CUBLAS_COMPUTE_32F_FAST_16BF) return round_to(x, 7, -126, 3.4028234663852886e38);
    if (compute == CUBLAS_COMPUTE_32F_FAST_TF32) return round_to(x, 10, -126, 3.4028234663852886e38);
    if (compute == CUBLAS_COMPUTE_32F_FAST_16F) return round_to(x, 10, -14, 65504.0);
    return x;
}

/* op(X) of one matrix, as the compute type reads it, into rows x cols row-major. */
static void gather(float *out, const void *x, int64_t base, const fake_layout *l, bool trans, int64_t rows,
                   int64_t cols, uint64_t compute)
{
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) out[i * cols + j] = as_input(element(x, base, l, trans, i, j), compute);
}

/* The fault $ZRT_FAKE_CUBLASLT_FAULT asks for: its alpha and how many of the k terms it sums (-1: unknown). */
static int64_t fault_terms(int64_t k, float *alpha)
{
    const char *fault = getenv("ZRT_FAKE_CUBLASLT_FAULT");
    if (!fault || !*fault) return k;
    if (strcmp(fault, "alpha") == 0) {
        *alpha *= 2.0f;
        return k;
    }
    if (strcmp(fault, "kblock") == 0) return k > 32 ? k - 32 : 0;
    return -1;
}

/* Matrix `batch`: D = alpha op(A) op(B) + beta C (C and D of their layouts' types, D rounded to nearest even
 * when 16-bit), op(A) as rows of a (m x k), op(B) as columns (n x k). */
static void multiply(void *d, const fake_layout *dl, const float *a, const float *b, const void *c,
                     const fake_layout *cl, int32_t batch, int64_t k, int64_t terms, float al, float be)
{
    for (int64_t j = 0; j < dl->cols; j++)
        for (int64_t i = 0; i < dl->rows; i++) {
            double sum = 0;
            for (int64_t p = 0; p < terms; p++) sum += (double)a[i * k + p] * b[j * k + p];
            size_t at_c = (size_t)(batch * cl->stride + i + j * cl->ld);
            size_t at_d = (size_t)(batch * dl->stride + i + j * dl->ld);
            float prior = be != 0.0f ? be * zrt_load_f32(c, at_c, cl->dtype) : 0.0f; /* beta 0: C is not read */
            zrt_store_f32(d, at_d, dl->dtype, al * (float)sum + prior);
        }
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void *alpha, const void *A,
                              cublasLtMatrixLayout_t adesc, const void *B, cublasLtMatrixLayout_t bdesc,
                              const void *beta, const void *C, cublasLtMatrixLayout_t cdesc, void *D,
                              cublasLtMatrixLayout_t ddesc, const cublasLtMatmulAlgo_t *algo, void *workspace,
                              size_t workspace_bytes, cudaStream_t stream)
{
    (void)handle, (void)workspace, (void)workspace_bytes, (void)stream;
    const fake_layout *a = layout_of(adesc), *b = layout_of(bdesc), *c = layout_of(cdesc), *d = layout_of(ddesc);
    if (!chains(desc, a, b, c, d)) return CUBLAS_STATUS_INVALID_VALUE;
    if (!aligned(A, a, algo->data[0]) || !aligned(B, b, algo->data[1]) || !aligned(C, c, algo->data[2]) ||
        !aligned(D, d, algo->data[3]))
        return CUBLAS_STATUS_INVALID_VALUE; /* the real library would misread or fault */
    bool ta = desc->data[0] != CUBLAS_OP_N, tb = desc->data[1] != CUBLAS_OP_N;
    int64_t m, k, n, k2;
    op_shape(a, ta, &m, &k);
    op_shape(b, tb, &k2, &n);
    float al = *(const float *)alpha, be = *(const float *)beta;
    int64_t terms = fault_terms(k, &al);
    if (terms < 0) return CUBLAS_STATUS_NOT_SUPPORTED; /* a fault this fake does not know */
    float *ra = malloc((size_t)(m * k) * sizeof(float)), *rb = malloc((size_t)(n * k) * sizeof(float));
    for (int32_t batch = 0; ra && rb && batch < a->batch; batch++) {
        gather(ra, A, batch * a->stride, a, ta, m, k, desc->data[2]);
        gather(rb, B, batch * b->stride, b, !tb, n, k, desc->data[2]); /* op(B)^T: its columns */
        multiply(D, d, ra, rb, C, c, batch, k, terms, al, be);
    }
    cublasStatus_t status = ra && rb ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
    free(ra), free(rb);
    return status;
}
