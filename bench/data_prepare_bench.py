#!/usr/bin/env python3
"""`cllm data prepare` against a Python pipeline doing the same work, in one run.

    python3 -m venv .venv && .venv/bin/pip install datasketch tiktoken numpy
    .venv/bin/python bench/data_prepare_bench.py [--reps 3] [--threads 2] [--corpus DIR]

Both read the fortunes corpus (Debian package fortunes: '%'-separated text files; the .dat
indexes and the .u8 links skipped), clean it (NFC, CR LF, control characters, trailing
spaces, blank-line runs), apply the same rules (letters < 0.5 of non-space characters, > 0.3
repeated lines, a word > 1000 characters), remove exact duplicates (content hash) and near
duplicates (MinHash, 128 permutations over 5-word shingles, LSH at Jaccard 0.8: datasketch's
MinHashLSH with the same 0.1/0.9 weighting, confirmed on the signature), split by a hash of
the text, tokenize with GPT-2's vocabulary (../shared/data/gpt2; the peer uses tiktoken built
from the same files, encode_ordinary_batch on --threads threads) and write llm.c shards with
numpy exactly as llm.c's data scripts do. Times are wall time of the whole run including
loading the tokenizer (the peer's Python start-up and imports excluded), best of --reps: the
machine is shared, timings are noisy. Also prints what each removed and how far the two
near-duplicate verdicts agree (they use different hash functions, so borderline pairs near
the threshold may differ).
"""
import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import unicodedata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))


def read_corpus(root):
    """(source, text) in name order, as cllm's reader yields them."""
    docs, seen = [], set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(f for f in filenames if not f.startswith(".")):
            path = os.path.join(dirpath, name)
            st = os.stat(path)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            with open(path, "rb") as f:
                data = f.read()
            if b"\0" in data[:65536]:
                continue
            lines = data.decode("utf-8", "replace").splitlines(keepends=True)
            cur, start = [], 1
            for i, line in enumerate(lines, 1):
                if line.rstrip("\r\n") == "%":
                    docs.append((f"{path}:{start}", "".join(cur)))
                    cur, start = [], i + 1
                else:
                    cur.append(line)
            if cur and "".join(cur):
                docs.append((f"{path}:{start}", "".join(cur)))
    return [(s, t[:-1] if t.endswith("\n") else t) for s, t in docs]


CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ufeff]")
BLANKS = re.compile(r"\n{3,}")


def clean(text):
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = CONTROL.sub("", text)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = BLANKS.sub("\n\n", text).strip("\n")
    return unicodedata.normalize("NFC", text)


def rule(text):
    nonspace = [c for c in text if not c.isspace()]
    if not nonspace:
        return "empty"
    if sum(c.isalpha() for c in nonspace) < 0.5 * len(nonspace):
        return "low_alpha"
    lines = [l.strip() for l in text.split("\n") if l.strip()]
    if lines and len(lines) - len(set(lines)) > 0.3 * len(lines):
        return "repeated_lines"
    if max(len(w) for w in text.split()) > 1000:
        return "long_word"
    return None


WORD = re.compile(r"[^\W_]+")


def shingles(text, n=5):
    words = WORD.findall(text.lower())
    if len(words) < n:
        return [" ".join(words)] if words else []
    return [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]


