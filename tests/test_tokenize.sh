#!/usr/bin/env bash
# test_tokenize.sh: `zrt tokenize` against the `tokenizers` package, on
# tokenizers it trains here (tests/tokenize_golden.py; no download) in four
# layouts -- GPT-2 (ByteLevel), Llama 3 and Qwen2 (Split regex + ByteLevel;
# Qwen2 with NFC) and Llama 2 (▁ normalizer, byte fallback): ids equal token
# for token on ~3000 lines of text with accents, CJK, Cyrillic, emoji, digits,
# tabs, whitespace runs, contractions and special tokens; decode equal to
# `tokenizers`' decode and decode(encode(x)) == x; `zrt bench tokenize` twice
# (zrt's MB/s beside tokenizers'); the shard writer (tokens and mask bits of
# text, prompt/completion and messages JSONL, several shards, a val split);
# and errors that name the file and line: a truncated JSONL line, invalid
# UTF-8, a malformed tokenizer.json, an unknown regex, a text NFC would change.
# Skips when /usr/bin/python3 cannot import tokenizers.
set -u
ZRT=${ZRT_BIN:-build/bin/zrt}
SRC=${ZRT_SRC:-.}
PY=/usr/bin/python3
T=$TMPDIR
. "$SRC/tests/lib.sh" # fail, expect, has

$PY "$SRC/tests/tokenize_golden.py" "$T" >"$T/gen.out" 2>&1
rc=$?
if [ $rc = 77 ]; then tail -1 "$T/gen.out"; exit 77; fi
[ $rc = 0 ] || { cat "$T/gen.out"; echo "FAIL: tokenize_golden.py"; exit 1; }
cat "$T/gen.out"

# ids, decode and the round trip, per kind
for kind in gpt2 llama3 qwen2 llama2; do
    timeout 60 "$ZRT" tokenize encode --tokenizer "$T/$kind.json" <"$T/$kind.txt" >"$T/$kind.zrt" 2>"$T/$kind.err" ||
        { fail "$kind: encode"; cat "$T/$kind.err"; continue; }
    timeout 60 "$ZRT" tokenize decode --tokenizer "$T/$kind.json" <"$T/$kind.zrt" >"$T/$kind.back" 2>>"$T/$kind.err" ||
        { fail "$kind: decode"; cat "$T/$kind.err"; continue; }
    $PY - "$T" "$kind" <<'PY' || fail "$kind: ids or text differ from tokenizers'"
import sys
t, kind = sys.argv[1:]
read = lambda ext: open('%s/%s.%s' % (t, kind, ext), encoding='utf-8', newline='\n').read().split('\n')
text, want, got, want_dec, back = read('txt'), read('ids'), read('zrt'), read('dec'), read('back')
assert len(got) == len(want), '%d lines of ids, want %d' % (len(got), len(want))
bad = [i for i in range(len(want)) if want[i] != got[i]]
for i in bad[:3]:
    print('line %d %r\n tokenizers: %s\n zrt:        %s' % (i + 1, text[i], want[i], got[i]))
bad_dec = [i for i in range(len(want)) if want_dec[i] != back[i]]
for i in bad_dec[:3]:
    print('line %d: decode %r, tokenizers %r' % (i + 1, back[i], want_dec[i]))
# SentencePiece-style: the ▁ after an added token decodes as a space, so only lines without one come back
specials = ('<|endoftext|>', '</s>')
trip = [i for i in range(len(text)) if kind != 'llama2' or not any(s in text[i] for s in specials)]
bad_trip = [i for i in trip if back[i] != text[i]]
for i in bad_trip[:3]:
    print('line %d: decode(encode(x)) %r != %r' % (i + 1, back[i], text[i]))
n_ids = sum(len(l.split()) for l in got)
print('%s: %d lines, %d ids equal to tokenizers\', decode equal on %d, decode(encode(x)) == x on %d'
      % (kind, len(want) - 1, n_ids, len(want) - 1 - len(bad_dec), len(trip) - 1 - len(bad_trip)))
sys.exit(1 if bad or bad_dec or bad_trip else 0)
PY
    tail -1 "$T/$kind.err"
done

# the bench, twice: zrt's encoder MB/s beside tokenizers' own on the same text
for i in 1 2 3 4; do cat "$T/lines.txt"; done >"$T/bench.txt"
for run in ${ZRT_BENCH_RUNS:-1 2}; do
    for kind in llama3 llama2; do
        expect 0 "bench $kind" -- timeout 100 "$ZRT" bench tokenize --tokenizer "$T/$kind.json" "$T/bench.txt"
        sed "s/^/bench run $run: /" "$TMPDIR/out"
        has "MB/s" "bench $kind"
    done
done

# the shard writer
cat >"$T/sft.jsonl" <<'JSON'
{"prompt": "What is 2 + 2?", "completion": " 4, of course."}
{"text": "Plain text: naïve café, 東京, привет 😀."}
{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello! How can I help?"}, {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Goodbye."}]}

