#!/usr/bin/env bash
# cllm data prepare: usage errors and exit codes, the outputs, no overwriting, --strict, and a
# whole run on the Debian fortunes corpus (skipped when the package is absent) whose input
# counts are checked against counts made here with find and awk.
set -u
. "$(dirname "$0")/lib.sh"

t=$(fresh_tmp cli-data-prepare)

expect_out "prepare" "$CLLM_BIN" data --help
expect 0 "prepare --help" "$CLLM_BIN" data prepare --help
expect_out "--near-dup-threshold J" "$CLLM_BIN" data prepare --help
expect_out "--doc-separator LINE" "$CLLM_BIN" data prepare --help

# A small corpus and a tokenizer trained on it.
mkdir -p "$t/in"
for i in $(seq 1 30); do
  printf 'Document number %d talks about the weather in town %d and the river.\n%%\n' "$i" "$i"
done > "$t/in/a.txt"
printf '{"text": "json document one with some words"}\n{"text": "json document two, other words"}\nnot json at all\n' > "$t/in/b.jsonl"
"$CLLM_BIN" tokenizer train --input "$t/in/a.txt" --vocab-size 300 -o "$t/tok.json" -q
check "[ -f '$t/tok.json' ]" "tokenizer trained"

expect 2 "no --out" "$CLLM_BIN" data prepare "$t/in" --tokenizer "$t/tok.json"
expect 2 "no inputs" "$CLLM_BIN" data prepare --out "$t/o" --tokenizer "$t/tok.json"
expect 2 "bad format" "$CLLM_BIN" data prepare "$t/in" --out "$t/o" --tokenizer "$t/tok.json" --format xml
expect 2 "bad val fraction" "$CLLM_BIN" data prepare "$t/in" --out "$t/o" --tokenizer "$t/tok.json" --val-fraction 2
expect 2 "bad threshold" "$CLLM_BIN" data prepare "$t/in" --out "$t/o" --tokenizer "$t/tok.json" --near-dup-threshold 1.5
expect 2 "missing input" "$CLLM_BIN" data prepare "$t/nope" --out "$t/o" --tokenizer "$t/tok.json"
expect_err "$t/nope" "$CLLM_BIN" data prepare "$t/nope" --out "$t/o" --tokenizer "$t/tok.json"
expect 1 "not a tokenizer" "$CLLM_BIN" data prepare "$t/in" --out "$t/o" --tokenizer "$t/in/a.txt"
check "[ ! -e '$t/o' ]" "failed runs leave no output directory"

expect 0 "prepare" "$CLLM_BIN" data prepare "$t/in" --doc-separator % --out "$t/o" --tokenizer "$t/tok.json" --val-fraction 0.1
for f in train_000.bin val_000.bin stats.json tokenizer.json removed.jsonl; do
  check "[ -f '$t/o/$f' ]" "prepare wrote $f"
done
check "grep -Eq '\"malformed_jsonl_lines\":[[:space:]]*1(,|$)' '$t/o/stats.json'" "the malformed JSONL line is counted"
check "grep -q '\"documents_in\":[[:space:]]*32,' '$t/o/stats.json'" "32 documents in"
expect 2 "no overwrite" "$CLLM_BIN" data prepare "$t/in" --doc-separator % --out "$t/o" --tokenizer "$t/tok.json"
expect_err "already holds prepared data" "$CLLM_BIN" data prepare "$t/in" --doc-separator % --out "$t/o" --tokenizer "$t/tok.json"
expect 0 "--force" "$CLLM_BIN" data prepare "$t/in" --doc-separator % --out "$t/o" --tokenizer "$t/tok.json" --force -q
expect 1 "--strict" "$CLLM_BIN" data prepare "$t/in" --doc-separator % --out "$t/o2" --tokenizer "$t/tok.json" --strict
expect_err "b.jsonl:3: not valid JSON" "$CLLM_BIN" data prepare "$t/in" --doc-separator % --out "$t/o2" --tokenizer "$t/tok.json" --strict
lines=$("$CLLM_BIN" data prepare "$t/in" --doc-separator % --out "$t/o2" --tokenizer "$t/tok.json" --strict 2>&1 | wc -l)
check "[ $lines -eq 1 ]" "the --strict error is one line (got $lines)"

# The fortunes corpus: every document counted, the .dat indexes and .u8 links skipped.
F=/usr/share/games/fortunes
if [ -d "$F" ]; then
  "$CLLM_BIN" tokenizer train --input "$F/fortunes" --input "$F/computers" --vocab-size 1024 -o "$t/ftok.json" -q
  expect 0 "fortunes" "$CLLM_BIN" data prepare "$F" --doc-separator % --out "$t/f" --tokenizer "$t/ftok.json" -q
  dat=$(find "$F" -maxdepth 1 -type f -name '*.dat' | wc -l)
  links=$(find "$F" -maxdepth 1 -type l | wc -l)
  # documents: per text file, the '%'-separated parts, not counting an empty part at the end
  docs=$(find "$F" -maxdepth 1 -type f ! -name '*.dat' ! -name '.*' -print0 | sort -z |
         xargs -0 awk 'FNR==1 && NR>1 { if (len > 0) n++ } FNR==1 { len = 0 }
                       /^%$/ { n++; len = 0; next } { len++ } END { if (len > 0) n++; print n }')
  s="$t/f/stats.json"
  check "grep -q '\"files_skipped_binary\":[[:space:]]*$dat,' '$s'" "$dat .dat files skipped"
  check "grep -q '\"files_skipped_same\":[[:space:]]*$links,' '$s'" "$links links skipped"
  check "grep -q '\"documents_in\":[[:space:]]*$docs,' '$s'" "$docs fortunes read"
  removed=$(grep -A2 '"total":' "$s" | grep -o '"documents":[[:space:]]*[0-9]*' | grep -o '[0-9]*$')
  check "[ \"$(wc -l < "$t/f/removed.jsonl")\" -eq '$removed' ]" "one removed.jsonl line per removed document ($removed)"
  check "grep -q '\"rule\":\"near_dup\"' '$t/f/removed.jsonl'" "near duplicates found in fortunes"
fi
finish
