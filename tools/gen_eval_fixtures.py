#!/usr/bin/env python3
"""Reference results for `cllm eval` (tests/test_cli_eval.sh): a tiny GPT-2 with its own
byte-level BPE tokenizer, trained here for a few hundred steps on a short text (so that it
writes words and prefers some choices), a text longer than its context, multiple-choice and
generation sets, and what PyTorch computes for them in float64 through tools/eval_ref.py.

Writes tests/fixtures/eval_tiny/:
  config.json, model.safetensors, tokenizer.json   a Hugging Face GPT-2 directory that
                                                   `cllm import --from` takes as it is
  text.txt                                         ASCII prose, several contexts long
  mc.jsonl                                         generic records (what make-mc writes):
                                                   acc and acc_norm choosing differently, a
                                                   context longer than the window, an empty
                                                   context, trailing whitespace, 7 choices
  hellaswag.jsonl                                  HellaSwag records (bracketed WikiHow text)
  gen.jsonl                                        prompts (one empty, one longer than the
                                                   window) with references
  expected.json                                    perplexity per stride; per item and choice
                                                   the log-likelihood, tokens and greediness;
                                                   the accuracies; the greedy continuations
                                                   (GEN_MAX tokens, without and with the stop
                                                   string " the")

The tokenizer is trained here (most frequent byte pair first, ties to the smaller pair), so
that nothing of cllm's is used to make or check the expected numbers.

Run: /usr/bin/python3 tools/gen_eval_fixtures.py [tests/fixtures/eval_tiny]
"""
import collections
import json
import os
import re
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eval_ref  # noqa: E402
import gpt2_ref  # noqa: E402

CORPUS = (
    "The cat sat on the mat. The dog sat on the log. A cat and a dog met on the mat, and "
    "the cat ran to the log while the dog sat still. Then the rain came, and the cat and "
    "the dog ran home to the house on the hill, where the fire was warm and the bread was "
    "good. In the morning the sun was out again; the cat sat on the wall and the dog lay "
    "in the grass. 'It's a fine day,' said the old man, and he went down to the river to "
    "fish. He caught 3 fish by 10 o'clock and took them home for dinner."
)
TEXT = CORPUS + " " + (
    "The next day the man and his dog walked to the town to sell the fish. The cat stayed "
    "at home and watched the birds in the garden. When they came back, the cat was asleep "
    "on the mat by the fire, and the dog lay down beside her."
)
CONFIG = {"vocab_size": 320, "n_positions": 24, "n_embd": 32, "n_layer": 2, "n_head": 4,
          "layer_norm_epsilon": 1e-5, "initializer_range": 0.02}
MERGES = 48
STRIDES = [0, 7, 1]  # 0: the window
GEN_MAX = 12
GEN_STOP = " the"
GEN = [
    {"prompt": "The cat sat on the", "reference": "mat. The dog sat on the log."},
    {"prompt": "", "reference": "The cat sat on the mat."},
    {"prompt": "In the morning the sun was out again; the cat sat on the wall and the dog lay "
               "in the grass, and the old man", "reference": "went down to the river to fish."},
    {"prompt": "Then the rain came, and", "reference": "the cat and the dog ran home."},
]

