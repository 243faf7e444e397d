"""hf_llama.py: transformers' side of the Llama family's golden tests.

  rope T HS THETA [FACTOR LOW HIGH ORIGINAL] OUT
      LlamaRotaryEmbedding's cos and sin tables (T x HS/2 each, fp32, cos
      then sin) into OUT; with FACTOR, Llama 3's rope_scaling.
  make WORK
      the cases of test_hf_llama (CASES below: tiny random Llama, Llama 3
      with rope_scaling, Mistral, Qwen2) saved by transformers into
      WORK/NAME/hf (no download); their names into WORK/cases.txt
  check WORK [NAME]
      per case, transformers trains the model of WORK/NAME/hf on zrt's
      batches (AdamW, clipping, fp32) and must give zrt's first 5 losses and
      step 1's gradients (every parameter) of every zrt run (world 1 and 2,
      stage 0 and 3) within 1e-5 relative; zrt's export after 5 steps loads
      in transformers, its tensors equal zrt's consolidated weights bit for
      bit (bf16 too: torch's rounding), and its logits equal zrt's within 1e-5

Why this file: zrt computes RoPE, RMSNorm, SwiGLU and grouped-query
attention itself; these outputs are what transformers computes for the same
weights, so a test compares the two. Run with /usr/bin/python3 (torch,
transformers). transformers 4.36 (the version the project pins for torch
1.13) predates Llama 3's rope_scaling and Qwen2. The shim (load_model):
a Qwen2 is 4.36's LlamaForCausalLM with attention_bias=True and o_proj's
bias removed; Llama 3's inv_freq (llama3_inv_freq: transformers'
_compute_llama3_parameters, 4.43+, line for line) is set into 4.36's rotary
modules. config.json says Qwen2ForCausalLM and rope_scaling llama3 as a
newer transformers writes them; the shim reads them and builds the 4.36
model. Llama and Mistral load natively (AutoModelForCausalLM).
Exit 0 pass, 1 fail, 77 skip (the reason printed).
"""
import json
import math
import os
import sys

import numpy as np
import torch


def llama3_inv_freq(inv_freq, factor, low_freq_factor, high_freq_factor, old_context_len):
    """transformers' _compute_llama3_parameters on an fp32 inv_freq."""
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
    is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama)


def set_rope_scaling(rotary, scaling):
    """Llama 3's rope_scaling on one of 4.36's LlamaRotaryEmbedding modules."""
    if not scaling:
        return
    rotary.inv_freq = llama3_inv_freq(rotary.inv_freq, scaling["factor"], scaling["low_freq_factor"],
                                      scaling["high_freq_factor"], scaling["original_max_position_embeddings"])
    rotary._set_cos_sin_cache(rotary.max_seq_len_cached, rotary.inv_freq.device, torch.get_default_dtype())


def rope(args):
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding
    T, hs, theta = int(args[0]), int(args[1]), float(args[2])
    rotary = LlamaRotaryEmbedding(hs, max_position_embeddings=T, base=theta)
    if len(args) > 4:
        set_rope_scaling(rotary, {"factor": float(args[3]), "low_freq_factor": float(args[4]),
                                  "high_freq_factor": float(args[5]),
                                  "original_max_position_embeddings": int(args[6])})
    half = hs // 2
    with open(args[-1], "wb") as f:
        f.write(rotary.cos_cached[:T, :half].contiguous().numpy().tobytes())
        f.write(rotary.sin_cached[:T, :half].contiguous().numpy().tobytes())


TOL = 1e-5
ARCH_TYPES = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral", "Qwen2ForCausalLM": "qwen2"}
BASE = dict(hidden_size=64, intermediate_size=96, num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=2,
            vocab_size=128, max_position_embeddings=64, rms_norm_eps=1e-6, hidden_act="silu")
LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 32}
CASES = [  # name, architecture, tied, rope_theta, rope_scaling, the input's max_shard_size
    ("llama", "LlamaForCausalLM", False, 10000.0, None, "100KB"),
    ("llama3-tied", "LlamaForCausalLM", True, 500000.0, LLAMA3, None),
    ("mistral", "MistralForCausalLM", False, 10000.0, None, None),
    ("qwen2-tied", "Qwen2ForCausalLM", True, 1000000.0, None, None),
]


def transformers_or_skip():
    try:
        import transformers
        import safetensors  # noqa: F401
    except ImportError as e:
        print("transformers is not installed for /usr/bin/python3 (%s): tools/bootstrap installs it" % e)
        sys.exit(77)
    transformers.utils.logging.disable_progress_bar()


