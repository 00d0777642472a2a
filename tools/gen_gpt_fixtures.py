#!/usr/bin/python3
"""Generate the GPT reference fixtures tests/fixtures/gpt_<name>.safetensors with PyTorch.

    /usr/bin/python3 tools/gen_gpt_fixtures.py [--out tests/fixtures] [--check]

Needs only Debian's python3-torch (1.13) and python3-numpy. The model is tools/gpt2_ref.py's
minimal GPT-2, numerically identical to Hugging Face's GPT2LMHeadModel, in float32 on one
thread (deterministic: rerunning gives the same bytes on the same machine and torch build).
--check regenerates in memory and reports the largest difference from the committed files
instead of writing them.

Each fixture is a safetensors file (< 1 MB) for one awkward configuration:

  gpt_tiny   V=203 (not a multiple of 64 or 128), n_positions=T=19 (not a power of two),
             C=24, NH=3 (hs=8), L=2, B=2; gradient clipping at max_norm 1.0 (active in 2 of
             the 10 steps)
  gpt_small  V=97, n_positions=36, T=33 (wpe rows 33..35 get no gradient), C=36, NH=3 (hs=12),
             L=3, B=3, and its last row of targets_masked is entirely ignored; clipping at
             max_norm 0.8 (active in some steps, not in others)

__metadata__ (all strings): "format" = "cllm-gpt-fixture/1", "name", "config" (config.json
text with Hugging Face GPT-2 keys), the sizes "vocab_size", "n_positions", "n_embd",
"n_layer", "n_head", "B", "T", "layer_norm_epsilon", the optimizer settings "steps", "beta1",
"beta2", "eps", "weight_decay", "max_norm", and "torch_version".

Tensors (names are stable; the C tests rely on them):

  <hf name>              F32  the initial parameters under Hugging Face GPT-2 names and shapes:
                              "wte.weight" (V, C), "wpe.weight" (n_positions, C),
                              "h.<l>.ln_1.weight" (C), "h.<l>.ln_1.bias" (C),
                              "h.<l>.attn.c_attn.weight" (C, 3C) [Conv1D: (in, out)],
                              "h.<l>.attn.c_attn.bias" (3C), "h.<l>.attn.c_proj.weight" (C, C),
                              "h.<l>.attn.c_proj.bias" (C), "h.<l>.ln_2.weight" (C),
                              "h.<l>.ln_2.bias" (C), "h.<l>.mlp.c_fc.weight" (C, 4C),
                              "h.<l>.mlp.c_fc.bias" (4C), "h.<l>.mlp.c_proj.weight" (4C, C),
                              "h.<l>.mlp.c_proj.bias" (C), "ln_f.weight" (C), "ln_f.bias" (C).
                              GPT-2 initialisation (N(0, 0.02), c_proj weights scaled by
                              1/sqrt(2L)), then every bias and LayerNorm parameter perturbed
                              (biases N(0, 0.02), LN weights 1 + N(0, 0.1), LN biases N(0, 0.02))
                              so that a forward pass that dropped one would not match.
  inputs                 I32  (B, T) token ids in [0, V)
  targets                I32  (B, T) next tokens in [0, V)
  targets_masked         I32  (B, T) the same with some entries -1 (ignored: no loss, no
                              gradient), as SFT masks everything but assistant tokens
  logits                 F32  (B, T, V) of the initial parameters
  loss                   F32  (1,)  mean cross-entropy of logits against targets
  loss_masked            F32  (1,)  mean over the non-ignored entries of targets_masked
  grad.<hf name>         F32  d loss / d parameter, Hugging Face shape (wte's gradient includes
                              the tied LM head's)
  grad_masked.<hf name>  F32  d loss_masked / d parameter
  train.lr               F32  (10,) learning rate of each AdamW step (warm-up then cosine)
  train.loss             F32  (10,) loss on (inputs, targets) before each step
  train.grad_norm        F32  (10,) global L2 norm of the gradients before clipping
  final.<hf name>        F32  the parameters after the 10 steps

Beside gpt_tiny, tests/fixtures/hf_tiny/ holds its initial parameters as a Hugging Face GPT-2
directory (model.safetensors with the plain names GPT-2's published file uses, metadata
{"format": "pt"}, and config.json), for the import/export tests.

The 10 steps, all on the same batch (inputs, targets), exactly as GPT-2 training does it:
zero the gradients, forward, loss, backward, torch.nn.utils.clip_grad_norm_(params, max_norm)
(its return value is train.grad_norm), set the lr, torch.optim.AdamW.step() with betas
(0.9, 0.95), eps 1e-8, and two parameter groups: weight decay 0.1 on the 2-D tensors
(wte, wpe and the four weight matrices of each layer), 0 on biases and LayerNorm parameters.
"""

