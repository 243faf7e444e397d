/* model_internal.h: the built-in models' constructors, for the registry
 * (model.c); each model file owns its own state and math.
 */
#ifndef ZRT_MODEL_INTERNAL_H
#define ZRT_MODEL_INTERNAL_H

#include "zrt.h"

zrt_status zrt_model_mlp_create(const zrt_model_config *cfg, int micro_batch, zrt_mem_stats *mem, zrt_model **out);
zrt_status zrt_model_gpt_create(const zrt_model_config *cfg, int micro_batch, zrt_mem_stats *mem, zrt_model **out);

#endif