MC = [
    # acc picks the short choice (fewer tokens, larger sum), acc_norm the long one
    {"context": "The dog sat on the", "choices": ["x", "log while the cat ran home to the hill"],
     "label": 1},
    # longer than the window (24): the choices cut the context at different places
    {"context": "In the morning the sun was out again; the cat sat on the wall and the dog "
                "lay in the grass by the river, and the old man went down to", "choices": [
        "fish", "the river to fish", "the town to sell the fish for dinner", "sleep"],
     "label": 1},
    {"context": "", "choices": ["The cat", "Then the rain", "It"], "label": 0},
    {"context": "The cat and the dog ran home to the ", "choices": ["house", "hill", "log"],
     "label": 0},
    {"context": "He caught", "choices": ["3 fish", "a cat", "the dog", "10 birds", "fish",
                                         "bread and fish by the river", "it"], "label": 0},
    {"context": "The fire was warm and the bread was", "choices": ["good.", "cold.", "wet."],
     "label": 0},
]
HELLASWAG = [
    {"ind": 1, "activity_label": "Walking the dog", "ctx_a": "A man walks his dog to the town.",
     "ctx_b": "THE DOG [title] sits", "endings": ["on the mat [step] by the fire.",
                                                  "in the river.", "down  beside him.",
                                                  "[header] and eats the fish."], "label": 2},
    {"ind": 2, "activity_label": "Fishing", "ctx_a": "[header] How to fish [title] Go down to "
     "the river.", "ctx_b": "", "endings": ["Take the cat.", "Catch 3 fish by 10 o'clock.",
                                           "Sit on the log [substeps] and wait.", "Sleep."],
     "label": 1},
]


def train_bpe(text, merges):
    """Most frequent adjacent pair first over GPT-2 pre-tokens; ties to the smaller pair."""
    words = collections.Counter(tuple(bytes([b]) for b in w.encode())
                                for w in eval_ref.PRETOKEN.findall(text))
    out = []
    for _ in range(merges):
        pairs = collections.Counter()
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        out.append(best)
        nw = collections.Counter()
        for w, c in words.items():
            t, k = [], 0
            while k < len(w):
                if k + 1 < len(w) and (w[k], w[k + 1]) == best:
                    t.append(w[k] + w[k + 1])
                    k += 2
                else:
                    t.append(w[k])
                    k += 1
            nw[tuple(t)] += c
        words = nw
    return out


def tokenizer_json(merges):
    enc = eval_ref.bytes_to_unicode()
    u = lambda b: "".join(enc[x] for x in b)  # noqa: E731
    vocab = {enc[b]: b for b in range(256)}
    for a, b in merges:
        assert u(a + b) not in vocab, "two merges make %r" % (a + b)
        vocab[u(a + b)] = len(vocab)
    eot = len(vocab)
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    return json.dumps({
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": eot, "content": eval_ref.EOT, "single_word": False,
                          "lstrip": False, "rstrip": False, "normalized": False,
                          "special": True}],
        "normalizer": None, "pre_tokenizer": bl, "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "vocab": vocab,
                  "merges": [u(a) + " " + u(b) for a, b in merges]},
    }, ensure_ascii=False, indent=1)


def hellaswag_request(doc):
    """lm-eval's tasks/hellaswag/utils.py process_docs."""
    def preprocess(text):
        text = text.strip()
        text = text.replace(" [title]", ". ")
        text = re.sub("\\[.*?\\]", "", text)
        return text.replace("  ", " ")
    ctx = doc["ctx_a"] + " " + doc["ctx_b"].capitalize()
    return preprocess(doc["activity_label"] + ": " + ctx), [preprocess(e) for e in doc["endings"]]


