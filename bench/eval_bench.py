#!/usr/bin/env python3
"""`cllm eval` speed and agreement on a gpt-nano-sized model, beside PyTorch in the same run.

    /usr/bin/python3 bench/eval_bench.py [--model models/gpt-nano.json] [--items 300]
        [--text-bytes 200000] [--stride 0] [--batch 8] [--ckpt RUN]

Sets up in a temporary directory (nothing is downloaded): a 4096-token tokenizer trained on
Debian's fortunes (`cllm tokenizer train`), a cloze benchmark and the held-out rest
(`cllm data make-mc`), and — unless --ckpt names a trained run — a model of the config with
GPT-2's random initialisation (PyTorch, imported with `cllm import`). Then
tools/eval_check.py --bench: `cllm eval` on the last --text-bytes of the held-out text and on
the benchmark, every number recomputed in float64 PyTorch, and a float32 PyTorch peer timed
doing the same work as lm-evaluation-harness's HF backend does it.
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "gpt-nano.json"))
    ap.add_argument("--ckpt", help="a trained run to evaluate instead of a random model")
    ap.add_argument("--items", type=int, default=300)
    ap.add_argument("--text-bytes", type=int, default=200000)
    ap.add_argument("--stride", type=int, default=0)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--cllm", default=os.path.join(ROOT, "build", "cllm"))
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
