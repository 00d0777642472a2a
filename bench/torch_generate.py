#!/usr/bin/python3
"""Generation as `cllm bench generate` does it, in PyTorch on the CPU, for the ratio.

    /usr/bin/python3 bench/torch_generate.py --model models/gpt-mini.json \\
        [--prompt-tokens 64] [--tokens 128] [--no-cache-tokens N] [--reps 3] [--threads N] \\
        [--cllm build/cllm] [--device SPEC]

Same model (tools/gpt2_ref.py's GPT-2, float32, GPT-2 initialisation, random prompt), same
work: the prompt in one batched pass, then greedy tokens one at a time with a key/value cache
(the keys and values of earlier positions kept per layer and concatenated, as Hugging Face's
past_key_values), and without the cache (the whole forward recomputed for every token).
torch.no_grad(), the best of --reps runs after one warm-up. Prints prompt tokens/s and
generated tokens/s; then, unless --cllm none, runs `cllm bench generate --json` with the same
settings right after and prints the ratios (cllm / torch). Timings on a shared machine are
noisy: repeat.

Needs only Debian's python3-torch (1.13) and python3-numpy.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import gpt2_ref  # noqa: E402


def forward_cached(p, cfg, idx, past, pos):
    """Logits (B, n, V) of tokens idx (B, n) at positions pos .. pos+n-1, attending to the
    cached keys/values `past` (a list of (k, v) per layer, (B, NH, pos, hs)), which is
    extended in place."""
    B, n = idx.shape
    C, NH, L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    hs = C // NH
    positions = torch.arange(pos, pos + n, dtype=torch.long).unsqueeze(0)
    x = F.embedding(idx, p["wte.weight"]) + F.embedding(positions, p["wpe.weight"])
    Tk = pos + n
    # query i (position pos + i) sees keys 0 .. pos + i
    mask = torch.arange(Tk).view(1, Tk) <= (torch.arange(n) + pos).view(n, 1)
    for l in range(L):
        h = "h.%d." % l
        a = F.layer_norm(x, (C,), p[h + "ln_1.weight"], p[h + "ln_1.bias"], eps)
        qkv = torch.addmm(p[h + "attn.c_attn.bias"], a.view(-1, C), p[h + "attn.c_attn.weight"])
        q, k, v = qkv.view(B, n, 3 * C).split(C, dim=2)
        q = q.view(B, n, NH, hs).transpose(1, 2)
        k = k.view(B, n, NH, hs).transpose(1, 2)
        v = v.view(B, n, NH, hs).transpose(1, 2)
        if past[l] is not None:
            k = torch.cat([past[l][0], k], dim=2)
            v = torch.cat([past[l][1], v], dim=2)
        past[l] = (k, v)
        w = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hs)
        w = w.masked_fill(~mask, float("-inf"))
        y = torch.matmul(F.softmax(w, dim=-1), v).transpose(1, 2).reshape(B * n, C)
        x = x + torch.addmm(p[h + "attn.c_proj.bias"], y, p[h + "attn.c_proj.weight"]).view(B, n, C)
        m = F.layer_norm(x, (C,), p[h + "ln_2.weight"], p[h + "ln_2.bias"], eps)
        m = torch.addmm(p[h + "mlp.c_fc.bias"], m.view(-1, C), p[h + "mlp.c_fc.weight"])
        m = gpt2_ref._gelu_new(m)
        m = torch.addmm(p[h + "mlp.c_proj.bias"], m, p[h + "mlp.c_proj.weight"])
        x = x + m.view(B, n, C)
    x = F.layer_norm(x, (C,), p["ln_f.weight"], p["ln_f.bias"], eps)
    return F.linear(x, p["wte.weight"])


def run_cached(p, cfg, prompt, tokens):
    past = [None] * cfg["n_layer"]
    t0 = time.perf_counter()
    logits = forward_cached(p, cfg, prompt, past, 0)
    nxt = logits[:, -1, :].argmax(-1, keepdim=True)
    t1 = time.perf_counter()
    pos = prompt.shape[1]
    out = [nxt]
    for _ in range(tokens - 1):
        logits = forward_cached(p, cfg, nxt, past, pos)
        pos += 1
        nxt = logits[:, -1, :].argmax(-1, keepdim=True)
        out.append(nxt)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, torch.cat(out, dim=1)


def run_full(p, cfg, prompt, tokens):
    seq = prompt
    t0 = time.perf_counter()
    for _ in range(tokens):
        nxt = gpt2_ref.forward(p, cfg, seq)[:, -1, :].argmax(-1, keepdim=True)
        seq = torch.cat([seq, nxt], dim=1)
    return time.perf_counter() - t0, seq[:, prompt.shape[1]:]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="model config (JSON, Hugging Face GPT-2 keys)")
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--no-cache-tokens", type=int, default=-1,
                    help="tokens without the cache (-1: as --tokens, 0: skip)")
    ap.add_argument("--samples", type=int, default=1, help="rows generated together")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--cllm", default=os.path.join(HERE, "..", "build", "cllm"),
                    help="cllm binary to run for the ratio, or 'none' (default: build/cllm)")
    ap.add_argument("--device", default=None, help="--device for cllm")
    args = ap.parse_args()
    nc = args.tokens if args.no_cache_tokens < 0 else args.no_cache_tokens
    with open(args.model) as f:
        cfg = gpt2_ref.config_from_json(f.read())
    if args.prompt_tokens < 1 or args.tokens < 1 or args.reps < 1 or args.samples < 1:
        ap.error("--prompt-tokens, --tokens, --samples and --reps must be positive")
    if args.prompt_tokens + max(args.tokens, nc) > cfg["n_positions"]:
        ap.error("--prompt-tokens + --tokens exceeds the model's n_positions (%d)"
                 % cfg["n_positions"])
    if args.threads:
        torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(args.seed)
    p = gpt2_ref.gpt2_init(cfg, g)
    B = args.samples
    prompt = torch.randint(0, cfg["vocab_size"], (B, args.prompt_tokens), generator=g)
    print("torch %s, %d threads: %s, prompt %d tokens, %d new tokens x %d, greedy"
          % (torch.__version__, torch.get_num_threads(), args.model, args.prompt_tokens,
             args.tokens, B), flush=True)
    best_p = best_g = best_n = 0.0
    with torch.no_grad():
        for r in range(args.reps + 1):  # the first is a warm-up
            ps, gs, cached = run_cached(p, cfg, prompt, args.tokens)
            if r:
                best_p = max(best_p, B * args.prompt_tokens / ps)
                best_g = max(best_g, B * args.tokens / gs)
        # both paths must agree: the cache changes nothing but the speed
        _, full = run_full(p, cfg, prompt, min(args.tokens, 16))
        same = torch.equal(full, cached[:, :full.shape[1]])
        for r in range(args.reps + 1 if nc else 0):
            ns, _ = run_full(p, cfg, prompt, nc)
            if r:
                best_n = max(best_n, B * nc / ns)
    print("torch: prompt pass %.1f tokens/s; with the cache %.1f tokens/s%s; the first 16 "
          "tokens with and without the cache %s"
          % (best_p, best_g, "; without %.1f tokens/s" % best_n if nc else "",
             "agree" if same else "DIFFER"))
    if args.cllm == "none":
        return 0
    cmd = [args.cllm, "bench", "generate", "--model", args.model,
           "--prompt-tokens", str(args.prompt_tokens), "--tokens", str(args.tokens),
           "--no-cache-tokens", str(nc), "--samples", str(B), "--reps", str(args.reps),
           "--seed", str(args.seed), "--json"]
    if args.device:
        cmd += ["--device", args.device]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, universal_newlines=True)
    if r.returncode != 0:
        print("cllm bench generate failed (exit %d)" % r.returncode, file=sys.stderr)
        return 1
    c = json.loads(r.stdout.strip().splitlines()[-1])
    print("cllm (%s): prompt pass %.1f tokens/s; with the cache %.1f tokens/s%s"
          % (c["device"], c["prompt_tokens_per_s"], c["tokens_per_s"],
             "; without %.1f tokens/s" % c["no_cache_tokens_per_s"] if nc else ""))
    print("ratio cllm / torch: prompt %.2f, with the cache %.2f%s"
          % (c["prompt_tokens_per_s"] / best_p, c["tokens_per_s"] / best_g,
             ", without %.2f" % (c["no_cache_tokens_per_s"] / best_n) if nc else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
