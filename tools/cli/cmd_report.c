/* cmd_report.c: `zrt report`: what this machine and this build offer zrt, one
 * line each (or one JSON object with --json), like DeepSpeed's ds_report --
 * what a user runs first on a new machine, and what a bug report quotes.
 *
 * Why it only reports: every probe that fails says why in its line and the
 * command still exits 0; judging (is this enough for my config?) is the
 * user's. Why the CUDA driver is reached with dlopen: a build without CUDA
 * (and a machine without a driver) must still run it and say "no driver".
 * The driver API's few prototypes and attribute numbers are declared here
 * (values from CUDA 13's cuda.h; they are ABI and do not change), so this
 * file needs no CUDA header. cuBLASLt is looked for by the library's own
 * search (zrt_cublaslt_find), so the line shows what a CUDA model would load.
 * The report is built as one cJSON object; the text is a rendering of it.
 */
#include "cli.h"
#include "zrt.h"
#include "zrt/internal/knobs.h"
#include "zrt/internal/offload.h"
#include "zrt/internal/blas.h"

#include <cjson/cJSON.h>
#include <dlfcn.h>
#include <link.h>
#include <liburing.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#ifdef ZRT_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif
#ifndef ZRT_CUDA_LINE /* tools/SConscript passes the build's "CUDA: yes (nvcc 13.0, NCCL 2.28.9)" line */
#ifdef ZRT_HAVE_CUDA
#define ZRT_CUDA_LINE "CUDA: yes"
#else
#define ZRT_CUDA_LINE "CUDA: no"
#endif
#endif

static const char usage[] =
    "usage: zrt report [--json]\n"
    "\n"
    "What this machine and build offer zrt, one line each: zrt's version and\n"
    "build, the CUDA driver and each GPU (memory, compute capability, memory\n"
    "pools, pageable-memory access), the CUDA runtime, NCCL and cuBLASLt (and\n"
    "where they load from), io_uring, the CPU and its SIMD, OpenBLAS's kernels,\n"
    "the pinned-memory limit, transparent huge pages, the ZRT_*, NCCL_*,\n"
    "CUDA_VISIBLE_DEVICES and OPENBLAS_CORETYPE variables that are set, and\n"
    "every ZRT_* knob zrt reads with its value or default and what it does.\n"
    "--json prints the same as one JSON object. Exits 0 whatever it finds.\n";

/* The report's keys (JSON) and labels (text), in print order. */
static const struct {
    const char *key, *label;
} fields[] = {
    {"zrt", "zrt"},
    {"build", "build"},
    {"compiler", "compiler"},
    {"cuda_driver", "CUDA driver"},
    {"gpus", "GPU"},
    {"cuda_runtime", "CUDA runtime"},
    {"nccl", "NCCL"},
    {"cublaslt", "cuBLASLt"},
    {"io_uring", "io_uring"},
    {"cpu", "CPU"},
    {"openblas", "OpenBLAS kernels"},
    {"memlock", "pinned-memory limit"},
    {"transparent_hugepage", "transparent huge pages"},
    {"environment", "environment"},
    {"knobs", "knob"},
};
#define N_FIELDS (sizeof fields / sizeof fields[0])

/* Adds key: the formatted text, to the report. */
__attribute__((format(printf, 3, 4))) static void put(cJSON *report, const char *key, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    cJSON_AddStringToObject(report, key, text);
}

/* bytes in the largest binary unit that keeps it >= 1: "8 MiB", "139.8 GiB". */
static const char *human_bytes(double bytes, char *buf, size_t size)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int u = 0;
    while (bytes >= 1024 && u < 5) bytes /= 1024, u++;
    snprintf(buf, size, "%.4g %s", bytes, units[u]);
    return buf;
}

/* The first line of path, without its newline; false if it cannot be read. */
static bool read_line(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    if (!f) return false;
    bool ok = fgets(buf, (int)size, f) != NULL;
    fclose(f);
    if (ok) buf[strcspn(buf, "\n")] = '\0';
    return ok;
}

/* Where the dlopen'ed lib was loaded from (dlinfo's link map), else name. */
static const char *loaded_from(void *lib, const char *name)
{
    struct link_map *map = NULL;
    return dlinfo(lib, RTLD_DI_LINKMAP, &map) == 0 && map && map->l_name[0] ? map->l_name : name;
}

static void report_build(cJSON *r)
{
    put(r, "zrt", "%s", ZRT_VERSION);
    put(r, "build", "%s", ZRT_CUDA_LINE);
#ifdef __clang__
    put(r, "compiler", "%s", __VERSION__);
#else
    put(r, "compiler", "gcc %s", __VERSION__);
#endif
}

