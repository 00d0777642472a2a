#!/usr/bin/env bash
# LoRA through the binary: a Hugging Face GPT-2 directory with a PEFT adapter beside it (written
# by PyTorch: tests/fixtures/lora_tiny) imported into a run (the adapter files rewritten by cllm),
# exported with --merge-lora (Hugging Face directory and llm.c file) and without (the base, with
# a note); --adapter merging another directory's adapters; the refusals; and, where PyTorch is
# installed, the files cllm wrote read the way PEFT reads them (tools/check_lora.py) and the
# merged export's logits checked against PyTorch's unmerged LoRA model (tools/check_export.py).
set -u
. "$(dirname "$0")/lib.sh"

C=$CLLM_BIN
FX=$CLLM_SOURCE_DIR/tests/fixtures/lora_tiny
REF=$FX/reference.safetensors
T=$(fresh_tmp cli_lora)

expect_out "--merge-lora" "$C" export --help
expect_out "--adapter DIR" "$C" export --help

# import keeps the adapters beside the base model, in PEFT's format
expect 0 "import a model with a PEFT adapter" "$C" import --from "$FX" --out "$T/run"
expect_out "LoRA adapters: rank 3, alpha 7 on c_attn,attn.c_proj,c_fc,mlp.c_proj (2304 values)" \
  "$C" import --from "$FX" --out "$T/run_b"
S=$T/run/step_00000000
check '[ -f "$S/adapter_model.safetensors" ] && [ -f "$S/adapter_config.json" ] && [ -f "$S/model.safetensors" ]' \
  "the step directory holds the base and the adapters"
check 'grep -q "\"peft_type\":[[:space:]]*\"LORA\"" "$S/adapter_config.json"' "adapter_config.json says LORA"
check 'grep -q "\"base_model_name_or_path\":[[:space:]]*\"/.*/step_00000000\"" "$S/adapter_config.json"' \
  "the adapters' base is the step directory itself"

# --merge-lora: the fine-tuned model as a plain one, both formats
expect 0 "export --merge-lora" "$C" export --ckpt "$T/run" --merge-lora --out "$T/merged"
expect_out "merged LoRA adapters: rank 3, alpha 7 (scale 2.33333)" \
  "$C" export --ckpt "$T/run" --merge-lora --out "$T/merged_b"
check '[ ! -e "$T/merged/adapter_config.json" ] && [ ! -e "$T/merged/adapter_model.safetensors" ]' \
  "a merged export has no adapter files"
check 'cmp -s "$T/merged/model.safetensors" "$T/merged_b/model.safetensors"' "merging is deterministic"
expect 0 "export --merge-lora --format llmc" "$C" export --ckpt "$S" --merge-lora --out "$T/merged.bin" --format llmc
expect 0 "import the merged llm.c file" "$C" import --from "$T/merged.bin" --out "$T/run_llmc"
expect 0 "export it again" "$C" export --ckpt "$T/run_llmc" --out "$T/merged_llmc"
check 'cmp -s "$T/merged/model.safetensors" "$T/merged_llmc/model.safetensors"' \
  "the merged llm.c file holds the same weights"

# without --merge-lora: the base model, and a note saying so
expect 0 "export the base of a LoRA checkpoint" "$C" export --ckpt "$T/run" --out "$T/base"
expect_err "note: $T/run has LoRA adapters (rank 3 on c_attn,attn.c_proj,c_fc,mlp.c_proj) that are not part of this export" \
  "$C" export --ckpt "$T/run" --out "$T/base_b"
check '! cmp -s "$T/base/model.safetensors" "$T/merged/model.safetensors"' "the base differs from the merged model"

# --adapter: another directory's adapters onto a plain checkpoint (same shapes as lora_tiny's)
expect 0 "import the exported base" "$C" import --from "$T/base" --out "$T/run_base"
expect 0 "export --merge-lora --adapter" "$C" export --ckpt "$T/run_base" --merge-lora --adapter "$FX" --out "$T/merged2"
check 'cmp -s "$T/merged/model.safetensors" "$T/merged2/model.safetensors"' \
  "merging the same adapters from elsewhere gives the same model"

# refusals: one line, exit 2 for usage, 1 for bad files, nothing created
expect 2 "--merge-lora without adapters" "$C" export --ckpt "$T/run_base" --merge-lora --out "$T/x"
expect_err "--merge-lora: $T/run_base has no LoRA adapters" "$C" export --ckpt "$T/run_base" --merge-lora --out "$T/x"
expect 2 "--adapter without --merge-lora" "$C" export --ckpt "$T/run_base" --adapter "$FX" --out "$T/x"
expect 1 "--adapter that is not one" "$C" export --ckpt "$T/run_base" --merge-lora --adapter "$T/base" --out "$T/x"
expect_err "no adapter_config.json (not a LoRA adapter directory)" \
  "$C" export --ckpt "$T/run_base" --merge-lora --adapter "$T/base" --out "$T/x"
mkdir -p "$T/bad"
cp "$FX/adapter_model.safetensors" "$T/bad/"
sed 's/"r": 3/"r": 4/' "$FX/adapter_config.json" > "$T/bad/adapter_config.json"
expect 1 "an adapter whose rank does not match its tensors" \
  "$C" export --ckpt "$T/run_base" --merge-lora --adapter "$T/bad" --out "$T/x"
expect_err "has shape [3, 24] but the model (n_embd 24) with rank 4 needs [4, 24]" \
  "$C" export --ckpt "$T/run_base" --merge-lora --adapter "$T/bad" --out "$T/x"
sed 's/"c_fc"/"lm_head"/' "$FX/adapter_config.json" > "$T/bad/adapter_config.json"
expect_err "\"target_modules\" entry \"lm_head\": cllm puts adapters only on c_attn" \
  "$C" export --ckpt "$T/run_base" --merge-lora --adapter "$T/bad" --out "$T/x"
cp -r "$FX" "$T/badrun"
sed 's/"r": 3/"r": 4/' "$FX/adapter_config.json" > "$T/badrun/adapter_config.json"
expect 1 "a checkpoint whose adapters do not fit" "$C" export --ckpt "$T/badrun" --out "$T/x"
expect 1 "importing it" "$C" import --from "$T/badrun" --out "$T/run_bad"
check '[ ! -e "$T/x" ] && [ ! -e "$T/run_bad/step_00000000" ]' "refusals create nothing"
lines=$("$C" export --ckpt "$T/badrun" --out "$T/x" 2>&1 | wc -l)
check "[ $lines -eq 1 ]" "an error is one line (got $lines)"

# PyTorch: cllm's adapter files read as PEFT reads them; the merged export computes the LoRA
# model's logits
if /usr/bin/python3 -c 'import torch, numpy' 2>/dev/null; then
  expect 0 "check_lora on the fixture" /usr/bin/python3 "$CLLM_SOURCE_DIR/tools/check_lora.py" "$FX" --fixture "$REF"
  expect 0 "check_lora on cllm's files" /usr/bin/python3 "$CLLM_SOURCE_DIR/tools/check_lora.py" "$S" --fixture "$REF"
  # (merged_llmc and merged2 are byte-identical to merged: compared above)
  expect 0 "check_export merged" /usr/bin/python3 "$CLLM_SOURCE_DIR/tools/check_export.py" "$T/merged" --fixture "$REF"
else
  echo "note: no PyTorch (python3-torch): tools/check_lora.py and check_export.py not run"
fi

finish
