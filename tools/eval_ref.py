"""An independent reference for `cllm eval`, in Python and PyTorch (float64), used by
tools/gen_eval_fixtures.py and tools/eval_check.py.

- Tokenizer: byte-level BPE from a Hugging Face tokenizer.json, written out here (GPT-2's
  byte map, the merges applied lowest rank first to each pre-token). GPT-2's pre-tokenizer
  regex needs \\p{L} and \\p{N}, which Python's `re` lacks: letters are written [^\\W\\d_] and
  numbers \\d, which is exact for text whose numbers are all decimal digits (category Nd) and
  without the characters U+001C..U+001F (which str.isspace counts as space and Unicode's
  White_Space does not). encode() refuses any other text rather than tokenize it differently.
  When Hugging Face `tokenizers` is importable it is used instead (exact for any text).
- Perplexity over a token stream with cllm's windows (cllm/eval_model.h), written from their
  definition: an end-of-text in front of a stream that does not start with one; the first
  window scores targets 1..T, each later one the next `stride` targets from the T tokens
  before its last target.
- Multiple-choice log-likelihoods as lm-evaluation-harness's HFLM computes a loglikelihood
  request (_encode_pair, then the last max_length + 1 tokens, logits of the continuation),
  one full forward per choice, and the accuracies with lm-eval's standard error.

Runs with /usr/bin/python3 (Debian's python3-torch).
"""
import json
import math
import os
import re
import unicodedata

import numpy as np
import torch
import torch.nn.functional as F

import gpt2_ref
from gpt2_bytes import bytes_to_unicode

EOT = "<|endoftext|>"

# --------------------------------------------------------------------------- tokenizer


PRETOKEN = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+""")


class Tokenizer:
    """Byte-level BPE from tokenizer.json text (the subset cllm writes and reads)."""

    def __init__(self, json_text):
        d = json.loads(json_text)
        model = d["model"]
        if model.get("type") != "BPE":
            raise ValueError("tokenizer.json: model.type %r is not BPE" % model.get("type"))
        byte_of = {c: b for b, c in bytes_to_unicode().items()}
        self.vocab = model["vocab"]
        self.bytes = {}
        for tok, i in self.vocab.items():
            self.bytes[i] = bytes(byte_of[c] for c in tok)
        self.id_of_bytes = {b: i for i, b in self.bytes.items()}
        merges = model["merges"]
        self.rank = {}
        for r, m in enumerate(merges):
            a, b = m.split(" ") if isinstance(m, str) else m
            pa = bytes(byte_of[c] for c in a)
            pb = bytes(byte_of[c] for c in b)
            self.rank[(pa, pb)] = r
        self.special = {}
        for t in d.get("added_tokens", []):
            self.special[t["id"]] = t["content"]
            self.bytes[t["id"]] = t["content"].encode("utf-8")
        self.eot = next((i for i, c in self.special.items() if c == EOT), None)
        self.hf = None
        try:  # Hugging Face tokenizers, when present, encodes any text exactly
            import tokenizers
            self.hf = tokenizers.Tokenizer.from_str(json_text)
        except ImportError:
            pass
        self.cache = {}

    def vocab_size(self):
        return max(self.bytes) + 1

    def _bpe(self, piece):
        if piece in self.cache:
            return self.cache[piece]
        parts = [bytes([b]) for b in piece]
        while len(parts) > 1:
            best = None
            for k in range(len(parts) - 1):
                r = self.rank.get((parts[k], parts[k + 1]))
                if r is not None and (best is None or r < best[0]):
                    best = (r, k)
            if best is None:
                break
            k = best[1]
            parts[k:k + 2] = [parts[k] + parts[k + 1]]
        ids = [self.id_of_bytes[p] for p in parts]
        self.cache[piece] = ids
        return ids

    def encode(self, text):
        """Ids of `text` (special tokens in it are plain text, as cllm encodes by default)."""
        if self.hf is not None:
            return self.hf.encode(text, add_special_tokens=False).ids
        for ch in text:
            cat = unicodedata.category(ch)
            if cat in ("Nl", "No") or "\x1c" <= ch <= "\x1f":
                raise ValueError("text holds %r (category %s), which Python's re cannot "
                                 "pre-tokenize as GPT-2 does: install tokenizers" % (ch, cat))
        ids = []
        for piece in PRETOKEN.findall(text):
            ids.extend(self._bpe(piece.encode("utf-8")))
        return ids

    def text_bytes(self, i):
        """Bytes of text token i decodes to (special tokens: none)."""
        return 0 if i in self.special else len(self.bytes[i])


# --------------------------------------------------------------------------- checkpoints


def resolve(path):
    """A run directory follows `latest` (or its highest step_*); a step or HF directory as is."""
    latest = os.path.join(path, "latest")
    if os.path.isfile(latest):
        with open(latest) as f:
            return os.path.join(path, f.read().strip())
    steps = sorted(d for d in os.listdir(path) if d.startswith("step_")) \
        if os.path.isdir(path) else []
    return os.path.join(path, steps[-1]) if steps else path


def load_checkpoint(path, dtype=torch.float64):
    """(cfg, params as `dtype` tensors by Hugging Face name, Tokenizer or None, directory)."""
    d = resolve(path)
    with open(os.path.join(d, "config.json")) as f:
        cfg = gpt2_ref.config_from_json(f.read())
    tensors, _ = gpt2_ref.load_safetensors(os.path.join(d, "model.safetensors"))
    p = {}
    for name, a in tensors.items():
        n = name[len("transformer."):] if name.startswith("transformer.") else name
        if n.startswith("lm_head") or n.endswith(".attn.bias") or n.endswith(".attn.masked_bias"):
            continue
        p[n] = torch.from_numpy(a.astype(np.float32)).to(dtype)
    tok = None
    tp = os.path.join(d, "tokenizer.json")
    if os.path.isfile(tp):
        with open(tp, encoding="utf-8") as f:
            tok = Tokenizer(f.read())
    return cfg, p, tok, d


def log_probs(p, cfg, rows):
    """log_softmax of the logits (B, T, V) for equal-length token rows (B, T)."""
    idx = torch.tensor(rows, dtype=torch.long)
    with torch.no_grad():
        return F.log_softmax(gpt2_ref.forward(p, cfg, idx), dim=-1)


# --------------------------------------------------------------------------- perplexity


def perplexity(p, cfg, tok, tokens, T=None, stride=None, batch=16):
    """cllm's perplexity of a token stream: dict of nats, tokens, special, bytes, windows."""
    T = T or cfg["n_positions"]
    stride = stride or T
    s = list(tokens)
    if tok.eot is not None and (not s or s[0] != tok.eot):
        s = [tok.eot] + s
    N = len(s)
    windows, prev = [], 0  # (begin, end, first scored target)
    while prev < N - 1:
        end = min(T if prev == 0 else prev + stride, N - 1)
        begin = max(0, end - T)
        windows.append((begin, end, prev + 1))
        prev = end
    out = {"nats": 0.0, "tokens": 0, "special": 0, "bytes": 0, "windows": len(windows)}
    for k in range(0, len(windows), batch):
        chunk = windows[k:k + batch]
        lp = log_probs(p, cfg, [s[b:e] for b, e, _ in chunk])
        for r, (b, e, j0) in enumerate(chunk):
            tgt = torch.tensor(s[j0:e + 1], dtype=torch.long)
            out["nats"] -= lp[r, j0 - 1 - b:e - b].gather(1, tgt.unsqueeze(1)).double().sum().item()
            out["tokens"] += e + 1 - j0
            out["bytes"] += sum(tok.text_bytes(t) for t in s[j0:e + 1])
            out["special"] += sum(t in tok.special for t in s[j0:e + 1])
    out["loss"] = out["nats"] / out["tokens"]
    out["perplexity"] = math.exp(out["loss"])
    out["bits_per_byte"] = out["nats"] / math.log(2) / out["bytes"] if out["bytes"] else None
    return out


