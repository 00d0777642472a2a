#!/usr/bin/env bash
# cllm eval through the binary, against what PyTorch computed in float64 for the same model
# (tests/fixtures/eval_tiny, made by tools/gen_eval_fixtures.py with its own tokenizer code):
# perplexity of a text longer than the context at three strides, the same tokens as shards
# (split across files, with and without a leading end-of-text), multiple choice (generic and
# HellaSwag records) with every choice's log-likelihood in --log-samples, acc and acc_norm
# choosing differently on a crafted item, --batch and --limit, greedy generations (with a
# stop string, an empty prompt, a prompt cut on the left) and BLEU/ROUGE through the library
# (100 and 1 when the references are the outputs), the JSON report; then the
# errors: bad flags (2), malformed records with and without --strict, a checkpoint without a
# tokenizer, a data directory without val shards, token ids beyond the vocabulary (1).
set -u
. "$(dirname "$0")/lib.sh"
skip_without_opencl

C=$CLLM_BIN
FX=$CLLM_SOURCE_DIR/tests/fixtures/eval_tiny
T=$(fresh_tmp cli_eval)
PY=python3

expect 0 "eval --help" "$C" eval --help
expect_out "--log-samples FILE" "$C" eval --help
expect_out "examples:" "$C" eval --help
expect 0 "import the fixture" "$C" import --from "$FX" --out "$T/run"

# compare.py KIND GOT_JSON [SAMPLES]: the numbers cllm printed against expected.json
cat > "$T/compare.py" <<'EOF'
import json, math, sys
exp = json.load(open(sys.argv[1]))
kind, got = sys.argv[2], json.load(open(sys.argv[3]))
bad = []
def close(a, b, what, tol=1e-5):
    if not (abs(a - b) <= tol + tol * abs(b)):
        bad.append("%s: cllm %.10g, PyTorch %.10g" % (what, a, b))
if kind.startswith("text"):
    stride = kind.split(":")[1]
    e, g = exp["text"]["stride_" + stride], got["perplexity"]
    close(g["nats"], e["nats"], "nats")
    close(g["loss"], e["loss"], "loss")
    close(g["perplexity"], e["perplexity"], "perplexity")
    close(g["bits_per_byte"], e["bits_per_byte"], "bits_per_byte")
    for k, gk in (("tokens", "tokens"), ("bytes", "bytes"), ("windows", "windows")):
        if g[gk] != e[k]: bad.append("%s: %s vs %s" % (k, g[gk], e[k]))
    if "words" in g:
        if g["words"] != exp["text"]["words"]: bad.append("words")
        close(g["word_perplexity"], math.exp(e["nats"] / exp["text"]["words"]), "word_perplexity")
else:  # mc sets: kind = "mc:SECTION=EXPECTED_KEY,..."; argv[4] the samples
    samples = [json.loads(l) for l in open(sys.argv[4])]
    for pair in kind.split(":")[1].split(","):
        sec, key = pair.split("=")
        e, g = exp[key], got[sec]
        for m, v in e["metrics"].items():
            if v is None: continue
            close(g[m], v, sec + " " + m, 1e-9)
        mine = [s for s in samples if s["file"] == g["file"]]
        if len(mine) != g["n"]: bad.append("%s: %d samples for %d items" % (sec, len(mine), g["n"]))
        for s in mine:
            ei = e["items"][s["index"]]
            for c, ch in enumerate(s["choices"]):
                close(ch["loglik"], ei["loglik"][c], "%s item %d choice %d" % (sec, s["index"], c))
                if ch["tokens"] != ei["tokens"][c] or ch["greedy"] != ei["greedy"][c]:
                    bad.append("%s item %d choice %d tokens/greedy" % (sec, s["index"], c))
            if s["pred"] != ei["pred"]: bad.append("%s item %d pred %s vs %s" % (sec, s["index"], s["pred"], ei["pred"]))
for b in bad[:20]: print(b)
sys.exit(1 if bad else 0)
EOF
agree() { $PY "$T/compare.py" "$FX/expected.json" "$@"; }

