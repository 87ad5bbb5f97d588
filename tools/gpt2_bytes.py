"""GPT-2's byte <-> printable character map (bytes_to_unicode in OpenAI's encoder.py): vocab.json
and merges.txt spell each byte of a token as one of these characters. Shared by the developer
scripts (tools/export_model.py, tools/reference/make_fixtures.py, tests/fuzz/make_corpus.py)."""


def bytes_to_unicode():
    """{byte: character} for the 256 bytes."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) + \
        list(range(ord("\u00ae"), ord("\u00ff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))
