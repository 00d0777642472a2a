#!/usr/bin/env bash
# cllm tokenizer train|encode|decode|info: round trips through the binary, JSONL, determinism
# across thread counts, and the error cases (exit 2 for usage, 1 for runtime, one line, the
# output file untouched). With ../shared/data/gpt2 also GPT-2's ids for a known sentence.
set -u
. "$(dirname "$0")/lib.sh"
T=$(fresh_tmp cli_tokenizer)
C="$CLLM_BIN tokenizer"

# a corpus: this repository's sources (text, code, punctuation) plus some Unicode
cat "$CLLM_SOURCE_DIR"/host/*.c "$CLLM_SOURCE_DIR"/README.md > "$T/corpus.txt"
printf 'Grüße aus Köln! 東京へ行きます。 naïve café 🙂🙂\n' >> "$T/corpus.txt"
printf '{"text": "first document"}\n\n{"text": "second <|endoftext|> one", "id": 2}\n' > "$T/docs.jsonl"

expect 0 "help" $C --help
expect 2 "no subcommand" $C
expect 2 "bad subcommand" $C frob
for s in train encode decode info convert; do
  expect 0 "$s --help" $C $s --help
done
expect_out "--vocab-size N" $C train --help
expect_out "--allowed-special" $C encode --help

# train: twice with different thread counts, byte-identical
expect 0 "train" $C train --input "$T/corpus.txt" --vocab-size 600 --special '<|pad|>' -o "$T/a.json" --threads 1 -q
expect 0 "train again" $C train "$T/corpus.txt" --vocab-size 600 --special '<|pad|>' -o "$T/b.json" --threads 2 -q
check "cmp -s '$T/a.json' '$T/b.json'" "training is deterministic across thread counts"
expect_out "vocab size: 600 (256 bytes, 342 merges, 2 specials)" $C info -t "$T/a.json"
expect_out "special: <|endoftext|> = 598" $C info -t "$T/a.json"
expect_out "special: <|pad|> = 599" $C info -t "$T/a.json"
expect_out "bytes/token" $C info -t "$T/a.json" --input "$T/corpus.txt"
expect 0 "train jsonl" $C train --input "$T/docs.jsonl" "$T/corpus.txt" --vocab-size 400 -o "$T/j.json" -q

# encode / decode round trip, whole file and stdin, any bytes
$C encode -t "$T/a.json" --input "$T/corpus.txt" > "$T/ids.txt"
$C decode -t "$T/a.json" --input "$T/ids.txt" > "$T/back.txt"
check "cmp -s '$T/corpus.txt' '$T/back.txt'" "decode(encode(corpus)) == corpus"
head -c 20000 /dev/urandom > "$T/random.bin"
$C encode -t "$T/a.json" < "$T/random.bin" | $C decode -t "$T/a.json" > "$T/random.back"
check "cmp -s '$T/random.bin' '$T/random.back'" "random bytes round trip through the CLI"
lines=$(wc -l < "$T/ids.txt")
check "[ $lines -eq 1 ]" "encode prints one line (got $lines)"
$C encode -t "$T/a.json" --input "$T/corpus.txt" --threads 1 > "$T/ids1.txt"
check "cmp -s '$T/ids.txt' '$T/ids1.txt'" "encode gives the same ids on 1 and all threads"

# specials: plain text unless allowed
eot=$(printf '<|endoftext|>' | $C encode -t "$T/a.json" --allowed-special all)
check "[ '$eot' = 598 ]" "allowed <|endoftext|> is one token (got '$eot')"
plain=$(printf '<|endoftext|>' | $C encode -t "$T/a.json" | wc -w)
check "[ $plain -gt 1 ]" "<|endoftext|> is plain text by default"
one=$(printf 'x<|pad|>' | $C encode -t "$T/a.json" --allowed-special '<|pad|>' | wc -w)
check "[ $one -ge 2 ] && printf 'x<|pad|>' | $C encode -t '$T/a.json' --allowed-special '<|pad|>' | grep -q ' 599$'" "a listed special is recognised"
expect 2 "unknown allowed special" $C encode -t "$T/a.json" --allowed-special '<|nope|>' --input "$T/corpus.txt"
expect_err "is not a special token of this tokenizer" $C encode -t "$T/a.json" --allowed-special '<|nope|>' --input "$T/corpus.txt"

# JSONL: one array per non-blank line, decodable
$C encode -t "$T/a.json" --jsonl --input "$T/docs.jsonl" > "$T/docs.ids"
n=$(wc -l < "$T/docs.ids")
check "[ $n -eq 2 ]" "--jsonl: one line per document (got $n)"
check "head -1 '$T/docs.ids' | grep -q '^\[[0-9,]*\]$'" "--jsonl lines are JSON arrays"
first=$(head -1 "$T/docs.ids" | $C decode -t "$T/a.json")
check "[ '$first' = 'first document' ]" "--jsonl ids decode to the text (got '$first')"
printf '{"text": 5}\n' > "$T/bad.jsonl"
expect 1 "jsonl without text" $C encode -t "$T/a.json" --jsonl --input "$T/bad.jsonl"
expect_err "bad.jsonl:1:" $C encode -t "$T/a.json" --jsonl --input "$T/bad.jsonl"

# errors: one line, right exit code, nothing overwritten
cp "$T/a.json" "$T/keep.json"
expect 2 "vocab too small" $C train --input "$T/corpus.txt" --vocab-size 257 -o "$T/keep.json"
expect_err "vocab size 257 is too small" $C train --input "$T/corpus.txt" --vocab-size 257 -o "$T/keep.json"
expect 2 "vocab too small with specials" $C train --input "$T/corpus.txt" --vocab-size 258 --special '<|x|>' -o "$T/keep.json"
: > "$T/empty.txt"
expect 2 "empty corpus" $C train --input "$T/empty.txt" --vocab-size 300 -o "$T/keep.json"
expect_err "empty" $C train --input "$T/empty.txt" --vocab-size 300 -o "$T/keep.json"
expect 1 "unreadable input" $C train --input "$T/no-such-file.txt" --vocab-size 300 -o "$T/keep.json"
expect_err "no-such-file.txt: cannot open" $C train --input "$T/no-such-file.txt" --vocab-size 300 -o "$T/keep.json"
expect 2 "directory input" $C train --input "$T" --vocab-size 300 -o "$T/keep.json"
expect 2 "no input" $C train --vocab-size 300 -o "$T/keep.json"
expect 2 "no output" $C train --input "$T/corpus.txt"
expect 2 "bad vocab value" $C train --input "$T/corpus.txt" --vocab-size many -o "$T/keep.json"
check "cmp -s '$T/a.json' '$T/keep.json'" "failed runs leave the output file alone"
lines=$($C train --input "$T/no-such-file.txt" --vocab-size 300 -o "$T/keep.json" 2>&1 | wc -l)
check "[ $lines -eq 1 ]" "an error is one line (got $lines)"
expect 2 "encode without -t" $C encode --input "$T/corpus.txt"
expect 1 "missing tokenizer" $C encode -t "$T/none.json" --input "$T/corpus.txt"
printf '{"model": {}}' > "$T/broken.json"
expect 1 "broken tokenizer" $C info -t "$T/broken.json"
expect_err "broken.json" $C info -t "$T/broken.json"
expect 2 "id out of range" sh -c "echo 600 | $C decode -t '$T/a.json'"
expect_err "token id 600 (at position 0) is not in the vocabulary" sh -c "echo 600 | $C decode -t '$T/a.json'"
expect 1 "not an id" sh -c "echo '1 2 x3' | $C decode -t '$T/a.json'"
expect_err "'x3' (token 3) is not a token id" sh -c "echo '1 2 x3' | $C decode -t '$T/a.json'"

# GPT-2's own files, when ../shared/data is there
G="$CLLM_SHARED_DATA/gpt2"
if [ -f "$G/encoder.json" ]; then
  ids=$(printf "Hello world, it's 2024!" | $C encode -t "$G")
  check "[ '$ids' = '15496 995 11 340 338 48609 0' ]" "GPT-2 ids (got '$ids')"
  expect_out "vocab size: 50257 (256 bytes, 50000 merges, 1 special)" $C info -t "$G"
  expect_out "Hello" sh -c "echo 15496 | $C decode -t '$G'"
  expect 0 "convert" $C convert -t "$G" -o "$T/gpt2.json"
  ids2=$(printf "Hello world, it's 2024!" | $C encode -t "$T/gpt2.json")
  check "[ '$ids2' = '$ids' ]" "GPT-2 as tokenizer.json encodes the same (got '$ids2')"
else
  echo "note: no ../shared/data/gpt2, GPT-2 checks skipped" >&2
fi

finish
