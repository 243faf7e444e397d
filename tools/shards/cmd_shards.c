/* cmd_shards.c: `zrt shards ls|show|verify|diff|consolidate|reshard`: look
 * inside zrt checkpoints, check them, compare two, and write them out in
 * other shapes -- with memory bounded by a chunk, never by the checkpoint
 * (everything goes through the streaming reader of zrt/shards.h).
 *
 * Why here and not in Python: DeepSpeed's zero_to_fp32.py loads every rank's
 * file at once; these read ranges with pread, so a 70B checkpoint needs a
 * few MiB. consolidate and reshard are in shards_out.c.
 * Every command but verify (which lists every problem) and ls (sizes and
 * headers only) opens a checkpoint with every check: a damaged one is
 * refused, naming the file and section, before anything is read or written.
 */
#include "cli.h"
#include "zrt/internal/output.h"
#include "format.h"
#include "shards.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char usage[] =
    "usage: zrt shards ls DIR                         the checkpoints in DIR\n"
    "       zrt shards show CKPT [--param NAME] [--rank R]  units, parameters, who owns what\n"
    "       zrt shards verify CKPT                    every CRC, size and header; exit 0 or 1\n"
    "       zrt shards diff A B [--tolerance T]       per-parameter differences; exit 1 beyond T\n"
    "       zrt shards consolidate CKPT OUT [--dtype fp32|bf16|fp16] [--max-shard-size 5GB]\n"
    "       zrt shards reshard CKPT OUT --world N [--stage S]\n"
    "       zrt shards export-hf CKPT OUT [--dtype fp32|bf16|fp16] [--max-shard-size 5GB]\n"
    "                                                 a Hugging Face directory (gpt: GPT-2; llama: its architecture)\n"
    "\n"
    "CKPT is a step directory or a checkpoint directory (its `latest`). Every\n"
    "command takes --json (one object per line).\n";

/* ---- ls ---------------------------------------------------------------------------------------- */

static long long dir_bytes(const char *dir)
{
    long long total = 0;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        char path[ZRT_PATH_MAX + 300];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (e->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode)) total += st.st_size;
    }
    if (d) closedir(d);
    return total;
}

static int compare_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void ls_entry(const shards_options *o, const char *dir, const char *name, const char *latest)
{
    char path[ZRT_PATH_MAX + 300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    bool partial = name[0] == '.';
    zrt_ckpt *c = NULL; /* every file there with its size and headers; CRCs are verify's */
    bool ok = !partial && zrt_ckpt_open_checked(path, ZRT_CKPT_CHECK_LAYOUT, &c) == ZRT_OK;
    char state[ZRT_ERROR_MAX + 16];
    snprintf(state, sizeof state, "%s%s", partial ? "incomplete (left by a crash)" : ok ? "complete" : "damaged: ",
             partial || ok ? "" : zrt_last_error());
    bool is_latest = strcmp(name, latest) == 0;
    if (o->json)
        zrt_json_line("name", ZJ_STR(name), "step", ZJ_INT(ok ? c->step : -1), "world_size", ZJ_INT(ok ? c->world : 0),
                      "stage", ZJ_INT(ok ? c->stage : -1), "dtype", ZJ_STR(ok ? c->dtype : ""),
                      "model", ZJ_STR(ok ? c->model : ""), "bytes", ZJ_INT(dir_bytes(path)), "complete", ZJ_BOOL(ok),
                      "latest", ZJ_BOOL(is_latest), NULL);
    else if (ok)
        printf("%-22s step %7lld  world %3d  stage %d  %-5s %-4s %12lld bytes  %s%s\n", name, (long long)c->step, c->world,
               c->stage, c->dtype, c->model, dir_bytes(path), state, is_latest ? "  <- latest" : "");
    else
        printf("%-22s %s (%lld bytes)\n", name, state, dir_bytes(path));
    zrt_ckpt_close(c);
}

static int cmd_ls(const shards_options *o, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return fprintf(stderr, "zrt shards ls: %s: cannot open\n", dir), ZRT_EXIT_FAIL;
    char *names[4096];
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) && n < 4096;) {
        int step;
        char tail[8];
        if (sscanf(e->d_name, "step_%d%7s", &step, tail) == 1 || sscanf(e->d_name, ".step_%d.tm%1s", &step, tail) == 2)
            names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, compare_names);
    char latest[256] = "", path[ZRT_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/latest", dir);
    FILE *f = fopen(path, "r");
    if (f && fgets(latest, sizeof latest, f)) latest[strcspn(latest, "\r\n")] = '\0';
    if (f) fclose(f);
    if (!n && !o->json) printf("%s: no checkpoints\n", dir);
    for (int i = 0; i < n; i++) {
        ls_entry(o, dir, names[i], latest);
        free(names[i]);
    }
    return ZRT_EXIT_OK;
}

