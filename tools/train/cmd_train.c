/* cmd_train.c: `zrt train`: one rank of a training job on the built-in model
 * and data. Alone it is a one-rank job; under `zrt launch` (or any launcher
 * that sets RANK, WORLD_SIZE and ZRT_STORE_DIR) it is one of many.
 *
 * Rank 0 prints the model-state bytes per rank at the start, then progress
 * (a live line on a TTY, one line per steps_per_print otherwise) and records
 * each step's metrics where the config asks (monitor.c: the metrics file,
 * TensorBoard event files, a CSV).
 * Fault injection for tests: ZRT_FAULT_EXIT=RANK:STEP makes that rank exit
 * with status 3 at that step, ZRT_FAULT_KILL=RANK:STEP kills it with SIGKILL;
 * ZRT_FAULT_SWAP (zrt/offload.h) acts in the first generation only.
 */
#include "zrt.h"
#include "zrt/internal/fault.h"
#include "zrt/internal/knobs.h"
#include "control.h"
#include "format.h"
#include "monitor.h"
#include "overrides.h"
#include "train.h"
#include "zrt/internal/offload.h"

#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <signal.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void openblas_set_num_threads(int num_threads);

static const char usage[] =
    "usage: zrt train --config CFG [options]\n"
    "\n"
    "Trains the built-in model (zrt.model) on the built-in data as one rank.\n"
    "Under `zrt launch` the rank and world come from RANK, WORLD_SIZE and\n"
    "ZRT_STORE_DIR/ZRT_STORE_SCOPE (the rendezvous store).\n"
    "\n";

typedef struct {
    int rank, world;
    zrt_config cfg;
    zrt_device *device;
    zrt_store *store;
    zrt_comm *comm;
    zrt_model *model;
    zrt_data data;
    zrt_data val;         /* zrt.data.val, when eval_interval asks for validation */
    double best_val;      /* the lowest validation loss so far (checkpoint_best) */
    zrt_engine *engine;
    zrt_monitor monitor;
    const char *resume_from; /* --resume_from: a step directory (or a directory with latest) */
} trainer;

static int env_int(const char *name, int fallback)
{
    const char *v = getenv(name);
    return v && *v ? atoi(v) : fallback;
}

/* The rendezvous store: the coordinator's (started by `zrt agent`) or a
 * shared directory (started by `zrt launch`). */
static zrt_status open_store(trainer *t)
{
    const char *coordinator = zrt_knob_set(ZRT_KNOB_COORDINATOR), *dir = zrt_knob_set(ZRT_KNOB_STORE_DIR);
    const char *scope = zrt_knob_string(ZRT_KNOB_STORE_SCOPE);
    if (coordinator) {
        char token[256];
        ZRT_CHECK(zrt_control_token(NULL, token, sizeof token));
        return zrt_store_grpc_create(coordinator, token, scope, &t->cfg, &t->store);
    }
    if (!dir)
        return zrt_set_error(ZRT_ERR_CONFIG, "WORLD_SIZE is %d but neither ZRT_COORDINATOR nor ZRT_STORE_DIR is set "
                                             "(use zrt launch or zrt agent)", t->world);
    return zrt_store_file_create(dir, scope, &t->store);
}

/* SIGTERM/SIGINT (an agent stopping the job, Ctrl-C): abort the
 * communicator, so a collective waiting on a peer returns at once and the
 * rank exits with the reason instead of hanging until the deadline. */
static _Atomic(zrt_comm *) abort_target;
static atomic_int handlers_running;
static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    stop_requested = sig;
    atomic_fetch_add(&handlers_running, 1); /* before the load: teardown waits for us */
    zrt_comm *comm = atomic_load(&abort_target);
    if (comm) zrt_comm_abort(comm); /* sets a flag and wakes futexes: signal-safe */
    atomic_fetch_sub(&handlers_running, 1);
}

