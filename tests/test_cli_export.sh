#!/usr/bin/env bash
# cllm import / export through the binary: a Hugging Face directory written by PyTorch
# (tests/fixtures/hf_tiny) into a run and back out, llm.c files both ways (the weights must
# survive byte for byte), tokenizers stored on import, refusals (existing outputs, truncated
# and foreign files, bad flags) and, where PyTorch is installed, the exported directories'
# logits checked against the fixture by tools/check_export.py.
set -u
. "$(dirname "$0")/lib.sh"

C=$CLLM_BIN
FX=$CLLM_SOURCE_DIR/tests/fixtures
T=$(fresh_tmp cli_export)

expect 0 "import --help" "$C" import --help
expect_out "--tokenizer TOK" "$C" import --help
expect 0 "export --help" "$C" export --help
expect_out "--format hf|llmc" "$C" export --help

# Hugging Face directory -> run -> Hugging Face directory
expect 0 "import hf" "$C" import --from "$FX/hf_tiny" --out "$T/run"
check '[ -f "$T/run/step_00000000/model.safetensors" ] && [ -f "$T/run/step_00000000/config.json" ]' \
  "import wrote step_00000000"
check '[ "$(cat "$T/run/latest")" = step_00000000 ]' "import pointed latest at step 0"
expect_out "19824 parameters" "$C" import --from "$FX/hf_tiny" --out "$T/run_b"
expect 2 "import into a run with checkpoints" "$C" import --from "$FX/hf_tiny" --out "$T/run"
expect_err "already holds checkpoints" "$C" import --from "$FX/hf_tiny" --out "$T/run"

expect 0 "export hf" "$C" export --ckpt "$T/run" --out "$T/hf"
check '[ -f "$T/hf/model.safetensors" ] && [ -f "$T/hf/config.json" ]' "export wrote the directory"
before=$(cksum < "$T/hf/model.safetensors")
expect 2 "export over an existing directory" "$C" export --ckpt "$T/run" --out "$T/hf" --dtype bf16
expect_err "already exists" "$C" export --ckpt "$T/run" --out "$T/hf"
check '[ "$(cksum < "$T/hf/model.safetensors")" = "$before" ]' "a refused export left the old one alone"
expect 0 "export --force" "$C" export --ckpt "$T/run" --out "$T/hf" --force
check '[ "$(cksum < "$T/hf/model.safetensors")" = "$before" ]' "the same checkpoint exports the same bytes"
expect 0 "export f16" "$C" export --ckpt "$T/run/step_00000000" --out "$T/hf16" --dtype f16
expect 0 "export bf16" "$C" export --ckpt "$T/run" --out "$T/hfbf16" --dtype bf16
check 'grep -q "\"torch_dtype\":[[:space:]]*\"float16\"" "$T/hf16/config.json"' "f16 export says float16"
check '[ $(stat -c %s "$T/hf16/model.safetensors") -lt $(stat -c %s "$T/hf/model.safetensors") ]' \
  "the f16 export is smaller"

# llm.c files: export, import, export again: every weight byte survives
expect 0 "export llmc" "$C" export --ckpt "$T/run" --out "$T/m.bin" --format llmc
check '[ $(stat -c %s "$T/m.bin") -eq $((1024 + 4 * (256 * 24 + 19824 - 203 * 24))) ]' \
  "the llm.c file has a 1024-byte header and Vp = 256 rows of wte"
expect 0 "import llmc" "$C" import --from "$T/m.bin" --out "$T/run2"
expect 0 "export from llmc" "$C" export --ckpt "$T/run2" --out "$T/hf2"
check 'cmp -s "$T/hf/model.safetensors" "$T/hf2/model.safetensors"' \
  "HF -> cllm -> llm.c -> cllm -> HF keeps every weight"
expect 0 "export llmc bf16" "$C" export --ckpt "$T/run" --out "$T/m5.bin" --format llmc --dtype bf16
expect 0 "import llmc bf16" "$C" import --from "$T/m5.bin" --out "$T/run5"
expect 2 "existing llmc file" "$C" export --ckpt "$T/run" --out "$T/m.bin" --format llmc
expect 2 "llmc into a directory" "$C" export --ckpt "$T/run" --out "$T/hf" --format llmc
expect 2 "llmc has no f16" "$C" export --ckpt "$T/run" --out "$T/x.bin" --format llmc --dtype f16
expect_err "not f16" "$C" export --ckpt "$T/run" --out "$T/x.bin" --format llmc --dtype f16