def train(p, cfg, ids, steps=300, seed=7):
    """A few hundred AdamW steps on random windows of the text (float32, in place)."""
    g = torch.Generator().manual_seed(seed)
    for t in p.values():
        t.requires_grad_(True)
    opt = torch.optim.AdamW(list(p.values()), lr=3e-3, weight_decay=0.0)
    data = torch.tensor(ids, dtype=torch.long)
    T = cfg["n_positions"]
    for _ in range(steps):
        starts = torch.randint(0, len(ids) - T - 1, (8,), generator=g)
        x = torch.stack([data[s:s + T] for s in starts])
        y = torch.stack([data[s + 1:s + T + 1] for s in starts])
        loss = gpt2_ref.loss_fn(gpt2_ref.forward(p, cfg, x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for t in p.values():
        t.requires_grad_(False)
    return loss.item()


def greedy(p, cfg, tok, prompt, max_tokens, stops):
    text, margin = eval_ref.greedy(p, cfg, tok, prompt, max_tokens, stops)
    # the device computes in float32: refuse a near tie that could flip an argmax
    assert margin > 1e-3, "near tie in the greedy continuation of %r" % prompt
    return text


def score_set(p, cfg, tok, requests):
    """requests: [(context, choices, gold)] -> (items for expected.json, metrics)."""
    items, results = [], []
    for ctx, choices, gold in requests:
        res = [eval_ref.loglikelihood(p, cfg, tok, ctx, " " + c) for c in choices]
        results.append(res)
        items.append({"loglik": [r[0] for r in res], "tokens": [r[1] for r in res],
                      "greedy": [r[2] for r in res]})
    metrics, preds = eval_ref.mc_scores([(c, g) for _, c, g in requests], results)
    for it, pr in zip(items, preds):
        it["pred"] = pr
    return items, metrics


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(__file__), "..", "tests", "fixtures", "eval_tiny")
    os.makedirs(out, exist_ok=True)
    tj = tokenizer_json(train_bpe(CORPUS, MERGES))
    tok = eval_ref.Tokenizer(tj)
    assert tok.vocab_size() <= CONFIG["vocab_size"]
    cfg = dict(CONFIG)
    torch.manual_seed(20240607)
    p32 = gpt2_ref.gpt2_init(cfg, torch.Generator().manual_seed(20240607))
    final_loss = train(p32, cfg, tok.encode(TEXT + "\n"))
    gpt2_ref.save_safetensors(os.path.join(out, "model.safetensors"),
                              {"transformer." + n: t for n, t in p32.items()},
                              metadata={"format": "pt"})
    with open(os.path.join(out, "config.json"), "w") as f:
        f.write(gpt2_ref.config_to_json(cfg) + "\n")
    with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(tj + "\n")
    with open(os.path.join(out, "text.txt"), "w") as f:
        f.write(TEXT + "\n")
    with open(os.path.join(out, "mc.jsonl"), "w") as f:
        for r in MC:
            f.write(json.dumps(r) + "\n")
    with open(os.path.join(out, "hellaswag.jsonl"), "w") as f:
        for r in HELLASWAG:
            f.write(json.dumps(r) + "\n")
    with open(os.path.join(out, "gen.jsonl"), "w") as f:
        for r in GEN:
            f.write(json.dumps(r) + "\n")

    p = {n: t.to(torch.float64) for n, t in p32.items()}
    text = TEXT + "\n"
    ids = tok.encode(text)
    expected = {"text": {"tokens": len(ids), "bytes": len(text.encode()),
                         "words": eval_ref.word_count(text)}}
    for s in STRIDES:
        r = eval_ref.perplexity(p, cfg, tok, ids, stride=s or None)
        expected["text"]["stride_%d" % s] = r
    expected["mc"] = dict(zip(("items", "metrics"), score_set(
        p, cfg, tok, [(r["context"], r["choices"], r["label"]) for r in MC])))
    expected["hellaswag"] = dict(zip(("items", "metrics"), score_set(
        p, cfg, tok, [hellaswag_request(d) + (d["label"],) for d in HELLASWAG])))
    expected["gen"] = {"max_tokens": GEN_MAX, "stop": GEN_STOP,
                       "outputs": [greedy(p, cfg, tok, r["prompt"], GEN_MAX, []) for r in GEN],
                       "outputs_stop": [greedy(p, cfg, tok, r["prompt"], GEN_MAX, [GEN_STOP])
                                        for r in GEN]}
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    m = expected["mc"]["metrics"]
    print("wrote %s: trained to loss %.3f; text %d tokens (ppl %.3f at stride T); mc acc %.3f "
          "acc_norm %.3f; gen %r"
          % (out, final_loss, len(ids), expected["text"]["stride_0"]["perplexity"], m["acc"],
             m["acc_norm"], expected["gen"]["outputs"]))


if __name__ == "__main__":
    main()
