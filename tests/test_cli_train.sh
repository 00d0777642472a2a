#!/usr/bin/env bash
# cllm train through the binary, on a tiny model and a small synthetic corpus: --help, the
# files a run writes, the model config's "training" section under the flags, --resume (options
# restored, metrics.jsonl cut back to the checkpoint after a crash), Ctrl-C (SIGINT: the step
# finishes, a checkpoint is written, exit 0, and --resume continues), --stop-at, and bad input
# (each one line on stderr, exit 1 or 2, nothing created or overwritten): flags, a missing or
# wrong-magic data directory, token ids beyond the vocabulary, a model that cannot fit any
# device, a checkpoint whose tensors do not match its config.
set -u
. "$(dirname "$0")/lib.sh"
skip_without_opencl

C=$CLLM_BIN
T=$(fresh_tmp cli_train)

expect 0 "train --help" "$C" train --help
for flag in --steps --batch --seq --grad-accum --lr --min-lr --warmup --schedule --weight-decay \
            --beta1 --beta2 --eps --clip --seed --data-order --eval-every --eval-batches \
            --ckpt-every --keep --resume --device --stop-at --time-limit --sample-every --sample-prompt; do
  expect_out "$flag" "$C" train --help
done
expect_out "examples:" "$C" train --help
expect_out "pretrain a model" "$C" --help

# a corpus of 400 short documents and a 300-token tokenizer
for i in $(seq 1 400); do
  echo "document $i says the $((i % 7)) quick foxes jump over $((i % 13)) lazy dogs again."
  echo "%"
done > "$T/corpus.txt"
expect 0 "tokenizer" "$C" tokenizer train --input "$T/corpus.txt" --vocab-size 300 -o "$T/tok.json" -q
expect 0 "data prepare" "$C" data prepare "$T/corpus.txt" --doc-separator % --tokenizer "$T/tok.json" \
  --out "$T/data" --val-fraction 0.05 --quiet
cat > "$T/tiny.json" <<'EOF'
{"vocab_size": 300, "n_positions": 32, "n_embd": 32, "n_layer": 2, "n_head": 2,
 "training": {"batch": 4, "seq": 16, "lr": 0.004, "warmup": 2}}
EOF
M="$T/tiny.json"

# usage errors: exit 2, nothing created
expect 2 "no --out" "$C" train --model "$M" --data "$T/data"
expect 2 "no model" "$C" train --data "$T/data" --out "$T/r0"
expect_err "give one of --model FILE or --init CKPT" "$C" train --data "$T/data" --out "$T/r0"
expect 2 "model and init" "$C" train --model "$M" --init "$T/x" --data "$T/data" --out "$T/r0"
expect 2 "no data" "$C" train --model "$M" --out "$T/r0"
expect 2 "bad schedule" "$C" train --model "$M" --data "$T/data" --out "$T/r0" --schedule step
expect 2 "bad lr" "$C" train --model "$M" --data "$T/data" --out "$T/r0" --lr -1
expect 2 "bad min-lr" "$C" train --model "$M" --data "$T/data" --out "$T/r0" --min-lr x
expect 2 "seq beyond the context" "$C" train --model "$M" --data "$T/data" --out "$T/r0" --seq 33
expect_err "--seq 33 exceeds the context" "$C" train --model "$M" --data "$T/data" --out "$T/r0" --seq 33
expect 1 "resume without a run" "$C" train --out "$T/r0" --resume
check '[ ! -e "$T/r0" ]' "refused runs created nothing"

# bad data: exit 1, one line
expect 1 "missing data dir" "$C" train --model "$M" --data "$T/nodata" --out "$T/r0"
expect_err "cannot open data directory" "$C" train --model "$M" --data "$T/nodata" --out "$T/r0"
mkdir -p "$T/badmagic" && head -c 4096 /dev/urandom > "$T/badmagic/train_000.bin"
expect 1 "wrong magic" "$C" train --model "$M" --data "$T/badmagic" --out "$T/r0"
expect_err "magic" "$C" train --model "$M" --data "$T/badmagic" --out "$T/r0"
sed 's/"vocab_size": 300/"vocab_size": 200/' "$M" > "$T/small_vocab.json"
expect 2 "ids beyond the vocabulary" "$C" train --model "$T/small_vocab.json" --data "$T/data" --out "$T/r0"
expect_err "has vocab_size 200" "$C" train --model "$T/small_vocab.json" --data "$T/data" --out "$T/r0"
# the activations of 2 x 2048 tokens through 24 layers (attention alone 24 x 2 x 16 x 2048^2
# floats) exceed 2^32 elements: more than any device's largest buffer, and cllm's 32-bit offsets
cat > "$T/huge.json" <<'EOF'
{"vocab_size": 50257, "n_positions": 2048, "n_embd": 1024, "n_layer": 24, "n_head": 16}
EOF
expect 1 "model too large for the device" "$C" train --model "$T/huge.json" --data "$T/data" \
  --out "$T/r0" --batch 2 --seq 2048
