/* fuzz_config.c: libFuzzer target over the config loader (YAML through
 * libyaml, JSON through cJSON, the schema walker, the rules across keys):
 * the first byte picks .yaml or .json, the rest is the file. Every input must
 * load or fail with a message -- never crash. Build and run: scons fuzz.
 */
#include "zrt.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    char path[64];
    snprintf(path, sizeof path, "/tmp/zrt-fuzz-%d.%s", (int)getpid(), data[0] & 1 ? "json" : "yaml");
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data + 1, 1, size - 1, f);
    fclose(f);
    static zrt_config cfg;
    if (zrt_config_load(&cfg, path) != ZRT_OK && zrt_last_error()[0] == '\0') __builtin_trap(); /* errors say why */
    unlink(path);
    return 0;
}
