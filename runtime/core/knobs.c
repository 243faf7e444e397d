/* knobs.c: the table of the ZRT_* environment variables and the one place
 * that reads them (zrt/internal/knobs.h).
 *
 * Why data: the table is what `zrt report` lists and docs/knobs.md is
 * checked against (tests/test_knobs.sh), so a knob cannot be read without
 * being documented. */
#include "zrt/internal/knobs.h"

#include <stdlib.h>
#include <string.h>

static const zrt_knob_info knobs[ZRT_KNOB_COUNT] = {
    [ZRT_KNOB_DEVICE_CHECK] = {"ZRT_DEVICE_CHECK", ZRT_KNOB_BOOL, "0",
                               "the cpu device's check mode when its options leave it to the environment "
                               "(NaN fill, delays, vector-clock race checks; on in the tests)"},
    [ZRT_KNOB_CPU_THREADS] = {"ZRT_CPU_THREADS", ZRT_KNOB_INT, NULL,
                              "threads per rank when zrt.cpu_threads is 0 (else cores / local ranks)"},
    [ZRT_KNOB_SOCKET_IFNAME] = {"ZRT_SOCKET_IFNAME", ZRT_KNOB_STRING, NULL,
                                "the host backend's TCP interface when zrt.socket_ifname is unset (else any)"},
    [ZRT_KNOB_CUBLASLT] = {"ZRT_CUBLASLT", ZRT_KNOB_STRING, NULL,
                           "the cuBLASLt library the CUDA models load instead of the toolkit's (tests: the fake)"},
    [ZRT_KNOB_JOB_TOKEN] = {"ZRT_JOB_TOKEN", ZRT_KNOB_STRING, NULL,
                            "the control plane's job token when zrt.token_file is unset (zrt agent sets it)"},
    [ZRT_KNOB_COORDINATOR] = {"ZRT_COORDINATOR", ZRT_KNOB_STRING, NULL,
                              "set by zrt agent for its ranks: the coordinator whose store they rendezvous in"},
    [ZRT_KNOB_STORE_DIR] = {"ZRT_STORE_DIR", ZRT_KNOB_STRING, NULL,
                            "set by zrt launch for its ranks: the shared directory of their file store"},
    [ZRT_KNOB_STORE_SCOPE] = {"ZRT_STORE_SCOPE", ZRT_KNOB_STRING, "job/gen0",
                              "set by zrt agent and zrt launch: the store scope (job and generation)"},
    [ZRT_KNOB_GENERATION] = {"ZRT_GENERATION", ZRT_KNOB_INT, "0",
                             "set by zrt agent: the restart generation (fault sites fire only in generation 0)"},
    [ZRT_KNOB_JOB_LOCKED] = {"ZRT_JOB_LOCKED", ZRT_KNOB_BOOL, "0",
                             "set by zrt launch: its ranks' checkpoint_dir lock is the launch's already"},
    [ZRT_KNOB_PROGRESS_FILE] = {"ZRT_PROGRESS_FILE", ZRT_KNOB_STRING, NULL,
                                "set by zrt agent for local rank 0: where zrt train reports step and loss"},
    [ZRT_KNOB_PROGRESS_TTY] = {"ZRT_PROGRESS_TTY", ZRT_KNOB_BOOL, "0",
                               "set by zrt agent: the ranks' live progress line reaches a terminal"},
    [ZRT_KNOB_OPENBLAS_CORETYPE] = {"ZRT_OPENBLAS_CORETYPE", ZRT_KNOB_STRING, NULL,
                                    "set by zrt when it re-executes itself with the OPENBLAS_CORETYPE it chose"},
    [ZRT_KNOB_SOURCE_DIR] = {"ZRT_SOURCE_DIR", ZRT_KNOB_STRING, NULL,
                             "the source tree the CLI finds its helper scripts in (else beside build/)"},
    [ZRT_KNOB_FAULT_CRASH_IN_SAVE] = {"ZRT_FAULT_CRASH_IN_SAVE", ZRT_KNOB_STRING, NULL,
                                      "fault checkpoint.crash_in_save, RANK:STEP: SIGKILL halfway through that "
                                      "rank's shard of that step's checkpoint"},
    [ZRT_KNOB_FAULT_SKIP_WAIT] = {"ZRT_FAULT_SKIP_WAIT", ZRT_KNOB_STRING, NULL,
                                  "fault engine.skip_wait, gather: stage 3 skips its wait for the gathers "
                                  "(the check mode must catch it)"},
    [ZRT_KNOB_FAULT_SWAP] = {"ZRT_FAULT_SWAP", ZRT_KNOB_STRING, NULL,
                             "fault swap.io, KIND:N[:NAME]: the N-th NVMe request of KIND (short_read, "
                             "short_write, eio_read, eio_write, kill_write) fails so; late_writes:1: reads "
                             "pass every write they are not ordered after"},
    [ZRT_KNOB_FAULT_SHARDS_WRITE] = {"ZRT_FAULT_SHARDS_WRITE", ZRT_KNOB_INT, NULL,
                                     "fault shards.write, BYTES: zrt shards fails the write that passes that "
                                     "many bytes (a full disk)"},
    [ZRT_KNOB_FAULT_EXIT] = {"ZRT_FAULT_EXIT", ZRT_KNOB_STRING, NULL,
                             "fault train.exit, RANK:STEP: zrt train exits with an error at that step"},
    [ZRT_KNOB_FAULT_KILL] = {"ZRT_FAULT_KILL", ZRT_KNOB_STRING, NULL,
                             "fault train.kill, RANK:STEP: zrt train raises SIGKILL at that step"},
};

const zrt_knob_info *zrt_knob_describe(zrt_knob knob)
{
    return (int)knob >= 0 && knob < ZRT_KNOB_COUNT ? &knobs[knob] : NULL;
}

int zrt_knob_find(const char *name)
{
    for (int k = 0; name && k < ZRT_KNOB_COUNT; k++)
        if (strcmp(knobs[k].name, name) == 0) return k;
    return -1;
}

const char *zrt_knob_set(zrt_knob knob)
{
    const zrt_knob_info *info = zrt_knob_describe(knob);
    const char *v = info ? getenv(info->name) : NULL;
    return v && v[0] ? v : NULL;
}

const char *zrt_knob_string(zrt_knob knob)
{
    const char *v = zrt_knob_set(knob);
    const zrt_knob_info *info = zrt_knob_describe(knob);
    return v ? v : info ? info->fallback : NULL;
}

bool zrt_knob_bool(zrt_knob knob)
{
    const char *v = zrt_knob_string(knob);
    return v && v[0] && strcmp(v, "0") != 0;
}

int64_t zrt_knob_int(zrt_knob knob)
{
    const char *v = zrt_knob_string(knob);
    return v ? (int64_t)atoll(v) : 0;
}

const char *zrt_knob_type_name(zrt_knob_type type)
{
    static const char *const names[] = {"bool", "int", "string"};
    return (int)type >= 0 && type <= ZRT_KNOB_STRING ? names[type] : "?";
}
