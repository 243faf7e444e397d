#!/usr/bin/python3
"""golden_torch.py DIR: the same tiny GPT as zrt's, in PyTorch, from the
initial parameters, batches and settings zrt wrote to DIR; prints both loss
curves and exits 0 if PyTorch's first losses match zrt's within 1e-5 relative.
Run by tests/test_golden_torch (which skips when torch is missing)."""
import json
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F

TOLERANCE = 1e-5


def main(d):
    cfg = json.load(open(d + "/golden.json"))
    L, C, NH, T, V, H, B = (cfg[k] for k in ("layers", "d_model", "heads", "seq_len", "vocab", "hidden", "batch"))
    flat = np.fromfile(d + "/params.bin", dtype=np.float32)
    at = [0]

    def take(*shape):
        n = int(np.prod(shape))
        t = torch.tensor(flat[at[0]:at[0] + n].reshape(shape), requires_grad=True)
        at[0] += n
        return t

    wte, wpe = take(V, C), take(T, C)
    blocks = []
    for _ in range(L):  # zrt's order within a block unit
        blocks.append(dict(ln1w=take(C), ln1b=take(C), qkvw=take(3 * C, C), qkvb=take(3 * C),
                           projw=take(C, C), projb=take(C), ln2w=take(C), ln2b=take(C),
                           fcw=take(H, C), fcb=take(H), fcprojw=take(C, H), fcprojb=take(C)))
    lnfw, lnfb = take(C), take(C)
    assert at[0] == flat.size, (at[0], flat.size)
    params = [wte, wpe] + [p for b in blocks for p in b.values()] + [lnfw, lnfb]

    tokens = np.fromfile(d + "/tokens.bin", dtype=np.int32).reshape(cfg["steps"], 2, B, T)
    hs = C // NH
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))

    def loss_of(x_tokens, y_tokens):
        x = wte[x_tokens] + wpe[:T]
        for b in blocks:
            h = F.layer_norm(x, (C,), b["ln1w"], b["ln1b"], eps=1e-5)
            q, k, v = (h @ b["qkvw"].T + b["qkvb"]).split(C, dim=-1)
            q, k, v = (t.view(B, T, NH, hs).transpose(1, 2) for t in (q, k, v))
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
            att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
            y = (att @ v).transpose(1, 2).reshape(B, T, C)
            x = x + (y @ b["projw"].T + b["projb"])
            h = F.layer_norm(x, (C,), b["ln2w"], b["ln2b"], eps=1e-5)
            h = F.gelu(h @ b["fcw"].T + b["fcb"], approximate="tanh")
            x = x + (h @ b["fcprojw"].T + b["fcprojb"])
        x = F.layer_norm(x, (C,), lnfw, lnfb, eps=1e-5)
        logits = x @ wte.T  # the LM head, tied
        return F.cross_entropy(logits.reshape(-1, V), y_tokens.reshape(-1))

    opt = torch.optim.AdamW(params, lr=cfg["lr"], betas=tuple(cfg["betas"]), eps=cfg["eps"],
                            weight_decay=cfg["weight_decay"])
    ours = []
    for step in range(cfg["steps"]):
        x, y = (torch.tensor(tokens[step, i], dtype=torch.long) for i in (0, 1))
        opt.zero_grad()
        loss = loss_of(x, y)
        loss.backward()
        if cfg["clip"] > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg["clip"])
        opt.step()
        ours.append(loss.item())
    theirs = [float(l) for l in open(d + "/zrt_losses.txt").read().split()]
    worst = 0.0
    for i, (a, b) in enumerate(zip(ours, theirs)):
        rel = abs(a - b) / abs(a)
        worst = max(worst, rel)
        print("step %d: torch %.8f  zrt %.8f  relative %.2e" % (i + 1, a, b, rel))
    print("largest relative difference %.3g (tolerance %g)" % (worst, TOLERANCE))
    return 0 if len(theirs) == len(ours) and worst <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
