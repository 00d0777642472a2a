#!/usr/bin/env bash
# cllm bench train: runs a tiny model end to end through the binary (text and JSON output,
# finite numbers), and the error cases (exit 2 for usage with one line, 1 for runtime).
set -u
. "$(dirname "$0")/lib.sh"
skip_without_opencl
T=$(fresh_tmp cli_bench)
B="$CLLM_BIN bench"
cat > "$T/tiny.json" <<'JSON'
{"vocab_size": 203, "n_positions": 19, "n_embd": 24, "n_layer": 2, "n_head": 3}
JSON

expect 0 "help" $B --help
expect 2 "no mode" $B
expect 2 "bad mode" $B frob
expect 0 "train --help" $B train --help
expect_out "GFLOP/s" $B train --help
expect 2 "no --model" $B train
expect 2 "bad --batch" $B train --model "$T/tiny.json" --batch 0
expect 2 "seq beyond n_positions" $B train --model "$T/tiny.json" --seq 20
expect_err "n_positions (19)" $B train --model "$T/tiny.json" --seq 20
expect 1 "missing model file" $B train --model "$T/nope.json"
printf '{"vocab_size": 10, "n_embd": 7, "n_head": 2, "n_layer": 1, "n_positions": 4}' > "$T/bad.json"
expect 1 "inconsistent config" $B train --model "$T/bad.json"
expect 1 "too large for the device" $B train --model "$T/tiny.json" --batch 1000000 --seq 19
expect_err "smaller batch" $B train --model "$T/tiny.json" --batch 1000000 --seq 19

out=$($B train --model "$T/tiny.json" --batch 2 --seq 19 --steps 2 --warmup 1 --gemm-reps 1 --clblast 2>&1)
check '[ $? -eq 0 ]' "bench train runs: $out"
check 'grep -q "tokens/s" <<<"$out"' "text output has tokens/s: $out"
check 'grep -q "best product rate on the step.s shapes" <<<"$out"' "text output has the GEMM rate: $out"
check 'grep -q "best CLBlast SGEMM" <<<"$out"' "text output has CLBlast's rate: $out"
json=$($B train --model "$T/tiny.json" --batch 2 --seq 19 --steps 1 --warmup 0 --gemm-reps 1 --json --phases)
check 'python3 -c "import json,sys,math; d=json.loads(sys.argv[1]); assert d[\"tokens_per_s\"] > 0 and d[\"gemm_best_gflops\"] > 0 and d[\"clblast_best_gflops\"] == 0 and d[\"tune_table\"] in (\"cache\", \"builtin\", \"none\") and math.isfinite(d[\"loss\"]) and d[\"forward_s\"] > 0" "$json"' \
  "JSON output parses with positive rates: $json"

# LoRA: the adapters' step beside the full one (same starting loss: B = 0 at init), the
# memories, and the refusals
out=$($B train --model "$T/tiny.json" --batch 2 --seq 19 --steps 2 --warmup 1 --gemm-reps 0 --lora-rank 4 2>&1)
check '[ $? -eq 0 ] && grep -q "full training, steps interleaved with LoRA" <<<"$out"' "bench train --lora-rank runs: $out"
check 'grep -q "step 1: LoRA [0-9.]* s, loss \([0-9.]*\); full [0-9.]* s, loss \1 " <<<"$out"' \
  "LoRA with B = 0 starts at the base model's loss: $out"
json=$($B train --model "$T/tiny.json" --batch 8 --seq 19 --lora-rank 8 --memory-only --json)
check 'python3 -c "import json,sys; d=json.loads(sys.argv[1]); assert 0 < d[\"memory_bytes\"] < d[\"full_memory_bytes\"] and d[\"lora_values\"] == 2 * 8 * (96 + 48 + 120 + 120)" "$json"' \
  "--memory-only: LoRA needs less than full training: $json"
expect 2 "rank too large" $B train --model "$T/tiny.json" --seq 19 --lora-rank 25
expect_err "LoRA rank 25: must be between 1 and 24" $B train --model "$T/tiny.json" --seq 19 --lora-rank 25
expect 2 "unknown target" $B train --model "$T/tiny.json" --seq 19 --lora-rank 2 --lora-targets c_attn,wte
expect_err "LoRA target \"wte\" is not a projection of GPT-2" $B train --model "$T/tiny.json" --seq 19 --lora-rank 2 --lora-targets c_attn,wte
expect 2 "negative rank" $B train --model "$T/tiny.json" --seq 19 --lora-rank -1
finish
