/* test_config_shipped.c: every config in configs/ loads, says what its name
 * says, and each Accelerate YAML agrees with its DeepSpeed JSON twin in
 * configs/ds/ on the stage and the offload devices; each YAML's zrt
 * settings come from its NAME.zrt.yaml. A config added to configs/ without
 * a row here fails the test.
 */
#include "check.h"
#include "run_cmd.h"
#include "zrt.h"

#include <dirent.h>

typedef struct {
    const char *name;
    int stage;
    zrt_offload_device offload_optimizer, offload_param;
    int64_t machines, processes;
} shipped;

static const shipped table[] = {
    {"zero1", 1, ZRT_OFFLOAD_NONE, ZRT_OFFLOAD_NONE, 1, 2},
    {"zero2", 2, ZRT_OFFLOAD_NONE, ZRT_OFFLOAD_NONE, 1, 2},
    {"zero3", 3, ZRT_OFFLOAD_NONE, ZRT_OFFLOAD_NONE, 1, 2},
    {"zero2_offload_cpu", 2, ZRT_OFFLOAD_CPU, ZRT_OFFLOAD_NONE, 1, 2},
    {"zero3_offload_nvme", 3, ZRT_OFFLOAD_NVME, ZRT_OFFLOAD_NVME, 1, 2},
    {"multinode_zero3", 3, ZRT_OFFLOAD_NONE, ZRT_OFFLOAD_NONE, 2, 4},
    {"zero3_gpt", 3, ZRT_OFFLOAD_NONE, ZRT_OFFLOAD_NONE, 1, 2},
    {"main", 3, ZRT_OFFLOAD_NONE, ZRT_OFFLOAD_NONE, 1, 2},
};
#define N_SHIPPED (sizeof table / sizeof table[0])

static zrt_config cfg;

static void check_one(const char *src, const shipped *s, const char *subdir, const char *ext)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/configs/%s%s.%s", src, subdir, s->name, ext);
    zrt_status status = zrt_config_load(&cfg, path);
    CHECK_MSG(status == ZRT_OK, "%s: %s", path, zrt_last_error());
    CHECK_MSG(cfg.zero.stage == s->stage, "%s: stage %d", path, cfg.zero.stage);
    CHECK_MSG(cfg.zero.offload_optimizer.device == s->offload_optimizer, "%s: offload_optimizer", path);
    CHECK_MSG(cfg.zero.offload_param.device == s->offload_param, "%s: offload_param", path);
    CHECK_MSG(cfg.warnings[0] == '\0', "%s: warnings:\n%s", path, cfg.warnings);
    if (strcmp(ext, "yaml") == 0) {
        CHECK_MSG(cfg.num_machines == s->machines && cfg.num_processes == s->processes, "%s: machines", path);
        CHECK_MSG(cfg.use_cpu, "%s: shipped YAMLs run on CPU by default", path);
        /* zrt's settings beside it (Accelerate's loader refuses a zrt: key): NAME.zrt.yaml, found and read */
        CHECK_MSG(strstr(cfg.zrt_config_path, ".zrt.yaml") != NULL, "%s: no NAME.zrt.yaml read", path);
        CHECK_MSG(cfg.job.steps > 0 && cfg.job.model.layers > 0, "%s: zrt settings missing", path);
    }
}

/* Every file in configs/ and configs/ds/ has a row in the table. */
static void check_all_listed(const char *src, const char *subdir, const char *ext)
{
    char dir_path[1024];
    snprintf(dir_path, sizeof dir_path, "%s/configs/%s", src, subdir);
    DIR *dir = opendir(dir_path);
    CHECK_MSG(dir != NULL, "cannot open %s", dir_path);
    if (!dir) return;
    for (struct dirent *e; (e = readdir(dir));) {
        const char *dot = strrchr(e->d_name, '.');
        if (!dot || strcmp(dot + 1, ext) != 0) continue;
        if (strstr(e->d_name, ".zrt.yaml")) continue; /* zrt's settings beside a YAML: checked with it */
        bool listed = false;
        for (size_t i = 0; i < N_SHIPPED; i++)
            listed |= strncmp(e->d_name, table[i].name, (size_t)(dot - e->d_name)) == 0 &&
                      strlen(table[i].name) == (size_t)(dot - e->d_name);
        CHECK_MSG(listed, "configs/%s%s has no row in test_config_shipped.c", subdir, e->d_name);
    }
    closedir(dir);
}

int main(void)
{
    const char *src = getenv("ZRT_SRC"), *bin = getenv("ZRT_BIN");
    if (!src) src = ".";
    /* configs/main.yaml's data: the main job's token shards (tools/main-job's first step), made when missing */
    CHECK_MSG(run("bash -c 'source \"%s/tests/lib.sh\" && main_job_data \"%s\" \"%s\"'", src, bin ? bin : "build/bin/zrt",
                  src) == 0,
              "could not tokenize the main job's data");
    for (size_t i = 0; i < N_SHIPPED; i++) {
        check_one(src, &table[i], "", "yaml");
        check_one(src, &table[i], "ds/", "json");
    }
    check_all_listed(src, "", "yaml");
    check_all_listed(src, "ds/", "json");
    return CHECK_DONE();
}
