/* estimate.c: the engine's sizing rules in one place -- a unit's padded and
 * shard sizes, which units stage 3 keeps gathered, where offload_param puts
 * a shard, the NVMe slots -- used by the engine when it allocates and by
 * zrt_engine_estimate (`zrt estimate --config`) to say beforehand what the
 * engine will allocate, byte for byte (tests/test_estimate.c compares the
 * two for every stage and offload option), and the most it holds at once
 * while training: the bound a rank's memory stays under, which with
 * offload depends on the settings, not on the model's size
 * (tests/test_memory_bound.c holds a run's peak resident memory to it).
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

/* Stage 3's gathered units and their cache (stage3_max_live_parameters, or
 * the widest unit: a unit is gathered even when it alone is over), with the
 * offloaded shards brought in for their gathers. */
static void estimate_gathered(const zrt_config *cfg, const int64_t *unit_numel, int n_units, int64_t es,
                              zrt_mem_estimate *out)
{
    int world = (int)cfg->num_processes;
    int64_t total = 0, widest = 0;
    for (int i = 0; i < n_units; i++) {
        int64_t padded, shard;
        bool persistent;
        zrt_engine_unit_layout(cfg, unit_numel[i], world, &padded, &shard, &persistent);
        if (persistent) continue;
        total += padded;
        if (padded > widest) widest = padded;
    }
    int64_t budget = cfg->zero.stage3_max_live_parameters > widest ? cfg->zero.stage3_max_live_parameters : widest;
    int64_t live = budget < total ? budget : total;
    out->peak[ZRT_MEM_DEVICE][ZRT_MEM_PARAMS] += live * es;
    if (cfg->zero.offload_param.device != ZRT_OFFLOAD_NONE) out->peak[ZRT_MEM_DEVICE][ZRT_MEM_COMM] += live / world * es;
}

/* A shard's part of the optimizer's swap file (place_nvme.c's plan): its
 * sub-groups' regions, 3 parts each, and its gradients. */
static int64_t nvme_state_bytes(int64_t shard, int64_t group, int64_t es)
{
    int64_t bytes = align_up(shard * es, ZRT_SWAP_ALIGN);
    for (int64_t begin = 0; begin < shard; begin += group)
        bytes += 3 * align_up((shard - begin < group ? shard - begin : group) * 4, ZRT_SWAP_ALIGN);
    return bytes;
}

/* What the engine holds beside the model states: peak's other terms, and the swap files. */
static void estimate_work(const zrt_config *cfg, const int64_t *unit_numel, int n_units, zrt_mem_estimate *out)
{
    int world = (int)cfg->num_processes, stage = cfg->zero.stage;
    int64_t es = cfg->mixed_precision == ZRT_PRECISION_NO ? 4 : 2, widest_padded = 0, widest_shard = 0, in_cpu = 0;
    zrt_offload_device opt = cfg->zero.offload_optimizer.device, param = cfg->zero.offload_param.device;
    for (int i = 0; i < n_units; i++) {
        int64_t padded, shard;
        bool persistent;
        zrt_engine_unit_layout(cfg, unit_numel[i], world, &padded, &shard, &persistent);
        if (padded > widest_padded) widest_padded = padded;
        if (shard > widest_shard) widest_shard = shard;
        bool offloaded = stage == 3 && !persistent && param != ZRT_OFFLOAD_NONE;
        if (offloaded && !zrt_engine_param_in_cpu(cfg, shard, &in_cpu)) out->nvme_bytes += align_up(shard * es, ZRT_SWAP_ALIGN);
    }
    if (opt == ZRT_OFFLOAD_NVME) {
        int n_slots;
        size_t group, slot_bytes;
        zrt_engine_nvme_slots(cfg, widest_shard, &n_slots, &group, &slot_bytes);
        for (int i = 0; i < n_units; i++) {
            int64_t padded, shard;
            bool persistent;
            zrt_engine_unit_layout(cfg, unit_numel[i], world, &padded, &shard, &persistent);
            out->nvme_bytes += nvme_state_bytes(shard, (int64_t)group, es);
        }
    }
    int64_t(*dev)[ZRT_MEM_CATEGORIES] = &out->peak[ZRT_MEM_DEVICE];
    if (stage == 3) estimate_gathered(cfg, unit_numel, n_units, es, out);
    if (stage >= 2) (*dev)[ZRT_MEM_COMM] += 2 * (widest_padded + widest_shard) * es;
    if (opt != ZRT_OFFLOAD_NONE)
        out->peak[ZRT_MEM_HOST][ZRT_MEM_COMM] += 2 * (widest_shard < (1 << 18) ? widest_shard : (1 << 18)) * es;
    bool grads_direct = es == 4 && (stage >= 2 || cfg->batch.gradient_accumulation_steps == 1);
    (*dev)[ZRT_MEM_ACTIVATIONS] += (es == 4 ? 0 : widest_padded * 4) + (grads_direct ? 0 : widest_padded * 4);
    (*dev)[ZRT_MEM_ACTIVATIONS] += (8 + 2 * (int64_t)n_units) * 4; /* the step's scratch */
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
    memcpy(out->peak, out->bytes, sizeof out->peak);
    estimate_work(cfg, unit_numel, n_units, out);
    return ZRT_OK;
}

zrt_status zrt_engine_estimate_model(const zrt_config *cfg, const zrt_model *model, zrt_mem_estimate *out)
{
    if (!model) return zrt_set_error(ZRT_ERR_INVALID, "zrt_engine_estimate_model: NULL model");
    ZRT_CHECK(zrt_engine_estimate(cfg, model->unit_numel, model->n_units, out));
    int64_t *acts = &out->peak[ZRT_MEM_DEVICE][ZRT_MEM_ACTIVATIONS];
    *acts += model->activation_bytes ? model->activation_bytes
                                     : zrt_device_mem(model->device)->current[ZRT_MEM_DEVICE][ZRT_MEM_ACTIVATIONS];
    int64_t micro = cfg->batch.micro_batch_per_gpu, batch = micro * ((int64_t)model->input_bytes_per_sample +
                                                                     model->labels_per_sample * (int64_t)sizeof(int32_t));
    *acts += batch;
    out->peak[ZRT_MEM_HOST][ZRT_MEM_ACTIVATIONS] += batch + 3 * (int64_t)sizeof(float); /* pinned batch, step result */
    for (int u = 0; u < model->n_units; u++) { /* tied: summed in fp32 over their ops */
        int uses = 0;
        for (int op = 0; op < model->n_ops; op++) uses += model->op_unit[op] == u;
        if (uses > 1) *acts += model->unit_numel[u] * (int64_t)sizeof(float);
    }
    return ZRT_OK;
}
