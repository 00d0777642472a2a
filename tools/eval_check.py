#!/usr/bin/env python3
"""Check `cllm eval` on any checkpoint against an independent PyTorch computation, and time a
PyTorch peer doing the same evaluation.

    /usr/bin/python3 tools/eval_check.py --ckpt runs/nano --text notes.txt --stride 64 \\
        --mc fortunes-mc.jsonl [--task generic] [--limit 200] [--bench]

Runs `cllm eval --json --log-samples` on the inputs, then recomputes everything with
tools/eval_ref.py in float64:
  - perplexity: the text tokenized by the reference tokenizer (or the shards read here), the
    windows built from their definition, and nats / tokens / bytes compared;
  - multiple choice: every choice of every item scored as lm-evaluation-harness's HFLM scores a
    loglikelihood request, one full forward per choice (no shared context), and compared
    with cllm's log-likelihood, token count and greediness, then the predictions and the
    accuracies. The contexts and continuations are the ones cllm built (its --log-samples):
    how cllm builds them from HellaSwag/ARC/MMLU records is checked against the lm_eval
    package by tests/fixtures/mc; for the generic form they are rebuilt here and compared.
With --bench, a float32 PyTorch peer then does the same work the way lm-evaluation-harness's
HF backend does (perplexity windows in batches; every choice a full sequence, --batch rows at
a time, right-padded) and its speed is printed beside cllm's own (tokens/s, items/s).
Exit status 1 when anything disagrees beyond the tolerance (|d| <= 1e-4 + 1e-5 |ref| on a
log-likelihood or a total; the device computes in float32).
"""
import argparse
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eval_ref  # noqa: E402


def read_shard(path):
    with open(path, "rb") as f:
        raw = f.read()
    magic, version, n = struct.unpack("<3i", raw[:12])
    width = {(20240520, 1): "H", (20240520, 2): "I", (20240801, 7): "I"}[(magic, version)]
    return list(struct.unpack("<%d%s" % (n, width), raw[1024:1024 + n * struct.calcsize(width)]))


def shard_names(d, split):
    """cllm's (and the loader's) rule: *.bin whose stem, split at '_', has a part == split."""
    return sorted(os.path.join(d, f) for f in os.listdir(d)
                  if f.endswith(".bin") and not f.startswith(".") and split in f[:-4].split("_"))


def close(a, b, tol=1e-5, atol=1e-4):
    return abs(a - b) <= atol + tol * abs(b)


