/* shards_reshard.c: `zrt shards reshard CKPT OUT --world N [--stage S]`: the
 * same state laid out for N ranks (each unit padded to a multiple of N x 16,
 * rank r's shard [r * shard, (r + 1) * shard)), written as a complete
 * checkpoint under OUT (OUT/step_NNNNNNN, then OUT/latest), streaming each
 * new shard's sections from the old files -- never the model whole. The
 * input was checked whole when it was opened (zrt_ckpt_open), so fresh
 * CRCs are never written over damaged bytes.
 *
 * Why, when the engine already re-slices on load: a checkpoint can be
 * prepared for the cluster it will run on, its files checked there
 * (`zrt shards verify`), and moved rank by rank. The elements past a unit's
 * numel (the padding) are zero, as the engine keeps them.
 */
#include "cli.h"
#include "zrt/internal/ckpt_writer.h"
#include "zrt/internal/output.h"
#include "format.h"
#include "shards.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int64_t new_shard(const zrt_ckpt_unit *u, int world)
{
    int64_t align = (int64_t)world * 16;
    return (u->numel + align - 1) / align * align / world;
}

/* Elements [begin, begin + n) of a part, zero past numel. */
static zrt_status read_padded(const zrt_ckpt *c, int unit, int part, int64_t begin, int64_t n, float *buf)
{
    int64_t numel = c->units[unit].numel, have = begin >= numel ? 0 : numel - begin < n ? numel - begin : n;
    if (have > 0) ZRT_CHECK(zrt_ckpt_read(c, unit, part, begin, have, buf));
    memset(buf + (have > 0 ? have : 0), 0, (size_t)(n - (have > 0 ? have : 0)) * sizeof(float));
    return ZRT_OK;
}

/* Unit i's section of new rank r: the three parts, streamed from the old files. */
static zrt_status write_section(const zrt_ckpt *c, int world, int r, int i, zrt_shard_writer *w, float *buf)
{
    int64_t shard = new_shard(&c->units[i], world);
    ZRT_CHECK(zrt_shard_writer_section(w, i, r * shard, shard));
    for (int part = 0; part < ZRT_CKPT_PARTS; part++)
        for (int64_t done = 0; done < shard; done += SHARDS_CHUNK) {
            int64_t n = shard - done < SHARDS_CHUNK ? shard - done : SHARDS_CHUNK;
            ZRT_CHECK(read_padded(c, i, part, r * shard + done, n, buf));
            ZRT_CHECK(zrt_shard_writer_floats(w, buf, (size_t)n));
        }
    return ZRT_OK;
}

/* New rank r's shard file, through the format's writer (zrt/internal/ckpt_writer.h). */
static zrt_status write_rank(const zrt_ckpt *c, int world, int r, const char *dir, float *buf)
{
    char path[ZRT_OUT_PATH_MAX + 100];
    snprintf(path, sizeof path, "%s/shard_%05d.bin", dir, r);
    zrt_shard_writer w;
    ZRT_CHECK(zrt_shard_writer_open(&w, path, r, world, c->n_units, c->step));
    zrt_status status = ZRT_OK;
    for (int i = 0; status == ZRT_OK && i < c->n_units; i++) status = write_section(c, world, r, i, &w, buf);
    if (status != ZRT_OK) {
        zrt_shard_writer_abort(&w);
        return status;
    }
    return zrt_shard_writer_close(&w);
}

