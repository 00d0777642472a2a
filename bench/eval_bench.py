#!/usr/bin/env python3
"""`cllm eval` speed and agreement on a gpt-nano-sized model, beside PyTorch in the same run.

    /usr/bin/python3 bench/eval_bench.py [--model models/gpt-nano.json] [--items 300]
        [--text-bytes 200000] [--stride 0] [--batch 8] [--ckpt RUN] [--train-steps N]

Sets up in a temporary directory (nothing is downloaded): a 4096-token tokenizer trained on
Debian's fortunes (`cllm tokenizer train`), a cloze benchmark and the held-out rest
(`cllm data make-mc`), and — unless --ckpt names a trained run — a model of the config with
GPT-2's random initialisation (PyTorch, imported with `cllm import`). Then
tools/eval_check.py --bench: `cllm eval` on the last --text-bytes of the held-out text and on
the benchmark, every number recomputed in float64 PyTorch, and a float32 PyTorch peer timed
doing the same work as lm-evaluation-harness's HF backend does it.

--train-steps N also trains a copy of the random model for N AdamW steps in PyTorch (the
config's "training" batch, sequence and learning rate, on the held-out rest, which shares no
document with the benchmark) and prints both models' multiple-choice accuracies: the
benchmark should separate them (a trained model above chance, a random one at it).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "tools"))
import gpt2_ref  # noqa: E402

FORTUNES = "/usr/share/games/fortunes"


def run(*cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def train(cfg, p, ids, steps, tr):
    """AdamW on random windows (the config's training batch, sequence, lr), float32."""
    B, T, lr = tr.get("batch", 8), tr.get("seq", 128), tr.get("lr", 3e-3)
    g = torch.Generator().manual_seed(1)
    data = torch.tensor(ids, dtype=torch.long)
    q = {n: t.clone().requires_grad_(True) for n, t in p.items()}
    opt = torch.optim.AdamW(list(q.values()), lr=lr, weight_decay=tr.get("weight_decay", 0.1),
                            betas=(0.9, 0.95))
    for step in range(steps):
        s = torch.randint(0, len(ids) - T - 1, (B,), generator=g)
        x = torch.stack([data[i:i + T] for i in s])
        y = torch.stack([data[i + 1:i + T + 1] for i in s])
        loss = gpt2_ref.loss_fn(gpt2_ref.forward(q, cfg, x), y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(q.values()), 1.0)
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            print("train step %d: loss %.3f" % (step, loss.item()), flush=True)
    return {n: t.detach() for n, t in q.items()}


def separation(a, cfg, p, tok, rest, mc, random_ckpt, tmp):
    """acc/acc_norm of the random model and of a PyTorch-trained copy on the benchmark."""
    out = subprocess.run([a.cllm, "tokenizer", "encode", "-t", tok, "--input", rest],
                         check=True, capture_output=True, text=True).stdout
    ids = [int(x) for x in out.split()]
    with open(a.model) as f:
        tr = json.load(f).get("training", {})
    q = train(cfg, p, ids, a.train_steps, tr)
    hf = os.path.join(tmp, "hf_trained")
    os.makedirs(hf)
    gpt2_ref.save_safetensors(os.path.join(hf, "model.safetensors"),
                              {"transformer." + n: t for n, t in q.items()},
                              metadata={"format": "pt"})
    with open(os.path.join(hf, "config.json"), "w") as f:
        f.write(gpt2_ref.config_to_json(cfg))
    trained = os.path.join(tmp, "run_trained")
    run(a.cllm, "import", "--from", hf, "--out", trained, "--tokenizer", tok)
    for name, ck in (("random", random_ckpt), ("trained %d steps" % a.train_steps, trained)):
        r = json.loads(subprocess.run([a.cllm, "eval", "--ckpt", ck, "--mc", mc, "--json"],
                                      check=True, capture_output=True, text=True).stdout)["mc"]
        print("make-mc, %s model: acc %.3f +- %.3f, acc_norm %.3f +- %.3f (chance 0.25, %d items)"
              % (name, r["acc"], r["acc_stderr"], r["acc_norm"], r["acc_norm_stderr"], r["n"]),
              flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "gpt-nano.json"))
    ap.add_argument("--ckpt", help="a trained run to evaluate instead of a random model")
    ap.add_argument("--items", type=int, default=300)
    ap.add_argument("--text-bytes", type=int, default=200000)
    ap.add_argument("--stride", type=int, default=0)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--cllm", default=os.path.join(ROOT, "build", "cllm"))
    ap.add_argument("--train-steps", type=int, default=0)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="eval_bench.")
    tok = os.path.join(tmp, "tok.json")
    mc, rest = os.path.join(tmp, "mc.jsonl"), os.path.join(tmp, "rest.txt")
    run(a.cllm, "data", "make-mc", "--input", FORTUNES, "--doc-separator", "%", "--n",
        str(a.items), "--out", mc, "--rest", rest)
    with open(rest, "rb") as f:
        data = f.read()
    text = os.path.join(tmp, "text.txt")
    with open(text, "wb") as f:
        f.write(data[-a.text_bytes:].decode("utf-8", "ignore").encode("utf-8"))
    ckpt = a.ckpt
    if not ckpt:
        files = sorted(os.path.join(FORTUNES, f) for f in os.listdir(FORTUNES)
                       if os.path.isfile(os.path.join(FORTUNES, f)) and "." not in f)
        run(a.cllm, "tokenizer", "train", "--input", *files, "--vocab-size", "4096", "-o", tok)
        with open(a.model) as f:
            cfg = gpt2_ref.config_from_json(f.read())
        p = gpt2_ref.gpt2_init(cfg, torch.Generator().manual_seed(1337))
        hf = os.path.join(tmp, "hf")
        os.makedirs(hf)
        gpt2_ref.save_safetensors(os.path.join(hf, "model.safetensors"),
                                  {"transformer." + n: t for n, t in p.items()},
                                  metadata={"format": "pt"})
        with open(os.path.join(hf, "config.json"), "w") as f:
            f.write(gpt2_ref.config_to_json(cfg))
        ckpt = os.path.join(tmp, "run")
        run(a.cllm, "import", "--from", hf, "--out", ckpt, "--tokenizer", tok)
        if a.train_steps:
            separation(a, cfg, p, tok, rest, mc, ckpt, tmp)
    print("model %s, %s; %d items, %d bytes of held-out text (in %s)"
          % (a.model if not a.ckpt else a.ckpt, "random init" if not a.ckpt else "trained",
             a.items, a.text_bytes, tmp))
    sys.stdout.flush()
    cmd = [sys.executable, os.path.join(ROOT, "tools", "eval_check.py"), "--ckpt", ckpt,
           "--text", text, "--mc", mc, "--task", "generic", "--batch", str(a.batch), "--bench",
           "--cllm", a.cllm]
    if a.stride:
        cmd += ["--stride", str(a.stride)]
    sys.exit(subprocess.run(cmd).returncode)


if __name__ == "__main__":
    main()
