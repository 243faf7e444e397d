/* blas_core.c: which OpenBLAS kernel family this process runs and which one
 * this CPU deserves (zrt/model.h says why the two can differ).
 *
 * Families are ranked by the widest vectors their sgemm uses; a family this
 * file does not know ranks highest, so a newer OpenBLAS's choice is never
 * overridden.
 */
#include "zrt.h"
#include "zrt/internal/blas.h"

#include <stdlib.h>
#include <strings.h>

char *openblas_get_corename(void); /* OpenBLAS's; not in Debian's cblas.h */

enum { SSE, AVX, AVX2, AVX512, UNKNOWN };

static const struct {
    const char *name;
    int level;
} families[] = {
    {"Prescott", SSE}, {"Core2", SSE},      {"Penryn", SSE},     {"Dunnington", SSE}, {"Nehalem", SSE},
    {"Atom", SSE},     {"Barcelona", SSE},  {"Bobcat", SSE},     {"Sandybridge", AVX}, {"Bulldozer", AVX},
    {"Piledriver", AVX}, {"Steamroller", AVX}, {"Excavator", AVX}, {"Haswell", AVX2}, {"Zen", AVX2},
    {"SkylakeX", AVX512}, {"Cooperlake", AVX512}, {"SapphireRapids", AVX512},
};

static int family_level(const char *name)
{
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        if (name && strcasecmp(name, families[i].name) == 0) return families[i].level;
    return UNKNOWN;
}

const char *zrt_blas_core(void)
{
    const char *name = openblas_get_corename();
    return name ? name : "?";
}

const char *zrt_blas_core_wanted(void)
{
    if (getenv("OPENBLAS_CORETYPE")) return NULL;
#if defined(__x86_64__)
    __builtin_cpu_init();
    int level = family_level(zrt_blas_core());
    bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
                  __builtin_cpu_supports("avx512cd");
    if (avx512 && level < AVX512) return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && level < AVX2) return "Haswell";
#endif
    return NULL;
}
