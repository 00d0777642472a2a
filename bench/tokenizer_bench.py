#!/usr/bin/env python3
"""cllm's tokenizer against its peers, side by side in one run.

    python3 -m venv .venv && .venv/bin/pip install tiktoken tokenizers
    .venv/bin/python bench/tokenizer_bench.py [--reps 3] [--threads 2]

Training (vocab 8192 on the `fortunes` corpus, Debian package fortunes): wall time of
`cllm tokenizer train`, `spm_train --model_type=bpe` (Debian package sentencepiece) and Hugging
Face tokenizers' BpeTrainer (ByteLevel, GPT-2's setup), all on the same number of threads, and
the compression each vocabulary gets on the corpus (bytes per token):
  - "whole text": the corpus encoded as one text (byte-level tokenizers; spm cannot: it
    encodes lines and never newlines);
  - "per line": each line encoded alone, newlines excluded from bytes and tokens — the basis
    spm works on. spm is measured with its default normalization (nmt_nfkc, which collapses
    runs of spaces, so it encodes fewer bytes than it is credited with) and lossless
    (identity, whitespace kept).
Encoding (GPT-2's vocabulary, ../shared/data/gpt2, on the corpus repeated 4 times): MB/s of
cllm (bench_tokenizer: the C API in-process) and tiktoken's gpt2 (built from the same files),
on one thread and on --threads threads (cllm: one text cut at safe places; tiktoken:
encode_ordinary_batch over the fortunes as documents).
Times are the best of --reps runs: the machine is shared, timings are noisy.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))


def best_of(reps, fn):
    best, out = 1e30, None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, **kw)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cllm", default=os.path.join(ROOT, "build", "cllm"))
    ap.add_argument("--bench", default=os.path.join(ROOT, "build", "bench", "bench_tokenizer"))
    ap.add_argument("--gpt2", default=os.path.join(ROOT, "..", "shared", "data", "gpt2"))
    ap.add_argument("--vocab-size", type=int, default=8192)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)  # before tokenizers starts its pool
    import tiktoken
    import tokenizers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from gpt2_tiktoken import gpt2_encoding

    files = sorted(f for f in glob.glob("/usr/share/games/fortunes/*")
                   if not f.endswith((".dat", ".u8")) and os.path.isfile(f))
    tmp = tempfile.mkdtemp(prefix="cllm-tokbench-")
    corpus = os.path.join(tmp, "fortunes.txt")
    with open(corpus, "wb") as out:
        for f in files:
            out.write(open(f, "rb").read())
    text = open(corpus, encoding="utf-8").read()
    nbytes = len(text.encode())
    lines = text.split("\n")
    line_bytes = sum(len(l.encode()) for l in lines)
    lines_jsonl = os.path.join(tmp, "lines.jsonl")
    with open(lines_jsonl, "w", encoding="utf-8") as f:
        for l in lines:
            f.write(json.dumps({"text": l}, ensure_ascii=False) + "\n")
    V, T, R = args.vocab_size, args.threads, args.reps
    print(f"corpus: {len(files)} fortune files, {nbytes} bytes, {len(lines)} lines; vocab {V}, "
          f"{T} threads, best of {R}; tiktoken {tiktoken.__version__}, tokenizers "
          f"{tokenizers.__version__}, {run(['spm_train', '--version']).stdout.decode().strip() or 'spm'}")

    # ---- training
    res = {}
    cj = os.path.join(tmp, "cllm.json")
    t, _ = best_of(R, lambda: run([args.cllm, "tokenizer", "train", "--input", corpus,
                                   "--vocab-size", str(V), "--threads", str(T), "-o", cj, "-q"]))
    out = run([args.cllm, "tokenizer", "info", "-t", cj, "--input", corpus]).stdout.decode()
    whole = int(out.split(" tokens,")[0].split()[-1])
    per_line = sum(len(json.loads(l)) for l in
                   run([args.cllm, "tokenizer", "encode", "-t", cj, "--jsonl", "--input",
                        lines_jsonl]).stdout.decode().splitlines())
    res["cllm"] = (t, whole, per_line)

    for name, extra in [("spm_train (default nmt_nfkc)", []),
                        ("spm_train (identity, lossless)",
                         ["--normalization_rule_name=identity", "--remove_extra_whitespaces=false"])]:
        prefix = os.path.join(tmp, "spm" + str(len(res)))
        t, _ = best_of(R, lambda: run(["spm_train", f"--input={corpus}", f"--model_prefix={prefix}",
                                       f"--vocab_size={V}", "--model_type=bpe",
                                       f"--num_threads={T}", "--minloglevel=2"] + extra))
        with open(corpus, "rb") as f:
            ids = run(["spm_encode", f"--model={prefix}.model", "--output_format=id"],
                      stdin=f).stdout.decode().split()
        res[name] = (t, None, len(ids))

    def hf_train():
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tr = trainers.BpeTrainer(vocab_size=V, min_frequency=2, show_progress=False,
                                 special_tokens=["<|endoftext|>"],
                                 initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train([corpus], tr)
        return tok
    t, hf = best_of(R, hf_train)
    whole = len(hf.encode(text).ids)
    per_line = sum(len(e.ids) for e in hf.encode_batch(lines))
    res["HF tokenizers BpeTrainer"] = (t, whole, per_line)

    c = res["cllm"][0]
    print(f"\ntraining, vocab {V}, {T} threads   time (s)   vs cllm   bytes/token whole text   "
          f"bytes/token per line")
    for k, (t, whole, per_line) in res.items():
        w = f"{nbytes / whole:.3f}" if whole else "(n/a)"
        print(f"  {k:32s} {t:8.3f}   {t / c:6.1f}x   {w:>22s}   {line_bytes / per_line:20.3f}")

    # same footing as spm's default: both trained and measured on spm's normalized corpus
    norm = os.path.join(tmp, "fortunes.norm.txt")
    with open(corpus, "rb") as f, open(norm, "wb") as o:
        subprocess.run(["spm_normalize", f"--model={os.path.join(tmp, 'spm1')}.model"], stdin=f,
                       stdout=o, stderr=subprocess.DEVNULL, check=True)
    nlines = open(norm, encoding="utf-8").read().split("\n")
    nbytes_lines = sum(len(l.encode()) for l in nlines)
    njsonl = os.path.join(tmp, "nlines.jsonl")
    with open(njsonl, "w", encoding="utf-8") as f:
        for l in nlines:
            f.write(json.dumps({"text": l}, ensure_ascii=False) + "\n")
    nj = os.path.join(tmp, "cllm-norm.json")
    run([args.cllm, "tokenizer", "train", "--input", norm, "--vocab-size", str(V), "--threads",
         str(T), "-o", nj, "-q"])
    c_norm = sum(len(json.loads(l)) for l in run(
        [args.cllm, "tokenizer", "encode", "-t", nj, "--jsonl", "--input", njsonl]).stdout.decode().splitlines())
    prefix = os.path.join(tmp, "spm-norm")
    run(["spm_train", f"--input={norm}", f"--model_prefix={prefix}", f"--vocab_size={V}",
         "--model_type=bpe", f"--num_threads={T}", "--minloglevel=2"])
    with open(norm, "rb") as f:
        s_norm = len(run(["spm_encode", f"--model={prefix}.model", "--output_format=id"],
                         stdin=f).stdout.decode().split())
    print(f"\non spm's normalized corpus ({nbytes_lines} bytes in lines), bytes/token per line: "
          f"cllm {nbytes_lines / c_norm:.3f}, spm_train {nbytes_lines / s_norm:.3f} "
          f"(cllm/spm {s_norm / c_norm:.3f})")

    # ---- encoding
    if not os.path.isfile(os.path.join(args.gpt2, "encoder.json")):
        print("\nencoding: skipped (no ../shared/data/gpt2)")
        return 0
    big = os.path.join(tmp, "fortunes4.txt")
    with open(big, "w", encoding="utf-8") as f:
        f.write(text * 4)
    btext = text * 4
    mb = len(btext.encode()) / 1e6
    out = run([args.bench, "encode", args.gpt2, big, str(T), str(R)]).stdout.decode()
    c1 = float(out.split("encode 1 thread:")[1].split("MB/s")[0])
    cn = float(out.split(f"encode {T} threads:")[1].split("MB/s")[0])
    enc = gpt2_encoding(args.gpt2)
    t1, ids = best_of(R, lambda: enc.encode_ordinary(btext))
    docs = [d for d in btext.split("\n%\n")]
    tn, _ = best_of(R, lambda: enc.encode_ordinary_batch(docs, num_threads=T))
    k1, kn = mb / t1, mb / tn
    print(f"\nencoding with GPT-2's vocabulary, {mb:.1f} MB ({len(ids)} tokens)   MB/s")
    print(f"  cllm     1 thread  {c1:8.2f}   {c1 / k1:5.1f}x tiktoken")
    print(f"  tiktoken 1 thread  {k1:8.2f}")
    print(f"  cllm     {T} threads {cn:8.2f}   {cn / kn:5.1f}x tiktoken")
    print(f"  tiktoken {T} threads {kn:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
