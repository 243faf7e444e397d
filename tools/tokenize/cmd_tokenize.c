/* cmd_tokenize.c: `zrt tokenize`: encode or decode lines with a Hugging
 * Face tokenizer.json, write token shards for training
 * (tokenize_shards.c), and `zrt bench tokenize` (zrt's encoder MB/s beside
 * the `tokenizers` package's, in the same run).
 *
 * Why lines: `encode` and `decode` are filters a test or a shell pipeline
 * can diff against `tokenizers` line by line; the shard writer is the one
 * that packs documents. The tokenizer itself is runtime/tokenize/.
 */
#include "cli.h"
#include "tokenize.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: zrt tokenize encode --tokenizer T.json   < text     ids of each line, space-separated\n"
    "       zrt tokenize decode --tokenizer T.json   < ids      the text of each line of ids\n"
    "       zrt tokenize --tokenizer T.json --out DIR/train [--val-fraction 0.01] [--shard-size 100000000]\n"
    "                    [--eos TOKEN] [--chat-template [ROLE=]TEMPLATE]... INPUT...\n"
    "\n"
    "INPUT: a text file (one document) or .jsonl/.json lines of {\"text\"}, {\"prompt\", \"completion\"} or\n"
    "{\"messages\": [{\"role\", \"content\"}, ...]}. Shards DIR/train_000000.bin (+ .mask when tokens are\n"
    "masked out of the loss) and DIR/val_000000.bin; EOS before each document. A chat TEMPLATE has one\n"
    "{content} and any {role}; \\n and \\t are escapes; default \"{role}: {content}\\n\\n\". docs/data.md.\n";

enum { OPT_TOKENIZER = 1, OPT_OUT, OPT_VAL, OPT_SHARD, OPT_EOS, OPT_TEMPLATE, OPT_HELP };
static const struct option options[] = {
    {"tokenizer", required_argument, 0, OPT_TOKENIZER}, {"out", required_argument, 0, OPT_OUT},
    {"val-fraction", required_argument, 0, OPT_VAL},    {"shard-size", required_argument, 0, OPT_SHARD},
    {"eos", required_argument, 0, OPT_EOS},             {"chat-template", required_argument, 0, OPT_TEMPLATE},
    {"help", no_argument, 0, OPT_HELP},                 {0, 0, 0, 0}};

/* \n, \t and \\ in a template given on the command line, in place. */
static char *unescape(char *s)
{
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (r[0] == '\\' && (r[1] == 'n' || r[1] == 't' || r[1] == '\\')) *w++ = r[1] == 'n' ? '\n' : r[1] == 't' ? '\t' : '\\', r++;
        else *w++ = *r;
    }
    *w = 0;
    return s;
}

static int add_template(zrt_tokenize_options *o, char *arg)
{
    char *eq = strchr(arg, '='), *brace = strchr(arg, '{');
    char *tpl = eq && (!brace || eq < brace) ? eq + 1 : arg;
    const char *at = strstr(tpl, "{content}");
    if (!at || strstr(at + 1, "{content}"))
        return zrt_cli_usage_error("tokenize", "--chat-template %s: want exactly one {content}", arg);
    if (tpl == arg) return o->default_template = unescape(tpl), ZRT_EXIT_OK;
    if (o->n_roles == ZRT_TOKENIZE_MAX_ROLES) return zrt_cli_usage_error("tokenize", "at most %d roles", ZRT_TOKENIZE_MAX_ROLES);
    *eq = 0;
    o->roles[o->n_roles] = arg, o->templates[o->n_roles++] = unescape(tpl);
    return ZRT_EXIT_OK;
}

static int parse(int argc, char **argv, const char **tokenizer, zrt_tokenize_options *o)
{
    *o = (zrt_tokenize_options){.shard_tokens = 100000000, .default_template = "{role}: {content}\n\n"};
    char *end;
    for (int c; (c = zrt_cli_next_option(argc, argv, options, "tokenize")) != -1;) {
        if (c == '?') return ZRT_EXIT_USAGE;
        if (c == OPT_HELP) return printf("%s", usage), -1;
        if (c == OPT_TOKENIZER) *tokenizer = optarg;
        if (c == OPT_OUT) o->out = optarg;
        if (c == OPT_EOS) o->eos = optarg;
        if (c == OPT_TEMPLATE && add_template(o, optarg)) return ZRT_EXIT_USAGE;
        if (c == OPT_VAL && ((o->val_fraction = strtod(optarg, &end)) < 0 || o->val_fraction >= 1 || *end))
            return zrt_cli_usage_error("tokenize", "--val-fraction %s: want a number in [0, 1)", optarg);
        if (c == OPT_SHARD && ((o->shard_tokens = strtoll(optarg, &end, 10)) <= 0 || *end || o->shard_tokens > 2000000000))
            return zrt_cli_usage_error("tokenize", "--shard-size %s: want tokens in [1, 2e9]", optarg);
    }
    if (!*tokenizer) return zrt_cli_usage_error("tokenize", "--tokenizer T.json is required (see zrt tokenize --help)");
    return ZRT_EXIT_OK;
}

