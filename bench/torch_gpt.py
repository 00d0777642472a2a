#!/usr/bin/python3
"""The training step of `cllm bench train` in PyTorch on the CPU, for the ratio between them.

    /usr/bin/python3 bench/torch_gpt.py --model models/gpt-mini.json --batch 8 --seq 256 \\
        [--steps 5] [--warmup 1] [--threads N] [--cllm build/cllm] [--device SPEC] [--clblast]

Same model (tools/gpt2_ref.py: GPT-2 as Hugging Face's GPT2LMHeadModel computes it, float32),
same step (zero grads, forward, mean cross-entropy, backward, clip_grad_norm_ to 1.0, AdamW
with betas (0.9, 0.95), eps 1e-8, weight decay 0.1 on 2-D tensors), random tokens, GPT-2
initialisation. Prints the best and median step time, tokens/s and GFLOP/s counted as cllm
counts them (6 x matmul parameters x tokens + 12 L T C per token for attention). Then, unless
--cllm none, runs `cllm bench train --json` with the same settings right after and prints the
ratio of the best steps (cllm / torch). Timings on a shared machine are noisy: repeat.

Needs only Debian's python3-torch (1.13) and python3-numpy.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import gpt2_ref  # noqa: E402


def step_flops(cfg, B, T):
    C, L, V = cfg["n_embd"], cfg["n_layer"], cfg["vocab_size"]
    n_matmul = 12 * L * C * C + V * C
    return (6 * n_matmul + 12 * L * T * C) * B * T


def bench_torch(cfg, B, T, steps, warmup, seed):
    g = torch.Generator().manual_seed(seed)
    p = gpt2_ref.gpt2_init(cfg, g)
    names = gpt2_ref.param_names(cfg)
    for n in names:
        p[n].requires_grad_(True)
    decay = [p[n] for n in names if gpt2_ref.decays(n)]
    no_decay = [p[n] for n in names if not gpt2_ref.decays(n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.95), eps=1e-8)
    seq = torch.randint(0, cfg["vocab_size"], (B, T + 1), generator=g)
    inputs, targets = seq[:, :T].contiguous(), seq[:, 1:].contiguous()
    times, loss = [], float("nan")
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss_t = gpt2_ref.loss_fn(gpt2_ref.forward(p, cfg, inputs), targets)
        loss_t.backward()
        torch.nn.utils.clip_grad_norm_([p[n] for n in names], 1.0)
        opt.step()
        loss = loss_t.item()
        dt = time.perf_counter() - t0
        if i >= warmup:
            times.append(dt)
        print("torch step %d: %.3f s, loss %.4f%s" % (i + 1, dt, loss,
              " (warm-up, not counted)" if i < warmup else ""), flush=True)
    return min(times), statistics.median(times), loss


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="model config (JSON, Hugging Face GPT-2 keys)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=5, help="timed steps")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--seed", type=int, default=1337)
    default_cllm = os.path.join(HERE, "..", "build", "cllm")
    ap.add_argument("--cllm", default=default_cllm,
                    help="cllm binary to run for the ratio, or 'none' (default: build/cllm)")
    ap.add_argument("--device", default=None, help="--device for cllm")
    ap.add_argument("--clblast", action="store_true",
                    help="have cllm also time CLBlast alone on the step's shapes")
    args = ap.parse_args()
    if args.batch < 1 or args.seq < 1 or args.steps < 1 or args.warmup < 0:
        ap.error("--batch, --seq and --steps must be positive, --warmup >= 0")
    with open(args.model) as f:
        cfg = gpt2_ref.config_from_json(f.read())
    if args.seq > cfg["n_positions"]:
        ap.error("--seq %d exceeds the model's n_positions (%d)" % (args.seq, cfg["n_positions"]))
    if args.threads:
        torch.set_num_threads(args.threads)
    B, T = args.batch, args.seq
    flops = step_flops(cfg, B, T)
    print("torch %s, %d threads: %s, batch %d x sequence %d, %.1f GFLOP per step"
          % (torch.__version__, torch.get_num_threads(), args.model, B, T, flops / 1e9), flush=True)
    best, med, loss = bench_torch(cfg, B, T, args.steps, args.warmup, args.seed)
    print("torch: best %.3f s, median %.3f s -> %.1f tokens/s (median %.1f), %.1f GFLOP/s"
          % (best, med, B * T / best, B * T / med, flops / best / 1e9))
    if args.cllm == "none":
        return 0
    cmd = [args.cllm, "bench", "train", "--model", args.model, "--batch", str(B), "--seq", str(T),
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--seed", str(args.seed),
           "--json"]
    if args.device:
        cmd += ["--device", args.device]
    if args.clblast:
        cmd += ["--clblast"]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, universal_newlines=True)
    if r.returncode != 0:
        print("cllm bench train failed (exit %d)" % r.returncode, file=sys.stderr)
        return 1
    c = json.loads(r.stdout.strip().splitlines()[-1])
    print("cllm (%s): best %.3f s, median %.3f s -> %.1f tokens/s (median %.1f), %.1f GFLOP/s; "
          "its best product rate %.1f GFLOP/s (tune table: %s)%s"
          % (c["device"], c["best_step_s"], c["median_step_s"], c["tokens_per_s"],
             c["median_tokens_per_s"], c["gflops"], c["gemm_best_gflops"], c["tune_table"],
             ", CLBlast alone %.1f GFLOP/s" % c["clblast_best_gflops"] if args.clblast else ""))
    print("ratio cllm / torch (best steps): %.2f" % (best / c["best_step_s"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
