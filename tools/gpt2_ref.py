"""Reference pieces shared by cllm's PyTorch tools (gen_gpt_fixtures.py, check_export.py).

- a minimal GPT-2 in plain PyTorch, numerically identical to Hugging Face's GPT2LMHeadModel
  (eager attention, transformers 4.x): pre-LayerNorm blocks, fused c_attn, Conv1D weights
  stored (in, out) and applied with torch.addmm, attention scores divided by sqrt(hs) and
  masked with finfo.min, tanh GELU ("gelu_new"), final LayerNorm, LM head tied to wte.
  Parameters are a dict keyed by Hugging Face names ("wte.weight", "h.0.attn.c_attn.weight",
  ..., "ln_f.bias") with Hugging Face shapes, so the same dict is what a model.safetensors
  holds.
- a safetensors reader and writer written out by hand (the format is an 8-byte little-endian
  header length, a JSON header, then the raw little-endian data), so that the tools need only
  Debian's python3-torch and python3-numpy.

Runs with /usr/bin/python3 (Debian's python3-torch 1.13); no transformers, no safetensors.
"""

import json
import math
import struct

import numpy as np
import torch
import torch.nn.functional as F

# --------------------------------------------------------------------------- safetensors

_NP_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8,
    "U64": np.uint64, "U32": np.uint32, "U16": np.uint16, "U8": np.uint8, "BOOL": np.bool_,
}


def _dtype_name(a):
    for name, dt in _NP_DTYPES.items():
        if a.dtype == np.dtype(dt):
            return name
    raise ValueError("unsupported dtype %s" % a.dtype)


def save_safetensors(path, tensors, metadata=None):
    """Write `tensors` (an ordered dict name -> numpy array or torch tensor) to `path`.

    Data is laid out in the dict's order, contiguous; the JSON header is padded with spaces
    to a multiple of 8 bytes as the reference implementation does. `metadata` is a dict of
    strings stored under "__metadata__"."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name, t in tensors.items():
        if isinstance(t, torch.Tensor):
            t = t.detach().cpu().numpy()
        a = np.ascontiguousarray(t)
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        data = a.tobytes()
        header[name] = {"dtype": _dtype_name(a), "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    """Read a safetensors file: returns (dict name -> numpy array, metadata dict).

    BF16 tensors are returned as float32."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError("%s: too short for a safetensors header" % path)
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError("%s: header length %d beyond the file" % (path, n))
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    metadata = header.pop("__metadata__", {}) or {}
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        shape = tuple(info["shape"])
        if info["dtype"] == "BF16":
            u = np.frombuffer(data[b:e], dtype="<u2").astype(np.uint32) << 16
            out[name] = u.view(np.float32).reshape(shape)
        else:
            dt = np.dtype(_NP_DTYPES[info["dtype"]]).newbyteorder("<")
            out[name] = np.frombuffer(data[b:e], dtype=dt).reshape(shape).copy()
    return out, metadata

# --------------------------------------------------------------------------- the model

LAYER_SUFFIXES = [
    "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
    "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
    "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias",
]


def param_names(cfg):
    """Hugging Face GPT-2 parameter names in cllm's order (the order of cllm_gpt_hf_tensor)."""
    names = ["wte.weight", "wpe.weight"]
    for l in range(cfg["n_layer"]):
        names += ["h.%d.%s" % (l, s) for s in LAYER_SUFFIXES]
    return names + ["ln_f.weight", "ln_f.bias"]


def param_shapes(cfg):
    V, P, C = cfg["vocab_size"], cfg["n_positions"], cfg["n_embd"]
    per = {"ln_1.weight": (C,), "ln_1.bias": (C,), "attn.c_attn.weight": (C, 3 * C),
           "attn.c_attn.bias": (3 * C,), "attn.c_proj.weight": (C, C), "attn.c_proj.bias": (C,),
           "ln_2.weight": (C,), "ln_2.bias": (C,), "mlp.c_fc.weight": (C, 4 * C),
           "mlp.c_fc.bias": (4 * C,), "mlp.c_proj.weight": (4 * C, C), "mlp.c_proj.bias": (C,)}
    shapes = {"wte.weight": (V, C), "wpe.weight": (P, C), "ln_f.weight": (C,), "ln_f.bias": (C,)}
    for l in range(cfg["n_layer"]):
        for s in LAYER_SUFFIXES:
            shapes["h.%d.%s" % (l, s)] = per[s]
    return shapes


def decays(name):
    """GPT-2 training decays the 2-D tensors (weights, embeddings), not biases or LayerNorm."""
    return name.endswith(".weight") and not name.split(".")[-2].startswith("ln_")