# ---- perplexity of the text: strides T (default), 7 and 1, and batch sizes
expect 0 "eval --text" "$C" eval --ckpt "$T/run" --text "$FX/text.txt" --json
"$C" eval --ckpt "$T/run" --text "$FX/text.txt" --json > "$T/t0.json" 2>/dev/null
check 'agree text:0 "$T/t0.json"' "--text at stride T agrees with PyTorch"
"$C" eval --ckpt "$T/run" --text "$FX/text.txt" --stride 7 --batch 3 --json > "$T/t7.json" 2>/dev/null
check 'agree text:7 "$T/t7.json"' "--text --stride 7 --batch 3 agrees with PyTorch"
"$C" eval --ckpt "$T/run" --text "$FX/text.txt" --stride 1 --batch 64 --json > "$T/t1.json" 2>/dev/null
check 'agree text:1 "$T/t1.json"' "--text --stride 1 agrees with PyTorch"
expect_out "bits_per_byte" "$C" eval --ckpt "$T/run" --text "$FX/text.txt"
expect_out "word_perplexity" "$C" eval --ckpt "$T/run" --text "$FX/text.txt"

# ---- the same tokens as shards: one file, two files, a leading end-of-text
"$C" tokenizer encode -t "$FX/tokenizer.json" --input "$FX/text.txt" > "$T/ids.txt"
cat > "$T/shard.py" <<'EOF'
import struct, sys
def write(path, toks):
    with open(path, "wb") as f:
        f.write(struct.pack("<256i", *([20240520, 1, len(toks)] + [0] * 253)))
        f.write(struct.pack("<%dH" % len(toks), *toks))
ids = [int(x) for x in open(sys.argv[1]).read().split()]
out, mode = sys.argv[2], sys.argv[3]
if mode == "one": write(out + "/val_000.bin", ids)
if mode == "two": write(out + "/val_000.bin", ids[:100]); write(out + "/val_001.bin", ids[100:])
if mode == "eot": write(out + "/val_000.bin", [int(sys.argv[4])] + ids)
if mode == "bad": write(out + "/val_000.bin", ids[:5] + [400] + ids[5:])
if mode == "train": write(out + "/train_000.bin", ids)
EOF
EOT=$(echo '<|endoftext|>' | "$C" tokenizer encode -t "$FX/tokenizer.json" --allowed-special all | awk '{print $1}')
for mode in one two eot train bad; do
  mkdir -p "$T/d_$mode" && $PY "$T/shard.py" "$T/ids.txt" "$T/d_$mode" $mode "$EOT"
done
for mode in one two eot; do
  "$C" eval --ckpt "$T/run" --data "$T/d_$mode" --json > "$T/d_$mode.json" 2>/dev/null
  check 'agree text:0 "$T/d_$mode.json"' "--data ($mode) gives the text's perplexity"
done
expect_out "2 shards" "$C" eval --ckpt "$T/run" --data "$T/d_two"
expect 1 "no val shards" "$C" eval --ckpt "$T/run" --data "$T/d_train"
expect_err "has no val shards" "$C" eval --ckpt "$T/run" --data "$T/d_train"
"$C" eval --ckpt "$T/run" --data "$T/d_train" --split train --json > "$T/d_train.json" 2>/dev/null
check 'agree text:0 "$T/d_train.json"' "--split train reads train_*.bin"
expect 1 "a token beyond the vocabulary" "$C" eval --ckpt "$T/run" --data "$T/d_bad"
expect_err "val_000.bin: token 5 is id 400, beyond the model's vocabulary" \
  "$C" eval --ckpt "$T/run" --data "$T/d_bad"

# ---- multiple choice: generic and HellaSwag, every log-likelihood in the samples
"$C" eval --ckpt "$T/run" --mc "$FX/mc.jsonl" --mc "$FX/hellaswag.jsonl" --task hellaswag \
  --json --log-samples "$T/s.jsonl" > "$T/mc.json" 2>/dev/null
