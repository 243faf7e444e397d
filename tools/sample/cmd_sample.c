/* cmd_sample.c: `zrt sample`: a model you can talk to. Loads a checkpoint
 * (any world size and stage) or a Hugging Face directory (sample_model.c),
 * encodes the prompt, runs it through the model's decode in one call (the
 * prefill), then one token per call against the model's KV cache, each
 * token picked by sampling.c and printed as it comes.
 *
 * Why print complete characters only: a byte-level BPE token may end inside
 * a UTF-8 character, so the text printed is the decoding of every id so
 * far, cut before a trailing incomplete character, which follows once a
 * later token completes it (or at the end, as it is). Decoding everything
 * again each step keeps a SentencePiece tokenizer's leading-space rule right
 * and costs nothing beside a model step. Stops at an EOS id (printed with
 * --ids, not as text), at --max-new-tokens, or at the model's seq_len (the
 * position embedding's end), and says which on stderr. */
#include "cli.h"
#include "sample.h"
#include "sampling.h"
#include "tokenize.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: zrt sample (--checkpoint DIR | --hf DIR) (--prompt TEXT | --prompt-ids \"1 2 3\")\n"
    "                  [--tokenizer T.json] [--max-new-tokens 64] [--temperature 0] [--top-k 0] [--top-p 1]\n"
    "                  [--seed 0] [--eos TOKEN] [--ids] [--device cpu|cuda]\n"
    "\n"
    "Generates text from a zrt checkpoint (a step directory, or a checkpoint_dir whose `latest` names one) or\n"
    "a Hugging Face directory (config.json, model.safetensors; tokenizer.json is the default --tokenizer).\n"
    "--temperature 0 is greedy (argmax); above 0 it samples after --top-k and --top-p (Hugging Face's\n"
    "warpers), from a generator seeded by --seed. --ids prints token ids instead of text. Stops at EOS\n"
    "(--eos TOKEN, else the directory's eos_token_id, else the tokenizer's usual one), at --max-new-tokens\n"
    "or at the model's seq_len. docs/sample.md.\n";

enum { OPT_CKPT = 1, OPT_HF, OPT_TOKENIZER, OPT_PROMPT, OPT_PROMPT_IDS, OPT_MAX, OPT_TEMP, OPT_TOPK, OPT_TOPP,
       OPT_SEED, OPT_EOS, OPT_IDS, OPT_DEVICE, OPT_HELP };
static const struct option options[] = {
    {"checkpoint", required_argument, 0, OPT_CKPT},    {"hf", required_argument, 0, OPT_HF},
    {"tokenizer", required_argument, 0, OPT_TOKENIZER}, {"prompt", required_argument, 0, OPT_PROMPT},
    {"prompt-ids", required_argument, 0, OPT_PROMPT_IDS}, {"max-new-tokens", required_argument, 0, OPT_MAX},
    {"temperature", required_argument, 0, OPT_TEMP},   {"top-k", required_argument, 0, OPT_TOPK},
    {"top-p", required_argument, 0, OPT_TOPP},         {"seed", required_argument, 0, OPT_SEED},
    {"eos", required_argument, 0, OPT_EOS},            {"ids", no_argument, 0, OPT_IDS},
    {"device", required_argument, 0, OPT_DEVICE},      {"help", no_argument, 0, OPT_HELP},
    {0, 0, 0, 0}};

typedef struct {
    const char *checkpoint, *hf, *tokenizer, *prompt, *prompt_ids, *eos;
    zrt_device_kind device;
    long long max_new;
    zrt_sample_options s;
    bool ids, sampling_flag; /* sampling_flag: --top-k, --top-p or --seed given */
} sample_args;

/* ---- flags ---- */

