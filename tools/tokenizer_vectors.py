#!/usr/bin/env python3
"""Generate tests/fixtures/tokenizer_gpt2_vectors.jsonl: texts and the ids tiktoken's `gpt2`
encoding gives them (built from ../shared/data/gpt2, see gpt2_tiktoken.py).

    python3 -m venv .venv && .venv/bin/pip install tiktoken
    .venv/bin/python tools/tokenizer_vectors.py [--data ../shared/data/gpt2] [--out FILE]

Each line: {"name": ..., "text": ... | "hex": ..., "allowed": "none"|"all", "ids": [...]}.
"hex" (UTF-8 bytes in hex) replaces "text" for texts holding U+0000, which a C JSON string
cannot carry. tests/test_tokenizer_gpt2.c encodes each text with cllm and compares.

The texts: prose (fortunes), code, whitespace runs of every kind, contractions, digits and
Unicode numbers, CJK, emoji (ZWJ sequences, flags, skin tones), combining marks, control
characters, random code points from many scripts, and <|endoftext|> both as text and as a
special token. Seeded: rerunning gives the same file as long as its inputs (the fortunes and
this repository's host/*.c, tools/*.py, which the code samples are cut from) are unchanged;
the committed file is the reference, and any regenerated one is equally valid.
"""
import argparse
import glob
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt2_tiktoken import gpt2_encoding  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def prose(rng, n):
    files = sorted(f for f in glob.glob("/usr/share/games/fortunes/*")
                   if not f.endswith((".dat", ".u8")) and os.path.isfile(f))
    out = []
    for f in files:
        with open(f, encoding="utf-8", errors="replace") as fh:
            parts = fh.read().split("\n%\n")
        out += [p for p in parts if 20 < len(p) < 1500]
    rng.shuffle(out)
    return out[:n]


def code(rng, n):
    files = sorted(glob.glob(os.path.join(ROOT, "host", "*.c")) +
                   glob.glob(os.path.join(ROOT, "tools", "*.py")) +
                   glob.glob(os.path.join(ROOT, "CMakeLists.txt")))
    out = []
    for f in files:
        lines = open(f, encoding="utf-8").read().split("\n")
        for _ in range(2):
            a = rng.randrange(max(1, len(lines) - 30))
            out.append("\n".join(lines[a:a + rng.randrange(5, 30)]))
    rng.shuffle(out)
    return out[:n]


SPACES = [" ", "  ", "\t", "\n", "\r\n", "\r", "\x0b", "\x0c", "\x85", "\xa0", "\u1680",
          "\u2000", "\u2007", "\u200a", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000",
          "\u200b", "\ufeff", "\x1c", "\x1f"]
WORDS = ["the", "Hello", "world", "x", "42", "3.14", "!!", "...", "'s", "don't", "ÿes",
         "naïve", "Ωmega", "東京", "🙂", "a1b2", "__init__", "--flag", "é", "١٢٣"]


def whitespace(rng, n):
    out = ["", " ", "  ", "\n", "\n\n\n", " \n ", "a  b", "a   ", "   a", "\t\tx", "x \n\n y",
           "end with space ", "end with spaces   ", "line\n  indented\n\tTab", " ' ", "  's",
           "\u3000\u3000漢字", "a\xa0b", "a \xa0b", "\xa0 a", " \u2028a", "\r\n\r\nx"]
    for _ in range(n):
        k = rng.randrange(1, 12)
        out.append("".join(rng.choice(SPACES) * rng.randrange(1, 4) + rng.choice(WORDS)
                           for _ in range(k)) + rng.choice(["", rng.choice(SPACES) * 3]))
    return out


def contractions(rng, n):
    base = ["I'm", "you're", "he'll", "they've", "she'd", "it's", "don't", "IT'S", "I'M",
            "YOU'RE", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "''s", "'st", "'llama",
            "rock'n'roll", "O'Neil's", "’s", "it’s", " 's", "x'", "'", "''", "'''", "'1",
            "'é", "'\n"]
    out = [" ".join(base), "".join(base)]
    for _ in range(n):
        out.append(rng.choice([" ", "", "\n"]).join(rng.choice(base + WORDS)
                                                     for _ in range(rng.randrange(2, 10))))
    return out


def digits(rng, n):
    out = ["0", "123", "1234567890123", "1,000,000.50", "3.14159", "-42", "+1e-9", "0x1F",
           "½ ¾ ² ³ ¹", "١٢٣٤", "०१२३", "๑๒๓", "Ⅻ ⅻ Ⅳ", "①②③", "𝟙𝟚𝟛", "12ab34", "a1", " 1 2  3"]
    for _ in range(n):
        out.append(" ".join(str(rng.randrange(10 ** rng.randrange(1, 15)))
                            for _ in range(rng.randrange(1, 8))))
    return out


CJK = ["我们在这里学习自然语言处理。", "東京都は日本の首都です。", "ひらがなとカタカナ、漢字。",
       "한국어 문장도 있습니다.", "中文，标点；符号：“引号”！", "日本語のテキスト　全角スペース",
       "繁體中文與简体中文混合", "ｆｕｌｌｗｉｄｔｈ　ＡＳＣＩＩ１２３"]
