/* pretokenize.c: the pre-tokenizer regexes of GPT-2, Llama 3 and Qwen2 as
 * hand-written scanners over UTF-8, and the Unicode look-ups they need.
 *
 * Why no regex engine: the three patterns are fixed, and a scanner that
 * tries the alternatives in order -- as a backtracking engine (Oniguruma, in
 * `tokenizers`) does at each position -- is short, exact and fast. Every
 * position starts a match (each character is a letter, a number, white
 * space or "other", and some alternative takes each), so a text splits into
 * consecutive words with no gaps.
 */
#include "tokenize_internal.h"

#include <string.h>

int zrt_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned c = s[0];
    if (c < 0x80) return *cp = c, 1;
    int len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    if (len == 0 || c > 0xF4 || (size_t)len > n) return 0;
    uint32_t v = c & (0x3F >> (len - 1));
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    static const uint32_t min_of[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min_of[len] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    return *cp = v, len;
}

/* The value of the range holding cp, 0 when none (binary search). */
static int range_value(const zrt_uc_range *r, int n, uint32_t cp)
{
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < r[mid].lo) hi = mid - 1;
        else if (cp > r[mid].hi) lo = mid + 1;
        else return r[mid].flags;
    }
    return 0;
}

int zrt_uc_flags(uint32_t cp)
{
    if (cp < 0x80) {
        if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) return ZRT_UC_LETTER;
        if (cp >= '0' && cp <= '9') return ZRT_UC_NUMBER;
        return cp == ' ' || (cp >= 9 && cp <= 13) ? ZRT_UC_SPACE : ZRT_UC_OTHER;
    }
    return range_value(zrt_uc_ranges, zrt_uc_n_ranges, cp);
}

int zrt_uc_combining_class(uint32_t cp) { return range_value(zrt_uc_ccc, zrt_uc_n_ccc, cp); }

static const char gpt2_regex[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char llama3_regex[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                                   "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char qwen2_regex[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                                  "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

int zrt_pretok_pattern_of(const char *regex)
{
    if (strcmp(regex, gpt2_regex) == 0) return ZRT_PRETOK_GPT2;
    if (strcmp(regex, llama3_regex) == 0) return ZRT_PRETOK_LLAMA3;
    if (strcmp(regex, qwen2_regex) == 0) return ZRT_PRETOK_QWEN2;
    return -1;
}

/* ---- the scanner's steps: each returns the end of its alternative's match at i, or 0 (none) ---- */

typedef struct {
    const unsigned char *s;
    size_t n;
} text;

static int class_at(text t, size_t i, size_t *next)
{
    uint32_t cp;
    int len = zrt_utf8_decode(t.s + i, t.n - i, &cp);
    if (len == 0) len = 1, cp = 0xFFFD; /* the caller validated; never here */
    *next = i + (size_t)len;
    return zrt_uc_flags(cp) & 3;
}

/* The end of the run of characters of class cls from i (i when none); at most max of them. */
static size_t run_of(text t, size_t i, int cls, size_t max)
{
    size_t next;
    for (size_t k = 0; k < max && i < t.n && class_at(t, i, &next) == cls; k++) i = next;
    return i;
}

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* 's 't 're 've 'm 'll 'd (any case when fold). */
static size_t contraction(text t, size_t i, bool fold)
{
    if (t.s[i] != '\'' || i + 1 >= t.n) return 0;
    int a = fold ? lower(t.s[i + 1]) : t.s[i + 1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
    if (i + 2 >= t.n) return 0;
    int b = fold ? lower(t.s[i + 2]) : t.s[i + 2];
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
    return 0;
}

/* ` ?X+` for class X. */
static size_t space_then_run(text t, size_t i, int cls)
{
    size_t j = t.s[i] == ' ' ? i + 1 : i;
    size_t end = run_of(t, j, cls, SIZE_MAX);
    return end > j ? end : 0;
}

/* \s+(?!\S)|\s+ : a run of white space, less its last character when a
 * non-space follows and the run has more than one. */
static size_t spaces(text t, size_t i)
{
    size_t end = i, last = i, next;
    while (end < t.n && class_at(t, end, &next) == ZRT_UC_SPACE) last = end, end = next;
    if (end == i) return 0;
    return end < t.n && last > i ? last : end;
}

static size_t gpt2_next(text t, size_t i)
{
    size_t e;
    if ((e = contraction(t, i, false))) return e;
    if ((e = space_then_run(t, i, ZRT_UC_LETTER))) return e;
    if ((e = space_then_run(t, i, ZRT_UC_NUMBER))) return e;
    if ((e = space_then_run(t, i, ZRT_UC_OTHER))) return e;
    return spaces(t, i);
}

static bool is_crlf(unsigned char c) { return c == '\r' || c == '\n'; }

/* [^\r\n\p{L}\p{N}]?\p{L}+ */
static size_t llama3_word(text t, size_t i)
{
    size_t next;
    int cls = class_at(t, i, &next);
    if (cls == ZRT_UC_LETTER) return run_of(t, i, ZRT_UC_LETTER, SIZE_MAX);
    if (cls == ZRT_UC_NUMBER || is_crlf(t.s[i]) || next >= t.n) return 0;
    size_t end = run_of(t, next, ZRT_UC_LETTER, SIZE_MAX);
    return end > next ? end : 0;
}

/* ` ?[^\s\p{L}\p{N}]+[\r\n]*` */
static size_t llama3_punct(text t, size_t i)
{
    size_t e = space_then_run(t, i, ZRT_UC_OTHER);
    while (e && e < t.n && is_crlf(t.s[e])) e++;
    return e;
}

/* \s*[\r\n]+ : white space up to and including its last \r or \n. */
static size_t llama3_newlines(text t, size_t i)
{
    size_t end = i, last_crlf = 0, next;
    while (end < t.n && class_at(t, end, &next) == ZRT_UC_SPACE) {
        if (is_crlf(t.s[end])) last_crlf = next;
        end = next;
    }
    return last_crlf;
}

static size_t llama3_next(text t, size_t i, size_t max_digits)
{
    size_t e;
    if ((e = contraction(t, i, true))) return e;
    if ((e = llama3_word(t, i))) return e;
    if ((e = run_of(t, i, ZRT_UC_NUMBER, max_digits)) > i) return e;
    if ((e = llama3_punct(t, i))) return e;
    if ((e = llama3_newlines(t, i))) return e;
    return spaces(t, i);
}

size_t zrt_pretok_next(zrt_pretok_pattern p, const unsigned char *s, size_t n, size_t i)
{
    text t = {s, n};
    size_t e = p == ZRT_PRETOK_GPT2 ? gpt2_next(t, i)
               : p == ZRT_PRETOK_LLAMA3 ? llama3_next(t, i, 3)
               : p == ZRT_PRETOK_QWEN2 ? llama3_next(t, i, 1)
                                       : n;
    if (e <= i) { /* cannot happen (see above); never loop */
        size_t next;
        class_at(t, i, &next);
        e = next;
    }
    return e;
}