expect_err "use a smaller batch or sequence" "$C" train --model "$T/huge.json" --data "$T/data" \
  --out "$T/r0" --batch 2 --seq 2048
printf '{"vocab_size": 300, "n_positions": 32, "n_embd": 32, "n_layer": 2, "n_head": 2, "training": {"learning_rate": 1}}' > "$T/badtrain.json"
expect 1 "unknown training option" "$C" train --model "$T/badtrain.json" --data "$T/data" --out "$T/r0"
expect_err 'unknown training option "learning_rate"' "$C" train --model "$T/badtrain.json" --data "$T/data" --out "$T/r0"
check '[ ! -e "$T/r0" ]' "refused runs created nothing"
lines=$("$C" train --model "$M" --data "$T/nodata" --out "$T/r0" 2>&1 >/dev/null | wc -l)
check '[ "$lines" = 1 ]' "a bad data directory is one line on stderr (got $lines)"

# a run: files, the training section under the flags
R="$T/run"
"$C" train --model "$M" --data "$T/data" --out "$R" --steps 6 --ckpt-every 3 \
  --eval-every 3 --lr 0.005 --sample-every 3 --sample-tokens 5 --sample-prompt "document" \
  > "$T/run.out" 2>&1
rc=$?
check '[ $rc = 0 ]' "train: exit 0 (got $rc)"
check 'grep -q "^step 3/6 | sample, 5 tokens" "$T/run.out" && grep -q "^document" "$T/run.out"' \
  "samples go to the log"
check '[ $(wc -l < "$R/samples.jsonl") = 2 ] && grep -q "\"step\":6,\"prompt\":\"document\",\"text\":" "$R/samples.jsonl"' \
  "samples.jsonl: steps 3 and 6 with prompt and text"
for f in config.json train_args.json command.txt metrics.jsonl samples.jsonl latest step_00000003/state.json \
         step_00000006/model.safetensors step_00000006/optimizer.safetensors \
         step_00000006/tokenizer.json step_00000006/config.json; do
  check "[ -s '$R/$f' ]" "the run has $f"
done
check '[ "$(cat "$R/latest")" = step_00000006 ]' "latest names step 6"
check '[ $(wc -l < "$R/metrics.jsonl") = 7 ]' "metrics.jsonl: step 0 (validation) and 6 steps"
check 'grep -q "\"lr\":[[:space:]]*0.005" "$R/train_args.json"' "--lr overrides the training section"
check 'grep -q "\"batch\":[[:space:]]*4" "$R/train_args.json" && grep -q "\"warmup\":[[:space:]]*2" "$R/train_args.json"' \
  "the training section overrides the defaults"
check 'grep -q "\"n_embd\":[[:space:]]*32" "$R/config.json"' "RUN/config.json is the HF config"
check 'grep -q -- "--lr 0.005" "$R/command.txt"' "command.txt holds the command line"
for k in step loss lr grad_norm tokens_per_s tokens time_s; do
  check "sed -n 2p '$R/metrics.jsonl' | grep -q '\"$k\":'" "a metrics line has $k"
done
check 'sed -n 4p "$R/metrics.jsonl" | grep -q "\"val_loss\":.*\"val_ppl\":"' "step 3 has val_loss and val_ppl"
check 'sed -n 1p "$R/metrics.jsonl" | grep -q "^{\"step\":0,.*\"val_loss\""' "step 0 is the validation before training"
expect 2 "a fresh run over a run" "$C" train --model "$M" --data "$T/data" --out "$R"
expect_err "already holds checkpoints" "$C" train --model "$M" --data "$T/data" --out "$R"
expect 2 "resume with --model" "$C" train --model "$M" --out "$R" --resume
expect 2 "resume with another batch" "$C" train --out "$R" --resume --batch 8 --steps 9
expect_err "--batch differs" "$C" train --out "$R" --resume --batch 8 --steps 9
expect 2 "resume with another data order" "$C" train --out "$R" --resume --data-order sequential

# resume: the options come back; a crash's extra metrics lines are dropped
expect 0 "resume" "$C" train --out "$R" --resume --steps 9
check '[ $(wc -l < "$R/metrics.jsonl") = 10 ] && [ $(wc -l < "$R/command.txt") = 2 ]' \
  "resumed to step 9: 10 metrics lines, 2 command lines"
check 'grep -q "\"lr\":[[:space:]]*0.005" "$R/train_args.json"' "the resumed run kept --lr 0.005"
check '[ $(wc -l < "$R/samples.jsonl") = 3 ]' "the resumed run samples on (steps 3, 6, 9)"
printf '{"step":10,"loss":1}\n{"step":11,"loss":1}\n{"step":12,"lo' >> "$R/metrics.jsonl"
printf '{"step":12,"prompt":"","text":"x"}\n' >> "$R/samples.jsonl"
expect_out "dropped 3 lines written after step 9" "$C" train --out "$R" --resume --steps 10
check '! grep -q "\"step\":12" "$R/samples.jsonl" && grep -q "\"step\":10,\"prompt\":\"document\"" "$R/samples.jsonl"' \
  "samples.jsonl: lines after the checkpoint dropped, the prompt kept on resume"