EMOJI = ["🙂", "👍🏽", "👨‍👩‍👧‍👦", "🇩🇪🇯🇵", "❤️", "🏳️‍🌈", "😀😃😄", "🧑🏿‍🚀", "#️⃣", "©️",
         "✈️ travel", "emoji🙂inside", "🙂 🙂  🙂"]
MARKS = ["e\u0301", "cafe\u0301", "n\u0303o", "Z\u0351\u0308\u0300a\u0337l\u0322g\u0334o",
         "हिन्दी भाषा", "العَرَبِيَّة", "עִבְרִית", "ภาษาไทย", "a\u0308\u0308\u0308",
         "\u0301leading mark", "ǅ ǈ ǋ", "ß ẞ ﬁ ﬂ", "Ἀθῆναι"]


def unicode_mix(rng, n):
    out = CJK + EMOJI + MARKS + [" ".join(CJK), "".join(EMOJI), " ".join(MARKS)]
    for _ in range(n):
        parts = [rng.choice(CJK + EMOJI + MARKS + WORDS) for _ in range(rng.randrange(2, 8))]
        out.append(rng.choice(["", " ", "\n"]).join(parts))
    return out


def controls(rng, n):
    ctl = [chr(c) for c in list(range(1, 32)) + [127] + list(range(0x80, 0xa0))]
    out = ["".join(ctl), " ".join(ctl), "a\x00b", "\x00", "\x00\x00 x", "tab\tsep\x1funit"]
    for _ in range(n):
        out.append("".join(rng.choice(ctl + WORDS + SPACES) for _ in range(rng.randrange(3, 20))))
    return out


RANGES = [(0x20, 0x7e), (0xa0, 0x24f), (0x370, 0x3ff), (0x400, 0x4ff), (0x590, 0x6ff),
          (0x900, 0x97f), (0xe00, 0xe7f), (0x1100, 0x11ff), (0x1e00, 0x1fff), (0x2000, 0x206f),
          (0x2070, 0x218f), (0x2190, 0x2bff), (0x3000, 0x30ff), (0x4e00, 0x9fff),
          (0xac00, 0xd7a3), (0xe000, 0xe0ff), (0xf900, 0xfaff), (0xfe00, 0xfe6f),
          (0xff00, 0xffef), (0x10000, 0x1007f), (0x1d400, 0x1d7ff), (0x1f300, 0x1faff),
          (0x20000, 0x2a6df), (0xe0000, 0xe007f), (0xf0000, 0xf00ff), (0x10fff0, 0x10ffff)]


def random_unicode(rng, n):
    out = []
    for _ in range(n):
        s = []
        for _ in range(rng.randrange(1, 40)):
            if rng.random() < 0.25:
                s.append(rng.choice(SPACES))
            else:
                a, b = rng.choice(RANGES)
                s.append(chr(rng.randrange(a, b + 1)))
        out.append("".join(s))
    return out


def random_ascii(rng, n):
    alphabet = "aaaaeeeiioouu bcdfghlmnrst  ,.;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`0123456789\n\t"
    return ["".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 200))) for _ in range(n)]


def long_runs():
    return [" " * 300 + "x", "\n" * 200, "!" * 500, "a" * 1000, "ab" * 300, "1" * 400,
            "é" * 300, "🙂" * 100, " \t" * 150 + "y", "-" * 80 + "\n" + "=" * 80]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "gpt2"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures",
                                                  "tokenizer_gpt2_vectors.jsonl"))
    args = ap.parse_args()
    enc = gpt2_encoding(args.data)
    rng = random.Random(20240520)
    groups = [("prose", prose(rng, 160)), ("code", code(rng, 40)),
              ("whitespace", whitespace(rng, 80)), ("contractions", contractions(rng, 40)),
              ("digits", digits(rng, 30)), ("unicode", unicode_mix(rng, 60)),
              ("controls", controls(rng, 30)), ("random_unicode", random_unicode(rng, 120)),
              ("random_ascii", random_ascii(rng, 60)), ("long_runs", long_runs())]
    eot = "<|endoftext|>"
    specials = ["a<|endoftext|>b", "<|endoftext|>", " <|endoftext|> x", "<|endoftext|><|endoftext|>",
                "Hello" + eot + "\n\nWorld " + eot, "<|endoftext", "<|endoftext|>'s"]
    n = 0
    with open(args.out, "w", encoding="utf-8") as f:
        def put(name, text, allowed):
            nonlocal n
            ids = enc.encode(text, allowed_special="all" if allowed == "all" else set(),
                             disallowed_special=())
            rec = {"name": name, "allowed": allowed, "ids": ids}
            if "\x00" in text:
                rec["hex"] = text.encode("utf-8").hex()
            else:
                rec["text"] = text
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n += 1
        for name, texts in groups:
            for i, t in enumerate(texts):
                put(f"{name}/{i}", t, "none")
        for i, t in enumerate(specials):
            put(f"special_as_text/{i}", t, "none")
            put(f"special_allowed/{i}", t, "all")
    print(f"wrote {n} vectors to {args.out} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()
