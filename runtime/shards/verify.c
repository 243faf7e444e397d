/* verify.c: every shard file of a checkpoint against its meta.json: present,
 * the exact size, the header (magic, CRC, rank, world, step, units), every
 * section header and (when asked) every section's CRC32C, streamed 4 MiB at
 * a time; and no shard file beyond the world size. One line per problem.
 *
 * Why one section check for everything: zrt_ckpt_verify, zrt_ckpt_open's
 * checks and zrt_ckpt_read's first read of a section all go through
 * check_section, so no reader can accept a section another would refuse.
 */
#include "zrt.h"
#include "shards_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK (4 << 20)
#define LINE_MAX_ 1400

typedef struct {
    void (*report)(void *arg, const char *line);
    void *arg;
    int problems;
} reporter;

static void problem(reporter *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(reporter *r, const char *fmt, ...)
{
    char line[LINE_MAX_];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    r->problems++;
    if (r->report) r->report(r->arg, line);
}

typedef enum { SECTION_OK, SECTION_BAD, SECTION_TRUNCATED } section_result;

/* CRC of bytes at offset at, streamed; false if the file ends first. */
static bool stream_crc(int fd, int64_t at, int64_t bytes, char *buf, uint32_t *crc)
{
    *crc = 0;
    while (bytes > 0) {
        size_t want = bytes < CHUNK ? (size_t)bytes : CHUNK;
        if (pread(fd, buf, want, (off_t)at) != (ssize_t)want) return false;
        *crc = zrt_crc32c(*crc, buf, want);
        bytes -= (int64_t)want;
        at += (int64_t)want;
    }
    return true;
}

/* Unit i's section of rank q's file (open as fd): its header against
 * meta.json and, with crcs, its CRC; marks it checked when the CRC matches. */
static section_result check_section(const zrt_ckpt *c, int q, int i, int fd, const char *path, char *buf, bool crcs,
                                    reporter *r)
{
    const zrt_ckpt_unit *u = &c->units[i];
    int64_t at = zrt_ckpt_section_offset(c, i);
    zrt_section_header s;
    if (pread(fd, &s, sizeof s, (off_t)at) != (ssize_t)sizeof s)
        return problem(r, "%s: truncated at unit %d's section header", path, i), SECTION_TRUNCATED;
    if (s.unit != (uint32_t)i || s.count != (uint64_t)u->shard || s.begin != (uint64_t)q * (uint64_t)u->shard)
        return problem(r, "%s: unit %d section header says unit %u, elements [%llu, +%llu); meta.json [%lld, +%lld)", path,
                       i, s.unit, (unsigned long long)s.begin, (unsigned long long)s.count, (long long)q * u->shard,
                       (long long)u->shard), SECTION_BAD;
    if (!crcs) return SECTION_OK;
    uint32_t crc;
    if (!stream_crc(fd, at + (int64_t)sizeof s, 3 * u->shard * 4, buf, &crc))
        return problem(r, "%s: truncated in unit %d's section", path, i), SECTION_TRUNCATED;
    if (crc != s.crc)
        return problem(r, "%s: unit %d section: CRC32C mismatch (stored 0x%08x, computed 0x%08x)", path, i, s.crc, crc),
               SECTION_BAD;
    c->checked[(size_t)q * (size_t)c->n_units + (size_t)i] = 1;
    return SECTION_OK;
}

static bool check_header(const zrt_ckpt *c, int q, int fd, const char *path, reporter *r)
{
    zrt_shard_header h;
    if (pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h) return problem(r, "%s: truncated in the header", path), false;
    if (memcmp(h.magic, ZRT_CKPT_SHARD_MAGIC, 8) != 0 || h.crc != zrt_crc32c(0, &h, offsetof(zrt_shard_header, crc)))
        return problem(r, "%s: header: bad magic or CRC32C mismatch (not a zrt shard, or damaged)", path), false;
    if (h.version != ZRT_CKPT_VERSION || h.rank != (uint32_t)q || h.world != (uint32_t)c->world ||
        h.step != (uint64_t)c->step || h.n_units != (uint32_t)c->n_units)
        return problem(r, "%s: header says version %u, rank %u of %u, %u units, step %llu; meta.json version %d, rank %d of "
                          "%d, %d units, step %lld", path, h.version, h.rank, h.world, h.n_units,
                       (unsigned long long)h.step, ZRT_CKPT_VERSION, q, c->world, c->n_units, (long long)c->step), false;
    return true;
}

static void shard_path(const zrt_ckpt *c, int q, char *out, size_t size)
{
    snprintf(out, size, "%s/shard_%05d.bin", c->dir, q);
}

static void check_shard(const zrt_ckpt *c, int q, char *buf, bool crcs, reporter *r)
{
    char path[sizeof c->dir + 32];
    shard_path(c, q, path, sizeof path);
    int64_t want = zrt_ckpt_section_offset(c, c->n_units);
    struct stat st;
    if (stat(path, &st) != 0) return problem(r, "%s: missing (%s; the checkpoint has %d ranks)", path, strerror(errno), c->world);
    if ((int64_t)st.st_size != want)
        problem(r, "%s: %lld bytes; meta.json implies %lld", path, (long long)st.st_size, (long long)want);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return problem(r, "%s: cannot open: %s", path, strerror(errno));
    bool ok = check_header(c, q, fd, path, r);
    for (int i = 0; ok && i < c->n_units; i++) ok = check_section(c, q, i, fd, path, buf, crcs, r) != SECTION_TRUNCATED;
    close(fd);
}

static void check_extra(const zrt_ckpt *c, reporter *r)
{
    DIR *d = opendir(c->dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        int rank;
        char tail;
        if (sscanf(e->d_name, "shard_%d.bi%c", &rank, &tail) == 2 && (rank < 0 || rank >= c->world))
            problem(r, "%s/%s: an extra shard file (the checkpoint has %d ranks)", c->dir, e->d_name, c->world);
    }
    if (d) closedir(d);
}

int zrt_ckpt_check_files(const zrt_ckpt *c, bool crcs, void (*report)(void *arg, const char *line), void *arg)
{
    reporter r = {report, arg, 0};
    char *buf = crcs ? malloc(CHUNK) : NULL;
    if (crcs && !buf) {
        problem(&r, "out of memory");
        return r.problems;
    }
    for (int q = 0; q < c->world; q++) check_shard(c, q, buf, crcs, &r);
    free(buf);
    check_extra(c, &r);
    return r.problems;
}

int zrt_ckpt_verify(const zrt_ckpt *c, void (*report)(void *arg, const char *line), void *arg)
{
    return zrt_ckpt_check_files(c, true, report, arg);
}

static void to_error(void *arg, const char *line)
{
    (void)arg;
    zrt_set_error(ZRT_ERR_IO, "%s", line);
}

zrt_status zrt_ckpt_check_section(const zrt_ckpt *c, int q, int unit)
{
    if (c->checked[(size_t)q * (size_t)c->n_units + (size_t)unit]) return ZRT_OK;
    char path[sizeof c->dir + 32];
    shard_path(c, q, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return zrt_set_error(ZRT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = malloc(CHUNK);
    reporter r = {to_error, NULL, 0};
    if (!buf) problem(&r, "%s: out of memory", path);
    else check_section(c, q, unit, fd, path, buf, true, &r);
    free(buf);
    close(fd);
    return r.problems ? ZRT_ERR_IO : ZRT_OK;
}
