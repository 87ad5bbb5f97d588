#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/ (committed; run
again only to change them; the inputs of findings are added beside them by hand). Standard
library only; a few KB per target: small valid inputs of every kind each parser takes, plus a
few near misses. scripts/fuzz.sh copies them into
build-fuzz before a campaign, so the committed seeds never change by fuzzing."""
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")
OUT = os.path.join(HERE, "corpus")
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
from gpt2_bytes import bytes_to_unicode  # noqa: E402


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- safetensors ------------------------------------------------------------------------------
def safetensors(tensors, metadata=None, pad=0):
    """tensors: [(name, dtype, shape, bytes)]; returns the file's bytes."""
    header, data = {}, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode() + b" " * pad
    return struct.pack("<Q", len(text)) + text + data


f32 = lambda vals: struct.pack("<%df" % len(vals), *vals)
put("fuzz_safetensors", "tiny", safetensors(
    [("wte.weight", "F32", [2, 3], f32([1, 2, 3, 4, 5, 6])), ("h.0.ln_1.bias", "F16", [2], b"\x00\x3c\x00\xc0"),
     ("lm_head.weight", "BF16", [1, 2], b"\x80\x3f\x00\x40"), ("empty", "I64", [0, 4], b"")],
    {"format": "pt"}, pad=3))
put("fuzz_safetensors", "empty-header", safetensors([]))
put("fuzz_safetensors", "all-dtypes", safetensors(
    [(d, d, [1], b"\x01" * n) for d, n in [("BOOL", 1), ("U8", 1), ("I8", 1), ("F8_E4M3", 1), ("F8_E5M2", 1),
                                            ("I16", 2), ("U16", 2), ("I32", 4), ("U32", 4), ("U64", 8), ("F64", 8)]]))
