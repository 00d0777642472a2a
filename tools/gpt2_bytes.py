"""GPT-2's byte -> printable character map (openai/gpt-2 encoder.py's bytes_to_unicode), the
alphabet of byte-level BPE vocabularies such as encoder.json and cllm's tokenizer.json. Shared by
the tools that read those vocabularies without a tokenizer library."""


def bytes_to_unicode():
    """GPT-2's byte -> printable character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) + \
        list(range(ord("\u00ae"), ord("\u00ff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))