/* ---- show ------------------------------------------------------------------------------------- */

static void shape_text(const zrt_ckpt_param *p, char *out, size_t size)
{
    int used = snprintf(out, size, "[");
    for (int d = 0; d < (p->ndim ? p->ndim : 1); d++)
        used += snprintf(out + used, size - (size_t)used, "%s%lld", d ? ", " : "", (long long)(p->ndim ? p->shape[d] : p->numel));
    snprintf(out + used, size - (size_t)used, "]");
}

/* Which ranks own which elements of the parameter (ranges within it); with
 * --json appended to owners as {rank, begin, end}. */
static void show_owners(const shards_options *o, const zrt_ckpt *c, const zrt_ckpt_unit *u, const zrt_ckpt_param *p,
                        cJSON *owners)
{
    for (int r = 0; r < c->world; r++) {
        int64_t lo = r * u->shard, hi = lo + u->shard;
        int64_t a = lo > p->offset ? lo : p->offset, b = hi < p->offset + p->numel ? hi : p->offset + p->numel;
        if (a >= b || (o->rank >= 0 && r != o->rank)) continue;
        if (o->json)
            cJSON_AddItemToArray(owners, zrt_json_object("rank", ZJ_INT(r), "begin", ZJ_INT(a - p->offset),
                                                         "end", ZJ_INT(b - p->offset), NULL));
        else printf("      rank %d: elements [%lld, %lld)\n", r, (long long)(a - p->offset), (long long)(b - p->offset));
    }
}

static void show_unit(const shards_options *o, const zrt_ckpt *c, int i)
{
    const zrt_ckpt_unit *u = &c->units[i];
    int64_t pad = u->padded - u->numel, first_pad_rank = u->numel / u->shard;
    if (!o->json && pad)
        printf("unit %d: %lld elements, padded to %lld (%lld zeros at the end, on rank%s %lld%s), %lld per rank\n", i,
               (long long)u->numel, (long long)u->padded, (long long)pad, first_pad_rank < c->world - 1 ? "s" : "",
               (long long)first_pad_rank, first_pad_rank < c->world - 1 ? " and up" : "", (long long)u->shard);
    else if (!o->json)
        printf("unit %d: %lld elements (no padding), %lld per rank\n", i, (long long)u->numel, (long long)u->shard);
    for (int k = 0; k < u->n_params; k++) {
        const zrt_ckpt_param *p = &u->params[k];
        char shape[128];
        shape_text(p, shape, sizeof shape);
        if (o->json) {
            cJSON *owners = cJSON_CreateArray();
            show_owners(o, c, u, p, owners);
            zrt_json_line("unit", ZJ_INT(i), "name", ZJ_STR(p->name), "shape", ZJ_NODE(cJSON_Parse(shape)),
                          "numel", ZJ_INT(p->numel), "offset", ZJ_INT(p->offset), "owners", ZJ_NODE(owners), NULL);
        } else {
            printf("  %-28s %-16s at %lld\n", p->name, shape, (long long)p->offset);
            show_owners(o, c, u, p, NULL);
        }
    }
}

typedef struct {
    double min, max, sum, squares;
    long long nan, inf, n;
} value_stats;

static zrt_status param_stats(const zrt_ckpt *c, int unit, const zrt_ckpt_param *p, int part, float *buf, value_stats *s)
{
    *s = (value_stats){INFINITY, -INFINITY, 0, 0, 0, 0, 0};
    for (int64_t done = 0; done < p->numel; done += SHARDS_CHUNK) {
        int64_t n = p->numel - done < SHARDS_CHUNK ? p->numel - done : SHARDS_CHUNK;
        ZRT_CHECK(zrt_ckpt_read(c, unit, part, p->offset + done, n, buf));
        for (int64_t i = 0; i < n; i++) {
            double v = buf[i];
            if (isnan(v)) s->nan++;
            else if (isinf(v)) s->inf++;
            else {
                s->min = fmin(s->min, v);
                s->max = fmax(s->max, v);
                s->sum += v;
                s->squares += v * v;
                s->n++;
            }
        }
    }
    return ZRT_OK;
}