static void watch_signals(zrt_comm *comm)
{
    atomic_store(&abort_target, comm);
    struct sigaction sa = {.sa_handler = on_stop_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

/* Before the communicator is freed: no handler may still be using it. */
static void unwatch_signals(void)
{
    atomic_store(&abort_target, NULL);
    while (atomic_load(&handlers_running) > 0) sched_yield();
}

/* The GPU of a cuda rank: GPU LOCAL_RANK. With the host comm backend
 * (hybrid mode: collectives staged through pinned memory) ranks may
 * outnumber the GPUs and share them, rank i on GPU i % GPUs -- ZeRO-3 with
 * 4 ranks on one GPU; NCCL needs a GPU per rank, so there it is an error. */
static zrt_status gpu_index(const trainer *t, int *index)
{
    int local = env_int("LOCAL_RANK", 0), gpus = zrt_device_count(ZRT_DEVICE_CUDA);
    *index = local;
    if (gpus < 1 || local < gpus) return ZRT_OK; /* no GPU: zrt_device_create says why */
    if (t->world > 1 && t->cfg.job.comm_backend == ZRT_COMM_HOST) {
        *index = local % gpus;
        return ZRT_OK;
    }
    return zrt_set_error(ZRT_ERR_CONFIG,
                         "LOCAL_RANK %d but this machine has %d GPU%s: NCCL needs a GPU per rank; set zrt.comm_backend: "
                         "host to let ranks share GPUs (hybrid mode)",
                         local, gpus, gpus == 1 ? "" : "s");
}

/* The device the config asks for (one line when auto fell back to the cpu). */
static zrt_status open_device(trainer *t)
{
    char why[512];
    zrt_device_options o;
    zrt_device_options_init(&o);
    o.kind = zrt_device_select(&t->cfg, why, sizeof why);
    if (o.kind == ZRT_DEVICE_CUDA) ZRT_CHECK(gpu_index(t, &o.index));
    zrt_status status = zrt_device_create(&o, &t->device);
    if (status != ZRT_OK && why[0]) return zrt_set_error(status, "%s", why); /* the setting that asked for it */
    if (status == ZRT_OK && why[0] && t->rank == 0) printf("zrt train: %s\n", why);
    return status;
}

/* comm_backend auto: nccl on cuda, host on cpu. */
static zrt_status open_comm(trainer *t)
{
    if (t->world == 1) return ZRT_OK;
    bool cuda = zrt_device_kind_of(t->device) == ZRT_DEVICE_CUDA;
    zrt_comm_kind kind = t->cfg.job.comm_backend;
    if (kind == ZRT_COMM_AUTO) kind = cuda ? ZRT_COMM_NCCL : ZRT_COMM_HOST;
    if (kind == ZRT_COMM_NCCL && !cuda)
        return zrt_set_error(ZRT_ERR_CONFIG, "zrt.comm_backend is nccl but the device is %s (nccl needs cuda)",
                             zrt_device_name(t->device));
    ZRT_CHECK(open_store(t));
    zrt_comm_options o;
    zrt_comm_options_init(&o);
    o.rank = t->rank;
    o.world_size = t->world;
    o.store = t->store;
    o.timeout_s = t->cfg.job.comm_timeout_s;
    o.socket_ifname = t->cfg.job.socket_ifname;
    o.device = 0;
    if (cuda) ZRT_CHECK(gpu_index(t, &o.device));
    return zrt_comm_create(kind == ZRT_COMM_NCCL ? "nccl" : "host", &o, &t->comm);
}

/* A job zrt launch did not start (zrt train alone, torchrun): rank 0 takes
 * the checkpoint_dir's lock itself, so two jobs never share a directory
 * (under zrt launch the launcher holds it: $ZRT_JOB_LOCKED). Held until exit. */
static zrt_status lock_checkpoint_dir(const trainer *t)
{
    int fd;
    if (t->rank != 0 || !t->cfg.job.checkpoint_dir[0] || zrt_knob_bool(ZRT_KNOB_JOB_LOCKED)) return ZRT_OK;
    return zrt_job_lock(t->cfg.job.checkpoint_dir, "zrt train", &fd);
}

static zrt_status setup(trainer *t)
{
    /* The model's BLAS threads: zrt.cpu_threads, else cores / local ranks -- never
     * OpenBLAS's default of every core in every rank. */
    int local_ranks = zrt_local_ranks(t->world, (int)t->cfg.num_machines);
    openblas_set_num_threads(zrt_cpu_threads_default((int)t->cfg.job.cpu_threads, local_ranks));
    if (t->cfg.num_processes != t->world && getenv("WORLD_SIZE"))
        return zrt_set_error(ZRT_ERR_CONFIG, "WORLD_SIZE is %d but the config has num_processes %lld", t->world,
                             (long long)t->cfg.num_processes);
    ZRT_CHECK(open_device(t));
    /* The model before the communicator: a model the device cannot run is
     * refused here, before any rank waits for the others. */
    ZRT_CHECK(zrt_model_create(&t->cfg.job.model, t->device, (int)t->cfg.batch.micro_batch_per_gpu, &t->model));
    ZRT_CHECK(open_comm(t));
    watch_signals(t->comm);
    ZRT_CHECK(zrt_data_init(&t->data, &t->cfg));
    t->best_val = INFINITY;
    if (t->cfg.job.eval_interval > 0) ZRT_CHECK(zrt_data_init_val(&t->val, &t->cfg));
    if (zrt_knob_int(ZRT_KNOB_GENERATION) != 0) /* fault hooks: the first generation only */
        unsetenv(zrt_knob_describe(ZRT_KNOB_FAULT_SWAP)->name);
    ZRT_CHECK(zrt_engine_create(&t->cfg, t->comm, t->model, &t->engine));
    ZRT_CHECK(lock_checkpoint_dir(t));
    if (t->rank == 0) zrt_cli_print_warnings(zrt_device_warnings(t->device)); /* e.g. pinned memory not locked */
    zrt_cli_print_warnings(zrt_engine_warnings(t->engine)); /* e.g. a crashed run's swap files removed */
    return ZRT_OK;
}

static void teardown(trainer *t)
{
    unwatch_signals();
    zrt_engine_destroy(t->engine);
    zrt_data_fini(&t->data);
    zrt_data_fini(&t->val);
    if (t->model) t->model->destroy(t->model);
    zrt_comm_destroy(t->comm);
    zrt_store_destroy(t->store);
    zrt_device_destroy(t->device);
    zrt_monitor_close(&t->monitor);
}

/* The global batch this run really trains with (the engine's: every rank's micro batches). */
static int64_t global_batch(const trainer *t)
{
    return t->cfg.batch.micro_batch_per_gpu * t->cfg.batch.gradient_accumulation_steps * t->world;
}

/* "LABEL 2.91 MiB (3046720 bytes) on cpu (params 595 KiB, grads 595 KiB, optimizer 1.74 MiB)". */
static void print_states(const char *label, const char *on, const char *where, const int64_t *bytes, int64_t total)
{
    char all[32], p[32], g[32], o[32];
    printf("%s %s (%lld bytes)%s%s%s%s (params %s, grads %s, optimizer %s)\n", label, zrt_fmt_bytes((double)total, all, sizeof all),
           (long long)total, on[0] ? " " : "", on, where[0] ? " " : "", where,
           zrt_fmt_bytes((double)bytes[ZRT_MEM_PARAMS], p, sizeof p), zrt_fmt_bytes((double)bytes[ZRT_MEM_GRADS], g, sizeof g),
           zrt_fmt_bytes((double)bytes[ZRT_MEM_OPTIMIZER], o, sizeof o));
}

static void print_start(const trainer *t)
{
    const zrt_config *c = &t->cfg;
    int64_t params = 0;
    for (int u = 0; u < t->model->n_units; u++) params += t->model->unit_numel[u];
    const zrt_mem_stats *m = zrt_device_mem(t->device);
    const int64_t *bytes = m->current[ZRT_MEM_DEVICE];
    int64_t batch = global_batch(t);
    printf("zrt train: %s %lld layers, %lld parameters; ZeRO stage %d, %d rank%s, %s; batch %lld = %lld micro x %lld "
           "accumulation x %d rank%s\n",
           zrt_model_type_name(c->job.model.type), (long long)c->job.model.layers, (long long)params, c->zero.stage, t->world, t->world == 1 ? "" : "s",
           c->mixed_precision == ZRT_PRECISION_NO ? "fp32" : zrt_precision_name(c->mixed_precision), (long long)batch,
           (long long)c->batch.micro_batch_per_gpu, (long long)c->batch.gradient_accumulation_steps, t->world,
           t->world == 1 ? "" : "s");
    if (batch != c->batch.train_batch_size) /* zrt train alone: one rank, whatever num_processes says */
        printf("zrt train: the config's batch of %lld is for %lld ranks; run it with zrt launch for that\n",
               (long long)c->batch.train_batch_size, (long long)c->num_processes);
    print_states("model states per rank:", "on", zrt_device_name(t->device), bytes, zrt_mem_model_states(m, ZRT_MEM_DEVICE));
    const int64_t *host = m->current[ZRT_MEM_HOST];
    if (zrt_mem_model_states(m, ZRT_MEM_HOST) > 0) /* offload: apart from the device's */
        print_states("model states per rank in pinned host memory:", "", "", host, zrt_mem_model_states(m, ZRT_MEM_HOST));
    printf("activations per rank: %.2f MiB (%lld bytes) for a micro batch of %lld%s\n",
           (double)t->model->activation_bytes / (1 << 20), (long long)t->model->activation_bytes,
           (long long)c->batch.micro_batch_per_gpu,
           c->job.model.activation_checkpointing ? ", activation checkpointing on (each block recomputed in backward)" : "");
    fflush(stdout);
}

static void clock_text(double seconds, char *out, size_t size)
{
    long s = (long)(seconds + 0.5);
    snprintf(out, size, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
}

/* For the agent's heartbeat (zrt status): "step loss", rewritten in place. */
static void write_progress(int64_t step, float loss)
{
    static int fd = -2;
    if (fd == -2) {
        const char *path = zrt_knob_set(ZRT_KNOB_PROGRESS_FILE);
        fd = path ? open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600) : -1;
    }
    if (fd < 0) return;
    char line[64];
    int n = snprintf(line, sizeof line, "%lld %.6g", (long long)step, loss);
    memset(line + n, ' ', sizeof line - (size_t)n - 1); /* fixed size: no stale tail */
    line[sizeof line - 1] = '\n';
    if (pwrite(fd, line, sizeof line, 0) != (ssize_t)sizeof line) fd = -1;
}

/* A validation loss after a step (zrt_engine_eval), when one ran. */
typedef struct {
    bool ran;
    double loss;
} eval_result;

static zrt_status report(trainer *t, int64_t step, const zrt_step_result *r, const eval_result *val, double elapsed,
                         double tokens_per_s)
{
    int64_t total = t->cfg.job.steps;
    zrt_train_row row = {.step = step, .loss = r->loss, .lr = r->lr, .grad_norm = r->grad_norm,
                         .loss_scale = r->loss_scale, .tokens_per_s = tokens_per_s, .skipped = r->skipped,
                         .model_state_bytes = zrt_mem_model_states(zrt_device_mem(t->device), ZRT_MEM_DEVICE),
                         .samples_seen = r->samples_seen, .has_val = val->ran, .val_loss = val->loss};
    ZRT_CHECK(zrt_monitor_step(&t->monitor, &row));
    bool tty = isatty(STDOUT_FILENO) || zrt_knob_bool(ZRT_KNOB_PROGRESS_TTY); /* an agent on a terminal */
    bool due = step == total || step % t->cfg.steps_per_print == 0;
    if (!tty && !due) return ZRT_OK;
    char spent[32], eta[32];
    clock_text(elapsed, spent, sizeof spent);
    clock_text(elapsed / (double)step * (double)(total - step), eta, sizeof eta);
    printf("%sstep %lld/%lld  loss %.4f  lr %.2e  %.0f tokens/s  elapsed %s  ETA %s%s%s", tty ? "\r" : "",
           (long long)step, (long long)total, r->loss, r->lr, tokens_per_s, spent, eta,
           r->skipped ? "  (skipped: fp16 overflow)" : "", tty && step != total ? "" : "\n");
    fflush(stdout);
    return ZRT_OK;
}

/* Every eval_interval steps and at the end: the validation loss (every rank:
 * it is collective), printed, in the monitors, and -- checkpoint_best -- a
 * checkpoint in checkpoint_dir/best whenever it is the lowest so far. */
static zrt_status maybe_evaluate(trainer *t, int64_t step, eval_result *out)
{
    const zrt_job_config *j = &t->cfg.job;
    out->ran = false;
    if (!j->eval_interval || (step % j->eval_interval != 0 && step != j->steps)) return ZRT_OK;
    ZRT_CHECK(zrt_engine_eval(t->engine, &t->val, j->eval_batches, &out->loss));
    out->ran = true;
    if (t->rank == 0) {
        printf("zrt train: step %lld: validation loss %.4f, perplexity %.2f (%lld batches of %s)\n", (long long)step,
               out->loss, exp(out->loss), (long long)j->eval_batches, j->data.val);
        ZRT_CHECK(zrt_monitor_val_loss(&t->monitor, step, out->loss));
    }
    if (!j->checkpoint_best || !(out->loss < t->best_val)) return ZRT_OK;
    t->best_val = out->loss;
    char best[ZRT_PATH_MAX + 8];
    snprintf(best, sizeof best, "%s/best", j->checkpoint_dir);
    ZRT_CHECK(zrt_engine_save(t->engine, best));
    if (t->rank == 0) printf("zrt train: the lowest validation loss so far: saved as %s/step_%07lld\n", best, (long long)step);
    return ZRT_OK;
}

/* Fault injection, only in the first generation (a restarted job must not
 * fail again): the site's RANK:STEP. */
static bool fault_now(const char *site, int rank, int64_t step)
{
    return zrt_knob_int(ZRT_KNOB_GENERATION) == 0 && zrt_fault_at(site, rank, step);
}

/* Resumes from --resume_from, else from zrt.checkpoint_dir/latest when
 * there is one, saying first what it loads; then opens the monitors (their
 * rows up to the resumed step kept). */
static zrt_status maybe_resume(trainer *t, int64_t *done)
{
    const char *dir = t->cfg.job.checkpoint_dir, *path = t->resume_from && t->resume_from[0] ? t->resume_from : dir;
    *done = 0;
    bool resuming = path == t->resume_from || (dir[0] && zrt_checkpoint_exists(dir));
    if (t->rank == 0) zrt_train_describe_init(&t->cfg, t->model, resuming, stdout);
    if (resuming) {
        if (t->rank == 0) ZRT_CHECK(zrt_train_describe_resume(&t->cfg, t->world, global_batch(t), path, stdout));
        ZRT_CHECK(zrt_engine_load(t->engine, path, done));
        if (t->rank == 0) printf("zrt train: resumed from %s at step %lld\n", path, (long long)*done);
    }
    fflush(stdout);
    return t->rank == 0 ? zrt_monitor_open(&t->monitor, &t->cfg, *done, stdout) : ZRT_OK;
}

/* Every zrt.checkpoint_interval steps and at the end, when there is a directory. */
static zrt_status maybe_save(trainer *t, int64_t step)
{
    const zrt_job_config *j = &t->cfg.job;
    bool due = j->checkpoint_dir[0] && (step == j->steps || (j->checkpoint_interval && step % j->checkpoint_interval == 0));
    if (!due) return ZRT_OK;
    ZRT_CHECK(zrt_engine_save(t->engine, j->checkpoint_dir));
    if (t->rank == 0 && !isatty(STDOUT_FILENO))
        printf("zrt train: checkpoint %s/step_%07lld\n", j->checkpoint_dir, (long long)step);
    return ZRT_OK;
}

static zrt_status train(trainer *t)
{
    if (t->rank == 0) print_start(t);
    int64_t done;
    ZRT_CHECK(maybe_resume(t, &done));
    double start = zrt_now();
    float first_loss = 0, last_loss = 0;
    for (int64_t step = done + 1; step <= t->cfg.job.steps; step++) {
        if (fault_now("train.exit", t->rank, step)) {
            fprintf(stderr, "zrt train: rank %d: injected failure at step %lld (ZRT_FAULT_EXIT)\n", t->rank,
                    (long long)step);
            exit(3);
        }
        if (fault_now("train.kill", t->rank, step)) raise(SIGKILL); /* as kill -9 from outside */
        zrt_step_result r;
        if (stop_requested) return zrt_set_error(ZRT_ERR_ABORTED, "stopped by signal %d", (int)stop_requested);
        zrt_status status = zrt_engine_step(t->engine, &t->data, &r);
        if (status != ZRT_OK && stop_requested)
            return zrt_set_error(ZRT_ERR_ABORTED, "stopped by signal %d (the job is being stopped)", (int)stop_requested);
        ZRT_CHECK(status);
        if (step == done + 1) first_loss = r.loss;
        last_loss = r.loss;
        double elapsed = zrt_now() - start;
        double tokens = (double)(step - done) * (double)r.samples * (double)t->model->tokens_per_sample;
        eval_result val;
        ZRT_CHECK(maybe_evaluate(t, step, &val));
        if (t->rank == 0) ZRT_CHECK(report(t, step, &r, &val, elapsed, tokens / elapsed));
        write_progress(step, r.loss);
        ZRT_CHECK(maybe_save(t, step));
    }
    if (t->rank == 0 && done >= t->cfg.job.steps)
        printf("zrt train: done: nothing trained, the checkpoint was already at step %lld of %lld\n",
               (long long)done, (long long)t->cfg.job.steps);
    else if (t->rank == 0)
        printf("zrt train: done: %lld steps (%lld in this run) in %.1f s, loss %.4f -> %.4f\n",
               (long long)t->cfg.job.steps, (long long)(t->cfg.job.steps - done), zrt_now() - start, first_loss,
               last_loss);
    return ZRT_OK;
}

/* Every rank's memory at the end: the report's peak (every category, device
 * and pinned host memory together, plus the data loader) beside the
 * process's peak resident set -- on the cpu device the difference is the
 * process's code, libraries and their buffers (OpenBLAS's, the comm rings). */
static void print_memory(const trainer *t)
{
    const zrt_mem_stats *m = zrt_device_mem(t->device);
    int64_t data = zrt_cli_data_bytes(&t->data) + zrt_cli_data_bytes(&t->val);
    char all[32], rss[32], line[512];
    int n = snprintf(line, sizeof line, "zrt train: rank %d memory: report's peak %s (", t->rank,
                     zrt_fmt_bytes((double)(m->peak_all + data), all, sizeof all));
    for (int p = 0; p < ZRT_MEM_PLACES; p++)
        for (int c = 0; c < ZRT_MEM_CATEGORIES && n < (int)sizeof line; c++) {
            char b[32];
            if (m->peak[p][c])
                n += snprintf(line + n, sizeof line - (size_t)n, "%s %s %s, ", zrt_mem_place_name((zrt_mem_place)p),
                              zrt_mem_category_name((zrt_mem_category)c), zrt_fmt_bytes((double)m->peak[p][c], b, sizeof b));
        }
    double peak = zrt_mem_peak_resident();
    printf("%.*sdata %s); peak resident %s (VmHWM)\n", n, line, zrt_fmt_bytes((double)data, all, sizeof all),
           peak >= 0 ? zrt_fmt_bytes(peak, rss, sizeof rss) : "unknown");
}

/* "zrt train: rank R: MESSAGE", once: comm errors already start with "rank R: ". */
static void print_failure(int rank, const char *message)
{
    char prefix[32];
    snprintf(prefix, sizeof prefix, "rank %d: ", rank);
    if (strncmp(message, prefix, strlen(prefix)) == 0) fprintf(stderr, "zrt train: %s\n", message);
    else fprintf(stderr, "zrt train: %s%s\n", prefix, message);
}

int zrt_cmd_train(int argc, char **argv)
{
    zrt_overrides o = {0};
    int parsed = zrt_overrides_parse(argc, argv, "train", usage, &o);
    if (parsed >= 0) return parsed;
    static trainer t;
    t.rank = env_int("RANK", 0);
    t.world = env_int("WORLD_SIZE", 1);
    t.resume_from = o.resume_from;
    zrt_status status = zrt_overrides_load(&o, &t.cfg);
    if (status == ZRT_OK) {
        if (t.rank == 0) zrt_cli_print_warnings(t.cfg.warnings);
        status = setup(&t);
    }
    if (status == ZRT_OK) status = train(&t);
    if (status == ZRT_OK) print_memory(&t);
    if (status != ZRT_OK) print_failure(t.rank, zrt_last_error());
    teardown(&t);
    return status == ZRT_OK ? ZRT_EXIT_OK : ZRT_EXIT_FAIL;
}
