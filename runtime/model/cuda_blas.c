/* cuda_blas.c: the CUDA models' matmuls through cuBLASLt, behind
 * cblas_sgemm's row-major contract (nn.h's zrt_gemm), the cuda ops table's
 * gemm (nn_cuda.c).
 *
 * Row-major to cuBLAS's column-major: a row-major X (r x c, ld) is the
 * column-major X^T, so C = op(A) op(B) row-major is C^T = op(B)^T op(A)^T
 * column-major: cuBLASLt gets B as its first matrix, A as its second, m = N
 * and n = M. Descriptors and the heuristic's algorithm are made once per
 * shape and kept in a small cache (a step then only launches); a shape
 * beyond the cache is planned, run and freed.
 * Math: fp32 accumulation always. fp32 inputs: the compute type says
 * whether the tensor cores may round them (TF32, bf16, fp16) -- see
 * zrt_matmul_math. bf16 or fp16 inputs (A and B of one type: nn_cuda.c
 * casts an fp32 weight first): CUBLAS_COMPUTE_32F, the output fp32 or the
 * inputs' type (zrt_gemm's c_type). cuBLASLt gives the same bits run to run for a shape and
 * algorithm (no atomics mode is set), so ZeRO stages stay equal on a GPU.
 * cuBLASLt is loaded with dlopen when the first CUDA model is made, not
 * linked: its 64 MB of resident pages would otherwise be in every CPU rank.
 * $ZRT_CUBLASLT names another library to load (the emulated test's fake).
 * zrt_cublaslt_find (every build, CUDA or not) says which one that search
 * finds, for `zrt report`.
 */
#include "zrt.h"
#include "zrt/internal/cuda_check.h"
#include "zrt/internal/knobs.h"

#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef ZRT_CUBLASLT_SONAME
#define ZRT_CUBLASLT_SONAME "libcublasLt.so"
#endif

/* dlopen of cuBLASLt by the names in zrt/model.h's order; *library: the first
 * name tried (for messages). NULL (dlerror() says why) if none loads. Built in
 * every build: `zrt report` asks where it would come from. */
