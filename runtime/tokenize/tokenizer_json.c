/* tokenizer_json.c: reads a Hugging Face tokenizer.json -- the vocabulary,
 * the merges and the added tokens -- into the tables the encoder uses
 * (tokenizer_kind.c decides the layout).
 *
 * Why convert byte-level tokens to raw bytes here: GPT-2's vocabulary spells
 * each byte as a printable character (space is "Ġ"); mapped back once at
 * load, the encoder works on the text's own bytes and decoding is a copy.
 */
#include "tokenize_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPIECE "\xe2\x96\x81"

/* GPT-2's bytes_to_unicode, reversed: code point -> byte, -1 for others. */
static int byte_of_char(uint32_t cp)
{
    static int table[324];
    static bool ready;
    if (!ready) { /* idempotent: racing threads write the same values */
        for (int i = 0; i < 324; i++) table[i] = -1;
        int extra = 0;
        for (int b = 0; b < 256; b++) {
            bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
            table[printable ? b : 256 + extra++] = b;
        }
        ready = true;
    }
    return cp < 324 ? table[cp] : -1;
}

/* A byte-level token's raw bytes (in place: never longer); characters
 * outside the byte alphabet stay as they are. */
static size_t byte_level_bytes(char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int len = zrt_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        int b = len ? byte_of_char(cp) : -1;
        if (b < 0) len = len ? len : 1, memmove(s + k, s + i, (size_t)len), k += (size_t)len;
        else s[k++] = (char)b;
        i += (size_t)len;
    }
    return k;
}

static zrt_status read_file(const char *path, char **buf, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return zrt_set_error(ZRT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    bool ok = *buf && fread(*buf, 1, (size_t)n, f) == (size_t)n;
    fclose(f);
    if (!ok) return free(*buf), zrt_set_error(ZRT_ERR_IO, "%s: cannot read", path);
    (*buf)[n] = 0;
    *len = (size_t)n;
    return ZRT_OK;
}

static zrt_status parse(const char *path, cJSON **root)
{
    char *buf = NULL;
    size_t len = 0;
    ZRT_CHECK(read_file(path, &buf, &len));
    const char *end = NULL;
    *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (*root) return free(buf), ZRT_OK;
    size_t at = end && end >= buf ? (size_t)(end - buf) : 0;
    int line = 1;
    for (size_t i = 0; i < at && i < len; i++) line += buf[i] == '\n';
    free(buf);
    return zrt_set_error(ZRT_ERR_CONFIG, "%s: not valid JSON (line %d, byte %zu)", path, line, at);
}

/* ---- the id tables ---- */

static zrt_status alloc_ids(zrt_tokenizer *t, int32_t n)
{
    t->n_ids = n;
    t->id_text = calloc((size_t)n, sizeof *t->id_text);
    t->id_len = calloc((size_t)n, sizeof *t->id_len);
    t->out_text = calloc((size_t)n, sizeof *t->out_text);
    t->out_len = calloc((size_t)n, sizeof *t->out_len);
    if (!t->id_text || !t->id_len || !t->out_text || !t->out_len)
        return zrt_set_error(ZRT_ERR_NOMEM, "%s: out of memory for %d ids", t->path, n);
    return zrt_strmap_init(&t->vocab, (size_t)n, (const char **)t->id_text, t->id_len);
}

static char *copy(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) memcpy(p, s, n), p[n] = 0;
    return p;
}

zrt_status zrt_tok_set_id(zrt_tokenizer *t, int32_t id, const char *model, size_t n, const char *out, size_t out_n)
{
    t->id_text[id] = copy(model, n);
    t->out_text[id] = copy(out, out_n);
    if (!t->id_text[id] || !t->out_text[id]) return zrt_set_error(ZRT_ERR_NOMEM, "%s: out of memory", t->path);
    t->id_len[id] = (uint32_t)n;
    t->out_len[id] = (uint32_t)out_n;
    return ZRT_OK;
}

/* What a SentencePiece-style token decodes to: <0xNN> a byte, ▁ a space. */
static size_t sp_out(const char *s, size_t n, char *out)
{
    unsigned b;
    if (n == 6 && sscanf(s, "<0x%2X>", &b) == 1 && s[5] == '>') return out[0] = (char)b, 1;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (i + 3 <= n && memcmp(s + i, SPIECE, 3) == 0) out[k++] = ' ', i += 2;
        else out[k++] = s[i];
    }
    return k;
}

static zrt_status vocab_entry(zrt_tokenizer *t, const cJSON *e)
{
    int64_t id = cJSON_IsNumber(e) ? (int64_t)e->valuedouble : -1;
    if (id < 0 || id >= t->n_ids) return zrt_set_error(ZRT_ERR_CONFIG, "%s: model.vocab[\"%.100s\"]: bad id", t->path, e->string);
    size_t n = strlen(e->string);
    char *s = copy(e->string, n), *out = malloc(n + 1);
    zrt_status st = s && out ? ZRT_OK : zrt_set_error(ZRT_ERR_NOMEM, "%s: out of memory", t->path);
    if (st == ZRT_OK && t->byte_level) n = byte_level_bytes(s, n), st = zrt_tok_set_id(t, (int32_t)id, s, n, s, n);
    else if (st == ZRT_OK) st = zrt_tok_set_id(t, (int32_t)id, s, n, out, sp_out(s, n, out));
    free(s), free(out);
    if (st == ZRT_OK) zrt_strmap_add(&t->vocab, (uint32_t)id);
    return st;
}

