/* engine_common.h: a small training setup the engine tests share: a config
 * built in code, and a run of N steps on `world` forked ranks whose per-step
 * results rank 0 writes to a file for the parent to compare.
 */
#ifndef ZRT_TEST_ENGINE_COMMON_H
#define ZRT_TEST_ENGINE_COMMON_H

#include "comm_common.h"
#include "zrt.h"
#include "zrt/internal/test_hooks.h"
#include "ranks.h"
#include <dirent.h>
#include <sys/stat.h>

#include <math.h>

#define MAX_STEPS 64

void openblas_set_num_threads(int num_threads);

typedef struct {
    int world, stage, steps;
    zrt_precision precision;
    int64_t micro, accum;
    int64_t persistence, max_live, prefetch; /* stage 3 knobs; 0 = default */
    int overflow_at;                          /* step (from 1) to inject, 0 = none */
    double hysteresis;
    bool gpt;                                 /* the transformer instead of the MLP */
    const char *ckpt;                         /* checkpoint directory, or NULL */
    int save_every;                           /* steps between saves (with ckpt) */
    bool resume;                              /* load ckpt before training */
    zrt_offload_device offload;               /* offload_optimizer.device */
    int64_t sub_group;                        /* nvme: sub_group_size; 0 = 200 (several per unit) */
    zrt_offload_device offload_param;         /* offload_param.device (stage 3) */
    int64_t max_in_cpu;                       /* offload_param nvme: elements kept in host memory */
    bool stochastic;                          /* zrt.bf16_stochastic_rounding */
    bool cuda;                                /* the cuda device (GPU 0; ranks share it over host comm) */
    bool nccl;                                /* the nccl comm backend (with cuda) */
    char tag[64];
} run_spec;

typedef struct {
    zrt_step_result steps[MAX_STEPS];
    int64_t model_state_bytes;
    zrt_mem_stats mem;
    int64_t peak_live;
    float master0[64]; /* the first elements of unit 0 after the run */
} run_result;

static inline void spec_config(const run_spec *s, zrt_config *cfg)
{
    zrt_config_init(cfg);
    cfg->distributed_type = ZRT_DIST_DEEPSPEED;
    cfg->num_processes = s->world;
    cfg->zero.stage = s->stage;
    cfg->zero.overlap_comm = true;
    cfg->mixed_precision = s->precision;
    cfg->batch_given.micro_batch_per_gpu = s->micro;
    cfg->batch_given.gradient_accumulation_steps = s->accum;
    cfg->gradient_clipping = 1.0;
    cfg->optimizer.lr = 1e-2;
    cfg->job.model = (zrt_model_config){.type = ZRT_MODEL_MLP, .layers = 3, .d_model = 16, .hidden = 40, .vocab = 8};
    if (s->gpt)
        cfg->job.model = (zrt_model_config){.type = ZRT_MODEL_GPT, .layers = 2, .d_model = 16, .heads = 2, .seq_len = 8,
                                            .vocab = 32};
    cfg->job.steps = s->steps;
    cfg->zero.stage3_param_persistence_threshold = s->persistence;
    if (s->max_live) cfg->zero.stage3_max_live_parameters = s->max_live;
    if (s->prefetch) cfg->zero.stage3_prefetch_bucket_size = s->prefetch;
    if (s->hysteresis) cfg->fp16.hysteresis = (int64_t)s->hysteresis;
    cfg->zero.offload_optimizer.device = s->offload;
    if (s->offload == ZRT_OFFLOAD_NVME) { /* two directories, striped; 8 KiB requests so that both are used */
        zrt_offload_config *o = &cfg->zero.offload_optimizer;
        o->n_nvme_paths = 2;
        for (int i = 0; i < 2; i++) {
            snprintf(o->nvme_paths[i], sizeof o->nvme_paths[i], "%s/nvme%d", test_tmpdir(), i);
            mkdir(o->nvme_paths[i], 0700);
        }
        cfg->zero.sub_group_size = s->sub_group ? s->sub_group : 200;
        cfg->aio.block_size = 8192;
    }
    cfg->zero.offload_param.device = s->offload_param;
    cfg->job.bf16_stochastic_rounding = s->stochastic;
    if (s->cuda) cfg->job.device = ZRT_DEVICE_CUDA;
    if (s->nccl) cfg->job.comm_backend = ZRT_COMM_NCCL;
    if (s->offload_param == ZRT_OFFLOAD_NVME) {
        zrt_offload_config *o = &cfg->zero.offload_param;
        o->n_nvme_paths = 1;
        snprintf(o->nvme_paths[0], sizeof o->nvme_paths[0], "%s/nvme-params", test_tmpdir());
        o->max_in_cpu = s->max_in_cpu;
        cfg->aio.block_size = 8192;
    }
    if (zrt_config_validate(cfg) != ZRT_OK) {
        fprintf(stderr, "bad test config: %s\n", zrt_last_error());
        exit(1);
    }
}

