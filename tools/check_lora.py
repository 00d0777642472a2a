#!/usr/bin/python3
"""Check a directory holding a GPT-2 model and LoRA adapters in PEFT's format (a cllm checkpoint
step directory with adapters, or what PeftModel.save_pretrained writes beside a base model):
read the files the way PEFT does, run base + adapters in PyTorch, and compare the logits with
a fixture's.

    /usr/bin/python3 tools/check_lora.py DIR [--fixture tests/fixtures/lora_tiny/reference.safetensors]
                                             [--atol 1e-5] [--rtol 1e-4]

DIR holds config.json + model.safetensors (the base) and adapter_config.json +
adapter_model.safetensors. What is checked, as PEFT 0.x's LoraConfig / PeftModel.from_pretrained
would meet it:
  - adapter_config.json: peft_type "LORA", integer r >= 1, lora_alpha, target_modules (a list:
    a module is targeted when its name ends with "." + an entry, PEFT's rule), bias "none",
    fan_in_fan_out true (GPT-2's Conv1D), no unknown-to-PEFT required keys missing;
  - adapter_model.safetensors: metadata "format" "pt"; for every targeted Conv1D of every
    layer exactly "base_model.model.transformer.h.<l>.<module>.lora_A.weight" (r, in) and
    "...lora_B.weight" (out, r), and nothing else;
  - the logits of base + scaling * lora_B(lora_A(x)) (tools/gpt2_ref.py, PEFT's formula) equal
    the fixture's `logits` on its `inputs`.
When the `peft` and `transformers` packages are importable, the directory is also loaded with
PeftModel.from_pretrained(GPT2LMHeadModel.from_pretrained(DIR), DIR) and its logits compared.
Exit status: 0 if everything holds, 1 otherwise.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_export  # noqa: E402
import gpt2_ref  # noqa: E402

PROJECTIONS = ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"]
PREFIX = "base_model.model.transformer."


def targeted(module_path, target_modules):
    """PEFT's check_target_module_exists for a list of names."""
    return any(module_path == t or module_path.endswith("." + t) for t in target_modules)


def load_adapters(d, cfg, params):
    with open(os.path.join(d, "adapter_config.json")) as f:
        ac = json.load(f)
    problems = []
    if ac.get("peft_type") != "LORA":
        problems.append("peft_type is %r, not \"LORA\"" % ac.get("peft_type"))
    r, alpha, tm = ac.get("r"), ac.get("lora_alpha"), ac.get("target_modules")
    if not isinstance(r, int) or r < 1:
        problems.append("r %r is not a positive integer" % (r,))
    if not isinstance(alpha, (int, float)) or alpha <= 0:
        problems.append("lora_alpha %r is not a positive number" % (alpha,))
    if not isinstance(tm, list) or not all(isinstance(t, str) for t in tm):
        problems.append("target_modules %r is not a list of names" % (tm,))
    if ac.get("bias", "none") != "none":
        problems.append("bias is %r" % ac.get("bias"))
    if ac.get("fan_in_fan_out") is not True:
        problems.append("fan_in_fan_out is %r (GPT-2's Conv1D needs true)" % ac.get("fan_in_fan_out"))
    if problems:
        raise SystemExit("%s/adapter_config.json: %s" % (d, "; ".join(problems)))
    tensors, meta = gpt2_ref.load_safetensors(os.path.join(d, "adapter_model.safetensors"))
    if meta.get("format") != "pt":
        raise SystemExit("%s/adapter_model.safetensors: metadata format %r, PEFT writes \"pt\""
                         % (d, meta.get("format")))
    lora, expected = {"scaling": alpha / r}, set()
    for l in range(cfg["n_layer"]):
        for mod in PROJECTIONS:
            key = "h.%d.%s" % (l, mod)
            if not targeted("transformer." + key, tm):
                continue
            fan_in, fan_out = params[key + ".weight"].shape
            names = [PREFIX + key + ".lora_%s.weight" % w for w in "AB"]
            shapes = [(r, fan_in), (fan_out, r)]
            for n, s in zip(names, shapes):
                if n not in tensors or tuple(tensors[n].shape) != s:
                    raise SystemExit("%s/adapter_model.safetensors: %s missing or not %s"
                                     % (d, n, s))
                expected.add(n)
            lora[key] = tuple(torch.from_numpy(tensors[n].astype(np.float32)) for n in names)
    extra = set(tensors) - expected
    if extra:
        raise SystemExit("%s/adapter_model.safetensors: tensors PEFT would not load: %s"
                         % (d, sorted(extra)[:3]))
    return lora, ac


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--fixture")
    ap.add_argument("--atol", type=float, default=1e-5)
    ap.add_argument("--rtol", type=float, default=1e-4)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg, params, _ = check_export.load_dir(args.dir)
    lora, ac = load_adapters(args.dir, cfg, params)
    print("%s: LoRA r %d, lora_alpha %g, target_modules %s: %d adapted projections, read as "
          "PEFT reads them" % (args.dir, ac["r"], ac["lora_alpha"], ac["target_modules"],
                               len(lora) - 1))
    if args.fixture:
        fx, _ = gpt2_ref.load_safetensors(args.fixture)
        inputs = torch.from_numpy(fx["inputs"].astype(np.int64))
    else:
        g = torch.Generator().manual_seed(0)
        inputs = torch.randint(0, cfg["vocab_size"], (2, min(16, cfg["n_positions"])), generator=g)
    with torch.no_grad():
        logits = gpt2_ref.forward(params, cfg, inputs, lora).numpy()
    ok = True
    if args.fixture:
        ok &= check_export.compare("base + adapters (PEFT's formula) vs the fixture", logits,
                                   fx["logits"], args.atol, args.rtol)
    else:
        print("logits of a random batch: mean %.6f, std %.6f" % (logits.mean(), logits.std()))
    try:
        import peft
        import transformers
    except ImportError:
        print("peft/transformers are not installed: checked by hand with PEFT's rules only")
        return 0 if ok else 1
    # the base from a copy without the adapter files: transformers with peft installed would
    # otherwise apply them itself (newer releases) or look for base_model_name_or_path (older)
    with tempfile.TemporaryDirectory() as tmp:
        for f in ("config.json", "model.safetensors"):
            shutil.copy(os.path.join(args.dir, f), tmp)
        base = transformers.GPT2LMHeadModel.from_pretrained(tmp, torch_dtype=torch.float32)
    model = peft.PeftModel.from_pretrained(base, args.dir)
    model.eval()
    with torch.no_grad():
        got = model(inputs).logits.numpy()
    print("peft %s loaded it with PeftModel.from_pretrained" % peft.__version__)
    ok &= check_export.compare("PEFT logits vs base + adapters", got, logits, args.atol, args.rtol)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
