# sample_warpers.py: the reference for test_sample_filters -- Hugging Face's
# own TemperatureLogitsWarper, TopKLogitsWarper and TopPLogitsWarper (in the
# order generate applies them) on fixed random logits. One case per line:
#   TEMPERATURE TOP_K TOP_P N | N logits (%.9g of fp32) | the ids kept
# Ties are common in the top-k cases (logits on a coarse grid); top-p cases
# have distinct logits and no cumulative probability within 1e-5 of the
# threshold, where fp32 rounding order could decide either way.
# Exit 77 with the reason when transformers cannot be imported.
import sys

try:
    import torch
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper
except Exception as e:  # noqa: BLE001 -- any import failure is a skip
    print("sample_warpers.py: no transformers (%s)" % e)
    sys.exit(77)


def near_threshold(logits, p):
    s, _ = torch.sort(logits, descending=False)
    cum = s.softmax(-1).cumsum(-1)
    return bool(((cum - (1 - p)).abs() < 1e-5).any())


def main():
    g = torch.Generator().manual_seed(1234)
    cases = 0
    while cases < 300:
        n = [5, 17, 64, 1000][cases % 4]
        t = [1.0, 0.5, 1.7, 0.8][(cases // 4) % 4]
        k = [0, 1, 3, 10, 2000][(cases // 16) % 5]
        p = [1.0, 0.9, 0.5, 0.1, 0.97][(cases // 3) % 5]
        if k == 0 and p == 1.0:
            p = 0.6
        x = torch.randn(1, n, generator=g) * 3
        if p == 1.0:
            x = torch.round(x * 2) / 2  # ties
        scores = x.clone()
        if t != 1.0:
            scores = TemperatureLogitsWarper(t)(None, scores)
        if k:
            scores = TopKLogitsWarper(k)(None, scores)
        if p < 1.0:
            if near_threshold(scores, p) or len(set(x[0].tolist())) < n:
                continue
            scores = TopPLogitsWarper(p)(None, scores)
        kept = torch.nonzero(torch.isfinite(scores[0])).flatten().tolist()
        print("%r %d %r %d | %s | %s" % (t, k, p, n, " ".join("%.9g" % v for v in x[0].tolist()),
                                         " ".join(map(str, kept))))
        cases += 1


main()