/* --- the CUDA driver, through libcuda.so.1 ------------------------------------ */

enum { /* CUdevice_attribute values (cuda.h) */
    CU_ATTR_CC_MAJOR = 75,
    CU_ATTR_CC_MINOR = 76,
    CU_ATTR_PAGEABLE_MEMORY_ACCESS = 88,
    CU_ATTR_HOST_POINTER_FOR_REGISTERED_MEM = 91,
    CU_ATTR_MEMORY_POOLS_SUPPORTED = 115,
};

typedef struct {
    int (*cuInit)(unsigned flags);
    int (*cuDriverGetVersion)(int *version);
    int (*cuDeviceGetCount)(int *count);
    int (*cuDeviceGet)(int *device, int ordinal);
    int (*cuDeviceGetName)(char *name, int len, int device);
    int (*cuDeviceTotalMem_v2)(size_t *bytes, int device);
    int (*cuDeviceGetAttribute)(int *value, int attribute, int device);
    int (*cuGetErrorString)(int result, const char **text);
} driver_api;

/* Fills d from lib; the name of the first missing symbol, or NULL. */
static const char *driver_symbols(void *lib, driver_api *d)
{
#define SYM(name) if (!(*(void **)&d->name = dlsym(lib, #name))) return #name;
    SYM(cuInit) SYM(cuDriverGetVersion) SYM(cuDeviceGetCount) SYM(cuDeviceGet) SYM(cuDeviceGetName)
    SYM(cuDeviceTotalMem_v2) SYM(cuDeviceGetAttribute) SYM(cuGetErrorString)
#undef SYM
    return NULL;
}

static const char *driver_error(const driver_api *d, int result)
{
    const char *text = NULL;
    return d->cuGetErrorString(result, &text) == 0 && text ? text : "unknown error";
}

static const char *yes_no(const driver_api *d, int attribute, int device)
{
    int value = 0;
    if (d->cuDeviceGetAttribute(&value, attribute, device) != 0) return "?";
    return value ? "yes" : "no";
}

/* One line per GPU: name, memory, compute capability, the attributes the kernels rely on. */
static void report_gpus(cJSON *r, const driver_api *d)
{
    int count = 0, rc = d->cuDeviceGetCount(&count);
    if (rc != 0 || count == 0) {
        put(r, "gpus", "none (%s)", rc ? driver_error(d, rc) : "the driver lists no device");
        return;
    }
    cJSON *gpus = cJSON_AddArrayToObject(r, "gpus");
    for (int i = 0; i < count; i++) {
        int dev = 0, major = 0, minor = 0;
        char name[256] = "?", line[1024], mem[32];
        size_t bytes = 0;
        d->cuDeviceGet(&dev, i);
        d->cuDeviceGetName(name, sizeof name, dev);
        d->cuDeviceTotalMem_v2(&bytes, dev);
        d->cuDeviceGetAttribute(&major, CU_ATTR_CC_MAJOR, dev);
        d->cuDeviceGetAttribute(&minor, CU_ATTR_CC_MINOR, dev);
        snprintf(line, sizeof line,
                 "%d: %s, %s, compute capability %d.%d, memory pools %s, pageable memory access %s, "
                 "host pointer for registered memory %s",
                 i, name, human_bytes((double)bytes, mem, sizeof mem), major, minor,
                 yes_no(d, CU_ATTR_MEMORY_POOLS_SUPPORTED, dev), yes_no(d, CU_ATTR_PAGEABLE_MEMORY_ACCESS, dev),
                 yes_no(d, CU_ATTR_HOST_POINTER_FOR_REGISTERED_MEM, dev));
        cJSON_AddItemToArray(gpus, cJSON_CreateString(line));
    }
}

static void report_driver(cJSON *r)
{
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE); /* probes stay mapped: no dangling state */
    driver_api d;
    const char *missing = lib ? driver_symbols(lib, &d) : NULL;
    int rc = lib && !missing ? d.cuInit(0) : 0, version = 0;
    if (!lib) put(r, "cuda_driver", "no driver (%s)", dlerror());
    else if (missing) put(r, "cuda_driver", "no driver (%s has no %s)", loaded_from(lib, "libcuda.so.1"), missing);
    else if (rc != 0) put(r, "cuda_driver", "no driver (cuInit: %s)", driver_error(&d, rc));
    else {
        d.cuDriverGetVersion(&version);
        put(r, "cuda_driver", "%d.%d (%s)", version / 1000, version % 1000 / 10, loaded_from(lib, "libcuda.so.1"));
    }
    if (!lib || missing || rc != 0) put(r, "gpus", "none (no driver)");
    else report_gpus(r, &d);
    /* lib stays loaded: the process ends soon, and unloading a driver is not worth the risk */
}