{"prompt": "Translate: chat", "completion": " cat"}
JSON
for kind in llama3 llama2; do
    expect 0 "shards $kind" -- timeout 60 "$ZRT" tokenize --tokenizer "$T/$kind.json" --out "$T/sh_$kind/train" --shard-size 16 "$T/sft.jsonl"
    has "4 documents (0 to val)" "shards $kind"
    cat "$TMPDIR/out"
    $PY "$SRC/tests/tokenize_golden.py" shards "$T/$kind.json" "$T/sh_$kind/train" 16 "$T/sft.jsonl" || fail "shards $kind: contents"
    ls "$T/sh_$kind" | grep -q tmp && fail "shards $kind: a temp file left"
done
for i in $(seq 200); do echo "{\"text\": \"document $i\"}"; done >"$T/many.jsonl"
expect 0 "val split" -- timeout 60 "$ZRT" tokenize --tokenizer "$T/gpt2.json" --out "$T/split/train" --val-fraction 0.25 "$T/many.jsonl" "$T/lines.txt"
has "201 documents ([1-9][0-9]* to val)" "val split"
[ -f "$T/split/train_000000.bin" ] && [ -f "$T/split/val_000000.bin" ] && [ ! -f "$T/split/train_000000.mask" ] || { fail "val split: files"; ls "$T/split"; }

# errors name the file and the line
printf '{"text": "ok"}\n{"prompt": "a", "completion": "b"}\n{"prompt": "trunc\n' >"$T/bad.jsonl"
expect 1 "truncated JSONL" -- "$ZRT" tokenize --tokenizer "$T/gpt2.json" --out "$T/bad/train" "$T/bad.jsonl"
has "bad.jsonl:3: not a JSON object" "truncated JSONL"
ls "$T/bad" 2>/dev/null | grep -q . && fail "truncated JSONL: left files"
printf '{"title": "x"}\n' >"$T/other.jsonl"
expect 1 "JSONL without text" -- "$ZRT" tokenize --tokenizer "$T/gpt2.json" --out "$T/bad/train" "$T/other.jsonl"
has 'other.jsonl:1: want {"text"}' "JSONL without text"
printf '{"text": "bad \xff byte"}\n' >"$T/utf8.jsonl"
expect 1 "invalid UTF-8 in JSONL" -- "$ZRT" tokenize --tokenizer "$T/gpt2.json" --out "$T/bad/train" "$T/utf8.jsonl"
has 'utf8.jsonl:1: "text": invalid UTF-8 at byte 4' "invalid UTF-8 in JSONL"
printf 'fine\nbad \xc3\x28 here\n' >"$T/utf8.txt"
expect 1 "invalid UTF-8 on stdin" -- sh -c "'$ZRT' tokenize encode --tokenizer '$T/llama2.json' <'$T/utf8.txt'"
has "<stdin>:2: invalid UTF-8 at byte 4" "invalid UTF-8 on stdin"
printf 'e\xcc\x81\n' >"$T/nfd.txt"
expect 1 "NFC" -- sh -c "'$ZRT' tokenize encode --tokenizer '$T/qwen2.json' <'$T/nfd.txt'"
has "<stdin>:1: a character the NFC normalizer might change" "NFC"
printf '1 2 x\n' >"$T/ids.txt"
expect 1 "decode of a non-id" -- sh -c "'$ZRT' tokenize decode --tokenizer '$T/gpt2.json' <'$T/ids.txt'"
has "<stdin>:1: column 5: not an id" "decode of a non-id"
head -c 3000 "$T/gpt2.json" >"$T/cut.json"
expect 1 "truncated tokenizer.json" -- "$ZRT" tokenize encode --tokenizer "$T/cut.json"
has "cut.json: not valid JSON (line" "truncated tokenizer.json"
$PY -c 'import json,sys; j=json.load(open(sys.argv[1])); j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"]=r"\p{L}+|\s+"; json.dump(j,open(sys.argv[2],"w"))' "$T/llama3.json" "$T/regex.json"
expect 1 "unknown regex" -- "$ZRT" tokenize encode --tokenizer "$T/regex.json"
has "regex.json: the Split regex (zrt knows GPT-2's, Llama 3's and Qwen2's) is not supported" "unknown regex"
$PY -c 'import json,sys; j=json.load(open(sys.argv[1])); j["normalizer"]={"type":"Lowercase"}; json.dump(j,open(sys.argv[2],"w"))' "$T/gpt2.json" "$T/lower.json"
expect 1 "unknown normalizer" -- "$ZRT" tokenize encode --tokenizer "$T/lower.json"
has 'lower.json: the normalizer is not supported .*Lowercase' "unknown normalizer"
$PY -c 'import json,sys; j=json.load(open(sys.argv[1])); j["model"]["merges"][5]="zz qq"; json.dump(j,open(sys.argv[2],"w"))' "$T/gpt2.json" "$T/merge.json"
expect 1 "bad merge" -- "$ZRT" tokenize encode --tokenizer "$T/merge.json"
has 'merge.json: model.merges\[5\] ("zz" + "qq"): the first is not in the vocabulary' "bad merge"

[ $fails = 0 ] && echo "test_tokenize: all passed" && exit 0
echo "test_tokenize: $fails failed"
exit 1