steps=$(sed 's/.*"step":\([0-9]*\).*/\1/' "$R/metrics.jsonl" | tr '\n' ' ')
check '[ "$steps" = "0 1 2 3 4 5 6 7 8 9 10 " ]' "metrics.jsonl holds each step once, in order ($steps)"
expect_out "nothing to do" "$C" train --out "$R" --resume --steps 10

# --stop-at: the session ends with a checkpoint, --resume finishes the schedule
expect 0 "stop-at" "$C" train --model "$M" --data "$T/data" --out "$T/s" --steps 8 --stop-at 5 --eval-every 0
check '[ "$(cat "$T/s/latest")" = step_00000005 ]' "--stop-at 5 saved step 5"
expect 0 "resume after stop-at" "$C" train --out "$T/s" --resume
check '[ "$(cat "$T/s/latest")" = step_00000008 ]' "the resumed run finished its 8 steps"

# --time-limit: the session ends after the step that passes it, with a validation and a
# checkpoint, and says so; --resume continues (cllm demo sizes its runs with it as the bound)
expect 2 "negative time limit" "$C" train --model "$M" --data "$T/data" --out "$T/tl" --time-limit -1
expect 0 "time-limit" "$C" train --model "$M" --data "$T/data" --out "$T/tl" --steps 1000000 \
  --time-limit 1.5 --eval-every 1000000 --ckpt-every 0
tl_step=$(sed 's/step_0*//' "$T/tl/latest")
check '[ "${tl_step:-0}" -ge 1 ] && [ "$tl_step" -lt 1000000 ]' "--time-limit stopped the run (at step ${tl_step:-none})"
check 'tail -1 "$T/tl/metrics.jsonl" | grep -q "\"val_loss\""' "the last step of a timed-out session is validated"
check 'grep -q "\"step\":$tl_step[,}]" "$T/tl/metrics.jsonl"' "metrics.jsonl reaches the saved step"
check 'grep -q "\"compute_units\"" "$T/tl/train_args.json"' "train_args.json records the device"
expect_out "time limit of 1.5 s was reached" "$C" train --out "$T/tl" --resume --steps 1000000 --time-limit 1.5
tl2=$(sed 's/step_0*//' "$T/tl/latest")
expect 0 "resume after the time limit" "$C" train --out "$T/tl" --resume --steps $((tl2 + 2)) --time-limit 0
check '[ "$(sed "s/step_0*//" "$T/tl/latest")" = $((tl2 + 2)) ]' "the resumed run took its 2 more steps"
check 'grep -qE "\"model\":[[:space:]]*\"$M\"" "$T/tl/train_args.json"' "a resumed run's train_args.json still names its model config"

# --init from a checkpoint, and one whose tensors do not match its config
expect 0 "init" "$C" train --init "$R" --data "$T/data" --out "$T/i" --steps 2 --eval-every 0
check 'grep -q "\"init\"" "$T/i/train_args.json"' "train_args.json records --init"
mkdir -p "$T/bad_ck" && cp "$R/step_00000010/model.safetensors" "$T/bad_ck/"
sed 's/"n_embd":[[:space:]]*32/"n_embd": 48/' "$R/step_00000010/config.json" > "$T/bad_ck/config.json"
expect 1 "checkpoint tensors that do not match the config" "$C" train --init "$T/bad_ck" --data "$T/data" --out "$T/r1"
expect_err "transformer.wte.weight" "$C" train --init "$T/bad_ck" --data "$T/data" --out "$T/r1"
check '[ ! -e "$T/r1" ]' "a refused --init created nothing"

# Ctrl-C: the step finishes, a checkpoint is written, exit 0, --resume continues
"$C" train --model "$M" --data "$T/data" --out "$T/int" --steps 100000 --eval-every 0 \
  --ckpt-every 0 --log-every 1 > "$T/int.out" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
  [ -f "$T/int/metrics.jsonl" ] && [ "$(wc -l < "$T/int/metrics.jsonl")" -ge 3 ] && break
  sleep 0.1
done
kill -INT $pid
wait $pid
rc=$?
check '[ $rc = 0 ]' "SIGINT: exit 0 (got $rc)"
check 'grep -q "interrupted at step" "$T/int.out"' "SIGINT: says where it stopped"
last=$(tail -n 1 "$T/int/metrics.jsonl" | sed 's/.*"step":\([0-9]*\).*/\1/')
check "[ \"\$(cat '$T/int/latest')\" = \"\$(printf 'step_%08d' '$last')\" ]" \
  "SIGINT: the checkpoint is the last logged step ($last)"
expect 0 "resume after SIGINT" "$C" train --out "$T/int" --resume --steps $((last + 2))
check "[ \"\$(cat '$T/int/latest')\" = \"\$(printf 'step_%08d' $((last + 2)))\" ]" "resumed after SIGINT"

finish