/* --- libraries: the CUDA runtime, NCCL, cuBLASLt --------------------------------- */

static void report_runtime(cJSON *r)
{
#ifdef ZRT_HAVE_CUDA
    int version = 0;
    cudaError_t err = cudaRuntimeGetVersion(&version);
    if (err == cudaSuccess) put(r, "cuda_runtime", "%d.%d (linked by this build)", version / 1000, version % 1000 / 10);
    else put(r, "cuda_runtime", "? (cudaRuntimeGetVersion: %s)", cudaGetErrorString(err));
#else
    put(r, "cuda_runtime", "not in this build");
#endif
}

static void report_nccl(cJSON *r)
{
    void *lib = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!lib) {
        put(r, "nccl", "not found (%s)", dlerror());
        return;
    }
    int (*get_version)(int *) = (int (*)(int *))dlsym(lib, "ncclGetVersion");
    int code = 0;
    if (!get_version || get_version(&code) != 0) put(r, "nccl", "? (no ncclGetVersion) at %s", loaded_from(lib, "libnccl.so.2"));
    else { /* NCCL >= 2.9: major*10000 + minor*100 + patch; before: major*1000 + ... */
        int base = code >= 10000 ? 10000 : 1000;
        put(r, "nccl", "%d.%d.%d at %s", code / base, code % base / 100, code % 100, loaded_from(lib, "libnccl.so.2"));
    }
}

static void report_cublaslt(cJSON *r)
{
    char path[1024];
#ifdef ZRT_HAVE_CUDA
    const char *use = "";
#else
    const char *use = " (this build does not use it: no CUDA)";
#endif
    if (zrt_cublaslt_find(path, sizeof path) == ZRT_OK) put(r, "cublaslt", "%s%s", path, use);
    else put(r, "cublaslt", "not found (%s)%s", zrt_last_error(), use);
}

/* --- the host: io_uring, CPU, limits ------------------------------------------ */

static void report_io_uring(cJSON *r)
{
    struct io_uring ring;
    int rc = io_uring_queue_init(2, &ring, 0);
    if (rc == 0) io_uring_queue_exit(&ring);
    char disabled[64];
    bool known = read_line("/proc/sys/kernel/io_uring_disabled", disabled, sizeof disabled);
    char state[160] = "yes";
    if (rc != 0) snprintf(state, sizeof state, "no (io_uring_queue_init: %s)", strerror(-rc));
    put(r, "io_uring", "%s%s%s", state, known ? ", kernel.io_uring_disabled = " : "", known ? disabled : "");
}

/* "model name" of /proc/cpuinfo's first CPU, into buf. */
static const char *cpu_model(char *buf, size_t size)
{
    snprintf(buf, size, "?");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) != 0 || !colon) continue;
        line[strcspn(line, "\n")] = '\0';
        snprintf(buf, size, "%s", colon + 1 + (colon[1] == ' '));
        break;
    }
    if (f) fclose(f);
    return buf;
}

static void report_cpu(cJSON *r)
{
    char model[256];
    __builtin_cpu_init();
    put(r, "cpu", "%s, %ld CPUs online, AVX2 %s, FMA %s, AVX-512F %s (zrt's optimizer path: %s)",
        cpu_model(model, sizeof model), sysconf(_SC_NPROCESSORS_ONLN), __builtin_cpu_supports("avx2") ? "yes" : "no",
        __builtin_cpu_supports("fma") ? "yes" : "no", __builtin_cpu_supports("avx512f") ? "yes" : "no",
        zrt_simd_name(zrt_simd_best()));
    const char *wanted = zrt_blas_core_wanted();
    put(r, "openblas", "%s%s%s%s", zrt_blas_core(), zrt_cli_blas_core_origin(), wanted ? "; zrt wants " : "",
        wanted ? wanted : "");
}