static int32_t highest_id(const cJSON *vocab, const cJSON *added)
{
    double top = -1;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) if (cJSON_IsNumber(e) && e->valuedouble > top) top = e->valuedouble;
    cJSON_ArrayForEach(e, added)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (cJSON_IsNumber(id) && id->valuedouble > top) top = id->valuedouble;
    }
    return top < 0 || top >= (1 << 30) ? -1 : (int32_t)top;
}

static zrt_status load_vocab(zrt_tokenizer *t, const cJSON *vocab, const cJSON *added)
{
    if (!cJSON_IsObject(vocab)) return zrt_set_error(ZRT_ERR_CONFIG, "%s: model.vocab is missing or not an object", t->path);
    int32_t top = highest_id(vocab, added);
    if (top < 0) return zrt_set_error(ZRT_ERR_CONFIG, "%s: model.vocab has no usable ids", t->path);
    ZRT_CHECK(alloc_ids(t, top + 1));
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) ZRT_CHECK(vocab_entry(t, e));
    for (int b = 0; b < 256; b++) {
        char name[8], byte = (char)b;
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->fallback_ids[b] = (int32_t)zrt_strmap_get(&t->vocab, name, 6);
        t->byte_ids[b] = t->byte_level ? (int32_t)zrt_strmap_get(&t->vocab, &byte, 1) : -1;
    }
    return ZRT_OK;
}

/* ---- merges ---- */

/* A token as the model spells it -> its id in the vocabulary, or -1. */
static int64_t model_id(const zrt_tokenizer *t, const char *s, size_t n, char *scratch)
{
    memcpy(scratch, s, n);
    if (t->byte_level) n = byte_level_bytes(scratch, n);
    return zrt_strmap_get(&t->vocab, scratch, n);
}

/* Merge r: "a b" (or ["a", "b"]) -> the pair's ids and the id of a + b. */
static zrt_status merge_entry(zrt_tokenizer *t, const cJSON *m, int32_t r, char *scratch)
{
    const char *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    if (cJSON_IsString(m) && strchr(m->valuestring, ' ')) {
        a = m->valuestring, na = (size_t)(strchr(a, ' ') - a), b = a + na + 1, nb = strlen(b);
    } else if (cJSON_GetArraySize(m) == 2 && cJSON_IsString(cJSON_GetArrayItem(m, 0)) &&
               cJSON_IsString(cJSON_GetArrayItem(m, 1))) {
        a = cJSON_GetArrayItem(m, 0)->valuestring, b = cJSON_GetArrayItem(m, 1)->valuestring;
        na = strlen(a), nb = strlen(b);
    }
    if (!a || strchr(b, ' ')) return zrt_set_error(ZRT_ERR_CONFIG, "%s: model.merges[%d] is not \"A B\" or [A, B]", t->path, r);
    int64_t ia = model_id(t, a, na, scratch), ib = model_id(t, b, nb, scratch);
    memcpy(scratch, a, na), memcpy(scratch + na, b, nb);
    int64_t merged = model_id(t, scratch, na + nb, scratch + na + nb + 1);
    if (ia < 0 || ib < 0 || merged < 0)
        return zrt_set_error(ZRT_ERR_CONFIG, "%s: model.merges[%d] (\"%.*s\" + \"%.*s\"): %s is not in the vocabulary", t->path,
                             r, (int)na, a, (int)nb, b, ia < 0 ? "the first" : ib < 0 ? "the second" : "their merge");
    zrt_pairmap_put(&t->merges, (int32_t)ia, (int32_t)ib, r, (int32_t)merged);
    return ZRT_OK;
}

static zrt_status load_merges(zrt_tokenizer *t, const cJSON *merges)
{
    if (!cJSON_IsArray(merges)) return zrt_set_error(ZRT_ERR_CONFIG, "%s: model.merges is missing or not an array", t->path);
    int n = cJSON_GetArraySize(merges);
    ZRT_CHECK(zrt_pairmap_init(&t->merges, (size_t)n));
    size_t longest = 0;
    for (int32_t i = 0; i < t->n_ids; i++) longest = t->id_len[i] > longest ? t->id_len[i] : longest;
    char *scratch = malloc(8 * longest + 16); /* a and b (each up to 2x a token's bytes), twice */
    if (!scratch) return zrt_set_error(ZRT_ERR_NOMEM, "%s: out of memory", t->path);
    int32_t r = 0;
    const cJSON *m;
    zrt_status st = ZRT_OK;
    cJSON_ArrayForEach(m, merges) if (st == ZRT_OK) st = merge_entry(t, m, r++, scratch);
    free(scratch);
    return st;
}

/* ---- added tokens ---- */

