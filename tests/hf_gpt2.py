#!/usr/bin/python3
"""hf_gpt2.py: the Hugging Face side of test_hf_gpt2.
  make DIR [N_HEAD]   a GPT-2 (2 layers, 32 wide, 4 heads, 16 positions, 64 tokens)
                      with random weights, saved by transformers (no download)
  check DIR OUT WORK  HF's loss of DIR's model on zrt's first batch equals zrt's
                      first loss; OUT (zrt shards export-hf after 3 steps) loads
                      with from_pretrained and its loss on zrt's 4th batch equals
                      zrt's 4th loss (both within 1e-4 relative)
  sharded OUT SHARDED SHARDED (export-hf --max-shard-size 20KB) has several
                      files and model.safetensors.index.json (total_size, a
                      weight_map naming every tensor); from_pretrained loads it
                      with every tensor equal to OUT's
  arrays OUT ZRT_ST   without transformers: OUT's names, shapes and values equal
                      zrt's consolidated weights (ZRT_ST), Conv1D ones transposed
Exit 0 pass, 1 fail, 77 skip (the reason printed)."""
import json, struct, sys

import numpy as np

TOL = 1e-4


def read_st(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    head = json.loads(data[8:8 + n])
    out = {}
    for name, t in head.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", (name, t["dtype"])
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + a:8 + n + b], dtype=np.float32).reshape(t["shape"])
    return out


def transformers_or_skip():
    try:
        import torch, transformers  # noqa: F401
        return True
    except ImportError as e:
        print("transformers is not installed for /usr/bin/python3 (%s): the Hugging Face part is skipped" % e)
        return False


def make(d, heads=4):
    if not transformers_or_skip():
        sys.exit(77)
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(1234)
    cfg = GPT2Config(n_layer=2, n_embd=32, n_head=heads, n_positions=16, vocab_size=64, n_inner=128,
                     activation_function="gelu_new", layer_norm_epsilon=1e-5, resid_pdrop=0, embd_pdrop=0, attn_pdrop=0)
    GPT2LMHeadModel(cfg).save_pretrained(d, safe_serialization=True)


def loss_of(model, tokens, step):
    import torch
    x, y = (torch.tensor(tokens[step, i], dtype=torch.long) for i in (0, 1))
    with torch.no_grad():
        logits = model(x).logits
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)).item()


def check(d, out, work):
    if not transformers_or_skip():
        sys.exit(77)
    from transformers import GPT2LMHeadModel
    tokens = np.fromfile(work + "/tokens.bin", dtype=np.int32).reshape(4, 2, 4, 16)
    zrt = [float(l) for l in open(work + "/zrt_losses.txt").read().split()]
    first = loss_of(GPT2LMHeadModel.from_pretrained(d).eval(), tokens, 0)
    back = GPT2LMHeadModel.from_pretrained(out).eval()
    fourth = loss_of(back, tokens, 3)
    ok = True
    for what, hf, ours in (("imported, batch 1", first, zrt[0]), ("exported after 3 steps, batch 4", fourth, zrt[3])):
        rel = abs(hf - ours) / abs(hf)
        print("%s: transformers %.8f  zrt %.8f  relative %.2e" % (what, hf, ours, rel))
        ok &= rel <= TOL
    assert back.lm_head.weight.data_ptr() == back.transformer.wte.weight.data_ptr(), "lm_head not tied"
    return 0 if ok else 1


def arrays(out, zrt_st):
    exported, ours = read_st(out + "/model.safetensors"), read_st(zrt_st + "/model.safetensors")
    assert len(exported) == len(ours), (len(exported), len(ours))
    conv1d = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
    for name, value in ours.items():
        hf = "transformer." + name + (".weight" if name in ("wte", "wpe") else "")
        want = value.T if name.endswith(conv1d) else value
        assert hf in exported and exported[hf].shape == want.shape and np.array_equal(exported[hf], want), name
    cfg = json.load(open(out + "/config.json"))
    assert (cfg["model_type"], cfg["n_layer"], cfg["n_embd"], cfg["activation_function"]) == ("gpt2", 2, 32, "gelu_new"), cfg
    print("export-hf: %d tensors with GPT-2's names, shapes and values (Conv1D transposed)" % len(exported))
    return 0


def sharded(out, split):
    import glob, os
    if not transformers_or_skip():
        sys.exit(77)
    import torch
    from transformers import GPT2LMHeadModel
    index = json.load(open(split + "/model.safetensors.index.json"))
    files = sorted(glob.glob(split + "/model-*-of-*.safetensors"))
    parts = {}
    for f in files:
        parts.update(read_st(f))
    whole = read_st(out + "/model.safetensors")
    assert len(files) > 1 and sorted(set(index["weight_map"].values())) == [os.path.basename(f) for f in files], files
    assert set(index["weight_map"]) == set(whole) == set(parts), "weight_map"
    assert index["metadata"]["total_size"] == sum(a.nbytes for a in whole.values()), index["metadata"]
    assert all(np.array_equal(parts[k], whole[k]) for k in whole), "values"
    a, b = GPT2LMHeadModel.from_pretrained(out).state_dict(), GPT2LMHeadModel.from_pretrained(split).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "from_pretrained"
    print("export-hf --max-shard-size: %d files, an index of %d tensors (%d bytes), loaded equal" %
          (len(files), len(index["weight_map"]), index["metadata"]["total_size"]))
    return 0


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "make":
        make(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 4)
    elif cmd == "check":
        sys.exit(check(*sys.argv[2:5]))
    elif cmd == "sharded":
        sys.exit(sharded(*sys.argv[2:4]))
    else:
        sys.exit(arrays(*sys.argv[2:4]))
