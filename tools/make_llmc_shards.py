#!/usr/bin/python3
"""Write token shards exactly the way llm.c's data scripts do (dev/data/data_common.py,
write_datafile: a header of 256 numpy int32 — magic, version, token count — then the tokens as
numpy uint16 for GPT-2 or uint32 for Llama 3), so tests/test_data_shard.c can check that cllm
reads llm.c's files. The token values follow a formula the C test recomputes independently.

    /usr/bin/python3 tools/make_llmc_shards.py tests/fixtures/llmc
"""
import os
import sys

import numpy as np

# llm.c's header constants per model family.
FORMATS = {
    "gpt-2": (20240520, 1, np.uint16),
    "llama-3": (20240801, 7, np.uint32),
}


def write_datafile(filename, toks, model_desc):
    magic, version, dtype = FORMATS[model_desc]
    assert len(toks) < 2**31
    header = np.zeros(256, dtype=np.int32)
    header[0] = magic
    header[1] = version
    header[2] = len(toks)
    arr = np.array(toks, dtype=dtype)
    with open(filename, "wb") as f:
        f.write(header.tobytes())
        f.write(arr.tobytes())


def tokens(n, mul, add, vocab):
    # token i = (i * mul + add) mod vocab — the C test computes the same.
    return [(i * mul + add) % vocab for i in range(n)]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/llmc"
    os.makedirs(out, exist_ok=True)
    # llm.c's names: <dataset>_<split>_<NNNNNN>.bin (fineweb) and <dataset>_<split>.bin
    write_datafile(os.path.join(out, "fixture_train_000000.bin"), tokens(1000, 7919, 13, 50257), "gpt-2")
    write_datafile(os.path.join(out, "fixture_train_000001.bin"), tokens(601, 7919, 17, 50257), "gpt-2")
    write_datafile(os.path.join(out, "fixture_val.bin"), tokens(777, 104729, 7, 128256), "llama-3")


if __name__ == "__main__":
    main()