static void *lt_open(const char **library)
{
    const char *chosen = zrt_knob_set(ZRT_KNOB_CUBLASLT); /* another cuBLASLt (or tests/fake_cublaslt.c) */
    bool by_user = chosen && *chosen;
    *library = by_user ? chosen : ZRT_CUBLASLT_SONAME;
    /* Never unloaded: a C++ library's static state (libstdc++'s exception pool)
     * must not outlive its mapping -- a probe's dlclose left it unreachable. */
    void *lib = dlopen(*library, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!lib && !by_user) lib = dlopen("libcublasLt.so", RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    return lib;
}

zrt_status zrt_cublaslt_find(char *path, size_t size)
{
    const char *library;
    void *lib = lt_open(&library);
    if (!lib) return zrt_set_error(ZRT_ERR_UNSUPPORTED, "cannot load cuBLASLt (%s): %s", library, dlerror());
    struct link_map *map = NULL;
    bool mapped = dlinfo(lib, RTLD_DI_LINKMAP, &map) == 0 && map && map->l_name[0];
    snprintf(path, size, "%s", mapped ? map->l_name : library);
    dlclose(lib);
    return ZRT_OK;
}

#ifdef ZRT_HAVE_CUDA

#include "nn_device.h"
#include "zrt/internal/cuda_check.h"

#include <cublasLt.h>
#include <pthread.h>

/* The cuBLASLt functions this file calls, from the library dlopen found. */
#define LT_FUNCTIONS(X)                                                                                   \
    X(cublasLtCreate) X(cublasLtDestroy) X(cublasLtGetStatusString) X(cublasLtMatmulDescCreate)           \
    X(cublasLtMatmulDescDestroy) X(cublasLtMatmulDescSetAttribute) X(cublasLtMatrixLayoutCreate)          \
    X(cublasLtMatrixLayoutDestroy) X(cublasLtMatrixLayoutSetAttribute) X(cublasLtMatmulPreferenceCreate) \
    X(cublasLtMatmulPreferenceDestroy) X(cublasLtMatmulPreferenceSetAttribute)                            \
    X(cublasLtMatmulAlgoGetHeuristic) X(cublasLtMatmul)

static struct {
#define LT_POINTER(name) __typeof__(&name) name;
    LT_FUNCTIONS(LT_POINTER)
#undef LT_POINTER
} lt;
static char lt_missing[512]; /* why loading failed, "" if it did not */
static pthread_once_t lt_once = PTHREAD_ONCE_INIT;

static void lt_load(void)
{
    const char *library;
    void *lib = lt_open(&library);
    if (!lib) {
        snprintf(lt_missing, sizeof lt_missing, "cannot load cuBLASLt (%s): %s", library, dlerror());
        return;
    }
#define LT_LOAD(name)                                                                             \
    if (!lt_missing[0] && !(*(void **)&lt.name = dlsym(lib, #name)))                               \
        snprintf(lt_missing, sizeof lt_missing, "cuBLASLt (%s) has no %s", library, #name);
    LT_FUNCTIONS(LT_LOAD)
#undef LT_LOAD
}

#define WORKSPACE_BYTES (32u << 20)
#define CACHE_SLOTS 64

typedef struct {
    bool trans_a, trans_b;
    zrt_dtype in_type, c_type; /* A's and B's, C's */
    int M, N, K, lda, ldb, ldc, batch;
    int64_t stride_a, stride_b, stride_c;
    uint32_t align_a, align_b, align_c; /* bytes the pointers (and batch strides) are aligned to, <= 256 */
} gemm_shape;

typedef struct {
    gemm_shape shape;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t first, second, out; /* cuBLASLt's A (our B), B (our A), C = D */
    cublasLtMatmulAlgo_t algo;
} gemm_plan;

struct zrt_cuda_blas {
    cublasLtHandle_t handle;
    cublasComputeType_t compute;
    void *workspace;
    int n_plans;
    gemm_plan plans[CACHE_SLOTS];
};

/* Checks a cuBLASLt call (zrt/internal/cuda_check.h) with the loaded library's reasons. */
#define LT_STATUS lt.cublasLtGetStatusString

zrt_status zrt_cuda_blas_create(zrt_device *device, zrt_matmul_math math, zrt_cuda_blas **out)
{
    pthread_once(&lt_once, lt_load);
    if (lt_missing[0]) return zrt_set_error(ZRT_ERR_UNSUPPORTED, "%s", lt_missing);
    zrt_cuda_blas *b = calloc(1, sizeof *b);
    if (!b) return zrt_set_error(ZRT_ERR_NOMEM, "cublasLt: out of memory");
    static const cublasComputeType_t computes[] = {CUBLAS_COMPUTE_32F, CUBLAS_COMPUTE_32F_FAST_TF32,
                                                   CUBLAS_COMPUTE_32F_FAST_16BF, CUBLAS_COMPUTE_32F_FAST_16F};
    b->compute = computes[math];
    cublasStatus_t st = lt.cublasLtCreate(&b->handle);
    if (st != CUBLAS_STATUS_SUCCESS) {
        free(b);
        return zrt_call_failed(ZRT_ERR_IO, "cublasLt", "cublasLtCreate", LT_STATUS(st), __FILE__, __LINE__);
    }
    zrt_status status = zrt_device_alloc(device, ZRT_MEM_ACTIVATIONS, WORKSPACE_BYTES, "cublasLt workspace", NULL,
                                         &b->workspace);
    if (status != ZRT_OK) {
        zrt_cuda_blas_destroy(b, device);
        return status;
    }
    *out = b;
    return ZRT_OK;
}

static void plan_free(gemm_plan *p)
{
    if (p->first) lt.cublasLtMatrixLayoutDestroy(p->first);
    if (p->second) lt.cublasLtMatrixLayoutDestroy(p->second);
    if (p->out) lt.cublasLtMatrixLayoutDestroy(p->out);
    if (p->desc) lt.cublasLtMatmulDescDestroy(p->desc);
    memset(p, 0, sizeof *p);
}

void zrt_cuda_blas_destroy(zrt_cuda_blas *b, zrt_device *device)
{
    if (!b) return;
    for (int i = 0; i < b->n_plans; i++) plan_free(&b->plans[i]);
    zrt_device_free(device, b->workspace, NULL);
    if (b->handle) lt.cublasLtDestroy(b->handle);
    free(b);
}

static cudaDataType_t cuda_type(zrt_dtype t)
{
    static const cudaDataType_t types[] = {[ZRT_DTYPE_F32] = CUDA_R_32F, [ZRT_DTYPE_BF16] = CUDA_R_16BF,
                                           [ZRT_DTYPE_F16] = CUDA_R_16F};
    return types[t];
}

/* A column-major rows x cols layout of type t with ld and the batch's stride. */
static zrt_status layout(cublasLtMatrixLayout_t *out, zrt_dtype t, int rows, int cols, int ld, int batch,
                         int64_t stride)
{
    ZRT_CUBLASLT_CHECK(lt.cublasLtMatrixLayoutCreate(out, cuda_type(t), (uint64_t)rows, (uint64_t)cols, ld), LT_STATUS);
    if (batch > 1) {
        int32_t count = batch;
        ZRT_CUBLASLT_CHECK(lt.cublasLtMatrixLayoutSetAttribute(*out, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count), LT_STATUS);
        ZRT_CUBLASLT_CHECK(lt.cublasLtMatrixLayoutSetAttribute(*out, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride), LT_STATUS);
    }
    return ZRT_OK;
}

/* Descriptors and the heuristic's best algorithm for a shape. */
static zrt_status plan_make(zrt_cuda_blas *b, const gemm_shape *s, gemm_plan *p)
{
    memset(p, 0, sizeof *p);
    p->shape = *s;
    /* column-major: D (N x M) = op(B') (N x K) op(A') (K x M), B' and A' the row-major buffers */
    cublasOperation_t op_first = s->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t op_second = s->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasComputeType_t compute = s->in_type == ZRT_DTYPE_F32 ? b->compute : CUBLAS_COMPUTE_32F;
    ZRT_CUBLASLT_CHECK(lt.cublasLtMatmulDescCreate(&p->desc, compute, CUDA_R_32F), LT_STATUS);
    ZRT_CUBLASLT_CHECK(lt.cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_first, sizeof op_first), LT_STATUS);
    ZRT_CUBLASLT_CHECK(lt.cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_second, sizeof op_second), LT_STATUS);
    ZRT_CHECK(layout(&p->first, s->in_type, s->trans_b ? s->K : s->N, s->trans_b ? s->N : s->K, s->ldb, s->batch,
                     s->stride_b));
    ZRT_CHECK(layout(&p->second, s->in_type, s->trans_a ? s->M : s->K, s->trans_a ? s->K : s->M, s->lda, s->batch,
                     s->stride_a));
    ZRT_CHECK(layout(&p->out, s->c_type, s->N, s->M, s->ldc, s->batch, s->stride_c));
    cublasLtMatmulPreference_t pref;
    ZRT_CUBLASLT_CHECK(lt.cublasLtMatmulPreferenceCreate(&pref), LT_STATUS);
    uint64_t workspace = WORKSPACE_BYTES;
    cublasStatus_t st = lt.cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
                                                             sizeof workspace);
    const struct {
        cublasLtMatmulPreferenceAttributes_t attr;
        uint32_t bytes;
    } aligns[] = {{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, s->align_b}, /* cuBLASLt's A is our B */
                  {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, s->align_a},
                  {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, s->align_c},
                  {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, s->align_c}};
    for (int i = 0; i < 4 && st == CUBLAS_STATUS_SUCCESS; i++)
        st = lt.cublasLtMatmulPreferenceSetAttribute(pref, aligns[i].attr, &aligns[i].bytes, sizeof aligns[i].bytes);
    cublasLtMatmulHeuristicResult_t result;
    int found = 0;
    if (st == CUBLAS_STATUS_SUCCESS)
        st = lt.cublasLtMatmulAlgoGetHeuristic(b->handle, p->desc, p->first, p->second, p->out, p->out, pref, 1, &result,
                                            &found);
    lt.cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS) return zrt_call_failed(ZRT_ERR_IO, "cublasLt", "cublasLtMatmulAlgoGetHeuristic", LT_STATUS(st), __FILE__, __LINE__);
    if (found < 1)
        return zrt_set_error(ZRT_ERR_UNSUPPORTED, "cublasLt: no algorithm for a %dx%dx%d matmul (batch %d)", s->M, s->N,
                             s->K, s->batch);
    p->algo = result.algo;
    return ZRT_OK;
}

/* The cached plan of a shape, made on first use (NULL slot: the cache is full, *tmp holds it). */
static zrt_status plan_for(zrt_cuda_blas *b, const gemm_shape *s, gemm_plan *tmp, gemm_plan **out)
{
    for (int i = 0; i < b->n_plans; i++)
        if (memcmp(&b->plans[i].shape, s, sizeof *s) == 0) {
            *out = &b->plans[i];
            return ZRT_OK;
        }
    gemm_plan *p = b->n_plans < CACHE_SLOTS ? &b->plans[b->n_plans] : tmp;
    zrt_status status = plan_make(b, s, p);
    if (status != ZRT_OK) {
        plan_free(p);
        return status;
    }
    if (p != tmp) b->n_plans++;
    *out = p;
    return ZRT_OK;
}

/* The largest power of two <= 256 dividing the address and, batched, the stride's bytes. */
static uint32_t alignment(const void *ptr, zrt_dtype t, int64_t stride, int batch)
{
    uintptr_t bits = (uintptr_t)ptr | (batch > 1 ? (uintptr_t)stride * zrt_dtype_size(t) : 0);
    uint32_t align = 256;
    while (align > 1 && bits % align) align >>= 1;
    return align;
}

zrt_status zrt_cuda_gemm(zrt_cuda_blas *b, void *stream, const zrt_gemm *g)
{
    int batch = g->batch ? g->batch : 1;
    if (g->M < 1 || g->N < 1 || g->K < 1 || batch < 1)
        return zrt_set_error(ZRT_ERR_INVALID, "cublasLt: a %dx%dx%d matmul (batch %d)", g->M, g->N, g->K, batch);
    if (g->a_type != g->b_type || (g->c_type != ZRT_DTYPE_F32 && g->c_type != g->a_type))
        return zrt_set_error(ZRT_ERR_UNSUPPORTED, "cublasLt: a matmul of %s A, %s B into %s C (A and B of one type, C "
                             "fp32 or theirs)", zrt_dtype_name(g->a_type), zrt_dtype_name(g->b_type),
                             zrt_dtype_name(g->c_type));
    gemm_shape s;
    memset(&s, 0, sizeof s); /* the cache compares bytes, padding included: fields one by one */
    s.trans_a = g->trans_a, s.trans_b = g->trans_b, s.M = g->M, s.N = g->N, s.K = g->K;
    s.in_type = g->a_type, s.c_type = g->c_type;
    s.lda = g->lda, s.ldb = g->ldb, s.ldc = g->ldc, s.batch = batch;
    if (batch > 1) s.stride_a = g->stride_a, s.stride_b = g->stride_b, s.stride_c = g->stride_c;
    s.align_a = alignment(g->A, g->a_type, s.stride_a, batch);
    s.align_b = alignment(g->B, g->b_type, s.stride_b, batch);
    s.align_c = alignment(g->C, g->c_type, s.stride_c, batch);
    gemm_plan tmp, *p;
    memset(&tmp, 0, sizeof tmp);
    ZRT_CHECK(plan_for(b, &s, &tmp, &p));
    cublasStatus_t st = lt.cublasLtMatmul(b->handle, p->desc, &g->alpha, g->B, p->first, g->A, p->second, &g->beta, g->C,
                                       p->out, g->C, p->out, &p->algo, b->workspace, WORKSPACE_BYTES,
                                       (cudaStream_t)stream);
    if (p == &tmp) plan_free(&tmp);
    if (st != CUBLAS_STATUS_SUCCESS) return zrt_call_failed(ZRT_ERR_IO, "cublasLt", "cublasLtMatmul", LT_STATUS(st), __FILE__, __LINE__);
    return ZRT_OK;
}

#endif /* built without CUDA: the CUDA models are not registered; only zrt_cublaslt_find is */
