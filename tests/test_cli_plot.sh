#!/usr/bin/env bash
# cllm plot through the binary: PNGs of the stated size from run directories and metrics files,
# the summary line, and for bad input (no runs, a missing file, an empty run, a malformed line,
# bad flags) one line on stderr, exit 1 or 2, and an existing output left as it was. What the
# pixels show is tested in test_plot.c.
set -u
. "$(dirname "$0")/lib.sh"

C=$CLLM_BIN
T=$(fresh_tmp cli_plot)

# png_size FILE: "WIDTHxHEIGHT" from the IHDR chunk (bytes 16..23, big-endian)
png_size() {
  local w h
  w=$(od -An -tu1 -j16 -N4 "$1" | awk '{print $1*16777216 + $2*65536 + $3*256 + $4}')
  h=$(od -An -tu1 -j20 -N4 "$1" | awk '{print $1*16777216 + $2*65536 + $3*256 + $4}')
  echo "${w}x${h}"
}

# one_line CODE NAME CMD...: exits CODE with exactly one line on stderr
one_line() {
  local want=$1 name=$2; shift 2
  checks=$((checks + 1))
  local err rc
  err=$("$@" 2>&1 >/dev/null)
  rc=$?
  if [ "$rc" != "$want" ] || [ "$(printf '%s\n' "$err" | wc -l)" != 1 ] || [ -z "$err" ]; then
    fails=$((fails + 1))
    echo "FAIL ($name): '$*' exited $rc (want $want) with stderr:" >&2
    printf '%s\n' "$err" | sed 's/^/  /' >&2
  fi
}

mkdir -p "$T/nano" "$T/mini" "$T/empty" "$T/nometrics"
for run in nano mini; do
  {
    echo '{"step": 0, "val_loss": 8.3, "tokens": 0, "time_s": 0}'
    for s in $(seq 1 200); do
      loss=$(awk -v s=$s -v r=$run 'BEGIN { printf "%.4f", (r == "nano" ? 3.5 : 3.0) + 5 * exp(-s / 40) + 0.05 * sin(s) }')
      extra=""
      [ $((s % 50)) = 0 ] && extra=", \"val_loss\": $loss"
      [ "$s" = 77 ] && loss=NaN
      echo "{\"step\": $s, \"loss\": $loss, \"lr\": 0.001, \"tokens\": $((s * 2048)), \"time_s\": $s.5$extra}"
    done
  } > "$T/$run/metrics.jsonl"
done
: > "$T/empty/metrics.jsonl"

expect 0 "plot --help" "$C" plot --help
expect_out "--smooth N" "$C" plot --help
expect_out "cllm plot runs/nano" "$C" plot --help
expect_out "plot" "$C" --help

expect 0 "one run" "$C" plot "$T/nano" -o "$T/one.png"
check '[ "$(png_size "$T/one.png")" = 1200x800 ]' "the default size is 1200x800 ($(png_size "$T/one.png"))"
expect_out "nano: 199 training points (last loss" "$C" plot "$T/nano" -o "$T/one.png"
expect_out "5 validation (best" "$C" plot "$T/nano" -o "$T/one.png"
expect_out "1 non-finite value left out" "$C" plot "$T/nano" -o "$T/one.png"
expect 0 "two runs, every option" "$C" plot "$T/nano" "$T/mini/metrics.jsonl" --smooth 9 --log-y \
  --x tokens --title "two runs" --width 640 --height 480 -o "$T/two.png"
check '[ "$(png_size "$T/two.png")" = 640x480 ]' "--width/--height give 640x480 ($(png_size "$T/two.png"))"
expect 0 "--x time --ymax" "$C" plot "$T/mini" --x time --ymax 5 -o "$T/time.png"
expect_out "mini:" "$C" plot "$T/nano" "$T/mini" -o "$T/two.png"

# an incomplete last line (a killed writer) is left out with a warning
cp "$T/nano/metrics.jsonl" "$T/torn.jsonl"
printf '{"step": 201, "loss": 3.' >> "$T/torn.jsonl"
expect 0 "a torn last line" "$C" plot "$T/torn.jsonl" -o "$T/torn.png"
expect_err "incomplete" "$C" plot "$T/torn.jsonl" -o "$T/torn.png"

# bad input: one line, exit 1 or 2, the existing output untouched
before=$(cksum < "$T/one.png")
one_line 2 "no runs" "$C" plot -o "$T/one.png"
one_line 2 "no -o" "$C" plot "$T/nano"
one_line 1 "missing file" "$C" plot "$T/nope/metrics.jsonl" -o "$T/one.png"
expect_err "nope/metrics.jsonl" "$C" plot "$T/nope/metrics.jsonl" -o "$T/one.png"
one_line 1 "directory without metrics" "$C" plot "$T/nometrics" -o "$T/one.png"
expect_err "no metrics.jsonl" "$C" plot "$T/nometrics" -o "$T/one.png"
one_line 1 "empty run" "$C" plot "$T/empty" -o "$T/one.png"
expect_err "nothing to plot" "$C" plot "$T/nano" "$T/empty" -o "$T/one.png"
sed '3s/.*/{"step": 2, "loss": oops}/' "$T/nano/metrics.jsonl" > "$T/bad.jsonl"
one_line 1 "malformed line" "$C" plot "$T/bad.jsonl" -o "$T/one.png"
expect_err "bad.jsonl:3: not valid JSON" "$C" plot "$T/bad.jsonl" -o "$T/one.png"
one_line 2 "--x bogus" "$C" plot "$T/nano" --x bogus -o "$T/one.png"
expect_err "step|tokens|time" "$C" plot "$T/nano" --x bogus -o "$T/one.png"
one_line 2 "--smooth -1" "$C" plot "$T/nano" --smooth -1 -o "$T/one.png"
one_line 2 "--width 10" "$C" plot "$T/nano" --width 10 -o "$T/one.png"
one_line 2 "--log-y --ymin 0" "$C" plot "$T/nano" --log-y --ymin 0 -o "$T/one.png"
one_line 2 "--ymax below --ymin" "$C" plot "$T/nano" --ymin 5 --ymax 4 -o "$T/one.png"
one_line 1 "unwritable output" "$C" plot "$T/nano" -o "$T/nodir/x.png"
check '[ "$(cksum < "$T/one.png")" = "$before" ]' "failed runs left the existing PNG as it was"
check '[ -z "$(ls "$T" | grep "\.tmp\.")" ]' "no temporary files left behind"

finish