def build(cfg):
    """The 4.36 model of a config.json dict (the shim for Qwen2 and Llama 3's rope_scaling)."""
    from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM
    cfg = dict(cfg)
    arch = cfg.pop("architectures")[0]
    scaling = cfg.pop("rope_scaling", None)
    for k in ("model_type", "use_sliding_window", "max_window_layers", "head_dim", "mlp_bias"):
        cfg.pop(k, None)
    if arch == "MistralForCausalLM":
        return MistralForCausalLM(MistralConfig(**cfg))
    qwen2 = arch == "Qwen2ForCausalLM"
    cfg.pop("sliding_window", None)
    model = LlamaForCausalLM(LlamaConfig(**dict(cfg, attention_bias=qwen2)))
    for layer in model.model.layers:
        if qwen2:
            layer.self_attn.o_proj.bias = None  # Qwen2: q, k, v biases only
        set_rope_scaling(layer.self_attn.rotary_emb, scaling)
    return model


def read_weights(d):
    """Every tensor of a Hugging Face directory (one file or an index), by name."""
    from safetensors.torch import load_file
    index = os.path.join(d, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else ["model.safetensors"]
    out = {}
    for f in files:
        out.update(load_file(os.path.join(d, f)))
    return out, files


def load_model(d):
    """d's model in transformers: natively when 4.36 can, else through the shim; (model, how)."""
    from transformers import AutoModelForCausalLM
    cfg = json.load(open(os.path.join(d, "config.json")))
    if cfg["architectures"][0] != "Qwen2ForCausalLM" and not cfg.get("rope_scaling"):
        model, info = AutoModelForCausalLM.from_pretrained(d, output_loading_info=True)
        assert not any(info.values()), info
        return model, "natively (AutoModelForCausalLM.from_pretrained)"
    model = build(cfg)
    weights, _ = read_weights(d)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    assert not unexpected and missing == (["lm_head.weight"] if cfg.get("tie_word_embeddings") else []), (missing, unexpected)
    if cfg.get("tie_word_embeddings"):
        model.tie_weights()
    return model, "through the shim (4.36 has no %s)" % ("Qwen2" if "Qwen2" in cfg["architectures"][0] else "llama3 rope_scaling")


def make(work):
    transformers_or_skip()
    import torch
    names = []
    for i, (name, arch, tied, theta, scaling, shard) in enumerate(CASES):
        torch.manual_seed(100 + i)
        cfg = dict(BASE, architectures=[arch], model_type=ARCH_TYPES[arch], tie_word_embeddings=tied, rope_theta=theta,
                   rope_scaling=scaling)
        if arch == "MistralForCausalLM":
            cfg["sliding_window"] = None
        model = build(cfg)
        with torch.no_grad():  # every parameter away from its init, so that each one matters
            for pname, p in model.named_parameters():
                if "norm" in pname or pname.endswith("bias"):
                    p.add_(0.1 * torch.randn_like(p))
        d = os.path.join(work, name, "hf")
        model.save_pretrained(d, safe_serialization=True, **({"max_shard_size": shard} if shard else {}))
        saved = json.load(open(os.path.join(d, "config.json")))  # as a newer transformers writes it
        saved.update(architectures=[arch], model_type=ARCH_TYPES[arch], rope_scaling=scaling)
        if arch == "Qwen2ForCausalLM":
            saved.pop("attention_bias")
            saved.update(use_sliding_window=False, sliding_window=None)
        json.dump(saved, open(os.path.join(d, "config.json"), "w"), indent=2)
        names.append(name)
    open(os.path.join(work, "cases.txt"), "w").write("\n".join(names) + "\n")


def rel(a, b):
    """|a - b| relative to b's largest magnitude (elementwise relative error means nothing near zero)."""
    import torch
    return (torch.as_tensor(a, dtype=torch.float64) - torch.as_tensor(b, dtype=torch.float64)).abs().max().item() / \
        max(torch.as_tensor(b, dtype=torch.float64).abs().max().item(), 1e-30)


def reference(d, g):
    """transformers' own training of d's model on zrt's batches: losses, step 1's gradients by name."""
    import torch
    import torch.nn.functional as F
    model, how = load_model(os.path.join(d, "hf"))
    tokens = np.fromfile(os.path.join(d, "tokens.bin"), dtype=np.int32).reshape(g["steps"], 2, g["batch"], g["seq_len"])
    params = list(model.parameters())
    opt = torch.optim.AdamW(params, lr=g["lr"], betas=tuple(g["betas"]), eps=g["eps"], weight_decay=g["weight_decay"])
    losses, grads = [], {}
    for step in range(g["steps"]):
        x, y = (torch.tensor(tokens[step, i], dtype=torch.long) for i in (0, 1))
        opt.zero_grad()
        logits = model(input_ids=x, use_cache=False).logits
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, g["clip"])
        if step == 0:
            grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
        opt.step()
        losses.append(loss.item())
    return losses, grads, how


def hf_name(zrt_name):
    return zrt_name if zrt_name == "lm_head.weight" else "model." + zrt_name


