#!/usr/bin/python3
"""Generate the LoRA reference fixture tests/fixtures/lora_tiny/ with PyTorch.

    /usr/bin/python3 tools/gen_lora_fixture.py [--out tests/fixtures/lora_tiny] [--check]

Needs only Debian's python3-torch and python3-numpy. PEFT is not used (nor installed): LoRA is
written out here as PEFT's LoraLayer computes it for GPT-2's Conv1D layers, and the files are
written as PeftModel.save_pretrained writes them:

  - forward: result = conv1d(x) + lora_B(lora_A(dropout(x))) * scaling, scaling = lora_alpha / r,
    lora_A = Linear(in, r, bias=False), lora_B = Linear(r, out, bias=False) with
    (in, out) = Conv1D.weight.shape (tools/gpt2_ref.py's forward(..., lora=...)); dropout 0
  - initialisation: lora_A kaiming_uniform_(a=sqrt(5)) (PEFT's init_lora_weights=True); lora_B
    is PEFT's zeros plus N(0, 0.05), standing for a trained adapter, so that every gradient
    and the merge are exercised
  - merge (PEFT's get_delta_weight with fan_in_fan_out=True): W += transpose(B @ A) * scaling
  - adapter_model.safetensors: "base_model.model.transformer.h.<l>.<module>.lora_A.weight"
    (r, in) and "...lora_B.weight" (out, r), F32, metadata {"format": "pt"}
  - adapter_config.json: LoraConfig's keys; target_modules ["c_attn", "c_proj", "c_fc"] (PEFT
    matches names as suffixes, so "c_proj" is both attn.c_proj and mlp.c_proj: all four
    projections carry adapters)

The directory is a Hugging Face GPT-2 directory with a PEFT adapter beside the weights:

  config.json, model.safetensors   the base model (GPT-2 names and layout, like hf_tiny)
  adapter_config.json, adapter_model.safetensors
  reference.safetensors            what the C tests compare with, metadata "format" =
                                   "cllm-lora-fixture/1" and the settings; tensors:
      inputs I32 (B, T), targets I32 (B, T) with some -1 (ignored)
      logits F32 (B, T, V) of base + adapters;  loss F32 (1,) over the non-ignored targets
      grad.<adapter name> d loss / d adapter tensor (the base is frozen: no base gradients)
      merged.<hf weight name> each targeted Conv1D weight after the merge, (in, out)
      train.loss (STEPS,), train.grad_norm (STEPS,)  before each step: zero grads, forward,
                   backward, clip_grad_norm_(adapters, MAX_NORM), torch.optim.AdamW over the
                   adapters only (lr LR, betas BETAS, eps EPS, weight_decay WD on every
                   adapter matrix: torch's AdamW over PEFT's trainable parameters)
      final.<adapter name> the adapters after the steps

Sizes are awkward: V=89 (Vp 128), n_positions=16, T=11, C=24, n_head 3 (hs 8), L=2, B=2, r=3,
lora_alpha=7 (scaling 7/3). Deterministic on one thread; --check regenerates in memory and
reports the largest difference from the committed files.
"""

import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt2_ref  # noqa: E402

SEED = 20240715
CFG = dict(vocab_size=89, n_positions=16, n_embd=24, n_layer=2, n_head=3,
           layer_norm_epsilon=1e-5, initializer_range=0.02)
B, T, R, ALPHA = 2, 11, 3, 7
TARGET_MODULES = ["c_attn", "c_proj", "c_fc"]
MODULES = ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"]  # what those select
STEPS, LR, BETAS, EPS, WD, MAX_NORM = 5, 1e-2, (0.9, 0.999), 1e-8, 0.01, 0.4
PREFIX = "base_model.model.transformer."


def adapter_config():
    """adapter_config.json as LoraConfig.save_pretrained writes it."""
    return {
        "alpha_pattern": {}, "auto_mapping": None, "base_model_name_or_path": "hf_tiny_lora_base",
        "bias": "none", "fan_in_fan_out": True, "inference_mode": True,
        "init_lora_weights": True, "layers_pattern": None, "layers_to_transform": None,
        "lora_alpha": ALPHA, "lora_dropout": 0.0, "modules_to_save": None, "peft_type": "LORA",
        "r": R, "rank_pattern": {}, "revision": None, "target_modules": TARGET_MODULES,
        "task_type": "CAUSAL_LM",
    }