/* A cpu device for a one-process test (check mode from ZRT_DEVICE_CHECK). */
static inline zrt_device *test_device(void)
{
    zrt_device_options o;
    zrt_device_options_init(&o);
    zrt_device *device = NULL;
    if (zrt_device_create(&o, &device) != ZRT_OK) {
        fprintf(stderr, "cannot make the cpu device: %s\n", zrt_last_error());
        exit(1);
    }
    return device;
}

/* One rank's engine and what it stands on. */
typedef struct {
    zrt_config cfg;
    zrt_store *store;
    zrt_comm *comm;
    zrt_device *device;
    zrt_model *model;
    zrt_data data;
    zrt_engine *e;
} test_rank;

/* Makes t's engine for t->cfg on this rank (comm through the file store, rendezvous `tag`, for world > 1);
 * false with the reason printed. */
static inline bool test_rank_open_config(test_rank *t, const char *tag, int rank, int world)
{
    openblas_set_num_threads(1);
    bool nccl = t->cfg.job.comm_backend == ZRT_COMM_NCCL; /* nccl: a communicator even for one rank */
    open_comm_backend = nccl ? "nccl" : "host";
    if ((world > 1 || nccl) && open_comm(tag, rank, world, false, 60, &t->store, &t->comm) != ZRT_OK) {
        fprintf(stderr, "rank %d: comm: %s\n", rank, zrt_last_error());
        return false;
    }
    zrt_device_options device_options;
    zrt_device_options_init(&device_options); /* check mode from ZRT_DEVICE_CHECK (on in the tests) */
    device_options.kind = t->cfg.job.device == ZRT_DEVICE_CUDA ? ZRT_DEVICE_CUDA : ZRT_DEVICE_CPU; /* never auto */
    if (zrt_device_create(&device_options, &t->device) != ZRT_OK ||
        zrt_model_create(&t->cfg.job.model, t->device, (int)t->cfg.batch.micro_batch_per_gpu, &t->model) != ZRT_OK ||
        zrt_data_init(&t->data, &t->cfg) != ZRT_OK || zrt_engine_create(&t->cfg, t->comm, t->model, &t->e) != ZRT_OK) {
        fprintf(stderr, "rank %d: %s\n", rank, zrt_last_error());
        return false;
    }
    return true;
}

/* The same for spec s. */
static inline bool test_rank_open(test_rank *t, const run_spec *s, int rank, int world)
{
    memset(t, 0, sizeof *t);
    spec_config(s, &t->cfg);
    return test_rank_open_config(t, s->tag, rank, world);
}

static inline void test_rank_close(test_rank *t)
{
    zrt_engine_destroy(t->e);
    if (t->model) t->model->destroy(t->model);
    zrt_data_fini(&t->data);
    zrt_comm_destroy(t->comm);
    zrt_store_destroy(t->store);
    zrt_device_destroy(t->device);
}

/* A host function that fails on the compute stream after the loss (as a
 * hybrid collective or a bad token would): the step, which waits only on its
 * result event (recorded on the comm stream), must fail with its message. */
