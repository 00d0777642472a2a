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

out=$($B train --model "$T/tiny.json" --batch 2 --seq 19 --steps 2 --warmup 1 --gemm-reps 1 2>&1)
check '[ $? -eq 0 ]' "bench train runs: $out"
check 'grep -q "tokens/s" <<<"$out"' "text output has tokens/s: $out"
check 'grep -q "best CLBlast SGEMM" <<<"$out"' "text output has the GEMM rate: $out"
json=$($B train --model "$T/tiny.json" --batch 2 --seq 19 --steps 1 --warmup 0 --gemm-reps 1 --json --phases)
check 'python3 -c "import json,sys,math; d=json.loads(sys.argv[1]); assert d[\"tokens_per_s\"] > 0 and d[\"gemm_best_gflops\"] > 0 and math.isfinite(d[\"loss\"]) and d[\"forward_s\"] > 0" "$json"' \
  "JSON output parses with positive rates: $json"
finish
