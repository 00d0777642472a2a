#!/usr/bin/env bash
# cllm data make-mc / make-sft from the command line: help, usage errors, bad input named with
# file and line, outputs that are deterministic and written only on success, fortune-style
# corpora with their .dat indexes and .u8 links.
set -u
. "$(dirname "$0")/lib.sh"

t=$(fresh_tmp cli-data)
mkdir -p "$t/corpus/sub"
printf 'The cat sat on the warm mat by the fire and purred all night long.\n%%\nA rolling stone gathers no moss, but it does gather a little speed downhill.\n%%\nAll that glitters is not gold, and all that wander are not lost in the woods.\n%%\n' > "$t/corpus/animals"
printf 'Computers make very fast, very accurate mistakes when nobody is watching them.\n%%\nThere is no place like 127.0.0.1 when you are tired of the whole wide world.\n%%\nTo err is human, but to really foul things up you need a computer program.\n%%\n' > "$t/corpus/sub/computer-jokes"
printf 'bin\0ary' > "$t/corpus/animals.dat"
ln -s animals "$t/corpus/animals.u8"

expect 0 "data --help" "$CLLM_BIN" data --help
expect_out "make-mc" "$CLLM_BIN" data --help
expect_out "make-sft" "$CLLM_BIN" data --help
expect 2 "data alone" "$CLLM_BIN" data
expect 2 "data unknown" "$CLLM_BIN" data frobnicate
expect_err "'frobnicate' is not a subcommand" "$CLLM_BIN" data frobnicate
expect 0 "make-mc --help" "$CLLM_BIN" data make-mc --help
expect_out "--continuation-words N" "$CLLM_BIN" data make-mc --help
expect_out "--doc-separator LINE" "$CLLM_BIN" data make-mc --help
expect 0 "make-sft --help" "$CLLM_BIN" data make-sft --help
expect_out "--template TEXT" "$CLLM_BIN" data make-sft --help
expect_out "Tell me a fortune about {category}." "$CLLM_BIN" data make-sft --help

# usage errors: exit 2, one line
expect 2 "make-mc no out" "$CLLM_BIN" data make-mc --input "$t/corpus"
expect_err "--out is required" "$CLLM_BIN" data make-mc --input "$t/corpus"
expect 2 "make-mc no input" "$CLLM_BIN" data make-mc --out "$t/x.jsonl"
expect 2 "make-mc bad choices" "$CLLM_BIN" data make-mc --input "$t/corpus" --out "$t/x.jsonl" --choices 1
expect 2 "make-sft bad template" "$CLLM_BIN" data make-sft --input "$t/corpus" --out "$t/x.jsonl" --template "no placeholder"
expect_err "--template 'no placeholder' has no {category}" "$CLLM_BIN" data make-sft --input "$t/corpus" --out "$t/x.jsonl" --template "no placeholder"
expect 2 "make-sft val without out" "$CLLM_BIN" data make-sft --input "$t/corpus" --out "$t/x.jsonl" --val-fraction 0.2
expect 2 "make-sft bad format" "$CLLM_BIN" data make-sft --input "$t/corpus" --out "$t/x.jsonl" --format xml
expect 2 "missing input" "$CLLM_BIN" data make-mc --input "$t/nope" --out "$t/x.jsonl"
expect_err "$t/nope: No such file or directory" "$CLLM_BIN" data make-mc --input "$t/nope" --out "$t/x.jsonl"
# too few documents for the items asked: exit 2 with the counts, nothing written
expect 2 "too many items" "$CLLM_BIN" data make-mc --input "$t/corpus" --doc-separator % --out "$t/x.jsonl" --n 50
expect_err "50 items of 4 choices need at least 50" "$CLLM_BIN" data make-mc --input "$t/corpus" --doc-separator % --out "$t/x.jsonl" --n 50
check "[ ! -e $t/x.jsonl ]" "a failed run wrote its output"

# bad UTF-8 is named with file and line; an existing output is left alone
printf 'fine line\nbad \xff byte\n' > "$t/bad.txt"
echo keep > "$t/keep.jsonl"
expect 1 "bad utf8" "$CLLM_BIN" data make-mc --input "$t/bad.txt" --out "$t/keep.jsonl"
expect_err "bad.txt:2: not valid UTF-8 text" "$CLLM_BIN" data make-mc --input "$t/bad.txt" --out "$t/keep.jsonl"
check "[ \"\$(cat $t/keep.jsonl)\" = keep ]" "the output was overwritten by a failed run"

