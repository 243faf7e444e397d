/* encode.c: text -> ids and ids -> text with a loaded tokenizer.
 *
 * Why in this order: `tokenizers` first cuts the text at added tokens
 * (special tokens become their ids whatever the model would do), then
 * normalizes each piece between them on its own (SentencePiece-style: a
 * ▁ before it, ▁ for each space), splits it into words (the pre-tokenizer
 * regex, or ▁-led words for a splitting Metaspace) and runs BPE per word.
 */
#include "tokenize_internal.h"

#include <stdlib.h>
#include <string.h>

#define SPIECE "\xe2\x96\x81" /* ▁, U+2581 */

/* UAX #15's NFC quick check, one character at a time: false when the text
 * might not be in NFC (a No or Maybe, or combining marks out of order). */
static bool nfc_ok(uint32_t cp, int *last_ccc)
{
    int flags = zrt_uc_flags(cp), ccc = flags & ZRT_UC_COMBINING ? zrt_uc_combining_class(cp) : 0;
    bool ok = !(flags & ZRT_UC_NFC_UNSAFE) && !(ccc != 0 && *last_ccc > ccc);
    *last_ccc = ccc;
    return ok;
}

/* The offset of the first invalid UTF-8 byte (or, with the NFC normalizer,
 * of the first character NFC might change), or -1. */
static int64_t first_bad(const zrt_tokenizer *t, const unsigned char *s, size_t n, const char **why)
{
    int last_ccc = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] < 0x80) {
            i++, last_ccc = 0;
            continue;
        }
        uint32_t cp;
        int len = zrt_utf8_decode(s + i, n - i, &cp);
        if (len == 0) return *why = "invalid UTF-8", (int64_t)i;
        if (t->nfc && !nfc_ok(cp, &last_ccc))
            return *why = "a character the NFC normalizer might change (zrt implements NFC only for text already in NFC)",
                   (int64_t)i;
        i += (size_t)len;
    }
    return -1;
}

/* The added token that starts at s[i], or NULL (the longest wins). */
static const zrt_added_token *added_at(const zrt_tokenizer *t, const char *s, size_t n, size_t i)
{
    if (!t->added_first[(unsigned char)s[i]]) return NULL;
    for (int k = 0; k < t->n_added; k++) {
        const zrt_added_token *a = &t->added[k];
        if (a->len <= n - i && memcmp(s + i, a->text, a->len) == 0) return a;
    }
    return NULL;
}

static zrt_status norm_fit(zrt_tokenizer *t, size_t want)
{
    if (want <= t->norm_cap) return ZRT_OK;
    char *p = realloc(t->norm, want);
    if (!p) return zrt_set_error(ZRT_ERR_NOMEM, "tokenizer: out of memory for %zu bytes", want);
    t->norm = p, t->norm_cap = want;
    return ZRT_OK;
}

/* SentencePiece-style: ▁ for each space, and a ▁ in front as the tokenizer says. */
static zrt_status sp_normalize(zrt_tokenizer *t, const char *s, size_t n, bool first, size_t *out_n)
{
    ZRT_CHECK(norm_fit(t, 3 * n + 3));
    size_t k = 0;
    bool starts_space = s[0] == ' ';
    if (t->sp_prepend == 1 || (t->sp_prepend == 2 && first)) {
        if (!(t->sp_prepend_unless_space && starts_space)) memcpy(t->norm, SPIECE, 3), k = 3;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') memcpy(t->norm + k, SPIECE, 3), k += 3;
        else t->norm[k++] = s[i];
    }
    *out_n = k;
    return ZRT_OK;
}

/* Words that start at each ▁ (Metaspace's split). */
static zrt_status sp_words(zrt_tokenizer *t, size_t n, zrt_ids *out)
{
    const char *s = t->norm;
    size_t start = 0;
    for (size_t i = 1; i + 3 <= n; i++)
        if (memcmp(s + i, SPIECE, 3) == 0) {
            ZRT_CHECK(zrt_bpe_word(t, s + start, i - start, out));
            start = i;
        }
    return zrt_bpe_word(t, s + start, n - start, out);
}

static zrt_status byte_level_segment(zrt_tokenizer *t, const char *s, size_t n, zrt_ids *out)
{
    if (t->add_prefix_space && s[0] != ' ') {
        ZRT_CHECK(norm_fit(t, n + 1));
        t->norm[0] = ' ';
        memcpy(t->norm + 1, s, n);
        s = t->norm, n++;
    }
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0, e; i < n; i = e) {
        e = zrt_pretok_next(t->pattern, u, n, i);
        ZRT_CHECK(zrt_bpe_word(t, s + i, e - i, out));
    }
    return ZRT_OK;
}

/* A piece of text between added tokens; first: it starts the text. */
static zrt_status segment(zrt_tokenizer *t, const char *s, size_t n, bool first, zrt_ids *out)
{
    if (n == 0) return ZRT_OK;
    if (t->byte_level) return byte_level_segment(t, s, n, out);
    size_t m;
    ZRT_CHECK(sp_normalize(t, s, n, first, &m));
    return t->sp_split ? sp_words(t, m, out) : zrt_bpe_word(t, t->norm, m, out);
}

zrt_status zrt_tokenizer_encode(zrt_tokenizer *t, const char *text, size_t len, zrt_ids *out)
{
    const char *why = "";
    int64_t bad = first_bad(t, (const unsigned char *)text, len, &why);
    if (bad >= 0) return zrt_set_error(ZRT_ERR_INVALID, "%s at byte %lld", why, (long long)bad);
    size_t start = 0;
    for (size_t i = 0; i < len;) {
        const zrt_added_token *a = added_at(t, text, len, i);
        if (!a) {
            i++;
            continue;
        }
        ZRT_CHECK(segment(t, text + start, i - start, start == 0, out));
        ZRT_CHECK(zrt_ids_push(out, a->id));
        i += a->len, start = i;
    }
    return segment(t, text + start, len - start, start == 0, out);
}

zrt_status zrt_tokenizer_decode(const zrt_tokenizer *t, const int32_t *ids, size_t n, char **text, size_t *len)
{
    size_t total = 1;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_ids || !t->out_text[ids[i]])
            return zrt_set_error(ZRT_ERR_INVALID, "id %d (position %zu) is not in the vocabulary (%d ids)", ids[i], i + 1,
                                 t->n_ids);
        total += t->out_len[ids[i]];
    }
    char *buf = malloc(total), *p = buf;
    if (!buf) return zrt_set_error(ZRT_ERR_NOMEM, "tokenizer: out of memory for %zu bytes", total);
    for (size_t i = 0; i < n; i++) memcpy(p, t->out_text[ids[i]], t->out_len[ids[i]]), p += t->out_len[ids[i]];
    *p = 0;
    size_t skip = t->sp_strip_space && p > buf && buf[0] == ' ' ? 1 : 0;
    if (skip) memmove(buf, buf + 1, (size_t)(p - buf));
    *text = buf;
    *len = (size_t)(p - buf) - skip;
    return ZRT_OK;
}