/* A number option's value into *out; false (after a usage message) when it is not one. */
static bool number(int c, double *out)
{
    char *end;
    errno = 0;
    *out = strtod(optarg, &end);
    if (!errno && end != optarg && !*end) return true;
    zrt_cli_usage_error("sample", "%s %s: not a number", zrt_cli_option_name(options, c), optarg);
    return false;
}

/* One numeric flag: its value range and where it goes. */
static int numeric(sample_args *a, int c)
{
    double v;
    if (!number(c, &v)) return ZRT_EXIT_USAGE;
    bool whole = v == (double)(long long)v;
    if (c == OPT_MAX && (!whole || v < 1 || v > 1e9))
        return zrt_cli_usage_error("sample", "--max-new-tokens %s: want a whole number >= 1", optarg);
    if ((c == OPT_TOPK || c == OPT_SEED) && (!whole || v < 0 || v > 9e18))
        return zrt_cli_usage_error("sample", "%s %s: want a whole number >= 0", zrt_cli_option_name(options, c), optarg);
    if (c == OPT_MAX) a->max_new = (long long)v;
    if (c == OPT_TEMP) a->s.temperature = v;
    if (c == OPT_TOPK) a->s.top_k = (int64_t)v;
    if (c == OPT_TOPP) a->s.top_p = v;
    if (c == OPT_SEED) a->s.seed = (uint64_t)v;
    a->sampling_flag |= c == OPT_TOPK || c == OPT_TOPP || c == OPT_SEED;
    return ZRT_EXIT_OK;
}

static int device_flag(sample_args *a)
{
    static const zrt_device_kind kinds[] = {ZRT_DEVICE_CPU, ZRT_DEVICE_CUDA};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(optarg, zrt_device_kind_name(kinds[i])) == 0) return a->device = kinds[i], ZRT_EXIT_OK;
    return zrt_cli_usage_error("sample", "--device %s: want cpu or cuda", optarg);
}

/* The rules across flags. */
static int check_args(const sample_args *a)
{
    char why[128];
    if (!zrt_sample_options_check(&a->s, why, sizeof why)) return zrt_cli_usage_error("sample", "%s", why);
    if (!a->checkpoint == !a->hf) return zrt_cli_usage_error("sample", "give one of --checkpoint DIR and --hf DIR");
    if (!a->prompt == !a->prompt_ids) return zrt_cli_usage_error("sample", "give one of --prompt TEXT and --prompt-ids IDS");
    if (a->s.temperature == 0 && a->sampling_flag)
        return zrt_cli_usage_error("sample", "--top-k, --top-p and --seed apply only when sampling: give --temperature > 0 "
                                             "(0 is greedy)");
    return ZRT_EXIT_OK;
}

/* ZRT_EXIT_OK, ZRT_EXIT_USAGE, or -1 after --help. */
static int parse(int argc, char **argv, sample_args *a)
{
    *a = (sample_args){.device = ZRT_DEVICE_CPU, .max_new = 64, .s = {.top_p = 1}};
    const char **strings[] = {[OPT_CKPT] = &a->checkpoint, [OPT_HF] = &a->hf, [OPT_TOKENIZER] = &a->tokenizer,
                              [OPT_PROMPT] = &a->prompt, [OPT_PROMPT_IDS] = &a->prompt_ids, [OPT_EOS] = &a->eos};
    zrt_cli_normalize_options(argc, argv);
    for (int c; (c = zrt_cli_next_option(argc, argv, options, "sample")) != -1;) {
        int rc = ZRT_EXIT_OK;
        if (c == '?') return ZRT_EXIT_USAGE;
        if (c == OPT_HELP) return printf("%s", usage), -1;
        if (c < (int)(sizeof strings / sizeof strings[0]) && strings[c]) *strings[c] = optarg;
        if (c == OPT_IDS) a->ids = true;
        if (c == OPT_DEVICE) rc = device_flag(a);
        if (c == OPT_MAX || c == OPT_TEMP || c == OPT_TOPK || c == OPT_TOPP || c == OPT_SEED) rc = numeric(a, c);
        if (rc != ZRT_EXIT_OK) return rc;
    }
    if (optind < argc) return zrt_cli_usage_error("sample", "unexpected argument '%s' (see zrt sample --help)", argv[optind]);
    return check_args(a);
}