def gpt2_init(cfg, generator):
    """GPT-2 initialisation as Hugging Face's GPT2PreTrainedModel._init_weights does it:
    N(0, initializer_range) for weights and embeddings, c_proj weights with std divided by
    sqrt(2 * n_layer), zero biases, LayerNorm weight 1 and bias 0."""
    std = cfg.get("initializer_range", 0.02)
    p = {}
    for name, shape in param_shapes(cfg).items():
        if name.endswith("c_proj.weight"):
            p[name] = torch.randn(shape, generator=generator) * (std / math.sqrt(2 * cfg["n_layer"]))
        elif len(shape) == 2:
            p[name] = torch.randn(shape, generator=generator) * std
        elif "ln_" in name and name.endswith("weight"):
            p[name] = torch.ones(shape)
        else:
            p[name] = torch.zeros(shape)
    return p


def _layer_norm(x, w, b, eps):
    return F.layer_norm(x, (x.size(-1),), w, b, eps)


def _conv1d(x, w, b):
    # transformers.pytorch_utils.Conv1D: weight (in, out), out = x @ w + b via addmm.
    size_out = x.size()[:-1] + (w.size(-1),)
    return torch.addmm(b, x.view(-1, x.size(-1)), w).view(size_out)


def _gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def forward(p, cfg, idx, lora=None):
    """Logits (B, T, V) for token ids `idx` (B, T), as GPT2LMHeadModel computes them.

    `lora` (optional): LoRA adapters as PEFT's LoraLayer applies them to a Conv1D, a dict
    {"scaling": lora_alpha / r, "<module>" ("h.0.attn.c_attn"): (A (r, in), B (out, r))}:
    result = base(x) + lora_B(lora_A(x)) * scaling (lora_dropout 0)."""
    def proj(x, name):
        out = _conv1d(x, p[name + ".weight"], p[name + ".bias"])
        if lora is not None and name in lora:
            a, b = lora[name]
            out = out + F.linear(F.linear(x, a), b) * lora["scaling"]
        return out

    B, T = idx.shape
    C, NH, L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    hs = C // NH
    pos = torch.arange(T, dtype=torch.long).unsqueeze(0)
    x = F.embedding(idx.long(), p["wte.weight"]) + F.embedding(pos, p["wpe.weight"])
    causal = torch.tril(torch.ones((T, T), dtype=torch.bool)).view(1, 1, T, T)
    for l in range(L):
        h = "h.%d." % l
        a = _layer_norm(x, p[h + "ln_1.weight"], p[h + "ln_1.bias"], eps)
        qkv = proj(a, h + "attn.c_attn")
        q, k, v = qkv.split(C, dim=2)
        q = q.view(B, T, NH, hs).permute(0, 2, 1, 3)
        k = k.view(B, T, NH, hs).permute(0, 2, 1, 3)
        v = v.view(B, T, NH, hs).permute(0, 2, 1, 3)
        w = torch.matmul(q, k.transpose(-1, -2))
        w = w / torch.full([], v.size(-1) ** 0.5, dtype=w.dtype)
        w = torch.where(causal, w, torch.full([], torch.finfo(w.dtype).min, dtype=w.dtype))
        w = F.softmax(w, dim=-1)
        y = torch.matmul(w, v).permute(0, 2, 1, 3).contiguous().view(B, T, C)
        y = proj(y, h + "attn.c_proj")
        x = y + x
        m = _layer_norm(x, p[h + "ln_2.weight"], p[h + "ln_2.bias"], eps)
        m = proj(m, h + "mlp.c_fc")
        m = _gelu_new(m)
        m = proj(m, h + "mlp.c_proj")
        x = x + m
    x = _layer_norm(x, p["ln_f.weight"], p["ln_f.bias"], eps)
    return F.linear(x, p["wte.weight"])


def loss_fn(logits, targets):
    """Mean cross-entropy over targets that are not -1 (ignored), as cllm and llm.c define it."""
    V = logits.size(-1)
    return F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1).long(), ignore_index=-1)


def config_from_json(text):
    """The keys the model needs from a Hugging Face GPT-2 config.json."""
    c = json.loads(text)
    cfg = {k: c[k] for k in ("vocab_size", "n_embd", "n_layer", "n_head")}
    cfg["n_positions"] = c.get("n_positions", c.get("n_ctx"))
    cfg["layer_norm_epsilon"] = c.get("layer_norm_epsilon", 1e-5)
    cfg["initializer_range"] = c.get("initializer_range", 0.02)
    return cfg


def config_to_json(cfg):
    """config.json with the Hugging Face GPT-2 keys GPT2LMHeadModel reads."""
    return json.dumps({
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
        "vocab_size": cfg["vocab_size"], "n_positions": cfg["n_positions"],
        "n_ctx": cfg["n_positions"], "n_embd": cfg["n_embd"], "n_layer": cfg["n_layer"],
        "n_head": cfg["n_head"], "n_inner": None, "activation_function": "gelu_new",
        "layer_norm_epsilon": cfg.get("layer_norm_epsilon", 1e-5),
        "initializer_range": cfg.get("initializer_range", 0.02),
        "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
        "scale_attn_weights": True, "tie_word_embeddings": True,
    }, indent=2)
