/* model.c: the model registry: zrt.model.type and the device's kind -> the
 * constructor of a built-in model.
 *
 * Why a table: the engine trains whatever zrt_model it is handed and never
 * names a concrete model; adding a model (or a backend's implementation of
 * one) is one row here and one file. Each built-in model has a cpu row and,
 * in builds with CUDA, a cuda row (gpt_cuda.c, mlp_cuda.c); a device without
 * a row is refused by name rather than run on the CPU behind the user's back.
 */
#include "model_internal.h"

#ifdef ZRT_HAVE_CUDA
#include "cuda_model.h"
#endif

typedef zrt_status (*model_create_fn)(const zrt_model_config *cfg, zrt_device *device, int micro_batch,
                                      zrt_model **out);

static const struct {
    zrt_model_type type;
    const char *name;
    zrt_device_kind device;
    model_create_fn create;
} registry[] = {
    {ZRT_MODEL_MLP, "mlp", ZRT_DEVICE_CPU, zrt_model_mlp_create},
    {ZRT_MODEL_GPT, "gpt", ZRT_DEVICE_CPU, zrt_model_gpt_create},
#ifdef ZRT_HAVE_CUDA
    {ZRT_MODEL_MLP, "mlp", ZRT_DEVICE_CUDA, zrt_model_mlp_cuda_create},
    {ZRT_MODEL_GPT, "gpt", ZRT_DEVICE_CUDA, zrt_model_gpt_cuda_create},
#endif
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
    zrt_device_kind kind = zrt_device_kind_of(device);
    bool known = false;
    for (size_t i = 0; i < sizeof registry / sizeof registry[0]; i++) {
        if (registry[i].type != cfg->type) continue;
        known = true;
        if (registry[i].device == kind) return registry[i].create(cfg, device, micro_batch, out);
    }
    if (!known) return zrt_set_error(ZRT_ERR_INVALID, "model: no built-in model of type %d", (int)cfg->type);
    return zrt_set_error(ZRT_ERR_UNSUPPORTED,
                         "model: the built-in %s model has no %s implementation in this build (built without CUDA); "
                         "train it on the cpu device: use_cpu: true or zrt.device: cpu",
                         zrt_model_type_name(cfg->type), zrt_device_kind_name(kind));
}