# bad input: one line, the right exit code, nothing created
head -c 5000 "$T/m.bin" > "$T/trunc.bin"
expect 1 "truncated llm.c file" "$C" import --from "$T/trunc.bin" --out "$T/run3"
expect_err "(truncated?)" "$C" import --from "$T/trunc.bin" --out "$T/run3"
check '[ ! -e "$T/run3" ]' "a failed import creates nothing"
{ printf 'PK\003\004 not a model'; head -c 2000 /dev/zero; } > "$T/pytorch_model.bin"
expect 1 "a zip is not an llm.c file" "$C" import --from "$T/pytorch_model.bin" --out "$T/run3"
expect_err "bad magic" "$C" import --from "$T/pytorch_model.bin" --out "$T/run3"
mkdir -p "$T/empty"
expect 1 "not a checkpoint" "$C" export --ckpt "$T/empty" --out "$T/x"
expect_err "not a checkpoint" "$C" export --ckpt "$T/empty" --out "$T/x"
expect_err "has pytorch_model.bin but no model.safetensors" "$C" export --ckpt "$T" --out "$T/x"
expect 1 "missing checkpoint" "$C" export --ckpt "$T/nope" --out "$T/x"
expect 2 "no --ckpt" "$C" export --out "$T/x"
expect 2 "bad --format" "$C" export --ckpt "$T/run" --out "$T/x" --format onnx
expect 2 "no --from" "$C" import --out "$T/x"
lines=$("$C" export --ckpt "$T/nope" --out "$T/x" 2>&1 | wc -l)
check "[ $lines -eq 1 ]" "an error is one line (got $lines)"

# Tokenizers on import: a trained one that fits, GPT-2's that does not fit a 203-token model.
# A zero llm.c model with V = 300 (valid: finite weights) to hold the trained tokenizer.
{
  printf '\306\327\064\001\003\000\000\000\010\000\000\000\054\001\000\000'  # 20240326 3 8 300
  printf '\001\000\000\000\002\000\000\000\010\000\000\000\200\001\000\000'  # L 1 NH 2 C 8 Vp 384
  head -c $((1024 - 32 + 4 * (384 * 8 + 8 * 8 + 12 * 64 + 13 * 8 + 2 * 8))) /dev/zero
} > "$T/v300.bin"
for i in $(seq 1 40); do echo "the quick brown fox $i jumps over the lazy dog, again and again"; done > "$T/text.txt"
expect 0 "train a tokenizer" "$C" tokenizer train --input "$T/text.txt" --vocab-size 290 -o "$T/tok.json"
expect 0 "import with --tokenizer" "$C" import --from "$T/v300.bin" --out "$T/runtok" --tokenizer "$T/tok.json"
check 'cmp -s "$T/tok.json" "$T/runtok/step_00000000/tokenizer.json"' "the tokenizer was stored as given"
expect 0 "export carries the tokenizer" "$C" export --ckpt "$T/runtok" --out "$T/hftok"
check 'cmp -s "$T/tok.json" "$T/hftok/tokenizer.json"' "the export holds tokenizer.json"
if [ -f "$CLLM_SHARED_DATA/gpt2/encoder.json" ]; then
  mkdir -p "$T/hfgpt2tok"
  cp "$FX/hf_tiny/model.safetensors" "$FX/hf_tiny/config.json" "$T/hfgpt2tok/"
  cp "$CLLM_SHARED_DATA/gpt2/encoder.json" "$T/hfgpt2tok/vocab.json"
  cp "$CLLM_SHARED_DATA/gpt2/vocab.bpe" "$T/hfgpt2tok/merges.txt"
  expect 2 "a tokenizer larger than the model" "$C" import --from "$T/hfgpt2tok" --out "$T/run4"
  expect_err "vocab.json + merges.txt) has 50257 tokens but the model's vocabulary has only 203" \
    "$C" import --from "$T/hfgpt2tok" --out "$T/run4"
fi

# PyTorch: the exported directories compute the fixture's logits
if /usr/bin/python3 -c 'import torch, numpy' 2>/dev/null; then
  for d in hf hf16 hfbf16 hf2; do
    expect 0 "check_export $d" /usr/bin/python3 "$CLLM_SOURCE_DIR/tools/check_export.py" "$T/$d" \
      --fixture "$FX/gpt_tiny.safetensors"
  done
else
  echo "note: no PyTorch (python3-torch): tools/check_export.py not run"
fi

finish
