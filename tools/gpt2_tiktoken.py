"""tiktoken's `gpt2` encoding built from local GPT-2 files (encoder.json + vocab.bpe), so that
nothing is downloaded. Used by tools/tokenizer_vectors.py and bench/tokenizer_bench.py.

GPT-2's published pre-tokenizer pattern (encoder.py of openai/gpt-2) is used; tiktoken's own
r50k pattern (possessive quantifiers, \\s++$) cuts the same way, which gpt2_encoding() checks
on a sample when asked to.
"""
import json
import os

import tiktoken
from gpt2_bytes import bytes_to_unicode

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
ENDOFTEXT = "<|endoftext|>"


def gpt2_encoding(data_dir):
    """tiktoken.Encoding equal to tiktoken's `gpt2`, from data_dir/encoder.json + vocab.bpe."""
    with open(os.path.join(data_dir, "encoder.json"), encoding="utf-8") as f:
        encoder = json.load(f)
    decoder = {c: b for b, c in bytes_to_unicode().items()}
    ranks = {}
    for token, i in encoder.items():
        if token == ENDOFTEXT:
            continue
        ranks[bytes(decoder[c] for c in token)] = i
    # tiktoken's data_gym loader checks that vocab.bpe's merge order gives these ranks; do too
    with open(os.path.join(data_dir, "vocab.bpe"), encoding="utf-8") as f:
        merges = [l.split() for l in f.read().split("\n")[1:] if l]
    for r, (a, b) in enumerate(merges):
        assert encoder[a + b] == 256 + r, (a, b, r)
    return tiktoken.Encoding("gpt2-local", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                             special_tokens={ENDOFTEXT: encoder[ENDOFTEXT]})
