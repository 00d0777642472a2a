#!/usr/bin/env python3
"""Show that Hugging Face `tokenizers` loads a cllm-trained tokenizer.json and encodes every
text exactly as cllm does.

    .venv/bin/pip install tokenizers tiktoken
    .venv/bin/python tools/tokenizer_hf_check.py [--cllm build/cllm] [--vocab-size 8192]

It trains a tokenizer with `cllm tokenizer train` on the fortunes corpus (Debian package
`fortunes`) with two extra special tokens, loads it with tokenizers.Tokenizer.from_file, and
compares the ids of both on: every text of tests/fixtures/tokenizer_gpt2_vectors.jsonl (prose,
code, whitespace, contractions, digits, CJK, emoji, combining marks, controls, random code
points, special tokens), every fortune, and the whole corpus as one text. Hugging Face always
recognises added tokens, so cllm encodes with --allowed-special all. It also checks the
tokenizer.json cllm writes for GPT-2's own files (../shared/data/gpt2) the same way.
Exit status 0 when every text matches.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

from tokenizers import Tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cllm_encode(cllm, tok, texts, tmp):
    src = os.path.join(tmp, "texts.jsonl")
    with open(src, "w", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
    out = subprocess.run([cllm, "tokenizer", "encode", "-t", tok, "--jsonl", "--input", src,
                          "--allowed-special", "all"], check=True, capture_output=True).stdout
    return [json.loads(l) for l in out.decode().splitlines()]


def compare(name, cllm, tok_path, texts, tmp):
    hf = Tokenizer.from_file(tok_path)
    ours = cllm_encode(cllm, tok_path, texts, tmp)
    theirs = [e.ids for e in hf.encode_batch(texts, add_special_tokens=False)]
    bad = [i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b]
    n_ids = sum(len(x) for x in ours)
    print(f"{name}: {len(texts)} texts, {n_ids} ids, vocab {hf.get_vocab_size()}: "
          f"{len(texts) - len(bad)} identical, {len(bad)} different")
    for i in bad[:5]:
        print(f"  differs: {texts[i][:60]!r}\n    cllm {ours[i][:20]}\n    hf   {theirs[i][:20]}")
    return not bad and len(ours) == len(texts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cllm", default=os.path.join(ROOT, "build", "cllm"))
    ap.add_argument("--vocab-size", type=int, default=8192)
    ap.add_argument("--gpt2", default=os.path.join(ROOT, "..", "shared", "data", "gpt2"))
    args = ap.parse_args()
    import tokenizers
    print(f"tokenizers {tokenizers.__version__}")

    files = sorted(f for f in glob.glob("/usr/share/games/fortunes/*")
                   if not f.endswith((".dat", ".u8")) and os.path.isfile(f))
    vectors = []
    with open(os.path.join(ROOT, "tests", "fixtures", "tokenizer_gpt2_vectors.jsonl"),
              encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if "text" in r:  # "hex" ones hold U+0000, which a JSON line cannot pass to cllm
                vectors.append(r["text"])
    fortunes = []
    corpus = ""
    for p in files:
        with open(p, encoding="utf-8", errors="replace") as f:
            s = f.read()
        corpus += s
        fortunes += [x for x in s.split("\n%\n") if x]
    texts = vectors + fortunes + [corpus]

    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        tok = os.path.join(tmp, "tokenizer.json")
        subprocess.run([args.cllm, "tokenizer", "train", "--input", *files, "--vocab-size",
                        str(args.vocab_size), "--special", "<|user|>", "--special",
                        "<|assistant|>", "-o", tok, "-q"], check=True)
        ok &= compare(f"cllm-trained (fortunes, vocab {args.vocab_size})", args.cllm, tok,
                      texts + ["<|user|>hi<|assistant|>hello<|endoftext|>"], tmp)
        if os.path.isfile(os.path.join(args.gpt2, "encoder.json")):
            g = os.path.join(tmp, "gpt2.json")
            subprocess.run([args.cllm, "tokenizer", "convert", "-t", args.gpt2, "-o", g],
                           check=True)
            ok &= compare("GPT-2 files written as tokenizer.json by cllm", args.cllm, g, texts,
                          tmp)
    print("all identical" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