check 'agree mc:mc=mc,hellaswag=hellaswag "$T/mc.json" "$T/s.jsonl"' \
  "multiple choice agrees with PyTorch (every choice's log-likelihood, tokens, predictions)"
check '$PY -c "import json,sys; d=json.load(open(sys.argv[1])); assert d[\"hellaswag\"][\"task\"] == \"hellaswag\" and d[\"mc\"][\"task\"] == \"generic\" and d[\"mc\"][\"truncated\"] > 0" "$T/mc.json"' \
  "--task applies to the --mc before it; the long context was cut"
# the crafted item: acc takes the short choice, acc_norm the long right one
check '$PY -c "import json,sys; s=json.loads(open(sys.argv[1]).readline()); assert s[\"gold\"] == 1 and s[\"pred\"][\"acc\"] == 0 and s[\"pred\"][\"acc_norm\"] == 1 and not s[\"correct\"][\"acc\"] and s[\"correct\"][\"acc_norm\"]" "$T/s.jsonl"' \
  "acc and acc_norm choose differently on the crafted item"
for b in 1 3; do
  "$C" eval --ckpt "$T/run" --mc "$FX/mc.jsonl" --batch $b --json --log-samples "$T/s$b.jsonl" \
    > "$T/mc$b.json" 2>/dev/null
  check 'agree mc:mc=mc "$T/mc$b.json" "$T/s$b.jsonl"' "--batch $b gives the same scores"
done
"$C" eval --ckpt "$T/run" --task hellaswag --mc "$FX/hellaswag.jsonl" --json > "$T/h.json" 2>/dev/null
check 'grep -q "\"task\":[[:space:]]*\"hellaswag\"" "$T/h.json"' "a --task before every --mc applies to all"
"$C" eval --ckpt "$T/run" --mc "$FX/mc.jsonl" --limit 2 --json --log-samples "$T/s2.jsonl" > "$T/l.json" 2>/dev/null
check '[ "$(wc -l < "$T/s2.jsonl")" = 2 ] && grep -q "\"n\":[[:space:]]*2" "$T/l.json"' "--limit 2 scores two items"
expect_out "acc_norm" "$C" eval --ckpt "$T/run" --mc "$FX/mc.jsonl"
expect_out "items_per_s" "$C" eval --ckpt "$T/run" --mc "$FX/mc.jsonl"
# everything at once: one JSON object with every section
"$C" eval --ckpt "$T/run" --text "$FX/text.txt" --mc "$FX/mc.jsonl" --mc "$FX/mc.jsonl" --json > "$T/all.json" 2>/dev/null
check '$PY -c "import json,sys; d=json.load(open(sys.argv[1])); assert set(d) == {\"model\", \"perplexity\", \"mc\", \"mc_2\"} and d[\"model\"][\"context\"] == 24" "$T/all.json"' \
  "--json: model, perplexity and one section per --mc (names made unique)"

# ---- generation: greedy continuations equal PyTorch's; BLEU and ROUGE through the library
cat > "$T/gen.py" <<'EOF'
import json, sys
exp = json.load(open(sys.argv[1]))["gen"]
mode, path = sys.argv[2], sys.argv[3]
if mode == "self":  # the prompts with references = their expected outputs
    with open(path, "w") as f:
        for l, o in zip(open(sys.argv[4]), exp["outputs"]):
            f.write(json.dumps({"prompt": json.loads(l)["prompt"], "reference": o}) + "\n")
    sys.exit(0)
