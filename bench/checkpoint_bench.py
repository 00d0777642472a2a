#!/usr/bin/python3
"""Time `cllm import` and `cllm export` on a GPT-2 124M-sized model beside a PyTorch peer
doing the same work in the same run.

    /usr/bin/python3 bench/checkpoint_bench.py [--cllm build/cllm] [--repeat 3] [--dir /tmp/x]

A randomly initialised GPT-2 124M (tools/gpt2_ref.py, Hugging Face names) is written once as
a Hugging Face directory. Then, best of --repeat runs each:

  cllm import    HF directory -> cllm run (read, validate, transpose, write, fsync, rename)
  cllm export    cllm run -> HF directory (the same, the other way)
  torch peer     read the HF directory's safetensors (numpy), make torch tensors, transpose the
                 Conv1D weights into (out, in) and back, write a safetensors file and fsync
                 it: the same bytes moved and the same durability, in PyTorch
  transformers   GPT2LMHeadModel.from_pretrained + save_pretrained, when `transformers` is
                 importable (it does not fsync)

and prints each time and its ratio to the torch peer. Timings on a shared machine are noisy
(page cache, other jobs, the disk's fsync): repeat, and read the best.
Needs only Debian's python3-torch and python3-numpy.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import gpt2_ref  # noqa: E402

CFG = dict(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12)


def best_of(n, fn, before=None):
    best = float("inf")
    for _ in range(n):
        if before:
            before()
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def torch_peer(src, dst):
    tensors, _ = gpt2_ref.load_safetensors(os.path.join(src, "model.safetensors"))
    params = {}
    for name, a in tensors.items():
        t = torch.from_numpy(a)
        if name.endswith("weight") and ("c_attn" in name or "c_proj" in name or "c_fc" in name):
            t = t.t().contiguous()  # HF (in, out) -> (out, in), as cllm holds it
        params[name] = t
    out = {}
    for name, t in params.items():
        if t.dim() == 2 and name.endswith("weight") and "wte" not in name and "wpe" not in name:
            t = t.t().contiguous()
        out[name] = t
    os.makedirs(dst, exist_ok=True)
    path = os.path.join(dst, "model.safetensors")
    gpt2_ref.save_safetensors(path, out, {"format": "pt"})
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cllm", default=os.path.join(HERE, "..", "build", "cllm"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=None, help="scratch directory (default: a temporary one)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    work = args.dir or tempfile.mkdtemp(prefix="cllm-ckpt-bench-")
    os.makedirs(work, exist_ok=True)
    hf = os.path.join(work, "hf")
    if not os.path.exists(os.path.join(hf, "model.safetensors")):
        cfg = dict(CFG, layer_norm_epsilon=1e-5, initializer_range=0.02)
        p = gpt2_ref.gpt2_init(cfg, torch.Generator().manual_seed(0))
        os.makedirs(hf, exist_ok=True)
        gpt2_ref.save_safetensors(os.path.join(hf, "model.safetensors"),
                                  {n: p[n] for n in gpt2_ref.param_names(cfg)}, {"format": "pt"})
        with open(os.path.join(hf, "config.json"), "w") as f:
            f.write(gpt2_ref.config_to_json(cfg))
    size = os.path.getsize(os.path.join(hf, "model.safetensors"))
    run, out, peer = (os.path.join(work, x) for x in ("run", "out", "peer"))

    def rm(*paths):
        return lambda: [shutil.rmtree(x, ignore_errors=True) for x in paths]

    def cllm(*a):
        subprocess.run([args.cllm, *a], check=True, stdout=subprocess.DEVNULL)

    t_peer = best_of(args.repeat, lambda: torch_peer(hf, peer), rm(peer))
    t_imp = best_of(args.repeat, lambda: cllm("import", "--from", hf, "--out", run), rm(run))
    t_exp = best_of(args.repeat, lambda: cllm("export", "--ckpt", run, "--out", out), rm(out))
    print("GPT-2 124M, %.0f MB of float32 weights, best of %d:" % (size / 1e6, args.repeat))
    print("  torch peer (read, transpose, write, fsync)  %6.2f s" % t_peer)
    print("  cllm import                                  %6.2f s  (%.2fx the peer's time)"
          % (t_imp, t_imp / t_peer))
    print("  cllm export                                  %6.2f s  (%.2fx the peer's time)"
          % (t_exp, t_exp / t_peer))
    try:
        import transformers
    except ImportError:
        transformers = None
    if transformers:
        hfo = os.path.join(work, "hf_out")

        def hf_round():
            transformers.GPT2LMHeadModel.from_pretrained(hf).save_pretrained(
                hfo, safe_serialization=True)
        t_hf = best_of(args.repeat, hf_round, rm(hfo))
        print("  transformers from_pretrained+save_pretrained %6.2f s  (%.2fx the peer's time; "
              "no fsync)" % (t_hf, t_hf / t_peer))
    if not args.dir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