def make():
    g = torch.Generator().manual_seed(SEED)
    p = gpt2_ref.gpt2_init(CFG, g)
    for n, t in p.items():  # spread the biases and LayerNorms, as gen_gpt_fixtures does
        if t.dim() == 1:
            t += (0.1 if "ln_" in n and n.endswith("weight") else 0.02) * torch.randn(t.shape, generator=g)
    scaling = ALPHA / R
    lora, names = {"scaling": scaling}, []
    for l in range(CFG["n_layer"]):
        for mod in MODULES:
            key = "h.%d.%s" % (l, mod)
            fan_in, fan_out = p[key + ".weight"].shape  # Conv1D weight (in, out)
            a = torch.empty(R, fan_in)
            # torch.nn.init.kaiming_uniform_(a, a=math.sqrt(5)), drawn from our generator (torch
            # 1.13's init takes none): gain sqrt(2 / (1 + 5)) * sqrt(3 / fan_in) = 1/sqrt(fan_in)
            bound = math.sqrt(2.0 / (1 + 5)) * math.sqrt(3.0 / fan_in)
            with torch.no_grad():
                a.uniform_(-bound, bound, generator=g)
            b = torch.zeros(fan_out, R) + 0.05 * torch.randn(fan_out, R, generator=g)
            lora[key] = (a.requires_grad_(True), b.requires_grad_(True))
            names += [(key, "lora_A"), (key, "lora_B")]

    def adapter(key, which):
        return lora[key][0 if which == "lora_A" else 1]

    seq = torch.randint(0, CFG["vocab_size"], (B, T + 1), generator=g, dtype=torch.int32)
    inputs, targets = seq[:, :T].contiguous(), seq[:, 1:].contiguous()
    targets[torch.rand((B, T), generator=g) < 0.3] = -1
    targets[0, :3] = -1  # a prompt

    out = {"inputs": inputs, "targets": targets}
    logits = gpt2_ref.forward(p, CFG, inputs, lora)
    loss = gpt2_ref.loss_fn(logits, targets)
    loss.backward()
    out["logits"], out["loss"] = logits.detach(), loss.detach().reshape(1)
    for key, which in names:
        out["grad.%s%s.%s.weight" % (PREFIX, key, which)] = adapter(key, which).grad.detach().clone()
    with torch.no_grad():
        for l in range(CFG["n_layer"]):
            for mod in MODULES:
                key = "h.%d.%s" % (l, mod)
                a, b = lora[key]
                out["merged.%s.weight" % key] = p[key + ".weight"] + (b @ a).T * scaling
    adapters0 = {"%s%s.%s.weight" % (PREFIX, k, w): adapter(k, w).detach().clone()
                 for k, w in names}

    params = [adapter(k, w) for k, w in names]
    opt = torch.optim.AdamW(params, lr=LR, betas=BETAS, eps=EPS, weight_decay=WD)
    losses, norms = [], []
    for _ in range(STEPS):
        opt.zero_grad(set_to_none=True)
        loss = gpt2_ref.loss_fn(gpt2_ref.forward(p, CFG, inputs, lora), targets)
        loss.backward()
        norms.append(torch.nn.utils.clip_grad_norm_(params, MAX_NORM).item())
        opt.step()
        losses.append(loss.item())
    out["train.loss"] = torch.tensor(losses, dtype=torch.float32)
    out["train.grad_norm"] = torch.tensor(norms, dtype=torch.float32)
    for k, w in names:
        out["final.%s%s.%s.weight" % (PREFIX, k, w)] = adapter(k, w).detach().clone()

    meta = {"format": "cllm-lora-fixture/1", "B": B, "T": T, "r": R, "lora_alpha": ALPHA,
            "steps": STEPS, "lr": LR, "beta1": BETAS[0], "beta2": BETAS[1], "eps": EPS,
            "weight_decay": WD, "max_norm": MAX_NORM, "torch_version": torch.__version__}
    files = {
        "model.safetensors": ({n: p[n] for n in gpt2_ref.param_names(CFG)}, {"format": "pt"}),
        "adapter_model.safetensors": (adapters0, {"format": "pt"}),
        "reference.safetensors": ({k: v.detach().contiguous() for k, v in out.items()}, meta),
    }
    texts = {"config.json": gpt2_ref.config_to_json(CFG) + "\n",
             "adapter_config.json": json.dumps(adapter_config(), indent=2, sort_keys=True) + "\n"}
    return files, texts, norms


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures", "lora_tiny"))
    ap.add_argument("--check", action="store_true",
                    help="compare with the committed fixture instead of writing it")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    files, texts, norms = make()
    if args.check:
        worst, same = 0.0, True
        for name, (tensors, _) in files.items():
            old, _ = gpt2_ref.load_safetensors(os.path.join(args.out, name))
            same &= set(old) == set(tensors)
            for k, v in tensors.items():
                if k in old and v.numel():
                    worst = max(worst, float(np.max(np.abs(old[k].astype(np.float64) - v.numpy()))))
        for name, text in texts.items():
            with open(os.path.join(args.out, name)) as f:
                same &= f.read() == text
        print("%s: names and texts %s, largest difference %.3g"
              % (args.out, "match" if same else "DIFFER", worst))
        return 0 if same and worst == 0 else 1
    os.makedirs(args.out, exist_ok=True)
    for name, (tensors, meta) in files.items():
        gpt2_ref.save_safetensors(os.path.join(args.out, name), tensors, meta)
    for name, text in texts.items():
        with open(os.path.join(args.out, name), "w") as f:
            f.write(text)
    ref = files["reference.safetensors"][0]
    print("%s: loss %.6f, grad norms %.3f..%.3f (clipped in %d of %d steps), %d bytes"
          % (args.out, ref["loss"].item(), min(norms), max(norms),
             sum(n > MAX_NORM for n in norms), STEPS,
             sum(os.path.getsize(os.path.join(args.out, n)) for n in list(files) + list(texts))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