import argparse
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt2_ref  # noqa: E402

STEPS = 10
LR_MAX, LR_MIN, WARMUP = 1e-3, 1e-4, 3
BETAS, EPS, WD = (0.9, 0.95), 1e-8, 0.1

FIXTURES = [
    dict(name="tiny", seed=20240601, B=2, T=19, masked_rows=(), max_norm=1.0,
         cfg=dict(vocab_size=203, n_positions=19, n_embd=24, n_layer=2, n_head=3)),
    dict(name="small", seed=20240602, B=3, T=33, masked_rows=(2,), max_norm=0.8,
         cfg=dict(vocab_size=97, n_positions=36, n_embd=36, n_layer=3, n_head=3)),
]


def lr_at(step):
    """1-based step: linear warm-up over WARMUP steps, then cosine from LR_MAX to LR_MIN."""
    if step <= WARMUP:
        lr = LR_MAX * step / WARMUP
    else:
        frac = (step - WARMUP) / (STEPS - WARMUP)
        lr = LR_MIN + 0.5 * (LR_MAX - LR_MIN) * (1 + math.cos(math.pi * frac))
    return float(np.float32(lr))  # the C side holds it as a float: use that exact value


def grads_of(p, names, cfg, inputs, targets):
    for n in names:
        p[n].grad = None
    loss = gpt2_ref.loss_fn(gpt2_ref.forward(p, cfg, inputs), targets)
    loss.backward()
    return loss.detach().clone(), {n: p[n].grad.detach().clone() for n in names}


