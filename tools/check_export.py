#!/usr/bin/python3
"""Check a model directory written by `cllm export` (or any Hugging Face GPT-2 directory) in
PyTorch: load it, compute logits, and compare them with a reference fixture's.

    /usr/bin/python3 tools/check_export.py DIR [--fixture tests/fixtures/gpt_tiny.safetensors]
                                               [--atol 1e-5] [--rtol 1e-4]

DIR holds model.safetensors + config.json. The weights are loaded into tools/gpt2_ref.py's
minimal GPT-2 (numerically identical to transformers.GPT2LMHeadModel) and, when the
`transformers` package is importable, also with GPT2LMHeadModel.from_pretrained(DIR): the
second proves that Hugging Face itself accepts the directory.

With --fixture, the fixture's `inputs` are run and the logits compared with its `logits`
(same tolerance rule as cllm's tests: |d| <= atol + rtol * |ref|). When config.json says
the weights are float16 or bfloat16, the reference logits are recomputed from the fixture's
weights rounded to that precision, so the tolerance stays the float32 one. Without
--fixture, the logits of a fixed random batch are printed (a smoke test).
Exit status: 0 if every comparison holds, 1 otherwise.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt2_ref  # noqa: E402


def round_to(a, torch_dtype):
    """Round float32 values to float16 / bfloat16 (nearest even) and back."""
    if torch_dtype == "float16":
        return a.astype(np.float16).astype(np.float32)
    if torch_dtype == "bfloat16":
        return torch.from_numpy(a).to(torch.bfloat16).to(torch.float32).numpy()
    return a


def load_dir(d):
    with open(os.path.join(d, "config.json")) as f:
        text = f.read()
    cfg = gpt2_ref.config_from_json(text)
    tensors, meta = gpt2_ref.load_safetensors(os.path.join(d, "model.safetensors"))
    if meta.get("format") != "pt":
        raise SystemExit("%s: metadata \"format\" is %r; transformers requires \"pt\""
                         % (d, meta.get("format")))
    params = {}
    for name, a in tensors.items():
        n = name[len("transformer."):] if name.startswith("transformer.") else name
        params[n] = torch.from_numpy(a.astype(np.float32))
    want = gpt2_ref.param_shapes(cfg)
    for n, shape in want.items():
        if n not in params or tuple(params[n].shape) != shape:
            raise SystemExit("%s: tensor %s missing or not %s" % (d, n, shape))
    return cfg, params, json.loads(text).get("torch_dtype", "float32")


def compare(what, got, ref, atol, rtol):
    d = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    bound = atol + rtol * np.abs(ref.astype(np.float64))
    ok = bool(np.all(d <= bound))
    print("%-44s max |diff| %.3g (max |ref| %.3g): %s"
          % (what, d.max(), np.abs(ref).max(), "ok" if ok else "FAIL"))
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--fixture")
    ap.add_argument("--atol", type=float, default=1e-5)
    ap.add_argument("--rtol", type=float, default=1e-4)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg, params, torch_dtype = load_dir(args.dir)
    print("%s: GPT-2 with %d layers, n_embd %d, %d heads, vocab %d, context %d, stored as %s"
          % (args.dir, cfg["n_layer"], cfg["n_embd"], cfg["n_head"], cfg["vocab_size"],
             cfg["n_positions"], torch_dtype))
    if args.fixture:
        fx, _ = gpt2_ref.load_safetensors(args.fixture)
        inputs = torch.from_numpy(fx["inputs"].astype(np.int64))
        ref = fx["logits"]
        if torch_dtype in ("float16", "bfloat16"):
            fparams = {n: torch.from_numpy(round_to(fx[n], torch_dtype))
                       for n in gpt2_ref.param_names(cfg)}
            with torch.no_grad():
                ref = gpt2_ref.forward(fparams, cfg, inputs).numpy()
    else:
        g = torch.Generator().manual_seed(0)
        inputs = torch.randint(0, cfg["vocab_size"], (2, min(16, cfg["n_positions"])), generator=g)
        ref = None
    with torch.no_grad():
        logits = gpt2_ref.forward(params, cfg, inputs).numpy()
    ok = True
    if ref is not None:
        ok &= compare("minimal GPT-2 logits vs the fixture", logits, ref, args.atol, args.rtol)
    else:
        print("logits of a random (%d, %d) batch: mean %.6f, std %.6f"
              % (inputs.shape[0], inputs.shape[1], logits.mean(), logits.std()))
    try:
        import transformers  # noqa: F401
    except ImportError:
        print("transformers is not installed: checked with the minimal GPT-2 only")
        return 0 if ok else 1
    model = transformers.GPT2LMHeadModel.from_pretrained(args.dir, torch_dtype=torch.float32)
    model.eval()
    with torch.no_grad():
        hf = model(inputs).logits.numpy()
    print("transformers %s loaded it with GPT2LMHeadModel.from_pretrained" % transformers.__version__)
    ok &= compare("transformers logits vs minimal GPT-2", hf, logits, args.atol, args.rtol)
    if ref is not None:
        ok &= compare("transformers logits vs the fixture", hf, ref, args.atol, args.rtol)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