/* ---- the run ---- */

typedef struct {
    sample_args a;
    zrt_sample_source src;
    zrt_tokenizer *tok;
    zrt_ids ids;              /* the prompt's, then each generated one (an EOS only with --ids) */
    size_t n_prompt, printed; /* printed: bytes of the text so far */
    size_t lead;              /* the prompt's leading special ids (a BOS): not printed as text */
    int32_t eos[ZRT_SAMPLE_MAX_EOS];
    int n_eos;
    zrt_device *device;
    zrt_stream *stream;
    zrt_model *model;
    float **units;            /* [n_units] device: each unit's flat fp32 parameters */
    int32_t *tokens;          /* device: (seq_len) int32, the ids fed so far */
    float *logits;            /* device: (vocab) fp32 */
    float *host_logits;       /* (vocab) */
    zrt_sampler sampler;
} sample_run;

/* "1 2 3" or "1,2,3". */
static zrt_status parse_ids(const char *text, zrt_ids *out)
{
    for (const char *p = text; *p;) {
        char *end;
        if (*p == ' ' || *p == ',' || *p == '\t') {
            p++;
            continue;
        }
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX)
            return zrt_set_error(ZRT_ERR_INVALID, "--prompt-ids: '%s' is not a token id", p);
        ZRT_CHECK(zrt_ids_push(out, (int32_t)v));
        p = end;
    }
    return ZRT_OK;
}

/* The tokenizer (when text is read or written, or --eos names a token), the prompt's ids and the EOS ids. */
static zrt_status prepare_text(sample_run *r)
{
    const char *path = r->a.tokenizer ? r->a.tokenizer : r->src.tokenizer;
    bool needed = r->a.prompt || !r->a.ids || r->a.eos;
    if (needed && !path[0])
        return zrt_set_error(ZRT_ERR_INVALID, "%s needs a tokenizer: give --tokenizer T.json",
                             r->a.prompt ? "--prompt" : r->a.eos ? "--eos" : "text output (else --ids)");
    if (path[0]) ZRT_CHECK(zrt_tokenizer_load(path, &r->tok));
    if (r->a.prompt) {
        ZRT_CHECK(zrt_tokenizer_encode(r->tok, r->a.prompt, strlen(r->a.prompt), &r->ids));
        ZRT_CHECK(zrt_sample_frame(path, &r->ids, &r->lead)); /* e.g. Llama's BOS, as tokenizer(text) adds it */
    } else {
        ZRT_CHECK(parse_ids(r->a.prompt_ids, &r->ids));
    }
    if (r->ids.n == 0) return zrt_set_error(ZRT_ERR_INVALID, "the prompt is empty: the model needs at least one token");
    r->n_prompt = r->ids.n;
    int32_t eos = r->tok ? zrt_tokenize_eos_id(r->tok, r->a.eos) : -1;
    if (r->a.eos && eos < 0) return zrt_set_error(ZRT_ERR_INVALID, "--eos %s: not a token of %s", r->a.eos, path);
    if (r->a.eos || !r->src.n_eos) r->eos[0] = eos, r->n_eos = eos >= 0; /* --eos, else the directory's, else the tokenizer's */
    else memcpy(r->eos, r->src.eos, sizeof r->eos), r->n_eos = r->src.n_eos;
    return ZRT_OK;
}

