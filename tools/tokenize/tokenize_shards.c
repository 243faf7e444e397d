/* tokenize_shards.c: `zrt tokenize --out DIR/train INPUT...`: text files and
 * JSONL ({"text"}, {"prompt","completion"}, {"messages"}) -> token shards
 * (zrt/tokens.h), documents packed with EOS before each, prompt tokens and
 * non-assistant turns masked out of the loss.
 *
 * Why a document is pieces: each piece (a prompt, a completion, a turn's
 * header and its content) is encoded on its own with its own target bit, so
 * the mask follows the pieces exactly; the cost is that no token spans two
 * pieces (a chat template's text should end where a piece ends).
 */
#include "cli.h"
#include "tokenize.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    zrt_tokenizer *tok;
    const zrt_tokenize_options *o;
    zrt_tokens_writer *train, *val;
    int32_t eos;
    zrt_ids ids;        /* the document being built */
    uint8_t *targets;
    size_t targets_cap;
    long long docs, tokens, masked, val_docs;
    const char *file;   /* where the document came from, for errors */
    long long line;
} builder;

static int fail(const builder *b, const char *fmt, const char *detail)
{
    fprintf(stderr, "zrt tokenize: %s", b->file);
    if (b->line > 0) fprintf(stderr, ":%lld", b->line);
    fprintf(stderr, ": ");
    fprintf(stderr, fmt, detail);
    fprintf(stderr, "\n");
    return ZRT_EXIT_FAIL;
}

/* Sets the target bits of ids [first, n). */
static int set_targets(builder *b, size_t first, bool target)
{
    if (b->ids.n > b->targets_cap) {
        size_t cap = b->ids.cap;
        uint8_t *grown = realloc(b->targets, cap);
        if (!grown) return fail(b, "%s", "out of memory");
        b->targets = grown, b->targets_cap = cap;
    }
    memset(b->targets + first, target, b->ids.n - first);
    return ZRT_EXIT_OK;
}

/* Appends a piece's tokens with target bit t. */
static int piece(builder *b, const char *text, size_t len, bool target, const char *what)
{
    size_t first = b->ids.n;
    if (zrt_tokenizer_encode(b->tok, text, len, &b->ids) != ZRT_OK) {
        char msg[ZRT_ERROR_MAX + 64];
        snprintf(msg, sizeof msg, "%s: %s", what, zrt_last_error());
        return fail(b, "%s", msg);
    }
    return set_targets(b, first, target);
}

/* A document starts with EOS, a target: it ends the previous document. */
static int begin_doc(builder *b)
{
    b->ids.n = 0;
    if (zrt_ids_push(&b->ids, b->eos) != ZRT_OK) return fail(b, "%s", "out of memory");
    return set_targets(b, 0, true);
}

/* Documents go to val when a hash of their number falls under the fraction. */
static bool to_val(const builder *b)
{
    uint64_t x = (uint64_t)b->docs * 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 31)) * 0xbf58476d1ce4e5b9ull;
    return (double)(x >> 11) / 9007199254740992.0 < b->o->val_fraction;
}

static int end_doc(builder *b)
{
    bool val = b->val && to_val(b);
    zrt_tokens_writer *w = val ? b->val : b->train;
    if (zrt_tokens_writer_add(w, b->ids.ids, b->targets, b->ids.n) != ZRT_OK) return fail(b, "%s", zrt_last_error());
    for (size_t i = 0; i < b->ids.n; i++) b->masked += !b->targets[i];
    b->docs++, b->val_docs += val, b->tokens += (long long)b->ids.n;
    return ZRT_EXIT_OK;
}

/* ---- chat templates ---- */

static const char *template_for(const zrt_tokenize_options *o, const char *role)
{
    for (int i = 0; i < o->n_roles; i++)
        if (strcmp(o->roles[i], role) == 0) return o->templates[i];
    return o->default_template;
}

/* Appends template[0..n) with {role} replaced, as one piece. */
static int template_piece(builder *b, const char *tpl, size_t n, const char *role, bool target)
{
    char buf[4096];
    size_t k = 0, rl = strlen(role);
    for (size_t i = 0; i < n && k + rl < sizeof buf; i++) {
        if (strncmp(tpl + i, "{role}", 6) == 0 && i + 6 <= n) memcpy(buf + k, role, rl), k += rl, i += 5;
        else buf[k++] = tpl[i];
    }
    return piece(b, buf, k, target, "the chat template");
}

