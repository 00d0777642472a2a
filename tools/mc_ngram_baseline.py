#!/usr/bin/env python3
"""A character n-gram baseline for a multiple-choice file in the generic form
({"context", "choices", "label"} per line), as written by `cllm data make-mc`.

Trains an interpolated character n-gram model on TRAIN_TEXT (e.g. make-mc's --rest file),
scores every choice as lm-evaluation-harness does (summed log-likelihood of " " + choice
given the context; acc by the sum, acc_norm by the sum over the choice's length in
characters) and prints the accuracies with their standard errors, next to chance and a
model that knows nothing (uniform over bytes). It is the yardstick the README quotes: a
model trained on the corpus should reach it; an untrained one stays at chance.

    python3 tools/mc_ngram_baseline.py TRAIN_TEXT MC.jsonl [--order 7] [--sep %]
"""
import argparse
import collections
import json
import math


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("train")
    ap.add_argument("mc")
    ap.add_argument("--order", type=int, default=7)
    ap.add_argument("--sep", default="%", help="document separator line in TRAIN (default %%)")
    a = ap.parse_args()
    text = open(a.train, encoding="utf-8").read().replace("\n" + a.sep + "\n", "\x00")
    N = a.order
    grams = collections.Counter()
    hist = collections.Counter()
    for n in range(1, N + 1):
        for i in range(len(text) - n + 1):
            g = text[i:i + n]
            grams[g] += 1
            hist[(n, g[:-1])] += 1

    def logp(h, ch):
        p = 1.0 / 256
        for n in range(1, N + 1):
            if n > 1 and len(h) < n - 1:
                break
            ctx = h[len(h) - (n - 1):] if n > 1 else ""
            tot = hist[(n, ctx)]
            if tot:
                lam = tot / (tot + 3.0)
                p = lam * grams[ctx + ch] / tot + (1 - lam) * p
        return math.log(p)

    items = [json.loads(line) for line in open(a.mc, encoding="utf-8") if line.strip()]
    hits = {"acc": [], "acc_norm": [], "uniform": []}
    for it in items:
        ctx = it["context"]
        sums = []
        for ch in it["choices"]:
            s, ll = ctx, 0.0
            for c in " " + ch:
                ll += logp(s, c)
                s += c
            sums.append(ll)
        g = int(it["label"])
        n = len(sums)
        hits["acc"].append(max(range(n), key=lambda i: sums[i]) == g)
        hits["acc_norm"].append(max(range(n), key=lambda i: sums[i] / len(it["choices"][i])) == g)
        uni = [-len((" " + c).encode()) * math.log(256) / len(c) for c in it["choices"]]
        hits["uniform"].append(max(range(n), key=lambda i: uni[i]) == g)
    n = len(items)
    k = len(items[0]["choices"]) if items else 1
    print(f"{n} items, {k} choices (chance {1 / k:.3f}); {N}-gram trained on {len(text)} characters")
    for name, h in hits.items():
        m = sum(h) / n
        se = math.sqrt(sum((x - m) ** 2 for x in h) / (n - 1)) / math.sqrt(n)
        print(f"  {name:9s} {m:.3f} ± {se:.3f}")


if __name__ == "__main__":
    main()
