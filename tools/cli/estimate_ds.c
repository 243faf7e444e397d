/* estimate_ds.c: DeepSpeed's memory estimator, as its users know it
 * (deepspeed.runtime.zero.stage_1_and_2.estimate_zero2_model_states_mem_needs
 * and stage3.estimate_zero3_model_states_mem_needs: the same formulas, the
 * same 1.5 buffer factor, the same rows), and parameter counts from Hugging
 * Face config.json files, so `zrt estimate --model-config` answers for the
 * model a user is about to train.
 *
 * Why both this and the paper's rows: the paper's formulas are what zrt
 * allocates; DeepSpeed's add its own buffers and the cost of building the
 * model without zero.Init -- what a DeepSpeed user compares against.
 */
#include "estimate.h"
#include "format.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUFFER_FACTOR 1.5

#define GIB (1024.0 * 1024.0 * 1024.0)

static void row(bool json, int stage, const char *param, const char *opt, int zero_init, double cpu, double gpu)
{
    if (json)
        zrt_json_line("deepspeed", ZJ_STR(stage == 2 ? "zero2" : "zero3"), "offload_param", ZJ_STR(param),
                      "offload_optimizer", ZJ_STR(opt), "zero_init", ZJ_INT(zero_init), "per_cpu_bytes",
                      ZJ_NUM(floor(cpu + 0.5)), "per_gpu_bytes", ZJ_NUM(floor(gpu + 0.5)), NULL);
    else if (stage == 2)
        printf("  %8.2fGB | %7.2fGB | offload_optimizer=%-4s\n", cpu / GIB, gpu / GIB, opt);
    else
        printf("  %8.2fGB | %7.2fGB | offload_param=%-4s, offload_optimizer=%-4s, zero_init=%d\n", cpu / GIB, gpu / GIB,
               param, opt, zero_init);
}

static void zero3_row(bool json, double P, double largest, int nodes, int per_node, bool offload, bool offload_params,
                      int zero_init)
{
    double total_gpus = (double)nodes * per_node, gpus_factor = 1.0 / nodes, layer = 4 * largest, gpu, cpu;
    if (offload && offload_params) {
        gpu = layer;
        cpu = P * (zero_init ? 18 * gpus_factor : fmax(4.0 * per_node, 18 * gpus_factor)) * BUFFER_FACTOR;
    } else if (offload) {
        gpu = layer + (double)(long long)(2 * P / total_gpus);
        cpu = P * (zero_init ? 16 * gpus_factor : fmax(4.0 * per_node, 16 * gpus_factor)) * BUFFER_FACTOR;
    } else {
        gpu = layer + (double)(long long)(18 * P / total_gpus);
        cpu = (zero_init ? largest : P) * 4 * per_node * BUFFER_FACTOR;
    }
    row(json, 3, offload_params ? "cpu" : "none", offload ? "cpu" : "none", zero_init, cpu, gpu);
}

void zrt_estimate_deepspeed(double P, double largest, int nodes, int per_node, bool json)
{
    double total_gpus = (double)nodes * per_node;
    if (!json)
        printf("\nas DeepSpeed estimates them (estimate_zero2/3_model_states_mem_needs, buffer factor %.1f):\n"
               "HW: Setup with %d node%s, %d GPU%s per node.\nSW: Model with %.0fM total params, %.0fM largest layer params.\n"
               "ZeRO-2:\n   per CPU  |  per GPU |   Options\n",
               BUFFER_FACTOR, nodes, nodes > 1 ? "s" : "", per_node, per_node > 1 ? "s" : "", P / 1e6, largest / 1e6);
    row(json, 2, "none", "cpu", 1, P * fmax(4.0 * total_gpus, 16) * BUFFER_FACTOR, 2 * P);
    row(json, 2, "none", "none", 1, P * 4 * per_node * BUFFER_FACTOR, 4 * P + (double)(long long)(16 * P / total_gpus));
    if (!json) printf("ZeRO-3:\n   per CPU  |  per GPU |   Options\n");
    static const struct {
        bool offload, params;
    } options[] = {{true, true}, {true, false}, {false, false}};
    for (int k = 0; k < 3; k++)
        for (int zero_init = 1; zero_init >= 0; zero_init--)
            zero3_row(json, P, largest, nodes, per_node, options[k].offload, options[k].params, zero_init);
}

/* ---- Hugging Face configs ------------------------------------------------------------------------ */

static double field(const cJSON *cfg, const char *a, const char *b)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, a);
    if (!cJSON_IsNumber(v) && b) v = cJSON_GetObjectItemCaseSensitive(cfg, b);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* GPT-2: tied embeddings, Conv1D layers with biases, 2 layernorms per block. */
static bool gpt2_counts(const cJSON *cfg, double *params, double *largest)
{
    double C = field(cfg, "n_embd", NULL), L = field(cfg, "n_layer", NULL), V = field(cfg, "vocab_size", NULL),
           T = field(cfg, "n_positions", NULL), H = field(cfg, "n_inner", NULL);
    if (H == 0) H = 4 * C;
    if (C <= 0 || L <= 0 || V <= 0 || T <= 0) return false;
    double block = 4 * C + (3 * C * C + 3 * C) + (C * C + C) + (C * H + H) + (H * C + C);
    *params = V * C + T * C + L * block + 2 * C;
    *largest = fmax(V * C, fmax(3 * C * C + 3 * C, C * H + H));
    return true;
}

/* Llama-like: grouped-query attention without biases, a gated MLP, RMS norms. */
static bool llama_counts(const cJSON *cfg, double *params, double *largest)
{
    double C = field(cfg, "hidden_size", NULL), L = field(cfg, "num_hidden_layers", NULL), V = field(cfg, "vocab_size", NULL),
           I = field(cfg, "intermediate_size", NULL), heads = field(cfg, "num_attention_heads", NULL),
           kv = field(cfg, "num_key_value_heads", "num_attention_heads");
    const cJSON *tied = cJSON_GetObjectItemCaseSensitive(cfg, "tie_word_embeddings");
    if (C <= 0 || L <= 0 || V <= 0 || I <= 0 || heads <= 0) return false;
    double kv_dim = C / heads * kv, block = 2 * C * C + 2 * C * kv_dim + 3 * C * I + 2 * C;
    *params = V * C * (cJSON_IsTrue(tied) ? 1 : 2) + L * block + C;
    *largest = fmax(V * C, C * I);
    return true;
}

bool zrt_estimate_hf_config(const char *path, double *params, double *largest)
{
    FILE *f = fopen(path, "rb");
    char *text = malloc(1 << 20);
    size_t n = f && text ? fread(text, 1, (1 << 20) - 1, f) : 0;
    if (f) fclose(f);
    if (!f || !text) {
        fprintf(stderr, "zrt estimate: %s: cannot read\n", path);
        free(text);
        return false;
    }
    text[n] = '\0';
    cJSON *cfg = cJSON_Parse(text);
    free(text);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(cfg, "model_type");
    bool ok = cfg && (cJSON_IsString(type) && strcmp(type->valuestring, "gpt2") == 0 ? gpt2_counts(cfg, params, largest)
                                                                                     : llama_counts(cfg, params, largest));
    if (!ok)
        fprintf(stderr, "zrt estimate: %s: not a Hugging Face config zrt can count (gpt2: n_embd, n_layer, vocab_size, "
                        "n_positions; llama-like: hidden_size, num_hidden_layers, intermediate_size, "
                        "num_attention_heads, vocab_size)\n", path);
    cJSON_Delete(cfg);
    return ok;
}