/* The old meta.json with the new world size, stage and unit sizes. */
static zrt_status write_meta(const shards_options *o, const zrt_ckpt *c, const char *dir)
{
    cJSON *meta = cJSON_Duplicate(c->meta, true), *units = cJSON_GetObjectItemCaseSensitive(meta, "units");
    if (!meta) return zrt_set_error(ZRT_ERR_NOMEM, "out of memory");
    cJSON_ReplaceItemInObject(meta, "world_size", cJSON_CreateNumber(o->world));
    if (o->stage >= 0) cJSON_ReplaceItemInObject(meta, "stage", cJSON_CreateNumber(o->stage));
    for (int i = 0; i < c->n_units; i++) {
        cJSON *unit = cJSON_GetArrayItem(units, i);
        int64_t shard = new_shard(&c->units[i], o->world);
        cJSON_ReplaceItemInObject(unit, "padded", cJSON_CreateNumber((double)(shard * o->world)));
        cJSON_ReplaceItemInObject(unit, "shard", cJSON_CreateNumber((double)shard));
    }
    char *text = cJSON_Print(meta), path[ZRT_OUT_PATH_MAX + 100];
    cJSON_Delete(meta);
    snprintf(path, sizeof path, "%s/meta.json", dir);
    FILE *f = text ? fopen(path, "w") : NULL;
    zrt_status status = f && fputs(text, f) >= 0 ? ZRT_OK : zrt_set_error(ZRT_ERR_IO, "%s: cannot write", path);
    if (f && fclose(f) != 0) status = zrt_set_error(ZRT_ERR_IO, "%s: cannot write", path);
    free(text);
    return status;
}

/* OUT/.step_N.tmp-PID filled, swapped in as OUT/step_N, then OUT/latest
 * replaced (zrt/output.h): a failure or a crash leaves no half checkpoint
 * visible, and an OUT this command created is removed again on failure. */
static zrt_status reshard(const shards_options *o, const zrt_ckpt *c, const char *out, float *buf)
{
    const char *name = strrchr(c->dir, '/') ? strrchr(c->dir, '/') + 1 : c->dir;
    char final_dir[ZRT_PATH_MAX + 100], latest[ZRT_PATH_MAX + 100];
    snprintf(final_dir, sizeof final_dir, "%s/%s", out, name);
    snprintf(latest, sizeof latest, "%s/latest", out);
    if (access(final_dir, F_OK) == 0) return zrt_set_error(ZRT_ERR_IO, "%s: exists already", final_dir);
    zrt_out_dir step;
    ZRT_CHECK(zrt_out_dir_name(&step, final_dir, NULL));
    bool created = mkdir(out, 0755) == 0;
    if (!created && errno != EEXIST) return zrt_set_error(ZRT_ERR_IO, "%s: cannot create: %s", out, strerror(errno));
    zrt_status status = zrt_out_dir_create(&step);
    for (int r = 0; status == ZRT_OK && r < o->world; r++) status = write_rank(c, o->world, r, step.tmp, buf);
    if (status == ZRT_OK) status = write_meta(o, c, step.tmp);
    if (status != ZRT_OK) zrt_out_dir_abort(&step);
    if (status == ZRT_OK) status = zrt_out_dir_commit(&step);
    char line[sizeof c->dir + 2];
    snprintf(line, sizeof line, "%s\n", name);
    if (status == ZRT_OK) status = zrt_out_write_text(latest, line);
    if (status != ZRT_OK && created) rmdir(out); /* only if empty: a committed step stays */
    return status;
}

int zrt_shards_reshard(const shards_options *o, const zrt_ckpt *c, const char *out)
{
    float *buf = malloc(SHARDS_CHUNK * sizeof(float));
    zrt_status status = buf ? reshard(o, c, out, buf) : zrt_set_error(ZRT_ERR_NOMEM, "out of memory");
    free(buf);
    if (status != ZRT_OK) return fprintf(stderr, "zrt shards reshard: %s\n", zrt_last_error()), ZRT_EXIT_FAIL;
    if (o->json)
        zrt_json_line("out", ZJ_STR(out), "world_size", ZJ_INT(o->world), "stage", ZJ_INT(o->stage >= 0 ? o->stage : c->stage),
                      "step", ZJ_INT(c->step), NULL);
    else
        printf("%s: step %lld for %d ranks (stage %d), from %d ranks\n", out, (long long)c->step, o->world,
               o->stage >= 0 ? o->stage : c->stage, c->world);
    return ZRT_EXIT_OK;
}
