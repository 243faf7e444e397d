/* tokenizer_kind.c: which of the two supported layouts a tokenizer.json
 * has, from its normalizer, pre_tokenizer and decoder -- and a refusal that
 * names the component for anything else.
 *
 * Why refuse rather than guess: a component zrt ignored (a Digits split, a
 * Lowercase normalizer) would give ids that differ from `tokenizers`' on
 * some text and not on other; the user learns it at load time instead.
 */
#include "tokenize_internal.h"

#include <cjson/cJSON.h>
#include <string.h>

#define SPIECE "\xe2\x96\x81"

static const char *type_of(const cJSON *o)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");
    return cJSON_IsString(t) ? t->valuestring : "(no type)";
}

static bool is_type(const cJSON *o, const char *type) { return cJSON_IsObject(o) && strcmp(type_of(o), type) == 0; }

static const char *str_field(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool bool_field(const cJSON *o, const char *name, bool dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

/* A Replace's {"pattern": {"String": from}, "content": to}. */
static bool is_replace(const cJSON *o, const char *from, const char *to)
{
    const char *pattern = str_field(cJSON_GetObjectItemCaseSensitive(o, "pattern"), "String");
    const char *content = str_field(o, "content");
    return is_type(o, "Replace") && pattern && content && strcmp(pattern, from) == 0 && strcmp(content, to) == 0;
}

static const cJSON *item(const cJSON *array, int i) { return cJSON_GetArrayItem(array, i); }

static zrt_status refuse(const zrt_tokenizer *t, const char *what, const cJSON *o)
{
    char *text = o ? cJSON_PrintUnformatted(o) : NULL;
    zrt_status s = zrt_set_error(ZRT_ERR_CONFIG, "%s: %s is not supported (zrt reads byte-level BPE and SentencePiece-style "
                                 "BPE: docs/data.md): %.300s", t->path, what, text ? text : "null");
    cJSON_free(text);
    return s;
}

static zrt_status normalizer(zrt_tokenizer *t, const cJSON *n)
{
    if (!n || cJSON_IsNull(n)) return ZRT_OK;
    if (is_type(n, "NFC")) return t->nfc = true, ZRT_OK;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
    if (is_type(n, "Sequence") && cJSON_GetArraySize(list) == 2 && is_type(item(list, 0), "Prepend") &&
        strcmp(str_field(item(list, 0), "prepend") ? str_field(item(list, 0), "prepend") : "", SPIECE) == 0 &&
        is_replace(item(list, 1), " ", SPIECE)) {
        t->sp_prepend = 1;
        return ZRT_OK;
    }
    return refuse(t, "the normalizer", n);
}

static zrt_status split_then_byte_level(zrt_tokenizer *t, const cJSON *list)
{
    const cJSON *split = item(list, 0), *bl = item(list, 1);
    const char *regex = str_field(cJSON_GetObjectItemCaseSensitive(split, "pattern"), "Regex");
    const char *behavior = str_field(split, "behavior");
    if (!regex || !behavior || strcmp(behavior, "Isolated") != 0 || bool_field(split, "invert", false))
        return refuse(t, "a Split other than an Isolated regex", split);
    int p = zrt_pretok_pattern_of(regex);
    if (p < 0) return refuse(t, "the Split regex (zrt knows GPT-2's, Llama 3's and Qwen2's)", split);
    if (bool_field(bl, "use_regex", true) || bool_field(bl, "add_prefix_space", false))
        return refuse(t, "a ByteLevel after a Split with use_regex or add_prefix_space", bl);
    t->pattern = (zrt_pretok_pattern)p;
    return ZRT_OK;
}

static zrt_status metaspace(zrt_tokenizer *t, const cJSON *m)
{
    const char *rep = str_field(m, "replacement"), *scheme = str_field(m, "prepend_scheme");
    if (!rep || strcmp(rep, SPIECE) != 0) return refuse(t, "a Metaspace replacement other than U+2581", m);
    bool prefix = bool_field(m, "add_prefix_space", true);
    t->sp_prepend = !prefix || (scheme && strcmp(scheme, "never") == 0) ? 0 : scheme && strcmp(scheme, "first") == 0 ? 2 : 1;
    t->sp_prepend_unless_space = true;
    t->sp_split = bool_field(m, "split", true);
    return ZRT_OK;
}

static zrt_status pre_tokenizer(zrt_tokenizer *t, const cJSON *p)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
    if (!p || cJSON_IsNull(p)) {
        if (t->sp_prepend) return ZRT_OK; /* the ▁ normalizer did the work */
        return refuse(t, "no pre_tokenizer without the Prepend/Replace ▁ normalizer", p);
    }
    if (is_type(p, "ByteLevel")) {
        t->byte_level = true;
        t->pattern = bool_field(p, "use_regex", true) ? ZRT_PRETOK_GPT2 : ZRT_PRETOK_NONE;
        t->add_prefix_space = bool_field(p, "add_prefix_space", false);
        return ZRT_OK;
    }
    if (is_type(p, "Sequence") && cJSON_GetArraySize(list) == 2 && is_type(item(list, 0), "Split") &&
        is_type(item(list, 1), "ByteLevel")) {
        t->byte_level = true;
        return split_then_byte_level(t, list);
    }
    if (is_type(p, "Metaspace") && !t->sp_prepend) return metaspace(t, p);
    return refuse(t, "the pre_tokenizer", p);
}

/* Replace(▁, " "), ByteFallback, Fuse, Strip(" ", start, 0) -- Llama 2's. */
static bool sp_decoder_sequence(zrt_tokenizer *t, const cJSON *list)
{
    int n = cJSON_GetArraySize(list);
    if (n < 3 || n > 4 || !is_replace(item(list, 0), SPIECE, " ") || !is_type(item(list, 1), "ByteFallback") ||
        !is_type(item(list, 2), "Fuse"))
        return false;
    if (n == 3) return true;
    const cJSON *strip = item(list, 3), *start = cJSON_GetObjectItemCaseSensitive(strip, "start");
    const cJSON *stop = cJSON_GetObjectItemCaseSensitive(strip, "stop");
    const char *content = str_field(strip, "content");
    if (!is_type(strip, "Strip") || !content || strcmp(content, " ") != 0 || !cJSON_IsNumber(start) ||
        start->valueint > 1 || !cJSON_IsNumber(stop) || stop->valueint != 0)
        return false;
    t->sp_strip_space = start->valueint == 1;
    return true;
}

static zrt_status decoder(zrt_tokenizer *t, const cJSON *d)
{
    if (t->byte_level) return is_type(d, "ByteLevel") ? ZRT_OK : refuse(t, "a byte-level tokenizer's decoder", d);
    if (is_type(d, "Sequence") && sp_decoder_sequence(t, cJSON_GetObjectItemCaseSensitive(d, "decoders")))
        return ZRT_OK;
    if (is_type(d, "Metaspace")) {
        t->sp_strip_space = t->sp_prepend != 0;
        return ZRT_OK;
    }
    return refuse(t, "a SentencePiece-style tokenizer's decoder", d);
}

static const char *describe(const zrt_tokenizer *t)
{
    static const char *const names[] = {"byte-level BPE (no regex)", "byte-level BPE (GPT-2 pattern)",
                                        "byte-level BPE (Llama 3 pattern)", "byte-level BPE (Qwen2 pattern)"};
    if (t->byte_level) return names[t->pattern];
    return t->byte_fallback ? "SentencePiece-style BPE (byte fallback)" : "SentencePiece-style BPE";
}

/* The normalizer, pre_tokenizer and decoder of root, and model's flags. */
zrt_status zrt_tokenizer_kind(zrt_tokenizer *t, const cJSON *root, const cJSON *model)
{
    ZRT_CHECK(normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer")));
    ZRT_CHECK(pre_tokenizer(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer")));
    if (t->nfc && !t->byte_level) return refuse(t, "NFC with a SentencePiece-style tokenizer", NULL);
    ZRT_CHECK(decoder(t, cJSON_GetObjectItemCaseSensitive(root, "decoder")));
    const char *type = str_field(model, "type");
    if (type && strcmp(type, "BPE") != 0) return refuse(t, "the model type", cJSON_GetObjectItemCaseSensitive(model, "type"));
    const char *prefix = str_field(model, "continuing_subword_prefix"), *suffix = str_field(model, "end_of_word_suffix");
    if (prefix && *prefix)
        return refuse(t, "a continuing_subword_prefix", cJSON_GetObjectItemCaseSensitive(model, "continuing_subword_prefix"));
    if (suffix && *suffix)
        return refuse(t, "an end_of_word_suffix", cJSON_GetObjectItemCaseSensitive(model, "end_of_word_suffix"));
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (cJSON_IsNumber(dropout) && dropout->valuedouble > 0) return refuse(t, "BPE dropout", dropout);
    t->byte_fallback = bool_field(model, "byte_fallback", false);
    t->fuse_unk = bool_field(model, "fuse_unk", false);
    t->ignore_merges = bool_field(model, "ignore_merges", false);
    t->describe = describe(t);
    return ZRT_OK;
}