static int message(builder *b, const cJSON *m, int i)
{
    const char *role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "role"));
    const char *content = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(m, "content"));
    char what[64];
    snprintf(what, sizeof what, "messages[%d]", i);
    if (!role || !content) return fail(b, "%s needs string \"role\" and \"content\"", what);
    const char *tpl = template_for(b->o, role), *at = strstr(tpl, "{content}");
    bool assistant = strcmp(role, "assistant") == 0;
    return template_piece(b, tpl, (size_t)(at - tpl), role, false) ||
           piece(b, content, strlen(content), assistant, what) ||
           template_piece(b, at + 9, strlen(at + 9), role, assistant);
}

/* ---- inputs ---- */

static int json_doc(builder *b, const cJSON *j)
{
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(j, "text"), *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
    const char *prompt = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "prompt"));
    const char *completion = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "completion"));
    if (begin_doc(b)) return ZRT_EXIT_FAIL;
    if (cJSON_IsString(text)) {
        if (piece(b, text->valuestring, strlen(text->valuestring), true, "\"text\"")) return ZRT_EXIT_FAIL;
    } else if (prompt && completion) {
        if (piece(b, prompt, strlen(prompt), false, "\"prompt\"") ||
            piece(b, completion, strlen(completion), true, "\"completion\""))
            return ZRT_EXIT_FAIL;
    } else if (cJSON_IsArray(msgs)) {
        int i = 0;
        const cJSON *m;
        cJSON_ArrayForEach(m, msgs) if (message(b, m, i++)) return ZRT_EXIT_FAIL;
    } else
        return fail(b, "%s", "want {\"text\"}, {\"prompt\", \"completion\"} or {\"messages\": [{\"role\", \"content\"}, ...]}");
    return end_doc(b);
}

static int jsonl_line(builder *b, const char *line, size_t len)
{
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t')) i++;
    if (i == len) return ZRT_EXIT_OK; /* blank */
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(line, len, &end, 0);
    if (!j || !cJSON_IsObject(j)) {
        char at[64];
        snprintf(at, sizeof at, "byte %lld", end && j == NULL ? (long long)(end - line) : 0LL);
        cJSON_Delete(j);
        return fail(b, "not a JSON object (truncated or malformed near %s)", at);
    }
    int rc = json_doc(b, j);
    cJSON_Delete(j);
    return rc;
}

static int jsonl_file(builder *b, FILE *f)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = ZRT_EXIT_OK;
    for (b->line = 1; rc == ZRT_EXIT_OK && (n = getline(&line, &cap, f)) >= 0; b->line++) rc = jsonl_line(b, line, (size_t)n);
    free(line);
    return rc;
}

/* A text file is one document. */
static int text_file(builder *b, FILE *f)
{
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    char buf[1 << 16];
    for (size_t n; mem && (n = fread(buf, 1, sizeof buf, f)) > 0;) fwrite(buf, 1, n, mem);
    if (!mem || fclose(mem) != 0) return free(text), fail(b, "%s", "out of memory");
    b->line = 0;
    int rc = begin_doc(b) || piece(b, text, len, true, "text") || end_doc(b);
    free(text);
    return rc;
}

static bool is_jsonl(const char *path)
{
    size_t n = strlen(path);
    return (n > 6 && strcmp(path + n - 6, ".jsonl") == 0) || (n > 5 && strcmp(path + n - 5, ".json") == 0);
}

static int input(builder *b, const char *path)
{
    b->file = path, b->line = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return fail(b, "cannot open: %s", strerror(errno));
    int rc = is_jsonl(path) ? jsonl_file(b, f) : text_file(b, f);
    fclose(f);
    return rc;
}

/* ---- the run ---- */

int32_t zrt_tokenize_eos_id(const zrt_tokenizer *t, const char *want)
{
    static const char *const usual[] = {"<|endoftext|>", "<|end_of_text|>", "</s>", "<|im_end|>"};
    if (want) return zrt_tokenizer_token_id(t, want);
    for (size_t i = 0; i < sizeof usual / sizeof usual[0]; i++)
        if (zrt_tokenizer_token_id(t, usual[i]) >= 0) return zrt_tokenizer_token_id(t, usual[i]);
    return -1;
}