static void report_limits(cJSON *r)
{
    struct rlimit lim;
    char soft[32], hard[32];
    if (getrlimit(RLIMIT_MEMLOCK, &lim) != 0) put(r, "memlock", "? (getrlimit failed)");
    else
        put(r, "memlock", "%s (hard limit %s)",
            lim.rlim_cur == RLIM_INFINITY ? "unlimited" : human_bytes((double)lim.rlim_cur, soft, sizeof soft),
            lim.rlim_max == RLIM_INFINITY ? "unlimited" : human_bytes((double)lim.rlim_max, hard, sizeof hard));
    char thp[256];
    char *open = NULL, *close = NULL;
    if (read_line("/sys/kernel/mm/transparent_hugepage/enabled", thp, sizeof thp) && (open = strchr(thp, '[')) &&
        (close = strchr(open, ']'))) {
        *close = '\0';
        put(r, "transparent_hugepage", "%s", open + 1);
    } else put(r, "transparent_hugepage", "? (no /sys/kernel/mm/transparent_hugepage/enabled)");
}

/* The variables that steer zrt, CUDA or NCCL: name -> value, those set only. */
static void report_environment(cJSON *r)
{
    extern char **environ;
    cJSON *vars = cJSON_AddObjectToObject(r, "environment");
    for (char **e = environ; *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq) continue;
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(eq - *e), *e);
        if (strncmp(name, "ZRT_", 4) == 0 || strncmp(name, "NCCL_", 5) == 0 ||
            strcmp(name, "CUDA_VISIBLE_DEVICES") == 0 || strcmp(name, "OPENBLAS_CORETYPE") == 0)
            cJSON_AddStringToObject(vars, name, eq + 1);
    }
}

/* Every ZRT_* knob zrt reads (zrt/internal/knobs.h), set or not, one
 * string each: "NAME=VALUE (set|default|unset; TYPE): what it does". */
static void report_knobs(cJSON *r)
{
    cJSON *list = cJSON_AddArrayToObject(r, "knobs");
    for (int k = 0; k < ZRT_KNOB_COUNT; k++) {
        const zrt_knob_info *info = zrt_knob_describe((zrt_knob)k);
        const char *set = zrt_knob_set((zrt_knob)k), *value = set ? set : info->fallback;
        char line[1024];
        snprintf(line, sizeof line, "%s=%s (%s; %s): %s", info->name, value ? value : "",
                 set ? "set" : value ? "default" : "unset", zrt_knob_type_name(info->type), info->what);
        cJSON_AddItemToArray(list, cJSON_CreateString(line));
    }
}

/* --- output ----------------------------------------------------------------- */

/* One item as text: a string on its line, an array one line each, an object as NAME=VALUE pairs. */
static void print_item(const char *label, const cJSON *item)
{
    if (cJSON_IsString(item)) printf("%s: %s\n", label, item->valuestring);
    const cJSON *it;
    if (cJSON_IsArray(item)) cJSON_ArrayForEach(it, item) printf("%s %s\n", label, it->valuestring);
    if (!cJSON_IsObject(item)) return;
    printf("%s:%s", label, item->child ? "" : " none of ZRT_*, NCCL_*, CUDA_VISIBLE_DEVICES, OPENBLAS_CORETYPE set");
    cJSON_ArrayForEach(it, item) printf(" %s=%s", it->string, it->valuestring);
    printf("\n");
}

static void print_report(const cJSON *r, bool json)
{
    if (json) {
        char *text = cJSON_Print(r);
        if (text) printf("%s\n", text);
        free(text);
        return;
    }
    for (size_t i = 0; i < N_FIELDS; i++) print_item(fields[i].label, cJSON_GetObjectItemCaseSensitive(r, fields[i].key));
}

int zrt_cmd_report(int argc, char **argv)
{
    static const struct option options[] = {
        {"help", no_argument, NULL, 'h'}, {"json", no_argument, NULL, 'j'}, {NULL, 0, NULL, 0}};
    bool json = false;
    int c;
    zrt_cli_normalize_options(argc, argv);
    while ((c = zrt_cli_next_option(argc, argv, options, "report")) != -1) {
        if (c == 'h') return fputs(usage, stdout), ZRT_EXIT_OK;
        if (c != 'j') return ZRT_EXIT_USAGE;
        json = true;
    }
    if (optind != argc) return zrt_cli_usage_error("report", "unexpected argument '%s'", argv[optind]);
    cJSON *r = cJSON_CreateObject();
    if (!r) return ZRT_EXIT_FAIL;
    report_build(r);
    report_driver(r);
    report_runtime(r);
    report_nccl(r);
    report_cublaslt(r);
    report_io_uring(r);
    report_cpu(r);
    report_limits(r);
    report_environment(r);
    report_knobs(r);
    print_report(r, json);
    cJSON_Delete(r);
    return ZRT_EXIT_OK;
}
