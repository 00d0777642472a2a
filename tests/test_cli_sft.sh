#!/usr/bin/env bash
# cllm sft through the binary, on a tiny model pretrained here: the template's tokens added and
# the vocabulary grown in the run's config.json and tokenizer.json; the assistant-token
# validation loss falls; resume is exact (2N steps at once vs N, then --resume to 2N: the same
# losses and the same final weights, byte for byte); the category check and the before/after
# replies are reported; malformed records are errors with FILE:LINE under --strict and skipped
# and counted otherwise; usage errors exit 2 with one line and leave nothing behind.
set -u
. "$(dirname "$0")/lib.sh"
skip_without_opencl

C=$CLLM_BIN
T=$(fresh_tmp cli_sft)

expect 0 "sft --help" "$C" sft --help
expect_out "--val-fraction F" "$C" sft --help
expect_out "cllm sft --out RUN --resume" "$C" sft --help

# ---- a categorised corpus, a tokenizer, a chat set and a pretrained tiny model
mkdir -p "$T/corpus"
words_cats="cat whiskers purr mouse milk nap"
words_cars="car engine wheel road fuel drive"
words_rain="rain cloud storm wet umbrella drop"
for cat in cats cars rain; do
  eval "words=\$words_$cat"
  set -- $words
  : > "$T/corpus/$cat"
  for i in $(seq 1 24); do
    a=$(( i % 6 + 1 )); b=$(( (i * 5) % 6 + 1 )); c=$(( (i * 7) % 6 + 1 ))
    eval "w1=\${$a} w2=\${$b} w3=\${$c}"
    printf 'The %s and the %s, %d %s.\n%%\n' "$w1" "$w2" "$i" "$w3" >> "$T/corpus/$cat"
  done
done
expect 0 "tokenizer" "$C" tokenizer train --input "$T/corpus/cats" "$T/corpus/cars" \
  "$T/corpus/rain" --vocab-size 300 -o "$T/tok.json"
expect 0 "prepare" "$C" data prepare "$T/corpus" --doc-separator % --tokenizer "$T/tok.json" \
  --out "$T/data" --val-fraction 0.1
expect 0 "make-sft" "$C" data make-sft --input "$T/corpus" --doc-separator % \
  --out "$T/sft.jsonl" --val-out "$T/sft-val.jsonl" --val-fraction 0.25
cat > "$T/tiny.json" <<'EOF'
{"model_type": "gpt2", "vocab_size": 300, "n_positions": 64, "n_embd": 32, "n_layer": 2,
 "n_head": 2, "layer_norm_epsilon": 1e-5, "initializer_range": 0.02,
 "training": {"batch": 4, "seq": 32, "lr": 3e-3, "warmup": 2}}
EOF
expect 0 "pretrain" "$C" train --model "$T/tiny.json" --data "$T/data" --out "$T/base" \
  --steps 12 --eval-every 0 --ckpt-every 0

# ---- a run: vocabulary grown, template recorded, validation loss down, report written
SFT=(--init "$T/base" --data "$T/sft.jsonl" --val-data "$T/sft-val.jsonl" --batch 4 --seq 63 --lr 3e-3
     --samples 2 --sample-tokens 8)
out=$("$C" sft "${SFT[@]}" --out "$T/a" --steps 16 --category-check 2>&1)
rc=$?
check '[ $rc -eq 0 ]' "sft ran (exit $rc): $(tail -3 <<<"$out")"
check 'grep -q "4 template tokens added" <<<"$out"' "it says the template tokens were added"
check 'grep -q "vocab_size 300 -> 304" <<<"$out"' "it says the vocabulary grew"
cfg="$T/a/step_00000016/config.json"
check 'grep -q "\"vocab_size\":[[:space:]]*304" "$cfg" && grep -q "cllm-chat-v1" "$cfg"' \
  "the checkpoint's config.json has vocab_size 304 and the chat template"