want = exp["outputs_stop" if mode == "stop" else "outputs"]
got = [json.loads(l) for l in open(path)]
bad = [(g["index"], g["output"], w) for g, w in zip(got, want) if g["output"] != w]
for b in bad: print("item %d: cllm %r, PyTorch %r" % b)
sys.exit(1 if bad or len(got) != len(want) else 0)
EOF
"$C" eval --ckpt "$T/run" --gen "$FX/gen.jsonl" --max-tokens 12 --json --log-samples "$T/g.jsonl" > "$T/g.json" 2>/dev/null
check '$PY "$T/gen.py" "$FX/expected.json" plain "$T/g.jsonl"' "greedy continuations equal PyTorch's"
"$C" eval --ckpt "$T/run" --gen "$FX/gen.jsonl" --max-tokens 12 --stop ' the' --json --log-samples "$T/gs.jsonl" > "$T/gs.json" 2>/dev/null
check '$PY "$T/gen.py" "$FX/expected.json" stop "$T/gs.jsonl"' "--stop cuts before the stop string"
check '$PY -c "import json,sys; d=json.load(open(sys.argv[1]))[\"gen\"]; e=json.load(open(sys.argv[2]))[\"gen\"]; assert d[\"n\"] == 4 and d[\"truncated\"] == 1 and d[\"stopped\"] == 0 and e[\"stopped\"] == 3 and 0 <= d[\"bleu\"] < 100" "$T/g.json" "$T/gs.json"' \
  "the gen section: 4 prompts, one cut on the left; the stop string ended three"
$PY "$T/gen.py" "$FX/expected.json" self "$T/self.jsonl" "$FX/gen.jsonl"
"$C" eval --ckpt "$T/run" --gen "$FX/gen.jsonl" --gen "$T/self.jsonl" --max-tokens 12 --json > "$T/gself.json" 2>/dev/null
check '$PY -c "import json,sys; d=json.load(open(sys.argv[1]))[\"self\"]; assert abs(d[\"bleu\"] - 100) < 1e-9 and d[\"rouge1\"] == d[\"rouge2\"] == d[\"rougeL\"] == 1" "$T/gself.json"' \
  "outputs equal to their references: BLEU 100, ROUGE 1"
expect_out "BLEU" "$C" eval --ckpt "$T/run" --gen "$FX/gen.jsonl" --max-tokens 4
expect 2 "--max-tokens as long as the context" "$C" eval --ckpt "$T/run" --gen "$FX/gen.jsonl" --max-tokens 24
expect 2 "--stop without --gen" "$C" eval --ckpt "$T/run" --text "$FX/text.txt" --stop x
echo '{"prompt": "x"}' > "$T/badgen.jsonl"
expect 1 "a --gen record without a reference" "$C" eval --ckpt "$T/run" --gen "$T/badgen.jsonl" --strict
expect_err "badgen.jsonl:1:" "$C" eval --ckpt "$T/run" --gen "$T/badgen.jsonl" --strict

# ---- malformed records: skipped and counted, or an error naming the line with --strict
{ head -1 "$FX/mc.jsonl"; echo '{"context": "x", "choices": ["a"], "label": 0}'; echo 'not json'; sed -n 2p "$FX/mc.jsonl"; } > "$T/bad.jsonl"
expect 0 "malformed lines skipped" "$C" eval --ckpt "$T/run" --mc "$T/bad.jsonl"
expect_err "2 malformed" "$C" eval --ckpt "$T/run" --mc "$T/bad.jsonl"
"$C" eval --ckpt "$T/run" --mc "$T/bad.jsonl" --json > "$T/bad.json" 2>/dev/null
check 'grep -q "\"skipped\":[[:space:]]*2" "$T/bad.json" && grep -q "\"n\":[[:space:]]*2" "$T/bad.json"' "skipped lines are counted and reported"
echo "keep me" > "$T/old.jsonl"
expect 1 "--strict stops at the line" "$C" eval --ckpt "$T/run" --mc "$T/bad.jsonl" --strict --log-samples "$T/old.jsonl"
expect_err "bad.jsonl:2:" "$C" eval --ckpt "$T/run" --mc "$T/bad.jsonl" --strict
check '[ "$(cat "$T/old.jsonl")" = "keep me" ]' "a failed run leaves an existing --log-samples file alone"
echo '{"context": "x", "choices": ["the cat sat on the mat and the dog sat on the log while the cat ran home to the hill", "y"], "label": 0}' > "$T/long.jsonl"
expect 1 "a continuation longer than the window" "$C" eval --ckpt "$T/run" --mc "$T/long.jsonl"
expect_err "line 1, choice 0" "$C" eval --ckpt "$T/run" --mc "$T/long.jsonl"