/* The prompt fits the model: at most seq_len ids, each in the vocabulary. */
static zrt_status check_prompt(const sample_run *r)
{
    const zrt_model_config *m = &r->src.cfg.job.model;
    if ((int64_t)r->ids.n > m->seq_len)
        return zrt_set_error(ZRT_ERR_INVALID, "the prompt has %zu tokens; the model's seq_len is %lld", r->ids.n,
                             (long long)m->seq_len);
    for (size_t i = 0; i < r->ids.n; i++)
        if (r->ids.ids[i] >= m->vocab)
            return zrt_set_error(ZRT_ERR_INVALID, "prompt token %zu is id %d; the model's vocab is %lld", i + 1,
                                 r->ids.ids[i], (long long)m->vocab);
    return ZRT_OK;
}

/* The device, the model with its weights, the buffers of a decode step. */
static zrt_status open_model(sample_run *r)
{
    const zrt_model_config *m = &r->src.cfg.job.model;
    zrt_device_options o;
    zrt_device_options_init(&o);
    o.kind = r->a.device;
    if (zrt_device_create(&o, &r->device) != ZRT_OK) {
        char why[ZRT_ERROR_MAX];
        snprintf(why, sizeof why, "%s", zrt_last_error());
        return zrt_set_error(ZRT_ERR_UNSUPPORTED, "--device %s: %s", zrt_device_kind_name(o.kind), why);
    }
    ZRT_CHECK(zrt_model_create(m, r->device, 1, &r->model));
    if (!r->model->decode)
        return zrt_set_error(ZRT_ERR_UNSUPPORTED, "the %s model cannot generate text (it has no decode)",
                             zrt_model_type_name(m->type));
    r->units = calloc((size_t)r->model->n_units, sizeof *r->units);
    r->host_logits = malloc((size_t)m->vocab * sizeof *r->host_logits);
    if (!r->units || !r->host_logits) return zrt_set_error(ZRT_ERR_NOMEM, "zrt sample: out of memory");
    ZRT_CHECK(zrt_sample_upload(&r->src, r->model, r->units));
    ZRT_CHECK(zrt_stream_create(r->device, "sample", &r->stream));
    ZRT_CHECK(zrt_device_alloc(r->device, ZRT_MEM_ACTIVATIONS, (size_t)m->seq_len * sizeof(int32_t), "sample tokens",
                               NULL, (void **)&r->tokens));
    ZRT_CHECK(zrt_device_alloc(r->device, ZRT_MEM_ACTIVATIONS, (size_t)m->vocab * sizeof(float), "sample logits", NULL,
                               (void **)&r->logits));
    return zrt_sampler_init(&r->sampler, &r->a.s, m->vocab);
}

/* ids[pos0..ids.n) through the model: the logits of the last on the host. */
static zrt_status step(sample_run *r, size_t pos0)
{
    size_t n = r->ids.n - pos0;
    ZRT_CHECK(zrt_device_write(r->device, r->tokens + pos0, r->ids.ids + pos0, n * sizeof(int32_t)));
    ZRT_CHECK(r->model->decode(r->model, r->stream, (const float *const *)r->units, r->tokens + pos0, (int)n, (int)pos0,
                               r->logits));
    ZRT_CHECK(zrt_stream_synchronize(r->stream));
    return zrt_device_read(r->device, r->host_logits, r->logits, (size_t)r->src.cfg.job.model.vocab * sizeof(float));
}

/* How much of s[0..len) is whole UTF-8 characters: len, less a trailing lead
 * byte still short of its continuation bytes. */
static size_t complete_utf8(const char *s, size_t len)
{
    for (size_t back = 1; back <= 3 && back <= len; back++) {
        unsigned char c = (unsigned char)s[len - back];
        if ((c & 0xC0) == 0x80) continue;
        size_t want = c >= 0xF8 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        return want > back ? len - back : len;
    }
    return len;
}