check 'grep -q "<|assistant|>" "$T/a/step_00000016/tokenizer.json"' \
  "the checkpoint's tokenizer.json has the template tokens"
v0=$(head -1 "$T/a/metrics.jsonl" | sed -n 's/.*"val_loss":\([0-9.]*\).*/\1/p')
v1=$(tail -1 "$T/a/metrics.jsonl" | sed -n 's/.*"val_loss":\([0-9.]*\).*/\1/p')
check '[ -n "$v0" ] && [ -n "$v1" ] && awk -v a="$v0" -v b="$v1" "BEGIN{exit !(b < a - 0.5)}"' \
  "the assistant-token validation loss fell by more than 0.5 ($v0 -> $v1)"
check 'grep -q "category check at step 16: 18 held-out answers, 3 categories" <<<"$out"' \
  "the category check scored the 18 held-out answers"
check 'grep -q "replies to validation prompts" <<<"$out" && grep -q "<|user|>" <<<"$out"' \
  "replies before and after are printed"
check '[ -f "$T/a/sft_report.json" ] && grep -q "\"own_loss\"" "$T/a/sft_report.json"' \
  "sft_report.json holds the category check"

# ---- resume is exact: 2N at once vs N (--stop-at), then --resume to 2N
R=(--init "$T/base" --data "$T/sft.jsonl" --val-fraction 0.2 --batch 4 --lr 3e-3 --samples 0
   --eval-every 3 --steps 10)
expect 0 "sft 10 steps" "$C" sft "${R[@]}" --out "$T/r1"
expect 0 "sft to step 5" "$C" sft "${R[@]}" --out "$T/r2" --stop-at 5
check '[ "$(cat "$T/r2/latest")" = step_00000005 ]' "the first session stopped at step 5"
expect 2 "a second fresh run into r2" "$C" sft "${R[@]}" --out "$T/r2"
expect 0 "resume to step 10" "$C" sft --out "$T/r2" --resume --samples 0
check 'cmp -s "$T/r1/step_00000010/model.safetensors" "$T/r2/step_00000010/model.safetensors"' \
  "10 steps equal 5 + --resume 5, weights byte for byte"
check 'cmp -s "$T/r1/step_00000010/optimizer.safetensors" "$T/r2/step_00000010/optimizer.safetensors"' \
  "and the AdamW moments"
losses() { sed -n 's/.*"step":\([0-9]*\),"loss":\([^,]*\),.*/\1 \2/p' "$1"; }
check '[ "$(losses "$T/r1/metrics.jsonl")" = "$(losses "$T/r2/metrics.jsonl")" ] && [ "$(losses "$T/r1/metrics.jsonl" | wc -l)" -eq 10 ]' \
  "the ten losses are the same"
vl() { grep -o '"val_loss":[^,]*' "$1"; }
check '[ "$(vl "$T/r1/metrics.jsonl")" = "$(vl "$T/r2/metrics.jsonl")" ]' \
  "and the validation losses"
# the training data may not change under a resumed run
sed -n '2,$p' "$T/sft.jsonl" > "$T/sft-less.jsonl"
expect 0 "sft to step 3" "$C" sft "${R[@]}" --out "$T/r3" --stop-at 3
expect 2 "resume on other data" "$C" sft --out "$T/r3" --resume --data "$T/sft-less.jsonl"
expect_err "the data changed" "$C" sft --out "$T/r3" --resume --data "$T/sft-less.jsonl"

# ---- --eval-only: the loss of a checkpoint on chat data, nothing written
out=$("$C" sft --init "$T/a" --val-data "$T/sft-val.jsonl" --eval-only --batch 4 --seq 63 \
  --samples 1 --sample-tokens 4 2>&1)
ev=$(sed -n 's/^eval: .*loss \([0-9.]*\) .*/\1/p' <<<"$out")
close() { awk -v a="$1" -v b="$2" 'BEGIN{d=a-b; if(d<0)d=-d; r=b<0?-b:b; exit !(d <= 1e-5 + 1e-4*r)}'; }
check '[ -n "$ev" ] && close "$ev" "$v1"' "--eval-only gives the run's last validation loss ($ev vs $v1)"