# ---- bad input: one line on stderr, exit 1 (runtime) or 2 (usage)
expect 2 "no flags" "$C" eval
expect 2 "nothing to evaluate" "$C" eval --ckpt "$T/run"
expect_err "nothing to evaluate" "$C" eval --ckpt "$T/run"
expect 2 "--data and --text" "$C" eval --ckpt "$T/run" --data "$T/d_one" --text "$FX/text.txt"
expect 2 "unknown task" "$C" eval --ckpt "$T/run" --mc "$FX/mc.jsonl" --task squad
expect_err "auto|hellaswag|arc|mmlu" "$C" eval --ckpt "$T/run" --mc "$FX/mc.jsonl" --task squad
expect 2 "two tasks for one --mc" "$C" eval --ckpt "$T/run" --mc "$FX/mc.jsonl" --task arc --task mmlu
expect 2 "--task without --mc" "$C" eval --ckpt "$T/run" --text "$FX/text.txt" --task arc
expect 2 "--log-samples without --mc" "$C" eval --ckpt "$T/run" --text "$FX/text.txt" --log-samples "$T/x.jsonl"
expect 2 "--stride beyond the context" "$C" eval --ckpt "$T/run" --text "$FX/text.txt" --stride 25
expect_err "exceeds the model's context (24 tokens)" "$C" eval --ckpt "$T/run" --text "$FX/text.txt" --stride 25
expect 2 "--batch 0" "$C" eval --ckpt "$T/run" --text "$FX/text.txt" --batch 0
expect 1 "missing checkpoint" "$C" eval --ckpt "$T/nope" --text "$FX/text.txt"
expect 1 "missing --mc file" "$C" eval --ckpt "$T/run" --mc "$T/nope.jsonl"
expect 1 "missing --text file" "$C" eval --ckpt "$T/run" --text "$T/nope.txt"
: > "$T/empty.txt"
expect 1 "empty --text" "$C" eval --ckpt "$T/run" --text "$T/empty.txt"
expect_err "is empty" "$C" eval --ckpt "$T/run" --text "$T/empty.txt"
expect 1 "--log-samples into a missing directory" "$C" eval --ckpt "$T/run" --mc "$FX/mc.jsonl" --log-samples "$T/no/dir/s.jsonl"
expect 0 "a checkpoint without a tokenizer" "$C" import --from "$CLLM_SOURCE_DIR/tests/fixtures/hf_tiny" --out "$T/notok"
expect 1 "--text needs the checkpoint's tokenizer" "$C" eval --ckpt "$T/notok" --text "$FX/text.txt"
expect_err "has no tokenizer.json" "$C" eval --ckpt "$T/notok" --text "$FX/text.txt"
expect 1 "--mc needs the checkpoint's tokenizer" "$C" eval --ckpt "$T/notok" --mc "$FX/mc.jsonl"
expect 1 "--data with no tokenizer anywhere" "$C" eval --ckpt "$T/notok" --data "$T/d_one"
expect_err "has no tokenizer.json" "$C" eval --ckpt "$T/notok" --data "$T/d_one"
# the data directory's tokenizer.json must be the checkpoint's
mkdir -p "$T/d_tok" && cp "$T/d_one/val_000.bin" "$T/d_tok/"
printf 'the cat sat on the mat and the dog sat on the log. ' > "$T/other.txt"
"$C" tokenizer train --input "$T/other.txt" --vocab-size 280 --min-frequency 1 -o "$T/d_tok/tokenizer.json" -q 2>/dev/null
expect 1 "a data tokenizer that differs" "$C" eval --ckpt "$T/run" --data "$T/d_tok"
expect_err "differs from the checkpoint's tokenizer" "$C" eval --ckpt "$T/run" --data "$T/d_tok"
cp "$FX/tokenizer.json" "$T/d_tok/tokenizer.json"
"$C" eval --ckpt "$T/run" --data "$T/d_tok" --json > "$T/d_tok.json" 2>/dev/null
check 'agree text:0 "$T/d_tok.json"' "the same tokenizer in the data directory is accepted"

finish
