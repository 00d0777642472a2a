#!/usr/bin/python3
"""The LSH banding cllm's near-duplicate removal uses, computed independently with numpy, for
tests/test_data_dedup.c: for a Jaccard threshold t and P MinHash permutations, the (bands b,
rows r) with b*r <= P minimizing 0.1 * (area under P(candidate) below t) + 0.9 * (area over it
above t), P(candidate | s) = 1 - (1 - s^r)^b (datasketch's criterion, weighted to recall).

    /usr/bin/python3 tools/lsh_params.py 0.8 128
"""
import sys

import numpy as np


def candidate(s, b, r):
    return 1 - (1 - s**r) ** b


def banding(t, num_perm):
    best = None
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            lo = np.linspace(0, t, 2001)
            hi = np.linspace(t, 1, 2001)
            fp = np.trapz(candidate(lo, b, r), lo)
            fn = np.trapz(1 - candidate(hi, b, r), hi)
            err = 0.1 * fp + 0.9 * fn
            if best is None or err < best[0]:
                best = (err, b, r)
    return best[1], best[2]


if __name__ == "__main__":
    args = sys.argv[1:] or ["0.8", "128"]
    t, p = float(args[0]), int(args[1])
    b, r = banding(t, p)
    print(f"threshold {t} permutations {p}: bands {b} rows {r}")
