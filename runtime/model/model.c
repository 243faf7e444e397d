/* model.c: the model registry: zrt.model.type -> the constructor of a
 * built-in model.
 *
 * Why a table: the engine trains whatever zrt_model it is handed and never
 * names a concrete model; adding a model is one file written against nn.h
 * and one row here. The device is not a column: every model runs on every
 * device that has an ops table (zrt_nn_ops_of), and a device without one
 * (cuda in a build without CUDA) is refused by name (zrt_nn_model_init)
 * rather than run on the CPU behind the user's back.
 */
#include "model_internal.h"

typedef zrt_status (*model_create_fn)(const zrt_model_config *cfg, zrt_device *device, int micro_batch,
                                      zrt_model **out);

static const struct {
    zrt_model_type type;
    const char *name;
    model_create_fn create;
} registry[] = {
    {ZRT_MODEL_MLP, "mlp", zrt_model_mlp_create},
    {ZRT_MODEL_GPT, "gpt", zrt_model_gpt_create},
    {ZRT_MODEL_LLAMA, "llama", zrt_model_llama_create},
};

const char *zrt_model_type_name(zrt_model_type type)
{
    for (size_t i = 0; i < sizeof registry / sizeof registry[0]; i++)
        if (registry[i].type == type) return registry[i].name;
    return "?";
}

zrt_status zrt_model_create(const zrt_model_config *cfg, zrt_device *device, int micro_batch, zrt_model **out)
{
    if (!cfg || !device || !out) return zrt_set_error(ZRT_ERR_INVALID, "zrt_model_create: NULL argument");
    for (size_t i = 0; i < sizeof registry / sizeof registry[0]; i++)
        if (registry[i].type == cfg->type) return registry[i].create(cfg, device, micro_batch, out);
    return zrt_set_error(ZRT_ERR_INVALID, "model: no built-in model of type %d", (int)cfg->type);
}
