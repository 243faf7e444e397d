/* data.c: deterministic randomness and the built-in data (synthetic tasks
 * for the MLP and the transformers, byte-level text for gpt and llama).
 *
 * Why counter-based: a value is a pure function of (seed, stream, index), so
 * parameter init and samples are identical whatever the world size, the
 * stage or the order in which ranks ask (splitmix64, then Box-Muller).
 */
#include "model_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
#define STREAM_GRAMMAR 0x67a3a4ull

static uint64_t random_u64(uint64_t seed, uint64_t stream, uint64_t index)
{
    return splitmix64(splitmix64(seed ^ splitmix64(stream)) + index);
}

static zrt_status load_text(zrt_data *data, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return zrt_set_error(ZRT_ERR_IO, "data: cannot open %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (len < data->seq_len + 2) {
        fclose(f);
        return zrt_set_error(ZRT_ERR_CONFIG, "data: %s has %ld bytes; zrt.model.seq_len %lld needs at least %lld", path,
                             len, (long long)data->seq_len, (long long)data->seq_len + 2);
    }
    data->text = malloc((size_t)len);
    bool ok = data->text && fread(data->text, 1, (size_t)len, f) == (size_t)len;
    fclose(f);
    if (!ok) return zrt_set_error(ZRT_ERR_IO, "data: cannot read %s", path);
    data->text_len = len;
    return ZRT_OK;
}

/* The transformers (gpt, llama) read token sequences; the mlp reads vectors. */
static bool takes_tokens(zrt_model_type type) { return type == ZRT_MODEL_GPT || type == ZRT_MODEL_LLAMA; }

/* What every data set takes from the config: the model's sample shape and the seed. */
static void data_shape(zrt_data *data, const zrt_config *cfg)
{
    memset(data, 0, sizeof *data);
    data->model = cfg->job.model.type;
    data->d_model = cfg->job.model.d_model;
    data->vocab = cfg->job.model.vocab;
    data->seq_len = cfg->job.model.seq_len;
    data->seed = cfg->job.data.seed;
}

zrt_status zrt_data_init(zrt_data *data, const zrt_config *cfg)
{
    data_shape(data, cfg);
    if (takes_tokens(data->model) && cfg->job.data.type == ZRT_DATA_TOKENS)
        return zrt_data_tokens_open(cfg->job.data.train, data->vocab, data->seq_len, (uint64_t)data->seed, &data->tokens);
    if (takes_tokens(data->model) && cfg->job.data.type == ZRT_DATA_TEXT) {
        if (data->vocab < 256)
            return zrt_set_error(ZRT_ERR_CONFIG, "data: text is byte-level: zrt.model.vocab must be at least 256, not %lld",
                                 (long long)data->vocab);
        return load_text(data, cfg->job.data.path);
    }
    if (takes_tokens(data->model)) {
        data->successor = malloc((size_t)data->vocab * sizeof(int32_t));
        if (!data->successor) return zrt_set_error(ZRT_ERR_NOMEM, "data: out of memory");
        for (int64_t i = 0; i < data->vocab; i++) data->successor[i] = (int32_t)i;
        for (int64_t i = data->vocab - 1; i > 0; i--) { /* Fisher-Yates from the seed */
            int64_t j = (int64_t)(random_u64((uint64_t)data->seed, STREAM_GRAMMAR, (uint64_t)i) % (uint64_t)(i + 1));
            int32_t t = data->successor[i];
            data->successor[i] = data->successor[j];
            data->successor[j] = t;
        }
        return ZRT_OK;
    }
    data->teacher = malloc((size_t)(data->vocab * data->d_model) * sizeof(float));
    if (!data->teacher) return zrt_set_error(ZRT_ERR_NOMEM, "data: out of memory");
    for (int64_t i = 0; i < data->vocab * data->d_model; i++)
        data->teacher[i] = zrt_random_normal((uint64_t)data->seed, STREAM_TEACHER, (uint64_t)i);
    return ZRT_OK;
}

zrt_status zrt_data_init_val(zrt_data *data, const zrt_config *cfg)
{
    data_shape(data, cfg);
    if (cfg->job.data.type != ZRT_DATA_TOKENS || !cfg->job.data.val[0])
        return zrt_set_error(ZRT_ERR_CONFIG, "data: a validation set needs zrt.data.type tokens and zrt.data.val");
    return zrt_data_tokens_open(cfg->job.data.val, data->vocab, data->seq_len, (uint64_t)data->seed, &data->tokens);
}

void zrt_data_fini(zrt_data *data)
{
    free(data->teacher);
    free(data->successor);
    free(data->text);
    zrt_data_tokens_close(data->tokens);
    memset(data, 0, sizeof *data);
}

static void fill_mlp(const zrt_data *data, int64_t first, int count, float *inputs, int32_t *labels)
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

/* One sequence of seq_len + 1 tokens for sample index. */
static void sequence(const zrt_data *data, int64_t index, int32_t *seq)
{
    int64_t n = data->seq_len + 1;
    uint64_t h = random_u64((uint64_t)data->seed, STREAM_SAMPLES, (uint64_t)index);
    if (data->text) {
        int64_t offset = (int64_t)(h % (uint64_t)(data->text_len - n + 1));
        for (int64_t t = 0; t < n; t++) seq[t] = data->text[offset + t];
        return;
    }
    seq[0] = (int32_t)(h % (uint64_t)data->vocab);
    for (int64_t t = 1; t < n; t++) {
        uint64_t r = random_u64((uint64_t)data->seed, STREAM_SAMPLES, (uint64_t)(index * n + t));
        seq[t] = r % 4 != 0 ? data->successor[seq[t - 1]] : (int32_t)((r >> 8) % (uint64_t)data->vocab);
    }
}

static void fill_gpt(const zrt_data *data, int64_t first, int count, int32_t *inputs, int32_t *labels)
{
    int64_t T = data->seq_len;
    int32_t seq[65537];
    for (int s = 0; s < count; s++) {
        sequence(data, first + s, seq);
        memcpy(inputs + s * T, seq, (size_t)T * sizeof *seq);
        memcpy(labels + s * T, seq + 1, (size_t)T * sizeof *seq);
    }
}

void zrt_data_fill(const zrt_data *data, int64_t first, int count, void *inputs, int32_t *labels)
{
    if (data->tokens) zrt_data_tokens_fill(data->tokens, first, count, inputs, labels);
    else if (takes_tokens(data->model)) fill_gpt(data, first, count, inputs, labels);
    else fill_mlp(data, first, count, inputs, labels);
}
