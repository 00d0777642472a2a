#!/usr/bin/env bash
# cllm tune end to end through the binary: a quick search of cl/gemm.cl on tiny shapes writes the
# device's tune cache, which --show and later commands use; --json; a corrupt cache is ignored
# with one warning; a cl/gemm.cl that computes wrongly is never chosen (every candidate
# rejected) and is dropped for CLBlast at run time; usage errors exit 2 with one line.
set -u
. "$(dirname "$0")/lib.sh"
skip_without_opencl
T=$(fresh_tmp cli_tune)
# a cllm cache of its own; PoCL's compiled kernels stay where the other tests keep theirs
export POCL_CACHE_DIR="${POCL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pocl/kcache}"
export XDG_CACHE_HOME="$T/cache"
B="$CLLM_BIN tune"
SHAPES="nt:40x70x33,nn:24x40x50x3,tn:45x37x300"

expect 0 "help" $B --help
expect_out "CLLM_TUNE=0" $B --help
expect_out "--quick" $B --help
expect 2 "bad shape" $B --shapes nt:10x10
expect_err "op:MxNxK[xBATCH]" $B --shapes nq:10x10x10
expect 2 "zero size" $B --shapes nn:0x4x4
expect 2 "model and shapes" $B --model x.json --shapes nn:4x4x4
expect 2 "batch without model" $B --batch 4
expect 2 "bad search" $B --search fast
expect 1 "missing model" $B --model "$T/nope.json"
expect 1 "bad device" $B --device nosuchdevice --quick

# a quick search of cl/gemm.cl writes the cache
out=$($B --quick --search cllm --shapes "$SHAPES" 2>"$T/progress")
check '[ $? -eq 0 ]' "tune --quick ran: $out $(tail -5 "$T/progress")"
check 'grep -q "^wrote .*/cllm/tune-[0-9a-f]*\.json" <<<"$out"' "tune says where it wrote: $out"
cache=$(ls "$XDG_CACHE_HOME"/cllm/tune-*.json 2>/dev/null | head -1)
check '[ -n "$cache" ] && [ -s "$cache" ]' "the tune cache exists"
check 'grep -q "stage 1" "$T/progress"' "progress lines on stderr"
check 'python3 -c "
import json, sys
d = json.load(open(sys.argv[1]))
assert d[\"format\"] == \"cllm-tune\" and d[\"version\"] == 1
ops = sorted((e[\"op\"], e[\"m\"], e[\"n\"], e[\"k\"], e[\"batch\"]) for e in d[\"gemm\"])
assert ops == [(\"nn\", 24, 40, 50, 3), (\"nt\", 40, 70, 33, 1), (\"tn\", 45, 37, 300, 1)], ops
assert all(e[\"path\"] == \"cllm\" and e[\"gflops\"] > 0 for e in d[\"gemm\"])
" "$cache"' "the cache holds the three shapes: $(cat "$cache")"

# --show reports the cache in use; --json results parse
show=$($B --show)
check 'python3 -c "
import json, sys
d = json.loads(sys.argv[1]); assert d[\"origin\"] == \"cache\" and len(d[\"gemm\"]) == 3, d
assert d[\"cache_path\"] == sys.argv[2]
" "$show" "$cache"' "--show reports the cache: $show"
# (--budget 1: the choice in effect is timed, nothing more)
json=$($B --quick --search cllm --shapes nt:40x70x33 --no-save --json --budget 1 2>/dev/null)
check 'python3 -c "
import json, sys
d = json.loads(sys.argv[1]); s = d[\"shapes\"][0]
assert not d[\"saved\"] and d[\"tried\"] >= 1 and s[\"gflops\"] > 0 and s[\"chosen\"].startswith(\"cllm \")
" "$json"' "--json output: $json"
check 'python3 -c "
import json, sys; d = json.load(open(sys.argv[1])); assert len(d[\"gemm\"]) == 3
" "$cache"' "--no-save left the cache alone"
CLLM_TUNE=0 expect_out '"origin":	"none"' $B --show

# a later command uses the cache (bench train, tiny model): runs, no warning
cat > "$T/tiny.json" <<'JSON'
{"vocab_size": 203, "n_positions": 19, "n_embd": 24, "n_layer": 2, "n_head": 3}
JSON
err=$($CLLM_BIN bench train --model "$T/tiny.json" --batch 2 --seq 19 --steps 1 --warmup 0 --gemm-reps 1 2>&1 >/dev/null)
check '[ $? -eq 0 ] && ! grep -q warning <<<"$err"' "bench train with the cache: $err"

# a corrupt cache: one warning naming it, the command still works
printf '{"format": "cllm-tune", "vers' > "$cache"
err=$($B --show 2>&1 >/dev/null)
check 'grep -q "ignoring the tune cache $cache: it is not valid JSON; run .cllm tune." <<<"$err"' \
  "warning for a corrupt cache: $err"
check '[ $(grep -c warning <<<"$err") -eq 1 ]' "exactly one warning: $err"
expect 0 "bench with a corrupt cache" $CLLM_BIN bench train --model "$T/tiny.json" --batch 2 --seq 19 --steps 1 --warmup 0 --gemm-reps 0
out=$($B --quick --search cllm --shapes nt:40x70x33 --budget 1 2>/dev/null)
check 'python3 -c "import json,sys; json.load(open(sys.argv[1]))" "$cache"' "tune rewrote the corrupt cache"

# a cl/gemm.cl that drops the last k of every product: every variant is rejected, CLBlast is
# chosen, and at run time the wrong kernel is noticed and not used
mkdir -p "$T/badcl"
cp "$CLLM_SOURCE_DIR"/cl/*.cl "$T/badcl/"
sed -i "s/for (int k = k_lo; k < k_hi; k++)/for (int k = k_lo; k + 1 < k_hi; k++)/" "$T/badcl/gemm.cl"
check '! cmp -s "$CLLM_SOURCE_DIR/cl/gemm.cl" "$T/badcl/gemm.cl"' "the broken kernel differs"
json=$(CLLM_KERNEL_DIR="$T/badcl" $B --quick --search cllm --shapes nt:40x70x33 --no-save --json --budget 1 2>/dev/null)
check 'python3 -c "
import json, sys; d = json.loads(sys.argv[1]); s = d[\"shapes\"][0]
assert s[\"rejected\"] == s[\"tried\"] >= 1 and s[\"chosen\"] == \"clblast\" and s[\"cllm_gflops\"] == 0, s
" "$json"' "wrong variants rejected: $json"
rm -f "$cache"
err=$(CLLM_KERNEL_DIR="$T/badcl" $CLLM_BIN bench train --model "$T/tiny.json" --batch 2 --seq 19 --steps 1 --warmup 0 --gemm-reps 0 2>&1 >/dev/null)
check '[ $? -eq 0 ] && grep -q "computes wrong results" <<<"$err"' "wrong kernel dropped at run time: $err"
finish