/* Prints the text of ids not yet printed (at the end, an incomplete character too). */
static zrt_status print_text(sample_run *r, bool last)
{
    char *text;
    size_t len;
    ZRT_CHECK(zrt_tokenizer_decode(r->tok, r->ids.ids + r->lead, r->ids.n - r->lead, &text, &len));
    size_t end = last ? len : complete_utf8(text, len);
    if (end > r->printed) fwrite(text + r->printed, 1, end - r->printed, stdout), r->printed = end;
    if (last) putchar('\n');
    fflush(stdout);
    free(text);
    return ZRT_OK;
}

static bool is_eos(const sample_run *r, int32_t id)
{
    for (int i = 0; i < r->n_eos; i++)
        if (r->eos[i] == id) return true;
    return false;
}

/* Prefill, then a token per decode call until EOS, --max-new-tokens or seq_len. */
static zrt_status generate(sample_run *r)
{
    int64_t seq_len = r->src.cfg.job.model.seq_len, made = 0;
    double start = zrt_now(), first = 0;
    ZRT_CHECK(step(r, 0));
    if (!r->a.ids) ZRT_CHECK(print_text(r, false));
    const char *why = "--max-new-tokens";
    while (made < r->a.max_new) {
        int32_t id = zrt_sampler_next(&r->sampler, r->host_logits);
        made++, first = first ? first : zrt_now();
        if (r->a.ids) printf("%s%d", made > 1 ? " " : "", id), fflush(stdout);
        if (is_eos(r, id)) {
            why = "EOS";
            break;
        }
        ZRT_CHECK(zrt_ids_push(&r->ids, id));
        if (!r->a.ids) ZRT_CHECK(print_text(r, false));
        if ((int64_t)r->ids.n > seq_len || made == r->a.max_new) {
            why = (int64_t)r->ids.n > seq_len ? "the model's seq_len" : why;
            break;
        }
        ZRT_CHECK(step(r, r->ids.n - 1));
    }
    r->a.ids ? (void)putchar('\n') : (void)print_text(r, true);
    double now = zrt_now();
    fprintf(stderr, "zrt sample: %lld new tokens after a prompt of %zu, stopped at %s (seq_len %lld); prompt %.1f ms, "
                    "%.1f tokens/s after it\n", (long long)made, r->n_prompt, why, (long long)seq_len,
            (first - start) * 1e3, made > 1 ? (double)(made - 1) / (now - first) : 0.0);
    return ZRT_OK;
}

static void close_run(sample_run *r)
{
    zrt_stream_destroy(r->stream); /* waits for its work: then nothing uses the buffers */
    for (int u = 0; r->units && u < r->model->n_units; u++) zrt_device_free(r->device, r->units[u], NULL);
    free(r->units);
    if (r->device) zrt_device_free(r->device, r->tokens, NULL), zrt_device_free(r->device, r->logits, NULL);
    if (r->model) r->model->destroy(r->model);
    zrt_device_destroy(r->device);
    zrt_sampler_fini(&r->sampler);
    free(r->host_logits);
    zrt_ids_free(&r->ids);
    zrt_tokenizer_free(r->tok);
    zrt_sample_source_close(&r->src);
}

int zrt_cmd_sample(int argc, char **argv)
{
    static sample_run r; /* a zrt_config is large */
    memset(&r, 0, sizeof r);
    int rc = parse(argc, argv, &r.a);
    if (rc) return rc < 0 ? ZRT_EXIT_OK : rc;
    zrt_status status = zrt_sample_source_open(r.a.checkpoint, r.a.hf, &r.src);
    if (status == ZRT_OK) zrt_cli_print_warnings(r.src.cfg.warnings);
    if (status == ZRT_OK) status = prepare_text(&r);
    if (status == ZRT_OK) status = check_prompt(&r);
    if (status == ZRT_OK) status = open_model(&r);
    if (status == ZRT_OK) status = generate(&r);
    if (status != ZRT_OK) fprintf(stderr, "zrt sample: %s\n", zrt_last_error());
    close_run(&r);
    return status == ZRT_OK ? ZRT_EXIT_OK : ZRT_EXIT_FAIL;
}