static int show_param(const shards_options *o, const zrt_ckpt *c, const char *name)
{
    int unit, k;
    if (zrt_ckpt_find(c, name, &unit, &k) != ZRT_OK) return fprintf(stderr, "zrt shards show: %s\n", zrt_last_error()), ZRT_EXIT_FAIL;
    float *buf = malloc(SHARDS_CHUNK * sizeof(float));
    static const char *const parts[] = {"master", "exp_avg", "exp_avg_sq"};
    for (int part = 0; buf && part < ZRT_CKPT_PARTS; part++) {
        value_stats s;
        if (param_stats(c, unit, &c->units[unit].params[k], part, buf, &s) != ZRT_OK) {
            fprintf(stderr, "zrt shards show: %s\n", zrt_last_error());
            free(buf);
            return ZRT_EXIT_FAIL;
        }
        double mean = s.n ? s.sum / (double)s.n : 0;
        if (o->json)
            zrt_json_line("name", ZJ_STR(name), "part", ZJ_STR(parts[part]), "min", ZJ_NUM(s.n ? s.min : 0),
                          "max", ZJ_NUM(s.n ? s.max : 0), "mean", ZJ_NUM(mean), "l2", ZJ_NUM(sqrt(s.squares)),
                          "nan", ZJ_INT(s.nan), "inf", ZJ_INT(s.inf), NULL);
        else
            printf("%s %-10s min %12.6g  max %12.6g  mean %12.6g  L2 %12.6g  NaN %lld  Inf %lld\n", name, parts[part],
                   s.n ? s.min : 0, s.n ? s.max : 0, mean, sqrt(s.squares), s.nan, s.inf);
    }
    free(buf);
    return buf ? ZRT_EXIT_OK : ZRT_EXIT_FAIL;
}

static int cmd_show(const shards_options *o, const zrt_ckpt *c)
{
    if (o->param) return show_param(o, c, o->param);
    if (!o->json)
        printf("%s: step %lld, %d ranks, stage %d, %s, model %s, %d units\n", c->dir, (long long)c->step, c->world, c->stage,
               c->dtype, c->model, c->n_units);
    for (int i = 0; i < c->n_units; i++) show_unit(o, c, i);
    int64_t per_rank = 0;
    for (int i = 0; i < c->n_units; i++) per_rank += c->units[i].shard * 4;
    for (int r = 0; r < c->world; r++) {
        if (o->rank >= 0 && r != o->rank) continue;
        if (o->json)
            zrt_json_line("rank", ZJ_INT(r), "master_bytes", ZJ_INT(per_rank), "exp_avg_bytes", ZJ_INT(per_rank),
                          "exp_avg_sq_bytes", ZJ_INT(per_rank), NULL);
        else
            printf("rank %d: master %lld bytes, exp_avg %lld, exp_avg_sq %lld (fp32)\n", r, (long long)per_rank,
                   (long long)per_rank, (long long)per_rank);
    }
    return ZRT_EXIT_OK;
}

/* ---- verify ------------------------------------------------------------------------------------ */

static void print_problem(void *arg, const char *line)
{
    const shards_options *o = arg;
    if (o->json) zrt_json_line("problem", ZJ_STR(line), NULL);
    else printf("%s\n", line);
}

static int cmd_verify(const shards_options *o, const zrt_ckpt *c)
{
    int problems = zrt_ckpt_verify(c, print_problem, (void *)o);
    if (o->json) zrt_json_line("checkpoint", ZJ_STR(c->dir), "problems", ZJ_INT(problems), NULL);
    else printf("%s: %s\n", c->dir, problems ? "damaged" : "ok (every size, header and CRC32C)");
    return problems ? ZRT_EXIT_FAIL : ZRT_EXIT_OK;
}

/* ---- diff --------------------------------------------------------------------------------------- */

typedef struct {
    double max_abs, max_rel;
    int64_t first;   /* -1: none */
    float first_a, first_b;
} param_diff;