def bench_peer(p32, cfg, tok, stream_tokens, T, stride, mc_items, batch):
    """float32 PyTorch, lm-eval's way: returns (tokens/s, items/s)."""
    torch.set_num_threads(os.cpu_count() or 1)
    tps = ips = None
    if stream_tokens is not None:
        t0 = time.perf_counter()
        r = eval_ref.perplexity(p32, cfg, tok, stream_tokens, T=T, stride=stride, batch=batch)
        tps = r["tokens"] / (time.perf_counter() - t0)
    if mc_items:
        t0 = time.perf_counter()
        reqs = []
        for s in mc_items:
            for ch in s["choices"]:
                ctx, cont = eval_ref.encode_pair(tok, s["context"], ch["continuation"])
                reqs.append(((ctx + cont)[-(T + 1):][:-1], cont))
        reqs.sort(key=lambda r: -len(r[0]))  # lm-eval sorts by length, longest first
        for k in range(0, len(reqs), batch):
            chunk = reqs[k:k + batch]
            L = len(chunk[0][0])
            rows = [inp + [0] * (L - len(inp)) for inp, _ in chunk]
            lp = eval_ref.log_probs(p32, cfg, rows)
            for r, (inp, cont) in enumerate(chunk):
                n = len(inp)
                lp[r, n - len(cont):n].gather(1, torch.tensor(cont).unsqueeze(1)).sum().item()
        ips = len(mc_items) / (time.perf_counter() - t0)
    return tps, ips


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--text")
    ap.add_argument("--data")
    ap.add_argument("--split", default="val")
    ap.add_argument("--stride", type=int, default=0)
    ap.add_argument("--mc", action="append", default=[])
    ap.add_argument("--task", action="append", default=[],
                    help="one per --mc, in order (default auto)")
    ap.add_argument("--gen", action="append", default=[])
    ap.add_argument("--max-tokens", type=int, default=0)
    ap.add_argument("--stop", action="append", default=[], help="as cllm takes it (escapes)")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--cllm", default=os.path.join(os.path.dirname(__file__), "..", "build", "cllm"))
    ap.add_argument("--bench", action="store_true", help="also time a float32 PyTorch peer")
    a = ap.parse_args()

    cfg, p, tok, d = eval_ref.load_checkpoint(a.ckpt)
    if tok is None:
        sys.exit("%s has no tokenizer.json" % d)
    T = cfg["n_positions"]
    tmp = tempfile.mkdtemp(prefix="eval_check.")
    samples = os.path.join(tmp, "samples.jsonl")
    cmd = [a.cllm, "eval", "--ckpt", a.ckpt, "--json", "--batch", str(a.batch)]
    if a.text:
        cmd += ["--text", a.text]
    if a.data:
        cmd += ["--data", a.data, "--split", a.split]
    if a.stride:
        cmd += ["--stride", str(a.stride)]
    for k, m in enumerate(a.mc):
        cmd += ["--mc", m] + (["--task", a.task[k]] if k < len(a.task) else [])
    for g in a.gen:
        cmd += ["--gen", g]
    if a.max_tokens:
        cmd += ["--max-tokens", str(a.max_tokens)]
    for st in a.stop:
        cmd += ["--stop", st]
    if a.mc or a.gen:
        cmd += ["--log-samples", samples]
    if a.limit:
        cmd += ["--limit", str(a.limit)]
    t0 = time.perf_counter()
    got = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    print("cllm eval: %.1f s (%s)" % (time.perf_counter() - t0, " ".join(cmd[1:])))
    ok = True

    stream = None
    if a.text or a.data:
        if a.text:
            with open(a.text, "rb") as f:
                stream = tok.encode(f.read().decode("utf-8"))
        else:
            stream = [t for s in shard_names(a.data, a.split) for t in read_shard(s)]
        t0 = time.perf_counter()
        r = eval_ref.perplexity(p, cfg, tok, stream, stride=a.stride or None, batch=a.batch)
        g = got["perplexity"]
        good = (close(g["nats"], r["nats"]) and g["tokens"] == r["tokens"] and
                g["bytes"] == r["bytes"] and g["windows"] == r["windows"])
        ok &= good
        print("perplexity: cllm %.6f nats/token (ppl %.4f, %.5f bits/byte) over %d tokens; "
              "PyTorch float64 %.6f (ppl %.4f, %.5f bits/byte) over %d: relative difference of "
              "the total %.2e, %s  [%.1f s]"
              % (g["loss"], g["perplexity"], g["bits_per_byte"], g["tokens"], r["loss"],
                 r["perplexity"], r["bits_per_byte"] or float("nan"), r["tokens"],
                 abs(g["nats"] - r["nats"]) / abs(r["nats"]), "agree" if good else "DISAGREE",
                 time.perf_counter() - t0))

    items = [json.loads(l) for l in open(samples)] if a.mc or a.gen else []
    for g in a.gen:
        sec = next(n for n, v in got.items() if isinstance(v, dict) and v.get("file") == g)
        mine = [s for s in items if s["file"] == g]
        stops = [st.encode().decode("unicode_escape") for st in a.stop]
        t0 = time.perf_counter()
        differ, ties = 0, 0
        for s in mine:
            text, margin = eval_ref.greedy(p, cfg, tok, s["prompt"], got[sec]["max_tokens"], stops)
            if text != s["output"]:
                if margin <= 1e-3:
                    ties += 1  # float32 may break a near tie the other way
                else:
                    differ += 1
        ok &= differ == 0
        print("%s (%d prompts): greedy continuations differ from PyTorch's on %d (and on %d "
              "near ties); BLEU %.2f, ROUGE-L %.4f %s  [%.1f s]"
              % (sec, len(mine), differ, ties, got[sec]["bleu"], got[sec]["rougeL"],
                 "agree" if differ == 0 else "DISAGREE", time.perf_counter() - t0))
    items = [s for s in items if "choices" in s]
    for k, m in enumerate(a.mc):
        mine = [s for s in items if s["file"] == m]
        sec = next(name for name, v in got.items() if isinstance(v, dict) and v.get("file") == m)
        t0 = time.perf_counter()
        worst, n_tok_bad, greedy_bad, rebuilt_bad = 0.0, 0, 0, 0
        reqs, results = [], []
        recs = [json.loads(l) for l in open(m) if l.strip()] if got[sec]["task"] == "generic" \
            else None
        for s in mine:
            if recs is not None:  # rebuild the generic request from the record itself
                rec = recs[s["line"] - 1]
                ctx, conts = rec["context"], [" " + c for c in rec["choices"]]
                n_sp = len(ctx) - len(ctx.rstrip())
                if n_sp:
                    conts = [ctx[-n_sp:] + c for c in conts]
                    ctx = ctx[:-n_sp]
                if ctx != s["context"] or conts != [c["continuation"] for c in s["choices"]]:
                    rebuilt_bad += 1
            res = []
            for ch in s["choices"]:
                ll, nt, gr = eval_ref.loglikelihood(p, cfg, tok, s["context"], ch["continuation"])
                res.append((ll, nt, gr))
                worst = max(worst, abs(ch["loglik"] - ll) / (1e-4 + 1e-5 * abs(ll)))
                n_tok_bad += ch["tokens"] != nt
                greedy_bad += ch["greedy"] != gr
            reqs.append(([c["text"] for c in s["choices"]], s["gold"]))
            results.append(res)
        metrics, preds = eval_ref.mc_scores(reqs, results)
        pred_bad = sum(pr != s["pred"] for pr, s in zip(preds, mine))
        good = worst <= 1 and not (n_tok_bad or greedy_bad or pred_bad or rebuilt_bad) and all(
            close(got[sec][mm], metrics[mm], 0, 1e-12) for mm in ("acc", "acc_norm", "acc_bytes",
                                                               "acc_token"))
        ok &= good
        maxd = max(abs(c["loglik"] - r[0]) for s, res in zip(mine, results)
                   for c, r in zip(s["choices"], res)) if mine else 0
        print("%s (%s, %d items, %d choices): max |loglik difference| %.2e; tokens differ on %d, "
              "greedy on %d, predictions on %d items%s; acc %.4f/%.4f acc_norm %.4f/%.4f "
              "acc_token %.4f/%.4f (cllm/PyTorch) %s  [%.1f s]"
              % (sec, got[sec]["task"], len(mine), sum(len(s["choices"]) for s in mine), maxd,
                 n_tok_bad, greedy_bad, pred_bad,
                 "; %d generic requests rebuilt differently" % rebuilt_bad if recs else "",
                 got[sec]["acc"], metrics["acc"], got[sec]["acc_norm"], metrics["acc_norm"],
                 got[sec]["acc_token"], metrics["acc_token"], "agree" if good else "DISAGREE",
                 time.perf_counter() - t0))

    if a.bench:
        p32 = {n: t.to(torch.float32) for n, t in p.items()}
        tps, ips = bench_peer(p32, cfg, tok, stream, T, a.stride or None, items, a.batch)
        if tps:
            c = got["perplexity"]["tokens_per_s"]
            print("speed, perplexity: cllm %.0f tokens/s, PyTorch float32 %.0f tokens/s: cllm/torch "
                  "%.2f" % (c, tps, c / tps))
        if ips:
            secs = [v for v in got.values() if isinstance(v, dict) and "items_per_s" in v]
            n = sum(v["n"] for v in secs)
            c = n / sum(v["seconds"] for v in secs)
            print("speed, multiple choice: cllm %.1f items/s, PyTorch float32 (lm-eval's way) "
                  "%.1f items/s: cllm/torch %.2f" % (c, ips, c / ips))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
