#!/usr/bin/python3
"""Recompute a `cllm train` checkpoint's validation loss in PyTorch and compare it with the
val_loss cllm logged for that step in RUN/metrics.jsonl.

    /usr/bin/python3 tools/check_train_val.py RUN [--step N] [--data DIR] [--tol 1e-4]

The checkpoint (RUN/latest, or RUN/step_<N>) is loaded into tools/gpt2_ref.py's GPT-2 and,
when the `transformers` package is importable, also with GPT2LMHeadModel.from_pretrained. The
validation batches are rebuilt from the val shards as cllm's loader and `cllm train` make
them: the shards whose name, split at '_', has a part "val" (name order), each cut into
windows of T+1 tokens starting T apart (none crossing a shard's end), batches of
B = min(--batch, windows) windows in order, the first min(eval_batches, windows // B) of
them; the loss is the mean over every target of those batches. T, --batch, eval_batches and
the data directory come from the checkpoint's state.json. Exit status 0 when every loss
agrees with cllm's within --tol (absolute, in nats), 1 otherwise.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt2_ref  # noqa: E402


def read_shard(path):
    """Tokens of one llm.c-format shard (cllm data prepare's or llm.c's)."""
    head = np.fromfile(path, dtype="<i4", count=256)
    magic, version, n = int(head[0]), int(head[1]), int(head[2])
    if magic == 20240520 and version in (1, 2):
        dt = "<u2" if version == 1 else "<u4"
    elif magic == 20240801 and version == 7:
        dt = "<u4"
    else:
        raise SystemExit("%s: not a token shard (magic %d, version %d)" % (path, magic, version))
    tok = np.fromfile(path, dtype=dt, offset=1024)
    if len(tok) != n:
        raise SystemExit("%s: header says %d tokens, file holds %d" % (path, n, len(tok)))
    return tok.astype(np.int64)


def val_windows(data, T):
    names = sorted(f for f in os.listdir(data) if f.endswith(".bin") and not f.startswith(".")
                   and "val" in f[:-4].split("_"))
    if not names:
        raise SystemExit("%s: no val shards" % data)
    wins = []
    for name in names:
        tok = read_shard(os.path.join(data, name))
        for w in range((len(tok) - 1) // T if len(tok) > T else 0):
            wins.append(tok[w * T:w * T + T + 1])
    return names, wins


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run")
    ap.add_argument("--step", type=int, help="checkpoint step (default: RUN/latest)")
    ap.add_argument("--data", help="data directory (default: the one state.json names)")
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    if args.step is not None:
        ck = os.path.join(args.run, "step_%08d" % args.step)
    else:
        with open(os.path.join(args.run, "latest")) as f:
            ck = os.path.join(args.run, f.read().strip())
    with open(os.path.join(ck, "state.json")) as f:
        state = json.load(f)
    step, o = state["step"], state["options"]
    T, B, nb = o["seq"], o["batch"], o["eval_batches"]
    data = args.data or state["args"]["data"]
    if not os.path.isdir(data):
        raise SystemExit("%s: data directory %s not found (pass --data)" % (ck, data))
    logged = None
    with open(os.path.join(args.run, "metrics.jsonl")) as f:
        for line in f:
            m = json.loads(line)
            if m.get("step") == step and "val_loss" in m:
                logged = m["val_loss"]
    if logged is None:
        raise SystemExit("%s: metrics.jsonl has no val_loss at step %d" % (args.run, step))

    names, wins = val_windows(data, T)
    Bv = min(B, len(wins))
    n = min(nb, len(wins) // Bv)
    x = np.stack(wins[:n * Bv])
    idx, tgt = torch.from_numpy(x[:, :-1]), torch.from_numpy(x[:, 1:])

    with open(os.path.join(ck, "config.json")) as f:
        cfg = gpt2_ref.config_from_json(f.read())
    tensors, _ = gpt2_ref.load_safetensors(os.path.join(ck, "model.safetensors"))
    p = {(k[len("transformer."):] if k.startswith("transformer.") else k): torch.from_numpy(v)
         for k, v in tensors.items()}
    print("%s: step %d, %d layers, n_embd %d, vocab %d; val: %s, %d batches of %d x %d = %d "
          "targets" % (ck, step, cfg["n_layer"], cfg["n_embd"], cfg["vocab_size"],
                       ", ".join(names), n, Bv, T, n * Bv * T))
    ok = True
    results = []
    with torch.no_grad():
        for dtype in (torch.float32, torch.float64):
            q = {k: v.to(dtype) for k, v in p.items()}
            losses = [gpt2_ref.loss_fn(gpt2_ref.forward(q, cfg, idx[i * Bv:(i + 1) * Bv]),
                                       tgt[i * Bv:(i + 1) * Bv]).item() for i in range(n)]
            results.append(("tools/gpt2_ref.py, %s" % str(dtype).replace("torch.", ""),
                            float(np.mean(losses))))
        try:
            import transformers  # noqa: F401
            model = transformers.GPT2LMHeadModel.from_pretrained(ck).eval()
            losses = []
            for i in range(n):
                out = model(idx[i * Bv:(i + 1) * Bv], labels=None)
                lg = out.logits[:, :, :cfg["vocab_size"]]
                losses.append(gpt2_ref.loss_fn(lg, tgt[i * Bv:(i + 1) * Bv]).item())
            results.append(("transformers %s GPT2LMHeadModel" % transformers.__version__,
                            float(np.mean(losses))))
        except ImportError:
            print("(transformers is not importable: checked with tools/gpt2_ref.py only)")
    print("%-44s %.6f" % ("cllm train (metrics.jsonl val_loss)", logged))
    for what, loss in results:
        good = abs(loss - logged) <= args.tol
        ok &= good
        print("%-44s %.6f  |diff| %.2e  %s" % (what, loss, abs(loss - logged),
                                               "ok" if good else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