static zrt_status (*engine_real_loss)(zrt_model *, zrt_stream *, float, float, float *);
static inline zrt_status engine_injected_failure(void *arg)
{
    (void)arg;
    return zrt_set_error(ZRT_ERR_PEER, "injected: a host function failed before the step's event");
}
static inline zrt_status engine_loss_then_fail(zrt_model *m, zrt_stream *stream, float scale, float divisor,
                                               float *loss_sum)
{
    ZRT_CHECK(engine_real_loss(m, stream, scale, divisor, loss_sum));
    return zrt_stream_launch_host(stream, "injected failure", engine_injected_failure, NULL, 0, NULL, 0);
}

static inline void check_host_failure_fails_step(bool cuda)
{
    static test_rank t;
    run_spec s = {.world = 1, .stage = 2, .steps = 2, .precision = ZRT_PRECISION_NO, .micro = 2, .accum = 1,
                  .cuda = cuda};
    snprintf(s.tag, sizeof s.tag, "host-failure-%s", cuda ? "cuda" : "cpu");
    if (!test_rank_open(&t, &s, 0, 1)) {
        CHECK_MSG(false, "%s: no engine", s.tag);
        return;
    }
    zrt_step_result r;
    CHECK_OK(zrt_engine_step(t.e, &t.data, &r)); /* a good step first */
    engine_real_loss = t.model->loss;
    t.model->loss = engine_loss_then_fail;
    zrt_status status = zrt_engine_step(t.e, &t.data, &r);
    CHECK_MSG(status != ZRT_OK && strstr(zrt_last_error(), "injected"), "%s: the step returned %s", s.tag,
              status == ZRT_OK ? "ok with stale results" : zrt_last_error());
    if (status != ZRT_OK) printf("%s: the step failed: %s\n", s.tag, zrt_last_error());
    t.model->loss = engine_real_loss;
    test_rank_close(&t);
}

static inline int train_rank(int rank, int world, void *arg)
{
    const run_spec *s = arg;
    static test_rank t;
    static run_result r;
    memset(&r, 0, sizeof r);
    if (!test_rank_open(&t, s, rank, world)) return 11;
    zrt_engine *e = t.e;
    r.model_state_bytes = zrt_mem_model_states(zrt_device_mem(t.device), ZRT_MEM_DEVICE);
    int64_t done = 0;
    if (s->resume && zrt_engine_load(e, s->ckpt, &done) != ZRT_OK) {
        fprintf(stderr, "rank %d: load: %s\n", rank, zrt_last_error());
        return 15;
    }
    for (int i = (int)done; i < s->steps; i++) {
        if (s->overflow_at == i + 1 && rank == world - 1) zrt_engine_inject_overflow(e);
        if (zrt_engine_step(e, &t.data, &r.steps[i]) != ZRT_OK) {
            fprintf(stderr, "rank %d step %d: %s\n", rank, i, zrt_last_error());
            return 12;
        }
        if (s->ckpt && s->save_every && (i + 1) % s->save_every == 0 && zrt_engine_save(e, s->ckpt) != ZRT_OK) {
            fprintf(stderr, "rank %d save: %s\n", rank, zrt_last_error());
            return 16;
        }
    }
    r.peak_live = zrt_engine_peak_live_params(e);
    r.mem = *zrt_device_mem(t.device);
    float *master = malloc((size_t)t.model->unit_numel[0] * sizeof(float));
    if (zrt_engine_get_master(e, 0, master) != ZRT_OK) return 13;
    memcpy(r.master0, master, sizeof r.master0);
    free(master);
    if (rank == 0) {
        char path[1024];
        snprintf(path, sizeof path, "%s/result-%s", test_tmpdir(), s->tag);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(&r, sizeof r, 1, f) != 1) return 14;
        fclose(f);
    }
    test_rank_close(&t);
    return 0;
}