# ---- LoRA: only the adapters change, resume is exact, the merged model computes the same
L=(--init "$T/base" --data "$T/sft.jsonl" --val-data "$T/sft-val.jsonl" --batch 4 --seq 63
   --samples 0 --lora-rank 4 --eval-every 3)
out=$("$C" sft "${L[@]}" --out "$T/l6" --steps 6 2>&1)
check 'grep -q "LoRA: rank 4, alpha 16 on c_attn,attn.c_proj,c_fc,mlp.c_proj: 4096 trainable values" <<<"$out"' \
  "the LoRA run says what it trains and the memory beside full training"
check '[ -f "$T/l6/step_00000006/adapter_model.safetensors" ] && [ -f "$T/l6/step_00000006/adapter_optimizer.safetensors" ] && [ ! -e "$T/l6/step_00000006/optimizer.safetensors" ]' \
  "a LoRA checkpoint holds the adapters and their moments, no base moments"
expect 0 "LoRA 2 steps" "$C" sft "${L[@]}" --out "$T/l2" --steps 2
check 'cmp -s "$T/l6/step_00000006/model.safetensors" "$T/l2/step_00000002/model.safetensors"' \
  "the base weights are the same after 2 and 6 steps (frozen)"
check '! cmp -s "$T/l6/step_00000006/adapter_model.safetensors" "$T/l2/step_00000002/adapter_model.safetensors"' \
  "the adapters moved"
expect 0 "LoRA to step 3" "$C" sft "${L[@]}" --out "$T/l3" --steps 6 --stop-at 3
expect 2 "LoRA resume with another rank" "$C" sft --out "$T/l3" --resume --lora-rank 2
expect 0 "LoRA resume" "$C" sft --out "$T/l3" --resume --samples 0
for f in adapter_model.safetensors adapter_optimizer.safetensors model.safetensors; do
  check 'cmp -s "$T/l6/step_00000006/$f" "$T/l3/step_00000006/$f"' "LoRA 6 steps = 3 + --resume 3: $f"
done
check '[ "$(losses "$T/l6/metrics.jsonl")" = "$(losses "$T/l3/metrics.jsonl")" ]' \
  "LoRA 6 steps = 3 + --resume 3: the losses"
lv=$(tail -1 "$T/l6/metrics.jsonl" | sed -n 's/.*"val_loss":\([0-9.]*\).*/\1/p')
expect 0 "export --merge-lora" "$C" export --ckpt "$T/l6" --merge-lora --out "$T/l6-merged"
check '[ ! -e "$T/l6-merged/adapter_model.safetensors" ] && grep -q cllm-chat-v1 "$T/l6-merged/config.json"' \
  "the merged export is a plain model with the chat template"
mv=$("$C" sft --init "$T/l6-merged" --val-data "$T/sft-val.jsonl" --eval-only --batch 4 --seq 63 \
  --samples 0 2>&1 | sed -n 's/^eval: .*loss \([0-9.]*\) .*/\1/p')
check '[ -n "$mv" ] && [ -n "$lv" ] && close "$mv" "$lv"' \
  "the merged model's loss equals the unmerged adapters' ($mv vs $lv)"
check 'grep -q "\"full_finetune_device_memory_bytes\"" "$T/l6/sft_report.json"' \
  "sft_report.json records the memory beside full training"

# ---- malformed records: skipped and counted, or with --strict an error naming FILE:LINE
{ head -3 "$T/sft.jsonl"
  echo '{"messages":[{"role":"robot","content":"beep"},{"role":"assistant","content":"x"}]}'
  echo '{"messages":[{"role":"user"},{"role":"assistant","content":"x"}]}'
  echo '{"messages":{"role":"user","content":"hi"}}'
  sed -n '4,$p' "$T/sft.jsonl"; } > "$T/bad.jsonl"