overlap = json.dumps({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                      "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}).encode()
put("fuzz_safetensors", "overlap", struct.pack("<Q", len(overlap)) + overlap + b"\0" * 8)
with open(os.path.join(DATA, "models", "tiny-gpt2", "model.safetensors"), "rb") as f:
    real = f.read(4096)  # the real header (GPT-2's names and shapes), its data section cut short
put("fuzz_safetensors", "tiny-gpt2-truncated", real)
put("fuzz_safetensors", "short", b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":")

# The round trip's input is a description, not a file (fuzz_safetensors_roundtrip.cpp): bytes
# for the tensor count, then per tensor name length and bytes, dtype, rank, dims, data.
put("fuzz_safetensors_roundtrip", "three", bytes([3, 3]) + b"wte" + bytes([11, 2, 2, 3]) + bytes(range(24)) +
    bytes([5]) + b'a"b\\c' + bytes([7, 1, 4]) + bytes(range(8)) + bytes([2, 0x81, 0x92]) + bytes([8, 0]) + b"\x3f\x80" +
    bytes([1, 3]) + b"fmt" + bytes([2]) + b"pt" + bytes([2, 1, 3, 0, 1]))
put("fuzz_safetensors_roundtrip", "zeros", bytes([2, 1]) + b"x" + bytes([12, 3, 0, 2, 5]) + bytes([1]) + b"y" + bytes([0, 0]))
put("fuzz_safetensors_roundtrip", "many", bytes(range(256)))

# ---- config.json and the sharded index ----------------------------------------------------------
with open(os.path.join(DATA, "models", "tiny-gpt2", "config.json")) as f:
    put("fuzz_config", "tiny-gpt2-config.json", f.read())
put("fuzz_config", "minimal-config.json", '{"n_embd": 768, "n_head": 12, "n_layer": 12}')
put("fuzz_config", "old-config.json", '{"n_ctx": 1024, "n_inner": 3072, "layer_norm_epsilon": 1e-5, '
    '"activation_function": "gelu_pytorch_tanh", "scale_attn_by_inverse_layer_idx": false, '
    '"add_cross_attention": false, "vocab_size": 50257}')
put("fuzz_config", "bad-config.json", '{"n_embd": 10, "n_head": 3, "model_type": "llama", "layer_norm_epsilon": -1}')
with open(os.path.join(DATA, "models", "sharded", "model.safetensors.index.json")) as f:
    index = json.load(f)
index["weight_map"] = dict(list(index["weight_map"].items())[:6])
put("fuzz_config", "index.json", json.dumps(index, indent=2))
put("fuzz_config", "bad-index.json", '{"weight_map": {"wte.weight": "../model.safetensors", "x": 3}}')


# ---- tokenizer files -----------------------------------------------------------------------------
bu = bytes_to_unicode()
spell = lambda bs: "".join(bu[b] for b in bs)
merges = [(b" ", b"t"), (b"h", b"e"), (b" t", b"he"), (b"o", b"r"), (b" ", b"w"), (b" w", b"or"), (b"l", b"d"),
          (b" wor", b"ld"), (b"\n", b"\n")]
vocab = {spell([b]): i for i, b in enumerate(bu)}
for a, b in merges:
    vocab[spell(a + b)] = len(vocab)
vocab["<|endoftext|>"] = len(vocab)
merges_txt = "#version: 0.2\n" + "".join(spell(a) + " " + spell(b) + "\n" for a, b in merges)
vocab_json = json.dumps(vocab, ensure_ascii=False, separators=(",", ":"))
put("fuzz_tokenizer_files", "vocab-merges", b"\x00" + vocab_json.encode() + b"\x00" + merges_txt.encode())
tj = {"model": {"type": "BPE", "vocab": {k: v for k, v in vocab.items() if k != "<|endoftext|>"},
                "merges": [spell(a) + " " + spell(b) for a, b in merges]},
      "added_tokens": [{"id": vocab["<|endoftext|>"], "content": "<|endoftext|>", "special": True}]}
put("fuzz_tokenizer_files", "tokenizer-json", b"\x01" + json.dumps(tj, ensure_ascii=False).encode())
tj["model"]["merges"] = [[spell(a), spell(b)] for a, b in merges]
put("fuzz_tokenizer_files", "tokenizer-json-pairs", b"\x01" + json.dumps(tj, ensure_ascii=False).encode())
put("fuzz_tokenizer_files", "bad-merge", b"\x00" + vocab_json.encode() + b"\x00" + b"x y z\n")

# ---- tokenizer encode/decode ------------------------------------------------------------------------
texts = {
    "english": "The quick brown fox jumps over the lazy dog. It wasn't the first time; he'd seen it.\n\n",
    "unicode": "caf\u00e9 na\u00efve \u65e5\u672c\u8a9e \U0001F600\U0001F44D\U0001F3FD \u0645\u0631\u062d\u0628\u0627 \u0301x",
    "special": "a<|endoftext|>b <|endoftext|><|endoftext|> <|endoftext",
    "spaces": "   x  \t\t y\r\n\r\n   \n 12345 3.14 1,000,000 's 't 're 've 'm 'll 'd 'S",
    "code": "def f(x):\n    return x**2  # \u00b2\n\tif (a && b) { c[0] = '\\0'; }\n",
}
for name, t in texts.items():
    put("fuzz_tokenizer", name, t)
put("fuzz_tokenizer", "invalid-utf8", b"\xff\xfe abc \xc3 \xe2\x82 \xf0\x9f\x98 \xed\xa0\x80 \xc0\xaf \x80\x80 end\xe2")
put("fuzz_tokenizer", "nul-bom", b"\xef\xbb\xbfhello\x00world\x00")

# ---- GGUF -------------------------------------------------------------------------------------------
def gguf_str(s):
    s = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(s)) + s


def gguf(kvs, tensors, version=3, alignment=32):
    """kvs: [(key, type, payload bytes)]; tensors: [(name, ne, ggml type, data)]."""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    for key, t, payload in kvs:
        out += gguf_str(key) + struct.pack("<I", t) + payload
    offsets, off = [], 0
    for name, ne, t, data in tensors:
        offsets.append(off)
        off = (off + len(data) + alignment - 1) // alignment * alignment
    for (name, ne, t, data), o in zip(tensors, offsets):
        out += gguf_str(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
        out += struct.pack("<IQ", t, o)
    out += b"\0" * (-len(out) % alignment)
    base = len(out)
    for (name, ne, t, data), o in zip(tensors, offsets):
        out += b"\0" * (base + o - len(out)) + data
    return out


u32 = lambda k, v: (k, 4, struct.pack("<I", v))
f32kv = lambda k, v: (k, 6, struct.pack("<f", v))
strkv = lambda k, v: (k, 8, gguf_str(v))
strs = lambda k, vs: (k, 9, struct.pack("<IQ", 8, len(vs)) + b"".join(gguf_str(v) for v in vs))


def gpt2_gguf(ggml_type, elem, tokens=None):
    C, V, T = 4, 8, 4
    kvs = [strkv("general.architecture", "gpt2"), u32("gpt2.block_count", 1), u32("gpt2.context_length", T),
           u32("gpt2.embedding_length", C), u32("gpt2.feed_forward_length", 4 * C), u32("gpt2.attention.head_count", 1),
           f32kv("gpt2.attention.layer_norm_epsilon", 1e-5)]
    if tokens:
        kvs += [strkv("tokenizer.ggml.model", "gpt2"), strs("tokenizer.ggml.tokens", tokens),
                strs("tokenizer.ggml.merges", ["a b"])]
    shapes = [("token_embd.weight", [C, V]), ("position_embd.weight", [C, T]), ("blk.0.attn_norm.weight", [C]),
              ("blk.0.attn_norm.bias", [C]), ("blk.0.attn_qkv.weight", [C, 3 * C]), ("blk.0.attn_qkv.bias", [3 * C]),
              ("blk.0.attn_output.weight", [C, C]), ("blk.0.attn_output.bias", [C]), ("blk.0.ffn_norm.weight", [C]),
              ("blk.0.ffn_norm.bias", [C]), ("blk.0.ffn_up.weight", [C, 4 * C]), ("blk.0.ffn_up.bias", [4 * C]),
              ("blk.0.ffn_down.weight", [4 * C, C]), ("blk.0.ffn_down.bias", [C]), ("output_norm.weight", [C]),
              ("output_norm.bias", [C])]
    tensors = []
    for name, ne in shapes:
        n = 1
        for d in ne:
            n *= d
        t = ggml_type if len(ne) == 2 else 0  # vectors stay F32, as llama.cpp writes them
        tensors.append((name, ne, t, bytes((i * 7) & 0x3B for i in range(n * (elem if t else 4)))))
    return gguf(kvs, tensors)


put("fuzz_gguf", "gpt2-f32", gpt2_gguf(0, 4, tokens=["a", "b", "ab", "<|endoftext|>"]))
put("fuzz_gguf", "gpt2-f16", gpt2_gguf(1, 2))
put("fuzz_gguf", "value-types", gguf(
    [("u8", 0, b"\x01"), ("i8", 1, b"\xff"), ("u16", 2, b"\x01\x00"), ("i16", 3, b"\xff\xff"), u32("u32", 7),
     ("i32", 5, b"\xff\xff\xff\xff"), f32kv("f32", 0.5), ("bool", 7, b"\x01"), strkv("str", "x"),
     ("u64", 10, struct.pack("<Q", 9)), ("i64", 11, struct.pack("<q", -9)), ("f64", 12, struct.pack("<d", 0.25)),
     ("arr.u32", 9, struct.pack("<IQ", 4, 2) + struct.pack("<II", 1, 2)), strs("arr.str", ["p", "q"]),
     u32("general.alignment", 64)],
    [("q8", [32, 1], 8, b"\x00\x3c" + bytes(32)), ("q4_0", [32], 2, b"\x00\x3c" + bytes(16))], alignment=64))
put("fuzz_gguf", "v2-empty", gguf([], [], version=2))

# ---- llm.c ------------------------------------------------------------------------------------------
def llmc(version, elem):
    L, C, NH, V, Vp, T = 1, 4, 1, 8, 8, 4
    header = struct.pack("<8i", 20240326, version, T, V, L, NH, C, Vp) + b"\0" * (1024 - 32)
    n = Vp * C + T * C + 2 * L * C + 3 * L * C * C + 3 * L * C + L * C * C + 3 * L * C + 4 * L * C * C + 4 * L * C + \
        4 * L * C * C + L * C + 2 * C
    return header + bytes((i * 5) & 0x3F for i in range(n * elem))


put("fuzz_llmc", "fp32", llmc(3, 4))
put("fuzz_llmc", "bf16", llmc(5, 2))
put("fuzz_llmc", "header-only", llmc(3, 4)[:1024])

# ---- the server's completion requests ---------------------------------------------------------------
bodies = {
    "plain": {"prompt": "Hello, my name is", "max_tokens": 8},
    "full": {"model": "gpt2", "prompt": ["a", "b"], "max_tokens": 4, "temperature": 0.7, "top_p": 0.9, "top_k": 40,
             "min_p": 0.05, "presence_penalty": 0.5, "frequency_penalty": -0.5, "repetition_penalty": 1.1,
             "repeat_last_n": 64, "n": 2, "stop": ["\n", "."], "seed": -1, "stream": True,
             "stream_options": {"include_usage": True}, "logprobs": 5, "echo": True, "ignore_eos": False,
             "user": "u", "best_of": 2, "suffix": "", "logit_bias": {}},
    "ids": {"prompt": [[15496, 995], [50256]], "max_tokens": 0, "echo": True, "stop": None, "seed": 18446744073709551615},
    "bad": {"prompt": [1, "x"], "max_tokens": 2000, "n": 0, "foo": 1},
}
for name, b in bodies.items():
    put("fuzz_completion_request", name, json.dumps(b))
put("fuzz_completion_request", "not-json", '{"prompt": "a", "max_tokens": 1e3,')
put("fuzz_completion_request", "deep", "[" * 40 + "]" * 40)

# ---- the command line (argv split at NUL bytes) -----------------------------------------------------
argvs = {
    "generate": ["generate", "-m", "random:gpt2", "-p", "Hello", "-n", "16", "--temperature", "0.8", "--top-k", "40",
                 "--top-p", "0.9", "--min-p", "0.05", "--repeat-penalty", "1.1", "--seed", "42", "--stop", "\n",
                 "--num-samples", "2", "--json", "--device", "cpu", "--dtype", "int8", "--threads", "2", "-v"],
    "score": ["score", "-m", "random:gpt2", "-f", "a.txt", "-f", "b.txt", "--top", "10", "--bos", "--json",
              "--color=always", "--html", "x.html"],
    "bench": ["bench", "-m", "random:gpt2", "--prompt-tokens", "128", "--gen-tokens", "128", "--batch", "1,8",
              "--reps", "5", "--json", "--mixed", "--requests", "32", "--mixed-prompt", "16:512", "--parallel", "1,8"],
    "tokenize": ["tokenize", "--decode", "15496 995", "--json"],
    "tokenize-count": ["tokenize", "-p", "-", "--count", "--no-special"],
    "attention": ["attention", "-m", "random:gpt2", "-p", "x", "--layer", "0,1", "--head", "11", "--summary"],
    "lens": ["lens", "-m", "random:gpt2", "-p", "x", "--top", "5"],
    "drift": ["drift", "-m", "random:gpt2", "--word", "mole", "-p", "a mole", "-p", "the mole"],
    "serve": ["serve", "-m", "random:gpt2", "--port", "8080", "--parallel", "4"],
    "help": ["generate", "--help"],
    "bad": ["score", "--top", "-1", "--nope"],
}
for name, argv in argvs.items():
    put("fuzz_cli", name, "\0".join(argv))