/* Runs spec on its ranks; fills out from rank 0. */
static inline bool run_training(run_spec *s, run_result *out)
{
    if (!s->tag[0])
        snprintf(s->tag, sizeof s->tag, "%s%s-w%d-s%d-p%d-m%lld-a%lld-t%lld-o%d", s->gpt ? "gpt" : "mlp",
                 s->cuda ? (s->nccl ? "-nccl" : "-cuda") : "", s->world,
                 s->stage, (int)s->precision, (long long)s->micro, (long long)s->accum, (long long)s->persistence,
                 (int)s->offload);
    if (ranks_run(s->world, train_rank, s, 120) != 0) return false;
    char path[1024];
    snprintf(path, sizeof path, "%s/result-%s", test_tmpdir(), s->tag);
    FILE *f = fopen(path, "rb");
    bool ok = f && fread(out, sizeof *out, 1, f) == 1;
    if (f) fclose(f);
    return ok;
}

static inline double rel_diff(double a, double b) { return fabs(a - b) / fmax(fabs(b), 1e-12); }

/* Losses and unit 0's final master of two runs, bit for bit. */
static inline bool same_run(const run_result *a, const run_result *b, int steps)
{
    for (int i = 0; i < steps; i++)
        if (memcmp(&a->steps[i].loss, &b->steps[i].loss, 4) != 0) return false;
    return memcmp(a->master0, b->master0, sizeof a->master0) == 0;
}

/* zrt-swap-* files left in TMPDIR/nvme0 and nvme1 (spec_config's NVMe directories). */
static inline int swap_files_left(void)
{
    int n = 0;
    for (int i = 0; i < 2; i++) {
        char path[1100];
        snprintf(path, sizeof path, "%s/nvme%d", test_tmpdir(), i);
        DIR *d = opendir(path);
        for (struct dirent *ent; d && (ent = readdir(d));) n += strncmp(ent->d_name, "zrt-swap-", 9) == 0;
        if (d) closedir(d);
    }
    return n;
}

/* `base` run for 6 steps in offload mode `from` at from_world; the same saved
 * at step 3 and resumed in mode `to` at to_world: the same world size must
 * give the same bits, another within tolerance (the reduction order changes). */
static inline void checkpoint_across(run_spec base, zrt_offload_device from, zrt_offload_device to, int from_world,
                                     int to_world, double tolerance)
{
    static run_result full, first, resumed;
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/ckpt-%d-%d-%d-%d", test_tmpdir(), (int)from, (int)to, from_world, to_world);
    run_spec s = base;
    s.world = from_world;
    s.steps = 6;
    s.micro = 4 / from_world;
    s.offload = from;
    snprintf(s.tag, sizeof s.tag, "full-%d-%d-%d-%d", (int)from, (int)to, from_world, to_world);
    CHECK(run_training(&s, &full));
    run_spec save = s;
    save.steps = 3;
    save.ckpt = dir;
    save.save_every = 3;
    snprintf(save.tag, sizeof save.tag, "save-%d-%d-%d-%d", (int)from, (int)to, from_world, to_world);
    CHECK(run_training(&save, &first));
    run_spec load = s;
    load.world = to_world;
    load.micro = 4 / to_world;
    load.offload = to;
    load.ckpt = dir;
    load.resume = true;
    snprintf(load.tag, sizeof load.tag, "load-%d-%d-%d-%d", (int)from, (int)to, from_world, to_world);
    CHECK(run_training(&load, &resumed));
    double worst = 0;
    bool bitwise = memcmp(resumed.master0, full.master0, sizeof full.master0) == 0;
    for (int i = 3; i < 6; i++) {
        worst = fmax(worst, rel_diff(resumed.steps[i].loss, full.steps[i].loss));
        bitwise &= memcmp(&resumed.steps[i].loss, &full.steps[i].loss, 4) == 0;
    }
    CHECK_MSG(from_world == to_world ? bitwise : worst < tolerance, "checkpoint %s (world %d) -> %s (world %d): %.3g",
              zrt_offload_device_name(from), from_world, zrt_offload_device_name(to), to_world, worst);
    printf("checkpoint offload %s world %d -> %s world %d: resumed, largest difference %.3g\n",
           zrt_offload_device_name(from), from_world, zrt_offload_device_name(to), to_world, worst);
}

#endif
