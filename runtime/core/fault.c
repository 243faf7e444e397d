/* fault.c: the fault sites and the knobs that arm them
 * (zrt/internal/fault.h). Why a table: the sites are named once, here,
 * beside their variables; the code at a site names the site only. */
#include "zrt/internal/fault.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *site;
    zrt_knob knob;
} sites[] = {
    {"checkpoint.crash_in_save", ZRT_KNOB_FAULT_CRASH_IN_SAVE},
    {"engine.skip_wait", ZRT_KNOB_FAULT_SKIP_WAIT},
    {"swap.io", ZRT_KNOB_FAULT_SWAP},
    {"shards.write", ZRT_KNOB_FAULT_SHARDS_WRITE},
    {"train.exit", ZRT_KNOB_FAULT_EXIT},
    {"train.kill", ZRT_KNOB_FAULT_KILL},
};

int zrt_fault_knob(const char *site)
{
    for (size_t i = 0; site && i < sizeof sites / sizeof sites[0]; i++)
        if (strcmp(sites[i].site, site) == 0) return (int)sites[i].knob;
    return -1;
}

const char *zrt_fault_spec(const char *site)
{
    int knob = zrt_fault_knob(site);
    return knob < 0 ? NULL : zrt_knob_set((zrt_knob)knob);
}

bool zrt_fault_armed(const char *site) { return zrt_fault_spec(site) != NULL; }

bool zrt_fault_at(const char *site, int rank, int64_t step)
{
    const char *spec = zrt_fault_spec(site);
    int at_rank;
    long long at_step;
    return spec && sscanf(spec, "%d:%lld", &at_rank, &at_step) == 2 && at_rank == rank && at_step == step;
}