# make-mc: 6 fortunes (the .dat index and the .u8 link are skipped), 6 items, deterministic
expect 0 "make-mc" "$CLLM_BIN" data make-mc --input "$t/corpus" --doc-separator % --out "$t/mc.jsonl" --rest "$t/rest.txt" --min-chars 10
expect_out "read 6 documents from 2 files (1 binary and 1 repeated files skipped)" "$CLLM_BIN" data make-mc --input "$t/corpus" --doc-separator % --out "$t/mc.jsonl" --min-chars 10
check "[ \$(wc -l < $t/mc.jsonl) -eq 6 ]" "make-mc wrote $(wc -l < "$t/mc.jsonl") items, expected 6"
check "[ ! -s $t/rest.txt ]" "every document is in the benchmark, so --rest is empty"
cp "$t/mc.jsonl" "$t/mc1.jsonl"
"$CLLM_BIN" data make-mc --input "$t/corpus" --doc-separator % --out "$t/mc.jsonl" --min-chars 10 >/dev/null
check "cmp -s $t/mc.jsonl $t/mc1.jsonl" "make-mc is not deterministic"
"$CLLM_BIN" data make-mc --input "$t/corpus" --doc-separator % --out "$t/mc2.jsonl" --min-chars 10 --seed 99 >/dev/null
check "! cmp -s $t/mc2.jsonl $t/mc1.jsonl" "--seed changes nothing"
"$CLLM_BIN" data make-mc --input "$t/corpus" --doc-separator % --out "$t/mc4.jsonl" --min-chars 10 --n 4 --rest "$t/rest4.txt" >/dev/null
check "[ \$(grep -c '^%\$' $t/rest4.txt) -eq 2 ]" "--rest should hold the 2 documents left out"
check "grep -q '\"choices\":\\[' $t/mc.jsonl && grep -q '\"label\":' $t/mc.jsonl" "make-mc output lacks choices/label"

# make-sft: categories from file names, a validation split, the pairs format
expect 0 "make-sft" "$CLLM_BIN" data make-sft --input "$t/corpus" --doc-separator % --out "$t/sft.jsonl" --val-out "$t/val.jsonl" --val-fraction 0.34
expect_out "2 categories: animals (3), computer jokes (3)" "$CLLM_BIN" data make-sft --input "$t/corpus" --doc-separator % --out "$t/sft.jsonl" --val-out "$t/val.jsonl" --val-fraction 0.34
check "[ \$(wc -l < $t/sft.jsonl) -eq 4 ] && [ \$(wc -l < $t/val.jsonl) -eq 2 ]" "make-sft split 4/2 expected"
check "grep -q '\"role\":\"assistant\"' $t/sft.jsonl && grep -q 'fortune about computer jokes' $t/sft.jsonl $t/val.jsonl" "make-sft records"
expect 0 "make-sft pairs" "$CLLM_BIN" data make-sft "$t/corpus" --doc-separator % --out "$t/pairs.jsonl" --format pairs --category-from dir
check "grep -q '\"prompt\":' $t/pairs.jsonl && grep -q 'about sub' $t/pairs.jsonl && grep -q 'about corpus' $t/pairs.jsonl" "pairs with directory categories"

# the real corpus when installed
if [ -d /usr/share/games/fortunes ]; then
  expect 0 "fortunes mc" "$CLLM_BIN" data make-mc --input /usr/share/games/fortunes --doc-separator % --n 300 --out "$t/f-mc.jsonl" --rest "$t/f-rest.txt"
  check "[ \$(wc -l < $t/f-mc.jsonl) -eq 300 ]" "300 fortune items expected"
  expect 0 "fortunes sft" "$CLLM_BIN" data make-sft --input /usr/share/games/fortunes --doc-separator % --out "$t/f-sft.jsonl" --max-chars 400 --max-per-category 50
  check "grep -q 'fortune about computers' $t/f-sft.jsonl" "no computers category in the fortunes SFT set"
fi
finish