static zrt_tokenizer *load(const char *path)
{
    zrt_tokenizer *t = NULL;
    if (zrt_tokenizer_load(path, &t) != ZRT_OK) fprintf(stderr, "zrt tokenize: %s\n", zrt_last_error());
    return t;
}

/* ---- encode and decode: one line in, one line out ---- */

static void print_ids(const zrt_ids *ids, FILE *out)
{
    char buf[16];
    for (size_t i = 0; i < ids->n; i++) {
        int k = snprintf(buf, sizeof buf, i ? " %d" : "%d", ids->ids[i]);
        fwrite(buf, 1, (size_t)k, out);
    }
    fputc('\n', out);
}

static size_t chomp(char *line, ssize_t n) { return n > 0 && line[n - 1] == '\n' ? (size_t)n - 1 : (size_t)n; }

static int encode_lines(zrt_tokenizer *t)
{
    char *line = NULL;
    size_t cap = 0, bytes = 0;
    zrt_ids ids = {0};
    double seconds = 0;
    int rc = ZRT_EXIT_OK;
    ssize_t n;
    for (long long ln = 1; rc == ZRT_EXIT_OK && (n = getline(&line, &cap, stdin)) >= 0; ln++) {
        size_t len = chomp(line, n);
        double t0 = zrt_now();
        ids.n = 0;
        if (zrt_tokenizer_encode(t, line, len, &ids) != ZRT_OK)
            rc = ZRT_EXIT_FAIL, fprintf(stderr, "zrt tokenize encode: <stdin>:%lld: %s\n", ln, zrt_last_error());
        seconds += zrt_now() - t0, bytes += len;
        if (rc == ZRT_EXIT_OK) print_ids(&ids, stdout);
    }
    free(line);
    zrt_ids_free(&ids);
    fprintf(stderr, "zrt tokenize encode: %zu bytes at %.1f MB/s (%s)\n", bytes, seconds > 0 ? bytes / 1e6 / seconds : 0.0,
            zrt_tokenizer_describe(t));
    return rc;
}

/* The ids of a line, or ZRT_EXIT_FAIL naming the column of what is not one. */
static int parse_ids(const char *line, long long ln, zrt_ids *ids)
{
    ids->n = 0;
    for (const char *p = line; *p;) {
        while (*p == ' ' || *p == '\t') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX || (*end && *end != ' ' && *end != '\t'))
            return fprintf(stderr, "zrt tokenize decode: <stdin>:%lld: column %d: not an id\n", ln, (int)(p - line) + 1),
                   ZRT_EXIT_FAIL;
        if (zrt_ids_push(ids, (int32_t)v) != ZRT_OK) return fprintf(stderr, "zrt tokenize decode: out of memory\n"), ZRT_EXIT_FAIL;
        p = end;
    }
    return ZRT_EXIT_OK;
}

static int decode_lines(const zrt_tokenizer *t)
{
    char *line = NULL, *text = NULL;
    size_t cap = 0, len = 0;
    zrt_ids ids = {0};
    int rc = ZRT_EXIT_OK;
    ssize_t n;
    for (long long ln = 1; rc == ZRT_EXIT_OK && (n = getline(&line, &cap, stdin)) >= 0; ln++) {
        line[chomp(line, n)] = 0;
        rc = parse_ids(line, ln, &ids);
        if (rc == ZRT_EXIT_OK && zrt_tokenizer_decode(t, ids.ids, ids.n, &text, &len) != ZRT_OK)
            rc = ZRT_EXIT_FAIL, fprintf(stderr, "zrt tokenize decode: <stdin>:%lld: %s\n", ln, zrt_last_error());
        if (rc == ZRT_EXIT_OK) fwrite(text, 1, len, stdout), fputc('\n', stdout), free(text);
    }
    free(line);
    zrt_ids_free(&ids);
    return rc;
}

int zrt_cmd_tokenize(int argc, char **argv)
{
    zrt_cli_normalize_options(argc, argv);
    const char *mode = argc >= 2 && argv[1][0] != '-' && (!strcmp(argv[1], "encode") || !strcmp(argv[1], "decode")) ? argv[1] : NULL;
    if (mode) argc--, argv++;
    const char *path = NULL;
    zrt_tokenize_options o;
    int rc = parse(argc, argv, &path, &o);
    if (rc) return rc < 0 ? ZRT_EXIT_OK : rc;
    if (mode && optind < argc) return zrt_cli_usage_error("tokenize", "%s reads standard input; unexpected %s", mode, argv[optind]);
    if (!mode && (!o.out || optind == argc))
        return zrt_cli_usage_error("tokenize", "want --out DIR/train and INPUT files (or encode/decode; see --help)");
    zrt_tokenizer *t = load(path);
    if (!t) return ZRT_EXIT_FAIL;
    rc = !mode ? zrt_tokenize_shards(t, &o, argc - optind, argv + optind) : mode[0] == 'e' ? encode_lines(t) : decode_lines(t);
    zrt_tokenizer_free(t);
    return rc;
}
