"""hf_llama.py: transformers' side of the Llama family's golden tests.

  rope T HS THETA [FACTOR LOW HIGH ORIGINAL] OUT
      LlamaRotaryEmbedding's cos and sin tables (T x HS/2 each, fp32, cos
      then sin) into OUT; with FACTOR, Llama 3's rope_scaling.

Why this file: zrt computes RoPE, RMSNorm, SwiGLU and grouped-query
attention itself; these outputs are what transformers computes for the same
weights, so a test compares the two. Run with /usr/bin/python3 (torch,
transformers). transformers 4.36 (the version the project pins for torch
1.13) predates Llama 3's rope_scaling and Qwen2: llama3_inv_freq is
transformers' _compute_llama3_parameters (4.43+) line for line, set into
4.36's rotary modules.
"""
import math
import sys

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


COMMANDS = {"rope": rope}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](sys.argv[2:])