def python_pipeline(corpus, out, enc, threads, seed=1337, val_fraction=0.005):
    import numpy as np
    from datasketch import MinHash, MinHashLSH

    t0 = time.perf_counter()
    eot = enc.eot_token
    docs = read_corpus(corpus)
    lsh = MinHashLSH(threshold=0.8, num_perm=128, weights=(0.1, 0.9))
    sigs, hashes, kept, removed = {}, set(), [], {}
    for i, (src, raw) in enumerate(docs):
        text = clean(raw)
        why = rule(text)
        if why is None:
            h = hashlib.blake2b(text.encode()).digest()
            if h in hashes:
                why = "exact_dup"
            else:
                sh = shingles(text)
                if sh:
                    m = MinHash(num_perm=128, seed=seed)
                    m.update_batch([s.encode() for s in sh])
                    if any(m.jaccard(sigs[k]) >= 0.8 for k in lsh.query(m)):
                        why = "near_dup"
                    else:
                        lsh.insert(i, m)
                        sigs[i] = m
                hashes.add(h)
        if why:
            removed.setdefault(why, set()).add(src)
        else:
            kept.append(text)
    split_key = seed.to_bytes(8, "little")
    is_val = [int.from_bytes(hashlib.blake2b(t.encode(), key=split_key, digest_size=8).digest(),
                             "little") < val_fraction * 2**64 for t in kept]
    toks = enc.encode_ordinary_batch(kept, num_threads=threads)
    for split, want in (("train", False), ("val", True)):
        ids = [x for t, v in zip(toks, is_val) if v == want for x in t + [eot]]
        header = np.zeros(256, dtype=np.int32)
        header[0], header[1], header[2] = 20240520, 1, len(ids)
        with open(os.path.join(out, f"{split}_000.bin"), "wb") as f:
            f.write(header.tobytes())
            f.write(np.array(ids, dtype=np.uint16).tobytes())
    return time.perf_counter() - t0, removed, sum(len(t) + 1 for t in toks)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--corpus", default="/usr/share/games/fortunes")
    ap.add_argument("--gpt2", default=os.path.join(ROOT, "..", "shared", "data", "gpt2"))
    ap.add_argument("--cllm", default=os.path.join(ROOT, "build", "cllm"))
    a = ap.parse_args()
    from gpt2_tiktoken import gpt2_encoding

    mb = sum(len(t.encode()) for _, t in read_corpus(a.corpus)) / 1e6
    tmp = tempfile.mkdtemp(prefix="cllm-data-bench-")
    out_c, out_p = os.path.join(tmp, "cllm"), os.path.join(tmp, "peer")
    os.makedirs(out_p)
    cmd = [a.cllm, "data", "prepare", a.corpus, "--doc-separator", "%", "--tokenizer", a.gpt2,
           "--out", out_c, "--threads", str(a.threads), "--force", "-q"]
    tc, tp = 1e30, 1e30
    for _ in range(a.reps):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        tc = min(tc, time.perf_counter() - t0)
        t0 = time.perf_counter()
        enc = gpt2_encoding(a.gpt2)
        t, removed_p, tokens_p = python_pipeline(a.corpus, out_p, enc, a.threads)
        tp = min(tp, time.perf_counter() - t0)
    with open(os.path.join(out_c, "stats.json")) as f:
        stats = json.load(f)
    removed_c = {}
    with open(os.path.join(out_c, "removed.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            removed_c.setdefault(r["rule"], set()).add(r["source"])
    tokens_c = stats["splits"]["train"]["tokens"] + stats["splits"]["val"]["tokens"]
    print(f"fortunes: {stats['documents_in']} documents, {mb:.2f} MB of text; {a.threads} "
          f"threads, best of {a.reps}")
    print(f"  cllm data prepare     {tc:6.2f} s  {mb / tc:6.2f} MB/s  {tp / tc:5.1f}x the peer")
    print(f"  Python (datasketch,   {tp:6.2f} s  {mb / tp:6.2f} MB/s")
    print(f"    tiktoken, numpy)")
    phases = stats["seconds_by_phase"]
    print("  cllm phases: " + ", ".join(f"{k} {v:.2f} s" for k, v in phases.items()))
    print(f"  tokens: cllm {tokens_c}, peer {tokens_p}")
    print(f"  {'removed':16s} {'cllm':>6s} {'peer':>6s} {'both':>6s}")
    for r in ["empty", "low_alpha", "repeated_lines", "long_word", "exact_dup", "near_dup"]:
        c, p = removed_c.get(r, set()), removed_p.get(r, set())
        print(f"  {r:16s} {len(c):6d} {len(p):6d} {len(c & p):6d}")


if __name__ == "__main__":
    main()