static zrt_status diff_param(const zrt_ckpt *a, const zrt_ckpt *b, int unit, const zrt_ckpt_param *p, int bunit,
                             const zrt_ckpt_param *q, float *buf, param_diff *d)
{
    *d = (param_diff){0, 0, -1, 0, 0};
    float *x = buf, *y = buf + SHARDS_CHUNK;
    for (int64_t done = 0; done < p->numel; done += SHARDS_CHUNK) {
        int64_t n = p->numel - done < SHARDS_CHUNK ? p->numel - done : SHARDS_CHUNK;
        ZRT_CHECK(zrt_ckpt_read(a, unit, ZRT_CKPT_MASTER, p->offset + done, n, x));
        ZRT_CHECK(zrt_ckpt_read(b, bunit, ZRT_CKPT_MASTER, q->offset + done, n, y));
        for (int64_t i = 0; i < n; i++) {
            if (memcmp(&x[i], &y[i], 4) == 0) continue;
            double diff = fabs((double)x[i] - (double)y[i]), rel = diff / fmax(fabs((double)y[i]), 1e-30);
            if (isnan(diff)) diff = rel = INFINITY; /* a NaN on one side only */
            if (d->first < 0) d->first = done + i, d->first_a = x[i], d->first_b = y[i];
            d->max_abs = fmax(d->max_abs, diff);
            d->max_rel = fmax(d->max_rel, rel);
        }
    }
    return ZRT_OK;
}

static int cmd_diff(const shards_options *o, const zrt_ckpt *a, const zrt_ckpt *b)
{
    float *buf = malloc(2 * SHARDS_CHUNK * sizeof(float));
    if (!buf) return ZRT_EXIT_FAIL;
    int beyond = 0, rc = ZRT_EXIT_OK;
    for (int i = 0; i < a->n_units && rc == ZRT_EXIT_OK; i++)
        for (int k = 0; k < a->units[i].n_params && rc == ZRT_EXIT_OK; k++) {
            const zrt_ckpt_param *p = &a->units[i].params[k];
            int bu, bk;
            param_diff d;
            if (zrt_ckpt_find(b, p->name, &bu, &bk) != ZRT_OK || b->units[bu].params[bk].numel != p->numel) {
                printf("%s: only in %s or of another size there\n", p->name, a->dir);
                beyond++;
                continue;
            }
            if (diff_param(a, b, i, p, bu, &b->units[bu].params[bk], buf, &d) != ZRT_OK) {
                fprintf(stderr, "zrt shards diff: %s\n", zrt_last_error());
                rc = ZRT_EXIT_FAIL;
                break;
            }
            bool over = d.max_abs > o->tolerance;
            beyond += over;
            if (o->json)
                zrt_json_line("name", ZJ_STR(p->name), "max_abs", ZJ_NUM(d.max_abs), "max_rel", ZJ_NUM(d.max_rel),
                              "first", ZJ_INT(d.first), "a", ZJ_NUM(d.first_a), "b", ZJ_NUM(d.first_b), NULL);
            else if (d.first >= 0)
                printf("%-28s max abs %.3g  max rel %.3g  first at element %lld: %.9g vs %.9g%s\n", p->name, d.max_abs,
                       d.max_rel, (long long)d.first, d.first_a, d.first_b, over ? "" : "  (within tolerance)");
        }
    free(buf);
    if (rc == ZRT_EXIT_OK && !o->json)
        printf("%d parameter(s) differ beyond %g (master weights, fp32)\n", beyond, o->tolerance);
    return rc != ZRT_EXIT_OK ? rc : beyond ? ZRT_EXIT_FAIL : ZRT_EXIT_OK;
}

/* ---- the command -------------------------------------------------------------------------------- */

