#!/usr/bin/env python3
"""Reference values for cllm's generation metrics (tests/test_eval_text.c).

Writes tests/fixtures/textmetrics.json with what the real packages compute for fixed inputs:
  - sacreBLEU (tested with 2.6.0): BLEU()'s segment preprocessing (rstrip + tokenize_13a),
    sacrebleu.corpus_bleu(hyps, [refs]) with every default, sacrebleu.sentence_bleu(hyp, [ref]);
  - rouge-score (tested with 0.1.2): DefaultTokenizer(use_stemmer=False).tokenize and
    RougeScorer(['rouge1', 'rouge2', 'rougeL'], use_stemmer=False).score(ref, hyp).

Run (any Python 3 with the two packages; nothing else is needed):
    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install sacrebleu rouge-score
    /tmp/venv/bin/python tools/gen_textmetric_fixtures.py [tests/fixtures/textmetrics.json]
"""
import json
import random
import sys

import sacrebleu
from sacrebleu.metrics import BLEU
import rouge_score
from rouge_score import rouge_scorer, tokenizers

# Strings that exercise every rule of tokenize_13a and of rouge-score's tokenizer.
TEXTS = [
    "Hello, world!  It's 3.14 and 1,000,000 people.",
    "e.g. U.S.A. ... end.",
    "5-3=2; well-known - dash -- double; 12-15 pages",
    "Tom &amp; Jerry &quot;quoted&quot; &lt;tag&gt; &amp;lt; & alone",
    "<skipped> text with <skipped> markers",
    "line one-\nline two\nline three",
    "tabs\tand\u00a0nbsp\u2003em space\u3000ideographic\u2028sep",
    "na\u00efve caf\u00e9 r\u00e9sum\u00e9 \u2014 \u201cquotes\u201d \u2018single\u2019 \u2026",
    "price: $5.00, 10% off! (really?) [yes] {ok} a/b c\\d e|f ~g ^h _i `j @k #l +m *n =o",
    "trailing spaces   \t ",
    "   leading spaces",
    "x.... .,., 1.a a.1 ,5 5, 3., .3 a,b 1,2 -1 1- a-b",
    "",
    "   ",
    "\x1c\x1d\x1e\x1f separators \x1c",
    "\u0085next line\u0085",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3002\u53e5\u8aad\u70b9\u3001\u3067\u3059",
    "\u0130stanbul xI\u0307 KELVIN\u212a \u00c5NGSTR\u00d6M \u212b",
    "\U0001F44D good \U0001F600 emoji",
    "ALL CAPS and MiXeD case, don't won't 'quoted' \"double\"",
    "The U.S. economy grew 2.5% in Q3, beating forecasts of 2.1%.",
    "He said: \"I'll be back\" -- and left at 5:30 p.m.",
]

WORDS = ("the a cat dog sat on mat big small red blue ran quickly slowly over under house "
         "tree bird sang song , . ! ? 3 42 1,000 3.5 it's don't").split()


def rand_sentence(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


def perturb(rng, s):
    toks = s.split()
    out = []
    for t in toks:
        r = rng.random()
        if r < 0.12:
            continue  # drop
        if r < 0.25:
            out.append(rng.choice(WORDS))  # replace
            continue
        out.append(t)
        if r > 0.93:
            out.append(rng.choice(WORDS))  # insert
    if len(out) > 3 and rng.random() < 0.3:
        i = rng.randrange(len(out) - 1)
        out[i], out[i + 1] = out[i + 1], out[i]
    return " ".join(out)


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/textmetrics.json"
    rng = random.Random(20240601)
    crafted = [
        ("the cat sat on the mat", "the cat sat on the mat"),
        ("completely different words here", "nothing in common at all"),
        ("", "the reference is not empty"),
        ("the hypothesis is not empty", ""),
        ("short", "a much longer reference sentence with many words in it"),
        ("a very long hypothesis that keeps going and going well past the reference", "short ref"),
        ("the the the the the the the", "the cat is on the mat"),
        ("Hello, world!", "hello world"),
        ("It costs $3.50, right?", "It costs $ 3.50 , right ?"),
        (TEXTS[7], TEXTS[7].upper()),
        (TEXTS[17], "istanbul xi kelvink \u00e5ngstr\u00f6m"),
        ("The quick brown fox jumps over the lazy dog.", "The fast brown fox leaps over the lazy dog."),
        ("one two three", "one two three four"),
        ("a b c d e f g", "g f e d c b a"),
    ]
    pairs = list(crafted)
    for _ in range(40):
        ref = rand_sentence(rng, rng.randint(3, 25))
        pairs.append((perturb(rng, ref), ref))

    bleu = BLEU()
    tok = tokenizers.DefaultTokenizer(use_stemmer=False)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)

    def bleu_dict(b):
        return {"score": b.score, "counts": list(b.counts), "totals": list(b.totals),
                "precisions": list(b.precisions), "bp": b.bp, "ratio": b.ratio,
                "sys_len": b.sys_len, "ref_len": b.ref_len}

    texts = TEXTS + [s for p in crafted for s in p]
    fx = {
        "generator": "tools/gen_textmetric_fixtures.py",
        "sacrebleu_version": sacrebleu.__version__,
        "rouge_score_version": getattr(rouge_score, "__version__", "0.1.2"),
        "tokenize_13a": [[t, bleu._preprocess_segment(t)] for t in texts],
        "rouge_tokenize": [[t, tok.tokenize(t)] for t in texts],
        "pairs": [],
        "corpora": [],
    }
    for hyp, ref in pairs:
        r = scorer.score(ref, hyp)
        fx["pairs"].append({
            "hyp": hyp, "ref": ref,
            "sentence_bleu": bleu_dict(sacrebleu.sentence_bleu(hyp, [ref])),
            "rouge": {k: [v.precision, v.recall, v.fmeasure] for k, v in r.items()},
        })
    corpora = [
        ("all", list(range(len(pairs)))),
        ("random", list(range(len(crafted), len(pairs)))),
        ("crafted", list(range(len(crafted)))),
        ("no_four_grams", [4, 12]),          # hypotheses too short for any 4-gram
        ("no_matches", [1]),
        ("smoothed", [13, 12]),              # some orders have totals but no matches
        ("empty_hyp", [2]),
    ]
    for name, idx in corpora:
        hyps = [pairs[i][0] for i in idx]
        refs = [pairs[i][1] for i in idx]
        fx["corpora"].append({"name": name, "pairs": idx,
                              "bleu": bleu_dict(sacrebleu.corpus_bleu(hyps, [refs]))})
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(fx, f, ensure_ascii=True, indent=1)
        f.write("\n")
    print(f"wrote {out_path}: {len(texts)} texts, {len(pairs)} pairs, {len(corpora)} corpora")


if __name__ == "__main__":
    main()
