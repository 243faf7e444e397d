/* estimate.h: what `zrt estimate` (cmd_estimate.c) takes from estimate_ds.c:
 * DeepSpeed's own estimator, and parameter counts of Hugging Face configs.
 * Private to tools/. */
#ifndef ZRT_TOOLS_ESTIMATE_H
#define ZRT_TOOLS_ESTIMATE_H

#include <stdbool.h>

/* The rows of DeepSpeed's estimate_zero2_model_states_mem_needs and
 * estimate_zero3_model_states_mem_needs (additional_buffer_factor 1.5), per
 * CPU (node) and per GPU, for every offload option and zero_init. */
void zrt_estimate_deepspeed(double params, double largest_layer, int nodes, int gpus_per_node, bool json);
/* Total and largest-layer parameter counts from a Hugging Face config.json
 * (gpt2; llama, mistral, qwen2 and the like); false with the reason printed. */
bool zrt_estimate_hf_config(const char *path, double *params, double *largest_layer);

#endif