def word_count(text):
    """lm-eval's word count for word_perplexity."""
    return len(re.split(r"\s+", text))


# --------------------------------------------------------------------------- multiple choice


def encode_pair(tok, context, continuation):
    """lm-eval's HFLM._encode_pair (the empty context becomes the prefix token)."""
    if context == "":
        return [tok.eot], tok.encode(continuation)
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tok.encode(context + continuation)
    ctx = tok.encode(context)
    return ctx, whole[len(ctx):]


def loglikelihood(p, cfg, tok, context, continuation, T=None):
    """(sum of log p, continuation tokens, is_greedy) of one request, as HFLM computes it."""
    T = T or cfg["n_positions"]
    ctx, cont = encode_pair(tok, context, continuation)
    inp = (ctx + cont)[-(T + 1):][:-1]
    lp = log_probs(p, cfg, [inp])[0, len(inp) - len(cont):]
    tgt = torch.tensor(cont, dtype=torch.long)
    ll = lp.gather(1, tgt.unsqueeze(1)).sum().item()
    greedy = bool((lp.argmax(dim=-1) == tgt).all())
    return ll, len(cont), greedy


def mc_scores(items, results):
    """acc, acc_norm, acc_bytes, acc_token and their stderr for items [(choices, gold)] and
    results [[(loglik, n_tokens, greedy)] per choice]."""
    correct = {m: [] for m in ("acc", "acc_norm", "acc_bytes", "acc_token")}
    preds = []
    for (choices, gold), res in zip(items, results):
        ll = np.array([r[0] for r in res])
        div = {"acc": np.ones(len(res)), "acc_norm": np.array([len(c) for c in choices], float),
               "acc_bytes": np.array([len(c.encode("utf-8")) for c in choices], float),
               "acc_token": np.array([r[1] for r in res], float)}
        pred = {m: int(np.argmax(ll / div[m])) for m in correct}
        preds.append(pred)
        for m in correct:
            correct[m].append(1.0 if pred[m] == gold else 0.0)
    out = {}
    for m, v in correct.items():
        n = len(v)
        mu = sum(v) / n
        out[m] = mu
        out[m + "_stderr"] = (math.sqrt(sum((x - mu) ** 2 for x in v) / (n - 1)) / math.sqrt(n)
                              if n > 1 else None)
    return out, preds


# --------------------------------------------------------------------------- generation


def greedy(p, cfg, tok, prompt, max_tokens, stops=()):
    """lm-eval's generate_until with greedy decoding: the prompt's last T - max_tokens tokens
    (an empty prompt is <|endoftext|>), the argmax max_tokens times or until <|endoftext|>, the
    text decoded with errors="replace" and cut at the first stop string. Returns the text and
    the smallest gap between the best and the second log-probability met (a near tie may
    flip in float32)."""
    T = cfg["n_positions"]
    ctx = tok.encode(prompt) or [tok.eot]
    ctx = ctx[-(T - max_tokens):]
    out, margin = [], float("inf")
    for _ in range(max_tokens):
        top = torch.topk(log_probs(p, cfg, [ctx + out])[0, -1], 2)
        margin = min(margin, float(top.values[0] - top.values[1]))
        out.append(int(top.indices[0]))
        if out[-1] == tok.eot:
            break
    text = b"".join(tok.bytes[t] for t in out if t != tok.eot).decode("utf-8", "replace")
    cut = min([text.find(s) for s in stops if s and s in text] + [len(text)])
    return text[:cut], margin
