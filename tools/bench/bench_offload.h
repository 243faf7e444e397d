/* bench_offload.h: `zrt bench train`'s offload rows (bench_offload.c):
 * offload none, cpu and nvme against the step's parts measured alone. */
#ifndef ZRT_TOOLS_BENCH_OFFLOAD_H
#define ZRT_TOOLS_BENCH_OFFLOAD_H

#include "zrt.h"

typedef struct {
    int world, steps, stage, micro;
    bool json;
    zrt_model_config model; /* the rows' model */
    const char *label;      /* what it is called in the rows: "mlp", "gpt 24x1024" */
    const char *nvme_dir;   /* where the nvme rows and the I/O alone keep their files */
} zrt_bench_offload;

/* Every rank runs it (collective); rank 0 prints. */
zrt_status zrt_bench_offload_rows(const zrt_bench_offload *o, zrt_device *device, zrt_comm *comm, int rank);

#endif
