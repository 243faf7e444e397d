/* verify.c: zrt_ckpt_verify -- every shard file of a checkpoint against its
 * meta.json: present, the exact size, the header (magic, CRC, rank, world,
 * step), every section header and every section's CRC32C, streamed 4 MiB at
 * a time; and no shard file beyond the world size. One line per problem.
 */
#include "zrt.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CHUNK (4 << 20)

typedef struct {
    void (*report)(void *arg, const char *line);
    void *arg;
    int problems;
} reporter;

static void problem(reporter *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(reporter *r, const char *fmt, ...)
{
    char line[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    r->problems++;
    if (r->report) r->report(r->arg, line);
}

/* CRC of bytes at the file's position, streamed; false if the file ends first. */
static bool stream_crc(FILE *f, int64_t bytes, char *buf, uint32_t *crc)
{
    *crc = 0;
    while (bytes > 0) {
        size_t want = bytes < CHUNK ? (size_t)bytes : CHUNK;
        if (fread(buf, 1, want, f) != want) return false;
        *crc = zrt_crc32c(*crc, buf, want);
        bytes -= (int64_t)want;
    }
    return true;
}

static void verify_sections(const zrt_ckpt *c, int q, FILE *f, const char *path, char *buf, reporter *r)
{
    for (int i = 0; i < c->n_units; i++) {
        const zrt_ckpt_unit *u = &c->units[i];
        zrt_section_header s;
        if (fread(&s, sizeof s, 1, f) != 1) return problem(r, "%s: truncated at unit %d's section header", path, i);
        if (s.unit != (uint32_t)i || s.count != (uint64_t)u->shard || s.begin != (uint64_t)q * (uint64_t)u->shard)
            problem(r, "%s: unit %d section header says unit %u, elements [%llu, +%llu); meta.json [%lld, +%lld)", path, i,
                    s.unit, (unsigned long long)s.begin, (unsigned long long)s.count, (long long)q * u->shard,
                    (long long)u->shard);
        uint32_t crc;
        if (!stream_crc(f, 3 * u->shard * 4, buf, &crc)) return problem(r, "%s: truncated in unit %d's section", path, i);
        if (crc != s.crc)
            problem(r, "%s: unit %d section: CRC32C mismatch (stored 0x%08x, computed 0x%08x)", path, i, s.crc, crc);
    }
}

static void verify_shard(const zrt_ckpt *c, int q, char *buf, reporter *r)
{
    char path[sizeof c->dir + 32];
    snprintf(path, sizeof path, "%s/shard_%05d.bin", c->dir, q);
    int64_t want = zrt_ckpt_section_offset(c, c->n_units);
    struct stat st;
    if (stat(path, &st) != 0) return problem(r, "%s: missing (%s; the checkpoint has %d ranks)", path, strerror(errno), c->world);
    if ((int64_t)st.st_size != want)
        problem(r, "%s: %lld bytes; meta.json implies %lld", path, (long long)st.st_size, (long long)want);
    FILE *f = fopen(path, "rb");
    if (!f) return problem(r, "%s: cannot open: %s", path, strerror(errno));
    zrt_shard_header h;
    if (fread(&h, sizeof h, 1, f) != 1) problem(r, "%s: truncated in the header", path);
    else if (memcmp(h.magic, ZRT_CKPT_SHARD_MAGIC, 8) != 0 || h.crc != zrt_crc32c(0, &h, offsetof(zrt_shard_header, crc)))
        problem(r, "%s: header: bad magic or CRC32C mismatch (not a zrt shard, or damaged)", path);
    else if (h.rank != (uint32_t)q || h.world != (uint32_t)c->world || h.step != (uint64_t)c->step ||
             h.n_units != (uint32_t)c->n_units)
        problem(r, "%s: header says rank %u of %u, %u units, step %llu; meta.json rank %d of %d, %d units, step %lld", path,
                h.rank, h.world, h.n_units, (unsigned long long)h.step, q, c->world, c->n_units, (long long)c->step);
    else
        verify_sections(c, q, f, path, buf, r);
    fclose(f);
}

int zrt_ckpt_verify(const zrt_ckpt *c, void (*report)(void *arg, const char *line), void *arg)
{
    reporter r = {report, arg, 0};
    char *buf = malloc(CHUNK);
    if (!buf) {
        problem(&r, "out of memory");
        return r.problems;
    }
    for (int q = 0; q < c->world; q++) verify_shard(c, q, buf, &r);
    free(buf);
    DIR *d = opendir(c->dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        int rank;
        char tail;
        if (sscanf(e->d_name, "shard_%d.bi%c", &rank, &tail) == 2 && (rank < 0 || rank >= c->world))
            problem(&r, "%s/%s: an extra shard file (the checkpoint has %d ranks)", c->dir, e->d_name, c->world);
    }
    if (d) closedir(d);
    return r.problems;
}