def make(fx):
    cfg = dict(fx["cfg"], layer_norm_epsilon=1e-5, initializer_range=0.02)
    B, T, V = fx["B"], fx["T"], cfg["vocab_size"]
    g = torch.Generator().manual_seed(fx["seed"])
    p = gpt2_ref.gpt2_init(cfg, g)
    for n, t in p.items():
        if t.dim() == 1:
            if "ln_" in n and n.endswith("weight"):
                t += 0.1 * torch.randn(t.shape, generator=g)
            else:
                t += 0.02 * torch.randn(t.shape, generator=g)
    names = gpt2_ref.param_names(cfg)
    for n in names:
        p[n].requires_grad_(True)

    seq = torch.randint(0, V, (B, T + 1), generator=g, dtype=torch.int32)
    inputs, targets = seq[:, :T].contiguous(), seq[:, 1:].contiguous()
    masked = targets.clone()
    drop = torch.rand((B, T), generator=g) < 0.3
    drop[0, :4] = True  # a prompt at the start of the first row
    masked[drop] = -1
    for r in fx["masked_rows"]:
        masked[r, :] = -1

    out = {}
    for n in names:
        out[n] = p[n].detach().clone()
    out["inputs"], out["targets"], out["targets_masked"] = inputs, targets, masked
    with torch.no_grad():
        out["logits"] = gpt2_ref.forward(p, cfg, inputs)
    loss, grads = grads_of(p, names, cfg, inputs, targets)
    loss_m, grads_m = grads_of(p, names, cfg, inputs, masked)
    out["loss"], out["loss_masked"] = loss.reshape(1), loss_m.reshape(1)
    for n in names:
        out["grad." + n] = grads[n]
    for n in names:
        out["grad_masked." + n] = grads_m[n]

    decay = [p[n] for n in names if gpt2_ref.decays(n)]
    no_decay = [p[n] for n in names if not gpt2_ref.decays(n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=LR_MAX, betas=BETAS, eps=EPS)
    lrs, losses, norms = [], [], []
    for step in range(1, STEPS + 1):
        opt.zero_grad(set_to_none=True)
        loss = gpt2_ref.loss_fn(gpt2_ref.forward(p, cfg, inputs), targets)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_([p[n] for n in names], fx["max_norm"])
        lr = lr_at(step)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()
        lrs.append(lr)
        losses.append(loss.item())
        norms.append(norm.item())
    out["train.lr"] = torch.tensor(lrs, dtype=torch.float32)
    out["train.loss"] = torch.tensor(losses, dtype=torch.float32)
    out["train.grad_norm"] = torch.tensor(norms, dtype=torch.float32)
    for n in names:
        out["final." + n] = p[n].detach().clone()

    meta = {"format": "cllm-gpt-fixture/1", "name": fx["name"],
            "config": gpt2_ref.config_to_json(cfg), "B": B, "T": T,
            "layer_norm_epsilon": cfg["layer_norm_epsilon"], "steps": STEPS,
            "beta1": BETAS[0], "beta2": BETAS[1], "eps": EPS, "weight_decay": WD,
            "max_norm": fx["max_norm"], "torch_version": torch.__version__}
    for k in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head"):
        meta[k] = cfg[k]
    return {k: v.detach().contiguous() for k, v in out.items()}, meta, norms


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures"))
    ap.add_argument("--check", action="store_true",
                    help="compare with the committed fixtures instead of writing them")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    status = 0
    for fx in FIXTURES:
        tensors, meta, norms = make(fx)
        path = os.path.join(args.out, "gpt_%s.safetensors" % fx["name"])
        if args.check:
            old, _ = gpt2_ref.load_safetensors(path)
            if fx["name"] == "tiny":
                hf, _ = gpt2_ref.load_safetensors(os.path.join(args.out, "hf_tiny",
                                                               "model.safetensors"))
                old.update({"hf_tiny/" + k: v for k, v in hf.items()})
                tensors.update({"hf_tiny/" + k: tensors[k] for k in hf})
            worst = max(float(np.max(np.abs(old[k].astype(np.float64) - v.numpy())))
                        if v.numel() else 0.0 for k, v in tensors.items())
            same = set(old) == set(tensors)
            print("%s: %d tensors, names %s, largest difference %.3g"
                  % (path, len(tensors), "match" if same else "DIFFER", worst))
            status |= (not same) or worst > 0
            continue
        os.makedirs(args.out, exist_ok=True)
        gpt2_ref.save_safetensors(path, tensors, meta)
        if fx["name"] == "tiny":
            hf = os.path.join(args.out, "hf_tiny")
            os.makedirs(hf, exist_ok=True)
            names = gpt2_ref.param_names(gpt2_ref.config_from_json(meta["config"]))
            gpt2_ref.save_safetensors(os.path.join(hf, "model.safetensors"),
                                      {n: tensors[n] for n in names}, {"format": "pt"})
            with open(os.path.join(hf, "config.json"), "w") as f:
                f.write(meta["config"] + "\n")
        print("%s: %d tensors, %d bytes, loss %.6f, masked loss %.6f, grad norms %.3f..%.3f, "
              "clipped in %d of %d steps" % (
                  path, len(tensors), os.path.getsize(path), tensors["loss"].item(),
                  tensors["loss_masked"].item(), min(norms), max(norms),
                  sum(n > fx["max_norm"] for n in norms), STEPS))
    return status


if __name__ == "__main__":
    sys.exit(main())
