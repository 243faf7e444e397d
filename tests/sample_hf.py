#!/usr/bin/python3
"""sample_hf.py: the Hugging Face side of test_sample.
  models DIR     DIR/gpt2 and DIR/llama: a tiny GPT2LMHeadModel and
                 LlamaForCausalLM with random weights (no download), saved
                 with save_pretrained; EOS inside the vocabulary, so greedy
                 generation may stop at it. DIR/NAME.expect: one line per
                 prompt, "PROMPT IDS | MAX_NEW | NEW IDS" of
                 model.generate(do_sample=False) (an EOS it stopped at included)
  compare ZRT DIR NAME [ARGS...]
                 runs `ZRT sample --hf DIR/NAME --prompt-ids P --ids
                 --max-new-tokens 20 ARGS` for each line of DIR/NAME.expect:
                 its ids must equal generate's, and the prompt that reaches
                 seq_len must stop there, saying so on stderr; 77 when zrt has
                 no model of NAME's type yet ("no built-in model of type", or
                 the config does not know llama)
  corpus DIR     DIR/corpus.jsonl (memorable lines as documents, repeated,
                 shuffled), DIR/lines.txt (them) and DIR/tokenizer.json, a
                 byte-level BPE trained on them with <|endoftext|>; DIR/tok_bos.json,
                 the same with a post-processor putting <|endoftext|> first, and
                 DIR/bos_ids.txt, the ids tokenizers gives with it for the
                 first three words of the first line
Exit 0, 1 on failure, 77 without transformers / tokenizers (the reason printed)."""
import json, os, random, sys

LINES = [
    "the quick brown fox jumps over the lazy dog",
    "a stitch in time saves nine, said the tailor",
    "every café in the old town serves 日本 tea at noon",
    "seven silver swans swim south in the spring",
    "never trust a map drawn by a sleepy pirate",
    "the lighthouse keeper counts ships until dawn",
]


def need(*modules):
    try:
        for m in modules:
            __import__(m)
    except ImportError as e:
        print("sample_hf.py: %s is not installed for /usr/bin/python3 (%s)" % (m, e))
        sys.exit(77)


def expect(model, d, name, prompts, eos):
    import torch
    with open(os.path.join(d, name + ".expect"), "w") as f:
        for ids, n in prompts:
            x = torch.tensor([ids], dtype=torch.long)
            with torch.no_grad():
                out = model.generate(x, attention_mask=torch.ones_like(x), do_sample=False, max_new_tokens=n,
                                     pad_token_id=eos, eos_token_id=eos)
            f.write("%s | %d | %s\n" % (" ".join(map(str, ids)), n, " ".join(map(str, out[0, len(ids):].tolist()))))


def prompts(vocab, positions):
    rng = random.Random(5)
    p = [([rng.randrange(vocab) for _ in range(k)], 20) for k in (1, 3, 7, 12)]
    p.append(([rng.randrange(vocab) for _ in range(positions - 2)], 3))  # the last at position seq_len + 1
    return p


def models(d):
    need("torch", "transformers")
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM
    torch.manual_seed(1234)
    # initializer_range 0.3: logits far apart, so no near-tie decides greedy by rounding
    g = GPT2Config(n_layer=2, n_embd=32, n_head=4, n_positions=32, vocab_size=96, n_inner=None, initializer_range=0.3,
                   activation_function="gelu_new", layer_norm_epsilon=1e-5, resid_pdrop=0, embd_pdrop=0, attn_pdrop=0,
                   bos_token_id=94, eos_token_id=50)  # 50: greedy meets it in two cases
    gpt2 = GPT2LMHeadModel(g).eval()
    gpt2.save_pretrained(os.path.join(d, "gpt2"), safe_serialization=True)
    expect(gpt2, d, "gpt2", prompts(96, 32), 50)
    ll = LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                     intermediate_size=96, vocab_size=128, max_position_embeddings=32, rms_norm_eps=1e-6,
                     initializer_range=0.3, tie_word_embeddings=False, bos_token_id=1, eos_token_id=11)  # 11: met twice
    llama = LlamaForCausalLM(ll).eval()
    llama.save_pretrained(os.path.join(d, "llama"), safe_serialization=True)
    expect(llama, d, "llama", prompts(128, 32), 11)


def corpus(d):
    need("tokenizers")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    rng = random.Random(7)
    docs = [l for l in LINES for _ in range(40)]
    rng.shuffle(docs)
    with open(os.path.join(d, "corpus.jsonl"), "w", encoding="utf-8") as f:
        for t in docs:
            f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
    with open(os.path.join(d, "lines.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(LINES) + "\n")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(LINES * 5, trainer)
    tok.save(os.path.join(d, "tokenizer.json"))
    # A copy whose post-processor puts <|endoftext|> before a text (as Llama's puts BOS), and the ids
    # tokenizers gives with it for the first words of the first line.
    tok.post_processor = processors.Sequence([processors.ByteLevel(trim_offsets=False), processors.TemplateProcessing(
        single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", tok.token_to_id("<|endoftext|>"))])])
    tok.save(os.path.join(d, "tok_bos.json"))
    with open(os.path.join(d, "bos_ids.txt"), "w") as f:
        f.write(" ".join(map(str, tok.encode(" ".join(LINES[0].split()[:3])).ids)) + "\n")
    print(tok.get_vocab_size())


def compare(zrt, d, name, *args):
    import subprocess
    bad = 0
    for line in open(os.path.join(d, name + ".expect")):
        prompt, n, want = (part.strip() for part in line.split("|"))
        cmd = [zrt, "sample", "--hf", os.path.join(d, name), "--prompt-ids", prompt, "--ids", "--max-new-tokens", "20"]
        r = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=60)
        if "no built-in model of type" in r.stderr or "zrt.model.type: llama is not one of" in r.stderr:
            print("zrt cannot make %s models yet: %s" % (name, r.stderr.strip()))
            sys.exit(77)
        got = r.stdout.strip()
        ok = r.returncode == 0 and got == want and (n == "20" or "stopped at the model's seq_len" in r.stderr)
        if not ok:
            print("FAIL: %s, prompt %s: zrt %r (exit %d), generate %r\n%s" % (name, prompt, got, r.returncode, want,
                                                                              r.stderr.strip()))
        bad += not ok
    lines = sum(1 for _ in open(os.path.join(d, name + ".expect")))
    print("%s %s: %d of %d greedy generations equal to transformers' token for token" % (name, " ".join(args),
                                                                                       lines - bad, lines))
    sys.exit(1 if bad else 0)


{"models": models, "corpus": corpus, "compare": compare}[sys.argv[1]](*sys.argv[2:])