static int parse(int argc, char **argv, shards_options *o)
{
    static const struct option options[] = {
        {"help", no_argument, NULL, 'h'},       {"json", no_argument, NULL, 'j'},
        {"param", required_argument, NULL, 'p'}, {"rank", required_argument, NULL, 'r'},
        {"tolerance", required_argument, NULL, 't'}, {"dtype", required_argument, NULL, 'd'},
        {"max-shard-size", required_argument, NULL, 'm'}, {"world", required_argument, NULL, 'w'},
        {"stage", required_argument, NULL, 's'}, {NULL, 0, NULL, 0}};
    int c;
    while ((c = zrt_cli_next_option(argc, argv, options, "shards")) != -1) {
        char *end = NULL;
        bool ok = true;
        switch (c) {
        case 'h': fputs(usage, stdout); return -1;
        case 'j': o->json = true; break;
        case 'p': o->param = optarg; break;
        case 'r': ok = (o->rank = (int)strtol(optarg, &end, 10)) >= 0 && !*end; break;
        case 't': ok = (o->tolerance = strtod(optarg, &end)) >= 0 && !*end; break;
        case 'd': ok = zrt_shards_parse_dtype(optarg, &o->dtype); break;
        case 'm': ok = zrt_shards_parse_bytes(optarg, &o->max_shard_bytes); break;
        case 'w': ok = (o->world = (int)strtol(optarg, &end, 10)) >= 1 && o->world <= 1 << 16 && !*end; break;
        case 's': ok = (o->stage = (int)strtol(optarg, &end, 10)) >= 0 && o->stage <= 3 && !*end; break;
        default: return ZRT_EXIT_USAGE;
        }
        if (!ok) return zrt_cli_usage_error("shards", "bad value '%s' for %s", optarg, zrt_cli_option_name(options, c));
    }
    return ZRT_EXIT_OK;
}

/* Opens the checkpoint(s) with every check (verify: meta.json only, as it
 * lists every problem itself); an output must be apart from its input. */
static int with_checkpoint(const shards_options *o, const char *action, const char *path, const char *other, const char *out)
{
    zrt_ckpt *c = NULL, *b = NULL;
    zrt_ckpt_check check = strcmp(action, "verify") == 0 ? ZRT_CKPT_CHECK_META : ZRT_CKPT_CHECK_ALL;
    if ((out && zrt_out_check_apart(out, path) != ZRT_OK) || zrt_ckpt_open_checked(path, check, &c) != ZRT_OK ||
        (other && zrt_ckpt_open_checked(other, check, &b) != ZRT_OK)) {
        fprintf(stderr, "zrt shards %s: %s\n", action, zrt_last_error());
        zrt_ckpt_close(c);
        return ZRT_EXIT_FAIL;
    }
    int rc = strcmp(action, "show") == 0     ? cmd_show(o, c)
             : strcmp(action, "verify") == 0 ? cmd_verify(o, c)
             : strcmp(action, "diff") == 0   ? cmd_diff(o, c, b)
             : strcmp(action, "consolidate") == 0 ? zrt_shards_consolidate(o, c, out)
             : strcmp(action, "export-hf") == 0   ? zrt_shards_export_hf(o, c, out)
                                                  : zrt_shards_reshard(o, c, out);
    zrt_ckpt_close(c);
    zrt_ckpt_close(b);
    return rc;
}

int zrt_cmd_shards(int argc, char **argv)
{
    zrt_cli_normalize_options(argc, argv);
    shards_options o = {.rank = -1, .dtype = ZRT_DTYPE_F32, .max_shard_bytes = 5000000000LL, .world = 0, .stage = -1};
    int rc = parse(argc, argv, &o);
    if (rc != ZRT_EXIT_OK) return rc < 0 ? ZRT_EXIT_OK : rc;
    int n = argc - optind;
    const char *action = n > 0 ? argv[optind] : "";
    static const struct {
        const char *name;
        int args;
    } actions[] = {{"ls", 1}, {"show", 1}, {"verify", 1}, {"diff", 2}, {"consolidate", 2}, {"reshard", 2}, {"export-hf", 2}};
    for (size_t k = 0; k < sizeof actions / sizeof actions[0]; k++) {
        if (strcmp(action, actions[k].name) != 0) continue;
        if (n - 1 != actions[k].args)
            return zrt_cli_usage_error("shards", "%s takes %d argument%s (zrt shards --help)", action, actions[k].args,
                                       actions[k].args > 1 ? "s" : "");
        if (strcmp(action, "reshard") == 0 && o.world < 1) return zrt_cli_usage_error("shards", "reshard needs --world N");
        if (k == 0) return cmd_ls(&o, argv[optind + 1]);
        bool two = strcmp(action, "diff") == 0;
        return with_checkpoint(&o, action, argv[optind + 1], two ? argv[optind + 2] : NULL, two ? NULL : argv[optind + 2]);
    }
    return zrt_cli_usage_error("shards", "unknown action '%s' (ls, show, verify, diff, consolidate, reshard, export-hf)", action);
}
