/* estimate.c: the engine's sizing rules in one place -- a unit's padded and
 * shard sizes, which units stage 3 keeps gathered, where offload_param puts
 * a shard, the NVMe slots -- used by the engine when it allocates and by
 * zrt_engine_estimate (`zrt estimate --config`) to say beforehand what the
 * engine will allocate, byte for byte (tests/test_estimate.c compares the
 * two for every stage and offload option).
 */
#include "engine_internal.h"

#include <string.h>

static int64_t align_up(int64_t n, int64_t to) { return (n + to - 1) / to * to; }

void zrt_engine_unit_layout(const zrt_config *cfg, int64_t numel, int world, int64_t *padded, int64_t *shard,
                            bool *persistent)
{
    *padded = align_up(numel, (int64_t)world * 16);
    *shard = *padded / world;
    *persistent = cfg->zero.stage == 3 && numel <= cfg->zero.stage3_param_persistence_threshold;
}

bool zrt_engine_param_in_cpu(const zrt_config *cfg, int64_t shard, int64_t *in_cpu)
{
    const zrt_offload_config *c = &cfg->zero.offload_param;
    if (c->device != ZRT_OFFLOAD_CPU && *in_cpu + shard > c->max_in_cpu) return false;
    *in_cpu += shard;
    return true;
}

void zrt_engine_nvme_slots(const zrt_config *cfg, int64_t widest_shard, int *n_slots, size_t *group_elements,
                           size_t *slot_bytes)
{
    int64_t group = cfg->zero.sub_group_size < widest_shard ? cfg->zero.sub_group_size : widest_shard;
    *group_elements = group > 0 ? (size_t)group : 1;
    *n_slots = cfg->zero.offload_optimizer.buffer_count > 3 ? (int)cfg->zero.offload_optimizer.buffer_count : 3;
    int64_t es = cfg->mixed_precision == ZRT_PRECISION_NO ? 4 : 2;
    /* [master | exp_avg | exp_avg_sq | the gradients' window: aligned, plus a block of slack] */
    *slot_bytes = 3 * (size_t)align_up((int64_t)*group_elements * 4, ZRT_SWAP_ALIGN) +
                  (size_t)align_up((int64_t)*group_elements * es, ZRT_SWAP_ALIGN) + ZRT_SWAP_ALIGN;
}

zrt_status zrt_engine_estimate(const zrt_config *cfg, const int64_t *unit_numel, int n_units, zrt_mem_estimate *out)
{
    if (!cfg || !unit_numel || n_units < 1 || !out) return zrt_set_error(ZRT_ERR_INVALID, "zrt_engine_estimate: bad argument");
    memset(out, 0, sizeof *out);
    int world = (int)cfg->num_processes, stage = cfg->zero.stage;
    int64_t es = cfg->mixed_precision == ZRT_PRECISION_NO ? 4 : 2, in_cpu = 0, widest = 0, widest_nvme_param = 0;
    zrt_offload_device opt = cfg->zero.offload_optimizer.device, param = cfg->zero.offload_param.device;
    int64_t(*dev)[ZRT_MEM_CATEGORIES] = &out->bytes[ZRT_MEM_DEVICE], (*host)[ZRT_MEM_CATEGORIES] = &out->bytes[ZRT_MEM_HOST];
    for (int i = 0; i < n_units; i++) {
        int64_t padded, shard;
        bool persistent;
        zrt_engine_unit_layout(cfg, unit_numel[i], world, &padded, &shard, &persistent);
        if (shard > widest) widest = shard;
        bool offloaded = stage == 3 && !persistent && param != ZRT_OFFLOAD_NONE;
        if (stage < 3 || persistent) (*dev)[ZRT_MEM_PARAMS] += padded * es;
        if (stage == 3 && !offloaded) (*dev)[ZRT_MEM_PARAMS] += shard * es;
        if (offloaded && zrt_engine_param_in_cpu(cfg, shard, &in_cpu)) (*host)[ZRT_MEM_PARAMS] += shard * es;
        else if (offloaded && shard > widest_nvme_param) widest_nvme_param = shard;
        if (stage <= 1) (*dev)[ZRT_MEM_GRADS] += padded * es;
        else if (opt == ZRT_OFFLOAD_NONE || cfg->batch.gradient_accumulation_steps > 1) (*dev)[ZRT_MEM_GRADS] += shard * es;
        /* else: stages 2-3 offloaded, one micro batch: they go down from the reduce_scatter's output */
        if (opt == ZRT_OFFLOAD_NONE) (*dev)[ZRT_MEM_OPTIMIZER] += 12 * (stage == 0 ? padded : shard);
        if (opt == ZRT_OFFLOAD_CPU) (*host)[ZRT_MEM_GRADS] += shard * es; /* the gradients copied down */
        if (opt == ZRT_OFFLOAD_CPU) (*host)[ZRT_MEM_OPTIMIZER] += 12 * shard;
    }
    if (opt == ZRT_OFFLOAD_NVME) {
        int n_slots;
        size_t group, slot_bytes;
        zrt_engine_nvme_slots(cfg, widest, &n_slots, &group, &slot_bytes);
        (*host)[ZRT_MEM_OPTIMIZER] += n_slots * (int64_t)slot_bytes;
        (*host)[ZRT_MEM_GRADS] += 2 * align_up(widest * es, ZRT_SWAP_ALIGN); /* two units' on their way to the file */
    }
    if (widest_nvme_param) {
        int64_t slots = cfg->zero.offload_param.buffer_count > 64 ? 64 : cfg->zero.offload_param.buffer_count;
        (*host)[ZRT_MEM_PARAMS] += slots * align_up(widest_nvme_param * es, ZRT_SWAP_ALIGN);
    }
    return ZRT_OK;
}