static int longest_first(const void *a, const void *b)
{
    const zrt_added_token *x = a, *y = b;
    return x->len != y->len ? (x->len < y->len ? 1 : -1) : (x->id > y->id) - (x->id < y->id);
}

static zrt_status added_entry(zrt_tokenizer *t, const cJSON *e, int i)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id"), *content = cJSON_GetObjectItemCaseSensitive(e, "content");
    if (!cJSON_IsNumber(id) || !cJSON_IsString(content) || !content->valuestring[0])
        return zrt_set_error(ZRT_ERR_CONFIG, "%s: added_tokens[%d] needs an id and a non-empty content", t->path, i);
    if (id->valuedouble < 0 || id->valuedouble >= t->n_ids)
        return zrt_set_error(ZRT_ERR_CONFIG, "%s: added_tokens[%d]: bad id", t->path, i);
    zrt_added_token *a = &t->added[t->n_added++];
    a->id = (int32_t)id->valuedouble;
    a->len = (uint32_t)strlen(content->valuestring);
    a->text = copy(content->valuestring, a->len);
    if (!a->text) return zrt_set_error(ZRT_ERR_NOMEM, "%s: out of memory", t->path);
    t->added_first[(unsigned char)a->text[0]] = 1;
    if (t->id_text[a->id]) { /* in the vocabulary too: decodes as its content */
        free(t->out_text[a->id]);
        t->out_text[a->id] = copy(a->text, a->len), t->out_len[a->id] = a->len;
        return t->out_text[a->id] ? ZRT_OK : zrt_set_error(ZRT_ERR_NOMEM, "%s: out of memory", t->path);
    }
    return zrt_tok_set_id(t, a->id, a->text, a->len, a->text, a->len);
}

static zrt_status load_added(zrt_tokenizer *t, const cJSON *added)
{
    int n = cJSON_GetArraySize(added);
    t->added = calloc((size_t)n + 1, sizeof *t->added);
    if (!t->added) return zrt_set_error(ZRT_ERR_NOMEM, "%s: out of memory", t->path);
    const cJSON *e;
    int i = 0;
    cJSON_ArrayForEach(e, added) ZRT_CHECK(added_entry(t, e, i++));
    qsort(t->added, (size_t)t->n_added, sizeof *t->added, longest_first);
    return ZRT_OK;
}

/* ---- the public face ---- */

static zrt_status load(zrt_tokenizer *t, const cJSON *root)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!cJSON_IsObject(model)) return zrt_set_error(ZRT_ERR_CONFIG, "%s: no \"model\" object (not a tokenizer.json?)", t->path);
    ZRT_CHECK(zrt_tokenizer_kind(t, root, model));
    ZRT_CHECK(load_vocab(t, cJSON_GetObjectItemCaseSensitive(model, "vocab"), added));
    ZRT_CHECK(load_merges(t, cJSON_GetObjectItemCaseSensitive(model, "merges")));
    ZRT_CHECK(load_added(t, added));
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    t->unk_id = cJSON_IsString(unk) ? zrt_tokenizer_token_id(t, unk->valuestring) : -1;
    if (cJSON_IsString(unk) && t->unk_id < 0)
        return zrt_set_error(ZRT_ERR_CONFIG, "%s: model.unk_token \"%.100s\" is not in the vocabulary", t->path, unk->valuestring);
    return ZRT_OK;
}

zrt_status zrt_tokenizer_load(const char *path, zrt_tokenizer **out)
{
    *out = NULL;
    zrt_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return zrt_set_error(ZRT_ERR_NOMEM, "tokenizer: out of memory");
    snprintf(t->path, sizeof t->path, "%s", path);
    cJSON *root = NULL;
    zrt_status st = parse(path, &root);
    if (st == ZRT_OK) st = load(t, root);
    cJSON_Delete(root);
    if (st != ZRT_OK) return zrt_tokenizer_free(t), st;
    *out = t;
    return ZRT_OK;
}

void zrt_tokenizer_free(zrt_tokenizer *t)
{
    if (!t) return;
    for (int32_t i = 0; t->id_text && i < t->n_ids; i++) free(t->id_text[i]), free(t->out_text[i]);
    for (int i = 0; i < t->n_added; i++) free(t->added[i].text);
    free(t->id_text), free(t->id_len), free(t->out_text), free(t->out_len), free(t->added), free(t->norm);
    zrt_strmap_free(&t->vocab);
    zrt_pairmap_free(&t->merges);
    zrt_bpe_free(t);
    free(t);
}

int64_t zrt_tokenizer_vocab_size(const zrt_tokenizer *t) { return t->n_ids; }

const char *zrt_tokenizer_describe(const zrt_tokenizer *t) { return t->describe; }

int32_t zrt_tokenizer_token_id(const zrt_tokenizer *t, const char *token)
{
    size_t n = strlen(token);
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].len == n && memcmp(t->added[i].text, token, n) == 0) return t->added[i].id;
    char *scratch = malloc(n + 1);
    int64_t id = scratch ? model_id(t, token, n, scratch) : -1;
    free(scratch);
    return (int32_t)id;
}