B=(--init "$T/base" --val-data "$T/sft-val.jsonl" --batch 4 --steps 1 --samples 0)
out=$("$C" sft "${B[@]}" --data "$T/bad.jsonl" --out "$T/b1" 2>&1)
check 'grep -q "bad.jsonl: skipped 3 malformed lines (first: $T/bad.jsonl:4: messages\[0\].role is \"robot\"" <<<"$out"' \
  "malformed records are skipped and counted: $(grep -m1 malformed <<<"$out")"
expect 1 "--strict" "$C" sft "${B[@]}" --data "$T/bad.jsonl" --out "$T/b2" --strict
expect_err "bad.jsonl:4: messages[0].role is \"robot\" (expected \"system\", \"user\" or \"assistant\")" \
  "$C" sft "${B[@]}" --data "$T/bad.jsonl" --out "$T/b2" --strict
sed -n '5p' "$T/bad.jsonl" > "$T/bad5.jsonl"
expect_err "bad5.jsonl:1: messages[0].content is missing (expected a string)" \
  "$C" sft "${B[@]}" --data "$T/bad5.jsonl" --out "$T/b2" --strict
sed -n '6p' "$T/bad.jsonl" > "$T/bad6.jsonl"
expect_err "bad6.jsonl:1: \"messages\" is an object (expected an array" \
  "$C" sft "${B[@]}" --data "$T/bad6.jsonl" --out "$T/b2" --strict
check '[ ! -e "$T/b2" ]' "a refused run leaves no run directory"

# ---- usage errors: exit 2, one line
expect 2 "no --init" "$C" sft --data "$T/sft.jsonl" --out "$T/u1"
expect_err "--init CKPT is required" "$C" sft --data "$T/sft.jsonl" --out "$T/u1"
expect 2 "no --data" "$C" sft --init "$T/base" --out "$T/u1"
expect 2 "both validations" "$C" sft --init "$T/base" --data "$T/sft.jsonl" --out "$T/u1" \
  --val-data "$T/sft-val.jsonl" --val-fraction 0.1
expect 2 "--seq beyond the context" "$C" sft --init "$T/base" --data "$T/sft.jsonl" \
  --out "$T/u1" --seq 65
expect_err "n_positions 64" "$C" sft --init "$T/base" --data "$T/sft.jsonl" --out "$T/u1" --seq 65
grep -v category "$T/sft-val.jsonl" > /dev/null
sed 's/,"category":"[^"]*"//' "$T/sft-val.jsonl" > "$T/nocat.jsonl"
expect 2 "--category-check without categories" "$C" sft --init "$T/base" --data "$T/sft.jsonl" \
  --val-data "$T/nocat.jsonl" --out "$T/u1" --category-check
expect 1 "--resume of nothing" "$C" sft --out "$T/none" --resume
expect_err "cannot resume" "$C" sft --out "$T/none" --resume
expect 2 "--eval-only without --init" "$C" sft --val-data "$T/sft-val.jsonl" --eval-only
expect 2 "no --out" "$C" sft --init "$T/base" --data "$T/sft.jsonl"
expect 2 "a LoRA rank wider than the model" "$C" sft --init "$T/base" --data "$T/sft.jsonl" \
  --out "$T/u1" --lora-rank 64
expect 2 "an unknown LoRA target" "$C" sft --init "$T/base" --data "$T/sft.jsonl" --out "$T/u1" \
  --lora-rank 2 --lora-targets q_proj
expect 2 "unknown --overflow" "$C" sft --init "$T/base" --data "$T/sft.jsonl" --out "$T/u1" \
  --overflow cut
check '[ ! -e "$T/u1" ]' "usage errors leave no run directory"
expect 1 "missing data file" "$C" sft --init "$T/base" --data "$T/none.jsonl" --out "$T/u1"
expect_err "none.jsonl" "$C" sft --init "$T/base" --data "$T/none.jsonl" --out "$T/u1"

finish
