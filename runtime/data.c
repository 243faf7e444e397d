/* data.c: deterministic randomness and the built-in synthetic task.
 *
 * Why counter-based: a value is a pure function of (seed, stream, index), so
 * parameter init and samples are identical whatever the world size, the
 * stage or the order in which ranks ask (splitmix64, then Box-Muller).
 */
#include "engine.h"
#include "internal.h"

#include <math.h>
#include <stdlib.h>

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

float zrt_random_normal(uint64_t seed, uint64_t stream, uint64_t index)
{
    uint64_t h = splitmix64(splitmix64(seed ^ splitmix64(stream)) + index);
    double u1 = ((double)(h >> 11) + 1.0) / 9007199254740993.0; /* (0, 1] */
    double u2 = (double)(splitmix64(h) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

#define STREAM_TEACHER 0x7eac4e5ull
#define STREAM_SAMPLES 0x5a3b1e5ull

zrt_status zrt_data_init(zrt_data *data, const zrt_config *cfg)
{
    data->d_model = cfg->job.model.d_model;
    data->vocab = cfg->job.model.vocab;
    data->seed = cfg->job.data.seed;
    data->teacher = malloc((size_t)(data->vocab * data->d_model) * sizeof(float));
    if (!data->teacher) return zrt_set_error(ZRT_ERR_NOMEM, "data: out of memory");
    for (int64_t i = 0; i < data->vocab * data->d_model; i++)
        data->teacher[i] = zrt_random_normal((uint64_t)data->seed, STREAM_TEACHER, (uint64_t)i);
    return ZRT_OK;
}

void zrt_data_fini(zrt_data *data)
{
    free(data->teacher);
    data->teacher = NULL;
}

void zrt_data_fill(const zrt_data *data, int64_t first, int count, float *inputs, int32_t *labels)
{
    int64_t d = data->d_model;
    for (int s = 0; s < count; s++) {
        float *x = inputs + (int64_t)s * d;
        uint64_t base = (uint64_t)(first + s) * (uint64_t)d;
        for (int64_t j = 0; j < d; j++) x[j] = zrt_random_normal((uint64_t)data->seed, STREAM_SAMPLES, base + (uint64_t)j);
        int32_t best = 0;
        float best_score = -INFINITY;
        for (int64_t c = 0; c < data->vocab; c++) {
            float score = 0;
            for (int64_t j = 0; j < d; j++) score += data->teacher[c * d + j] * x[j];
            if (score > best_score) {
                best_score = score;
                best = (int32_t)c;
            }
        }
        labels[s] = best;
    }
}