/* DIR/train -> DIR/val */
static void val_prefix(const char *out, char *buf, size_t size)
{
    const char *slash = strrchr(out, '/');
    if (slash) snprintf(buf, size, "%.*s/val", (int)(slash - out), out);
    else snprintf(buf, size, "val");
}

/* mkdir -p of the folder of prefix. */
static bool make_dirs(const char *prefix)
{
    char path[ZRT_PATH_MAX];
    snprintf(path, sizeof path, "%s", prefix);
    char *slash = strrchr(path, '/');
    if (!slash) return true;
    *slash = 0;
    for (char *p = path + 1; *p; p++)
        if (*p == '/') *p = 0, mkdir(path, 0777), *p = '/';
    return mkdir(path, 0777) == 0 || errno == EEXIST;
}

static int open_writers(builder *b)
{
    int64_t vocab = zrt_tokenizer_vocab_size(b->tok);
    char val[ZRT_PATH_MAX];
    val_prefix(b->o->out, val, sizeof val);
    if (!make_dirs(b->o->out)) return fprintf(stderr, "zrt tokenize: %s: cannot create its folder: %s\n", b->o->out, strerror(errno)), ZRT_EXIT_FAIL;
    if (zrt_tokens_writer_open(b->o->out, vocab, b->o->shard_tokens, &b->train) != ZRT_OK ||
        (b->o->val_fraction > 0 && zrt_tokens_writer_open(val, vocab, b->o->shard_tokens, &b->val) != ZRT_OK))
        return fprintf(stderr, "zrt tokenize: %s\n", zrt_last_error()), ZRT_EXIT_FAIL;
    return ZRT_EXIT_OK;
}

static int close_writers(builder *b, int rc, double seconds, double bytes)
{
    int64_t shards = 0, val_shards = 0;
    if (rc != ZRT_EXIT_OK) {
        zrt_tokens_writer_abort(b->train);
        zrt_tokens_writer_abort(b->val);
        return rc;
    }
    if (zrt_tokens_writer_close(b->train, &shards, NULL) != ZRT_OK ||
        (b->val && zrt_tokens_writer_close(b->val, &val_shards, NULL) != ZRT_OK))
        return fprintf(stderr, "zrt tokenize: %s\n", zrt_last_error()), ZRT_EXIT_FAIL;
    printf("zrt tokenize: %lld documents (%lld to val), %lld tokens (%lld masked out of the loss), %lld train + %lld val "
           "shards at %s_*.bin; %.1f MB of input at %.1f MB/s\n",
           b->docs, b->val_docs, b->tokens, b->masked, (long long)shards, (long long)val_shards, b->o->out, bytes / 1e6,
           seconds > 0 ? bytes / 1e6 / seconds : 0.0);
    return ZRT_EXIT_OK;
}

static double file_bytes(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    double n = (double)ftell(f);
    fclose(f);
    return n;
}

int zrt_tokenize_shards(zrt_tokenizer *t, const zrt_tokenize_options *o, int n, char **inputs)
{
    builder b = {.tok = t, .o = o, .file = o->out};
    b.eos = zrt_tokenize_eos_id(t, o->eos);
    if (b.eos < 0) {
        fprintf(stderr, "zrt tokenize: the tokenizer has no %s%s; name one with --eos TOKEN\n", o->eos ? "token " : "usual EOS token",
                o->eos ? o->eos : " (<|endoftext|>, <|end_of_text|>, </s>, <|im_end|>)");
        return ZRT_EXIT_FAIL;
    }
    if (open_writers(&b)) return ZRT_EXIT_FAIL;
    double start = zrt_now(), bytes = 0;
    int rc = ZRT_EXIT_OK;
    for (int i = 0; i < n && rc == ZRT_EXIT_OK; i++) rc = input(&b, inputs[i]), bytes += file_bytes(inputs[i]);
    rc = close_writers(&b, rc, zrt_now() - start, bytes);
    zrt_ids_free(&b.ids);
    free(b.targets);
    return rc;
}
