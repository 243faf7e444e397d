/* fuzz_shards.c: libFuzzer target over the checkpoint reader (zrt/shards.h):
 * meta.json parsing and checks, ranged reads and the verifier. The input is
 * a 2-byte little-endian length L, L bytes of meta.json, and the rest: the
 * bytes of every shard file, opened with meta.json checks only (so ranged
 * reads meet unchecked files and check them lazily) and with every check. Every input must open and verify or fail with a
 * message -- never crash, never read out of bounds. Build and run: scons fuzz.
 */
#include "zrt.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void write_file(const char *dir, const char *name, const uint8_t *data, size_t size)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(data, 1, size, f);
    fclose(f);
}

static void exercise(const zrt_ckpt *c)
{
    zrt_ckpt_verify(c, NULL, NULL);
    float values[64];
    for (int i = 0; i < c->n_units; i++)
        for (int part = 0; part < ZRT_CKPT_PARTS; part++) {
            int64_t n = c->units[i].padded < 64 ? c->units[i].padded : 64;
            if (zrt_ckpt_read(c, i, part, c->units[i].padded - n, n, values) != ZRT_OK && !zrt_last_error()[0])
                __builtin_trap();
        }
    int unit, param;
    if (c->n_units && zrt_ckpt_find(c, c->units[0].params[0].name, &unit, &param) != ZRT_OK) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    size_t meta = (size_t)data[0] | (size_t)data[1] << 8;
    if (meta > size - 2) meta = size - 2;
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/zrt-fuzz-shards-%d", (int)getpid());
    mkdir(dir, 0700);
    write_file(dir, "meta.json", data + 2, meta);
    for (int r = 0; r < 2; r++) {
        char name[32];
        snprintf(name, sizeof name, "shard_%05d.bin", r);
        write_file(dir, name, data + 2 + meta, size - 2 - meta);
    }
    static const zrt_ckpt_check checks[] = {ZRT_CKPT_CHECK_META, ZRT_CKPT_CHECK_ALL};
    for (int k = 0; k < 2; k++) { /* unchecked files (reads check lazily), then every check on open */
        zrt_ckpt *c = NULL;
        if (zrt_ckpt_open_checked(dir, checks[k], &c) == ZRT_OK) exercise(c);
        else if (!zrt_last_error()[0]) __builtin_trap(); /* errors say why */
        zrt_ckpt_close(c);
    }
    return 0;
}