def check_run(run, losses, grads, beta1):
    """One zrt run (run/losses.txt, run/grads.txt + grads.bin: exp_avg after step 1 = (1 - beta1) * gradient)."""
    ours = [float(l) for l in open(os.path.join(run, "losses.txt")).read().split()]
    worst_loss = max(abs(a - b) / abs(b) for a, b in zip(ours, losses))
    flat = np.fromfile(os.path.join(run, "grads.bin"), dtype=np.float32)
    at, worst_grad, seen = 0, (0.0, ""), set()
    for line in open(os.path.join(run, "grads.txt")):
        name, numel = line.split()
        g = flat[at:at + int(numel)].astype(np.float64) / (1 - beta1)
        at += int(numel)
        want = grads[hf_name(name)]
        worst_grad = max(worst_grad, (rel(g.reshape(want.shape), want), name))
        seen.add(hf_name(name))
    ok = len(ours) == len(losses) and worst_loss <= TOL and worst_grad[0] <= TOL and seen == set(grads) and at == flat.size
    print("  %-8s losses: largest relative difference %.2e; gradients at step 1 (%d parameters): %.2e (%s)%s" %
          (os.path.basename(run), worst_loss, len(seen), worst_grad[0], worst_grad[1], "" if ok else "  <- FAIL"))
    if seen != set(grads):
        print("  parameters only in transformers: %s; only in zrt: %s" % (set(grads) - seen, seen - set(grads)))
    return ok


def check_export(d, case):
    """zrt's export after 5 steps: config.json, tensors = consolidate's, logits = zrt's."""
    import torch
    from safetensors.torch import load_file
    name, arch, tied, theta, scaling, shard = case
    out = os.path.join(d, "export")
    cfg = json.load(open(os.path.join(out, "config.json")))
    want = dict(architectures=[arch], model_type=ARCH_TYPES[arch], tie_word_embeddings=tied, rope_theta=theta,
                rope_scaling=scaling, hidden_size=64, intermediate_size=96, num_attention_heads=4, num_key_value_heads=2,
                num_hidden_layers=2, vocab_size=128, max_position_embeddings=64, hidden_act="silu", torch_dtype="float32")
    bad = {k: (cfg.get(k), v) for k, v in want.items() if cfg.get(k) != v}
    ok = not bad
    if bad:
        print("  export-hf's config.json: (have, want) %s  <- FAIL" % bad)
    zrt = {hf_name(k): v for k, v in load_file(os.path.join(d, "consolidated", "model.safetensors")).items()}
    exported, files = read_weights(out)
    model, how = load_model(out)
    loaded = {k: v for k, v in model.state_dict().items() if not (tied and k == "lm_head.weight")}
    same = set(exported) == set(zrt) == set(loaded) and all(torch.equal(exported[k], zrt[k]) and torch.equal(loaded[k], zrt[k]) for k in zrt)
    bf16, _ = read_weights(os.path.join(d, "export-bf16"))
    same_bf16 = set(bf16) == set(zrt) and all(bf16[k].dtype == torch.bfloat16 and torch.equal(bf16[k], zrt[k].to(torch.bfloat16)) for k in zrt)
    tokens = torch.tensor(np.fromfile(os.path.join(d, "logits_tokens.bin"), dtype=np.int32), dtype=torch.long)[None]
    zrt_logits = np.fromfile(os.path.join(d, "zrt_logits.bin"), dtype=np.float32).reshape(tokens.shape[1], -1)
    with torch.no_grad():
        logits = model(input_ids=tokens, use_cache=False).logits[0]
    worst = rel(logits, torch.tensor(zrt_logits))
    ok &= same and same_bf16 and worst <= TOL
    print("  export-hf (%d file%s, loaded %s): %d tensors %s consolidate's, bf16 %s torch's rounding; logits vs zrt's "
          "decode: %.2e%s" % (len(files), "s" if len(files) > 1 else "", how, len(exported), "equal" if same else "DIFFER FROM",
                              "equal to" if same_bf16 else "DIFFER FROM", worst, "" if ok else "  <- FAIL"))
    return ok


def check(work, only=None):
    transformers_or_skip()
    import torch
    torch.set_num_threads(1)
    ok = True
    for case in (c for c in CASES if only in (None, c[0])):
        d = os.path.join(work, case[0])
        g = json.load(open(os.path.join(d, "golden.json")))
        losses, grads, how = reference(d, g)
        print("%s: transformers (loaded %s), losses %s" % (case[0], how, " ".join("%.6f" % l for l in losses)))
        for run in sorted(os.listdir(d)):
            if run.startswith("run-"):
                ok &= check_run(os.path.join(d, run), losses, grads, g["betas"][0])
        ok &= check_export(d, case)
    return 0 if ok else 1


COMMANDS = {"rope": rope, "make": lambda a: make(a[0]), "check": lambda a: sys.exit(check(*a[:2]))}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](sys.argv[2:])
