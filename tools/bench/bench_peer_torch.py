#!/usr/bin/python3
"""bench_peer_torch.py WORLD STEPS MODEL LAYERS D_MODEL HEADS KV_HEADS HIDDEN VOCAB SEQ_LEN MICRO:
the peer row of `zrt bench train --peer torch`: the same transformer in
PyTorch -- MODEL gpt: the GPT written out below (tied head, GELU MLP); llama:
transformers' LlamaForCausalLM (RMSNorm, RoPE, grouped-query attention,
SwiGLU, untied head) --, DDP over gloo on WORLD forked CPU processes with one
thread each, AdamW; prints one line `torch VERSION tokens_per_s X step_ms Y`
(median of STEPS steps after 3 warm-up steps, all ranks' tokens). Exit 77
(skip) when torch (or, for llama, transformers) is missing."""
import math
import os
import sys
import time

try:
    import torch
    import torch.distributed as dist
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as e:
    print("torch is not installed (%s)" % e)
    sys.exit(77)

L, C, NH, NKV, T, V, H, B = 4, 256, 8, 8, 64, 256, 1024, 8
MODEL = "gpt"


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.qkv, self.proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.fc, self.fcproj = nn.Linear(C, H), nn.Linear(H, C)
        self.mask = torch.tril(torch.ones(T, T, dtype=torch.bool))  # not a buffer: gloo cannot broadcast bool

    def forward(self, x):
        hs = C // NH
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=-1)
        q, k, v = (t.view(B, T, NH, hs).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        att = att.masked_fill(~self.mask, float("-inf")).softmax(dim=-1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(B, T, C))
        return x + self.fcproj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(T, C)
        self.blocks = nn.ModuleList(Block() for _ in range(L))
        self.lnf = nn.LayerNorm(C)

    def forward(self, tokens, targets):
        x = self.wte(tokens) + self.wpe(torch.arange(T))
        for b in self.blocks:
            x = b(x)
        logits = self.lnf(x) @ self.wte.weight.T  # tied head
        return F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))


class Llama(nn.Module):
    """transformers' LlamaForCausalLM of the same shape; the loss as zrt's (mean over the batch)."""

    def __init__(self):
        super().__init__()
        from transformers import LlamaConfig, LlamaForCausalLM
        cfg = LlamaConfig(vocab_size=V, hidden_size=C, intermediate_size=H, num_hidden_layers=L,
                          num_attention_heads=NH, num_key_value_heads=NKV, max_position_embeddings=T,
                          tie_word_embeddings=False, rms_norm_eps=1e-6)
        self.net = LlamaForCausalLM(cfg)

    def forward(self, tokens, targets):
        logits = self.net(input_ids=tokens).logits
        return F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))


def rank_main(rank, world, steps, port, out):
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(1)
    net = GPT() if MODEL == "gpt" else Llama()
    for p in net.parameters():  # GPT-2's init, as zrt's
        if p.dim() > 1:
            nn.init.normal_(p, std=0.02)
    model = nn.parallel.DistributedDataParallel(net)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(rank)
    times = []
    for i in range(steps + 3):
        data = torch.randint(0, V, (B, T + 1), generator=g)
        dist.barrier()
        t = time.perf_counter()
        loss = model(data[:, :-1], data[:, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 3:
            times.append(time.perf_counter() - t)
    if rank == 0:
        median = sorted(times)[len(times) // 2]
        out.put((median, float(loss)))
    dist.destroy_process_group()


def main(world, steps):
    import socket
    import torch.multiprocessing as mp
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=rank_main, args=(r, world, steps, port, out)) for r in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(600)
    if any(p.exitcode != 0 for p in procs):
        print("a torch rank failed: exit codes %s" % [p.exitcode for p in procs])
        return 1
    median, loss = out.get(timeout=10)
    print("torch %s tokens_per_s %.2f step_ms %.3f loss %.4f" % (torch.__version__, world * B * T / median,
                                                              median * 1e3, loss))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 12:
        print(__doc__)
        sys.exit(2)
    MODEL = sys.argv[3]
    L, C, NH, NKV, H, V, T, B = (int(a) for a in sys.argv[4:12])
    if MODEL == "llama":
        try:
            import transformers  # noqa: F401
        except ImportError as e:
            print("transformers is not installed (%s)" % e)
            sys.exit(77)
    sys.exit(main(int(sys.argv[1]), int(sys.argv[2])))
