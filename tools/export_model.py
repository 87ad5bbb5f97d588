#!/usr/bin/python3
"""Writes a Hugging Face GPT-2 directory (config.json + model.safetensors, F32/F16/BF16) as the
files users of other tools hold, so that `gpt2 -m FILE` can be checked against the original:

  GGUF (version 3) as llama.cpp's convert_hf_to_gguf.py + llama-quantize write it:
    general.architecture "gpt2", the gpt2.* hyper-parameters, tokenizer.ggml.{model, tokens,
    token_type, merges, bos/eos_token_id} (GPT-2's: from the directory's vocab.json + merges.txt
    or tokenizer.json, else the engine's built-in src/tokenizer/data; none when the model's
    vocabulary is not 50257 and the directory has no tokenizer files), tensors token_embd,
    position_embd, blk.N.{attn_norm, attn_qkv, attn_output, ffn_norm, ffn_up, ffn_down}
    (matrices transposed from Conv1D [in, out] to [out][in], i.e. ne = [in, out]), output_norm;
    no output.weight (tied), unless --untied-output (older converters wrote a copy).
    --type: f32 | f16 | bf16 | q8_0 | q4_0 | q4_1 | q5_0 | q5_1 | q4_k | q5_k | q6_k for the
    block matrices; --output-type for the head (token_embd when tied, output.weight otherwise;
    default: the same for f32/f16/bf16, q6_k for the quantized types, as llama-quantize does);
    norms and biases stay F32, position_embd F32 (f16/bf16 with those types); a K-quant on a
    row that is not a multiple of 256 falls back to q8_0 (llama-quantize's fallback).
    The quantizers of Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1 are ggml's reference ones (quantize_row_*_ref,
    the fp32 operations in the same order), so their blocks are those llama-quantize writes
    without an importance matrix. Q4_K, Q5_K and Q6_K use a simpler scale choice than
    llama-quantize's search: valid blocks, slightly less accurate ones.

  ggml's examples/gpt-2 model file (--ggml-example, the format its convert-h5-to-ggml.py writes
    and gpt-2-quantize reads): magic 0x67676d6c, hparams n_vocab n_ctx n_embd n_head n_layer
    ftype (0: f32), the vocabulary as raw bytes, then each tensor as n_dims, name length, type,
    ne[], name, data (matrices [out][in], ne = [in, out]). For side-by-side figures with ggml's
    own GPT-2 program (quantize it with gpt-2-quantize IN OUT q4_0).

  llm.c checkpoints (train_gpt2.py write_model): header magic 20240326, version 3 (fp32) or 5
    (bf16), vocabulary padded to a multiple of 128 with zero rows, tensors in llm.c's order.

DIR may be random:gpt2 (random:gpt2-medium, ...): seeded random weights with the real shapes, to
benchmark side by side with llama.cpp on files of GPT-2's size without a download.

Usage (needs numpy only):
  /usr/bin/python3 tools/export_model.py DIR --gguf OUT.gguf [--type q4_0] [--output-type q6_k]
  /usr/bin/python3 tools/export_model.py DIR --llmc OUT.bin [--llmc-dtype bf16]
  /usr/bin/python3 tools/export_model.py DIR --ggml-example OUT.bin
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt2_bytes import bytes_to_unicode  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

# ---- safetensors ------------------------------------------------------------------------


def bf16_to_f32(u16):
    return (u16.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16(x):
    """Round to nearest even, as the engine and torch do (NaN kept quiet)."""
    b = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    nan = (b & 0x7FFFFFFF) > 0x7F800000
    r = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(nan, ((b >> 16) | 0x40).astype(np.uint16), r)


def read_safetensors(path):
    """name -> (dtype string, numpy array in the file's dtype: float32, float16, or uint16 for BF16)."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        b, e = t["data_offsets"]
        raw = data[base + b:base + e]
        dt = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}[t["dtype"]]
        out[name] = (t["dtype"], np.frombuffer(raw, dtype=dt).reshape(t["shape"]))
    return out


PRESETS = {"gpt2": (12, 768, 12), "gpt2-medium": (24, 1024, 16), "gpt2-large": (36, 1280, 20),
           "gpt2-xl": (48, 1600, 25), "distilgpt2": (6, 768, 12)}


def random_model(name):
    """random:NAME: seeded N(0, 0.02) matrices, unit gains, zero biases with the real shapes (for
    benchmarks side by side with other tools; not the engine's own random: values)."""
    L, C, H = PRESETS[name]
    V, T = 50257, 1024
    rng = np.random.default_rng(1234)
    n = lambda *shape: ("F32", (rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)))
    t = {"wte.weight": n(V, C), "wpe.weight": n(T, C), "ln_f.weight": ("F32", np.ones(C, np.float32)),
         "ln_f.bias": ("F32", np.zeros(C, np.float32))}
    for l in range(L):
        p = "h.%d." % l
        for g in ("ln_1", "ln_2"):
            t[p + g + ".weight"] = ("F32", np.ones(C, np.float32))
            t[p + g + ".bias"] = ("F32", np.zeros(C, np.float32))
        for m, shape in (("attn.c_attn", (C, 3 * C)), ("attn.c_proj", (C, C)), ("mlp.c_fc", (C, 4 * C)),
                         ("mlp.c_proj", (4 * C, C))):
            t[p + m + ".weight"] = n(*shape)
            t[p + m + ".bias"] = ("F32", np.zeros(shape[1], np.float32))
    config = {"vocab_size": V, "n_positions": T, "n_embd": C, "n_head": H, "n_layer": L, "layer_norm_epsilon": 1e-5}
    return config, t


def load_hf(directory):
    if directory.startswith("random:"):
        return random_model(directory[len("random:"):])
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    st = os.path.join(directory, "model.safetensors")
    tensors = {}
    if os.path.exists(st):
        tensors = read_safetensors(st)
    else:
        with open(os.path.join(directory, "model.safetensors.index.json")) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        for s in shards:
            tensors.update(read_safetensors(os.path.join(directory, s)))
    clean = {}
    for name, v in tensors.items():
        if name.startswith("transformer."):
            name = name[len("transformer."):]
        if name.endswith(".attn.bias") or name.endswith(".attn.masked_bias"):
            if ".c_attn." not in name:
                continue
        clean[name] = v
    return config, clean


def as_f32(v):
    dtype, a = v
    if dtype == "BF16":
        return bf16_to_f32(a)
    return a.astype(np.float32)


# ---- ggml quantization (reference order of operations) ---------------------------------


def f16(x):
    return np.asarray(x, dtype=np.float32).astype(np.float16)


def c_round(v):
    """C roundf: halves away from zero."""
    t = np.trunc(v)
    return np.where(np.abs(v - t) >= 0.5, t + np.sign(v), t).astype(np.float32)


def trunc_i8(v):
    """(int8_t)(float) for values inside [-128, 127]: truncation toward zero."""
    return np.trunc(v).astype(np.int32)


def signed_max(x):
    """Per block (rows of x): the value of largest magnitude, the first one on ties (ggml's loop)."""
    idx = np.argmax(np.abs(x), axis=1)
    return x[np.arange(x.shape[0]), idx]


def inv(d):
    with np.errstate(divide="ignore"):
        return np.where(d != 0, np.float32(1.0) / np.where(d != 0, d, np.float32(1)), np.float32(0)).astype(np.float32)


def q8_0(x):
    x = x.reshape(-1, 32)
    amax = np.max(np.abs(x), axis=1)
    d = (amax / np.float32(127)).astype(np.float32)
    q = c_round(x * inv(d)[:, None]).astype(np.int8)
    return np.concatenate([f16(d).view(np.uint8).reshape(-1, 2), q.view(np.uint8)], axis=1).tobytes()


def q4_0(x):
    x = x.reshape(-1, 32)
    d = (signed_max(x) / np.float32(-8)).astype(np.float32)
    xi = np.minimum(15, trunc_i8(x * inv(d)[:, None] + np.float32(8.5)))
    qs = (xi[:, :16] | (xi[:, 16:] << 4)).astype(np.uint8)
    return np.concatenate([f16(d).view(np.uint8).reshape(-1, 2), qs], axis=1).tobytes()


def q4_1(x):
    x = x.reshape(-1, 32)
    mn, mx = np.min(x, axis=1), np.max(x, axis=1)
    d = ((mx - mn) / np.float32(15)).astype(np.float32)
    xi = np.minimum(15, trunc_i8((x - mn[:, None]) * inv(d)[:, None] + np.float32(0.5)))
    qs = (xi[:, :16] | (xi[:, 16:] << 4)).astype(np.uint8)
    return np.concatenate([f16(d).view(np.uint8).reshape(-1, 2), f16(mn).view(np.uint8).reshape(-1, 2), qs],
                          axis=1).tobytes()


def qh_bits(xi):
    """The fifth bits of 32 values as ggml's u32 qh: value j at bit j (j < 16) and j + 16 -> bit j + 16."""
    bits = ((xi & 0x10) >> 4).astype(np.uint64)
    qh = np.zeros(xi.shape[0], dtype=np.uint64)
    for j in range(32):
        qh |= bits[:, j] << np.uint64(j)
    return qh.astype(np.uint32)


def q5_0(x):
    x = x.reshape(-1, 32)
    d = (signed_max(x) / np.float32(-16)).astype(np.float32)
    xi = np.minimum(31, trunc_i8(x * inv(d)[:, None] + np.float32(16.5)))
    qs = ((xi[:, :16] & 0x0F) | ((xi[:, 16:] & 0x0F) << 4)).astype(np.uint8)
    return np.concatenate([f16(d).view(np.uint8).reshape(-1, 2), qh_bits(xi).view(np.uint8).reshape(-1, 4), qs],
                          axis=1).tobytes()


def q5_1(x):
    x = x.reshape(-1, 32)
    mn, mx = np.min(x, axis=1), np.max(x, axis=1)
    d = ((mx - mn) / np.float32(31)).astype(np.float32)
    xi = trunc_i8((x - mn[:, None]) * inv(d)[:, None] + np.float32(0.5))
    qs = ((xi[:, :16] & 0x0F) | ((xi[:, 16:] & 0x0F) << 4)).astype(np.uint8)
    return np.concatenate([f16(d).view(np.uint8).reshape(-1, 2), f16(mn).view(np.uint8).reshape(-1, 2),
                           qh_bits(xi).view(np.uint8).reshape(-1, 4), qs], axis=1).tobytes()


def nearest(v):
    return np.rint(v).astype(np.int32)


def k_scales_mins(x, levels):
    """Q4_K / Q5_K: 8 sub-blocks of 32 per 256; returns d, dmin (f16), 6-bit scales and mins."""
    sub = x.reshape(-1, 8, 32)
    mn = np.minimum(np.min(sub, axis=2), 0)
    mx = np.max(sub, axis=2)
    scale = (mx - mn) / np.float32(levels)
    mins = -mn
    d = f16(np.max(scale, axis=1) / np.float32(63)).astype(np.float32)
    dmin = f16(np.max(mins, axis=1) / np.float32(63)).astype(np.float32)
    ls = np.clip(nearest(scale * inv(d)[:, None]), 0, 63)
    lm = np.clip(nearest(mins * inv(dmin)[:, None]), 0, 63)
    packed = np.zeros((x.shape[0] // 256, 12), dtype=np.int32)
    for j in range(8):
        if j < 4:
            packed[:, j] = ls[:, j]
            packed[:, j + 4] = lm[:, j]
        else:
            packed[:, j + 4] = (ls[:, j] & 0xF) | ((lm[:, j] & 0xF) << 4)
            packed[:, j - 4] |= (ls[:, j] >> 4) << 6
            packed[:, j] |= (lm[:, j] >> 4) << 6
    sc = d[:, None] * ls.astype(np.float32)
    m = dmin[:, None] * lm.astype(np.float32)
    L = np.clip(nearest((sub + m[:, :, None]) * inv(sc.reshape(-1)).reshape(sc.shape)[:, :, None]), 0, levels)
    return d, dmin, packed.astype(np.uint8), L.reshape(-1, 256)


def q4_k(x):
    d, dmin, scales, L = k_scales_mins(x, 15)
    qs = np.zeros((L.shape[0], 128), dtype=np.int32)
    for j in range(0, 256, 64):
        qs[:, j // 2:j // 2 + 32] = L[:, j:j + 32] | (L[:, j + 32:j + 64] << 4)
    return np.concatenate([f16(d).view(np.uint8).reshape(-1, 2), f16(dmin).view(np.uint8).reshape(-1, 2), scales,
                           qs.astype(np.uint8)], axis=1).tobytes()


def q5_k(x):
    d, dmin, scales, L = k_scales_mins(x, 31)
    qh = np.zeros((L.shape[0], 32), dtype=np.int32)
    ql = np.zeros((L.shape[0], 128), dtype=np.int32)
    m1, m2 = 1, 2
    for n in range(0, 256, 64):
        l1 = L[:, n:n + 32].copy()
        l2 = L[:, n + 32:n + 64].copy()
        qh |= np.where(l1 > 15, m1, 0)
        qh |= np.where(l2 > 15, m2, 0)
        l1 = np.where(l1 > 15, l1 - 16, l1)
        l2 = np.where(l2 > 15, l2 - 16, l2)
        ql[:, n // 2:n // 2 + 32] = l1 | (l2 << 4)
        m1 <<= 2
        m2 <<= 2
    return np.concatenate([f16(d).view(np.uint8).reshape(-1, 2), f16(dmin).view(np.uint8).reshape(-1, 2), scales,
                           qh.astype(np.uint8), ql.astype(np.uint8)], axis=1).tobytes()


def q6_k(x):
    sub = x.reshape(-1, 16, 16)
    scale = signed_max(sub.reshape(-1, 16)).reshape(-1, 16) / np.float32(-32)
    max_scale = signed_max(scale)
    iscale = np.where(max_scale != 0, np.float32(-128) * inv(max_scale), np.float32(0)).astype(np.float32)
    d = f16(inv(iscale)).astype(np.float32)
    sc = np.minimum(127, nearest(iscale[:, None] * scale)).astype(np.int8)
    dsc = d[:, None] * sc.astype(np.float32)
    L = np.clip(nearest(sub * inv(dsc.reshape(-1)).reshape(dsc.shape)[:, :, None]), -32, 31) + 32
    L = L.reshape(-1, 256)
    ql = np.zeros((L.shape[0], 128), dtype=np.int32)
    qh = np.zeros((L.shape[0], 64), dtype=np.int32)
    for j in range(0, 256, 128):
        o_l, o_h = j // 2, j // 4
        a, b, c, e = L[:, j:j + 32], L[:, j + 32:j + 64], L[:, j + 64:j + 96], L[:, j + 96:j + 128]
        ql[:, o_l:o_l + 32] = (a & 0xF) | ((c & 0xF) << 4)
        ql[:, o_l + 32:o_l + 64] = (b & 0xF) | ((e & 0xF) << 4)
        qh[:, o_h:o_h + 32] = (a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6)
    return np.concatenate([ql.astype(np.uint8), qh.astype(np.uint8), sc.view(np.uint8),
                           f16(d).view(np.uint8).reshape(-1, 2)], axis=1).tobytes()


# ggml type id, block size, encoder (float32 array of whole rows -> bytes)
TYPES = {
    "f32": (0, 1, lambda x: x.astype("<f4").tobytes()),
    "f16": (1, 1, lambda x: x.astype("<f2").tobytes()),
    "bf16": (30, 1, lambda x: f32_to_bf16(x).astype("<u2").tobytes()),
    "q4_0": (2, 32, q4_0),
    "q4_1": (3, 32, q4_1),
    "q5_0": (6, 32, q5_0),
    "q5_1": (7, 32, q5_1),
    "q8_0": (8, 32, q8_0),
    "q4_k": (12, 256, q4_k),
    "q5_k": (13, 256, q5_k),
    "q6_k": (14, 256, q6_k),
}
FILE_TYPE = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q8_0": 7, "q5_0": 8, "q5_1": 9, "q4_k": 15,
             "q5_k": 17, "q6_k": 18, "bf16": 32}

# ---- tokenizer ------------------------------------------------------------------------------


def tokenizer_lists(directory, n_vocab):
    if directory.startswith("random:"):
        directory = os.path.join(REPO, "src", "tokenizer", "data", "none")
    def from_vocab(vocab_path, merges_path):
        with open(vocab_path, encoding="utf-8") as f:
            vocab = json.load(f)
        tokens = [None] * len(vocab)
        for t, i in vocab.items():
            tokens[i] = t
        with open(merges_path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        merges = [l for i, l in enumerate(lines) if l and not (i == 0 and l.startswith("#version"))]
        return tokens, merges

    for v, m in (("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe")):
        if os.path.exists(os.path.join(directory, v)):
            return from_vocab(os.path.join(directory, v), os.path.join(directory, m))
    tj = os.path.join(directory, "tokenizer.json")
    if os.path.exists(tj):
        with open(tj, encoding="utf-8") as f:
            t = json.load(f)
        vocab = dict(t["model"]["vocab"])
        for a in t.get("added_tokens", []):
            vocab.setdefault(a["content"], a["id"])
        tokens = [None] * len(vocab)
        for s, i in vocab.items():
            tokens[i] = s
        merges = [m if isinstance(m, str) else " ".join(m) for m in t["model"]["merges"]]
        return tokens, merges
    if n_vocab == 50257:
        data = os.path.join(REPO, "src", "tokenizer", "data")
        return from_vocab(os.path.join(data, "encoder.json"), os.path.join(data, "vocab.bpe"))
    return None, None


# ---- GGUF writer ------------------------------------------------------------------------------


class Gguf:
    ALIGN = 32

    def __init__(self):
        self.kv = []
        self.tensors = []  # (name, ne list, type id, bytes)

    def add(self, key, vtype, value):
        self.kv.append((key, vtype, value))

    @staticmethod
    def string(s):
        b = s.encode("utf-8")
        return struct.pack("<Q", len(b)) + b

    def value(self, vtype, value):
        scalar = {"u32": ("<I", 4), "i32": ("<i", 5), "f32": ("<f", 6), "u64": ("<Q", 10), "bool": ("<?", 7)}
        if vtype in scalar:
            fmt, tid = scalar[vtype]
            return struct.pack("<I", tid) + struct.pack(fmt, value)
        if vtype == "str":
            return struct.pack("<I", 8) + self.string(value)
        if vtype == "str[]":
            return struct.pack("<IIQ", 9, 8, len(value)) + b"".join(self.string(s) for s in value)
        if vtype == "i32[]":
            return struct.pack("<IIQ", 9, 5, len(value)) + struct.pack("<%di" % len(value), *value)
        raise ValueError(vtype)

    def write(self, path):
        out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(self.tensors), len(self.kv)))
        for key, vtype, value in self.kv:
            out += self.string(key) + self.value(vtype, value)
        offset = 0
        offsets = []
        for name, ne, tid, data in self.tensors:
            offsets.append(offset)
            out += self.string(name) + struct.pack("<I", len(ne)) + struct.pack("<%dQ" % len(ne), *ne)
            out += struct.pack("<IQ", tid, offset)
            offset += (len(data) + self.ALIGN - 1) // self.ALIGN * self.ALIGN
        out += b"\0" * ((-len(out)) % self.ALIGN)
        for (name, ne, tid, data), off in zip(self.tensors, offsets):
            out += data + b"\0" * ((-len(data)) % self.ALIGN)
        with open(path, "wb") as f:
            f.write(out)


def write_gguf(directory, path, qtype, output_type, untied_output, name):
    config, t = load_hf(directory)
    C, L, V = config["n_embd"], config["n_layer"], config["vocab_size"]
    n_ctx = config.get("n_positions", config.get("n_ctx", 1024))
    floats = qtype in ("f32", "f16", "bf16")
    if output_type is None:
        output_type = qtype if floats else "q6_k"
    g = Gguf()
    g.add("general.architecture", "str", "gpt2")
    g.add("general.name", "str", name)
    g.add("gpt2.block_count", "u32", L)
    g.add("gpt2.context_length", "u32", n_ctx)
    g.add("gpt2.embedding_length", "u32", C)
    g.add("gpt2.feed_forward_length", "u32", 4 * C)
    g.add("gpt2.attention.head_count", "u32", config["n_head"])
    g.add("gpt2.attention.layer_norm_epsilon", "f32", config.get("layer_norm_epsilon", 1e-5))
    g.add("general.file_type", "u32", FILE_TYPE[qtype])
    g.add("general.quantization_version", "u32", 2)
    tokens, merges = tokenizer_lists(directory, V)
    if tokens is not None:
        g.add("tokenizer.ggml.model", "str", "gpt2")
        g.add("tokenizer.ggml.pre", "str", "gpt-2")
        g.add("tokenizer.ggml.tokens", "str[]", tokens)
        g.add("tokenizer.ggml.token_type", "i32[]", [3 if s == "<|endoftext|>" else 1 for s in tokens])
        g.add("tokenizer.ggml.merges", "str[]", merges)
        eot = tokens.index("<|endoftext|>")
        g.add("tokenizer.ggml.bos_token_id", "u32", eot)
        g.add("tokenizer.ggml.eos_token_id", "u32", eot)

    def put(gname, array, typ):
        array = np.ascontiguousarray(array, dtype=np.float32)
        tid, block, enc = TYPES[typ]
        if array.shape[-1] % block != 0:
            typ = "q8_0" if array.shape[-1] % 32 == 0 else "f16"  # llama-quantize's fallback
            tid, block, enc = TYPES[typ]
        g.tensors.append((gname, list(reversed(array.shape)), tid, enc(array.reshape(-1))))

    float_2d = qtype if floats else "f32"
    wte = as_f32(t["wte.weight"])
    head = as_f32(t["lm_head.weight"]) if "lm_head.weight" in t else wte
    untied = untied_output or not np.array_equal(head, wte)
    put("token_embd.weight", wte, qtype if untied else output_type)
    put("position_embd.weight", as_f32(t["wpe.weight"]), float_2d)
    for l in range(L):
        p = "h.%d." % l
        conv = lambda n: as_f32(t[p + n]).T  # Conv1D [in, out] -> [out, in]
        vec = lambda n: as_f32(t[p + n])
        put("blk.%d.attn_norm.weight" % l, vec("ln_1.weight"), "f32")
        put("blk.%d.attn_norm.bias" % l, vec("ln_1.bias"), "f32")
        put("blk.%d.attn_qkv.weight" % l, conv("attn.c_attn.weight"), qtype)
        put("blk.%d.attn_qkv.bias" % l, vec("attn.c_attn.bias"), "f32")
        put("blk.%d.attn_output.weight" % l, conv("attn.c_proj.weight"), qtype)
        put("blk.%d.attn_output.bias" % l, vec("attn.c_proj.bias"), "f32")
        put("blk.%d.ffn_norm.weight" % l, vec("ln_2.weight"), "f32")
        put("blk.%d.ffn_norm.bias" % l, vec("ln_2.bias"), "f32")
        put("blk.%d.ffn_up.weight" % l, conv("mlp.c_fc.weight"), qtype)
        put("blk.%d.ffn_up.bias" % l, vec("mlp.c_fc.bias"), "f32")
        put("blk.%d.ffn_down.weight" % l, conv("mlp.c_proj.weight"), qtype)
        put("blk.%d.ffn_down.bias" % l, vec("mlp.c_proj.bias"), "f32")
    put("output_norm.weight", as_f32(t["ln_f.weight"]), "f32")
    put("output_norm.bias", as_f32(t["ln_f.bias"]), "f32")
    if untied:
        put("output.weight", head, output_type)
    g.write(path)


# ---- llm.c ------------------------------------------------------------------------------------


def write_llmc(directory, path, dtype):
    config, t = load_hf(directory)
    C, L, V, H = config["n_embd"], config["n_layer"], config["vocab_size"], config["n_head"]
    T = config.get("n_positions", config.get("n_ctx", 1024))
    Vp = (V + 127) // 128 * 128
    if "lm_head.weight" in t and not np.array_equal(as_f32(t["lm_head.weight"]), as_f32(t["wte.weight"])):
        sys.exit("error: llm.c checkpoints tie the head to wte; this model has its own lm_head.weight")
    header = np.zeros(256, dtype="<i4")
    header[:8] = [20240326, 3 if dtype == "fp32" else 5, T, V, L, H, C, Vp]
    wte = np.zeros((Vp, C), dtype=np.float32)
    wte[:V] = as_f32(t["wte.weight"])
    stack = lambda n, conv=False: np.stack([as_f32(t["h.%d.%s" % (l, n)]).T if conv else as_f32(t["h.%d.%s" % (l, n)])
                                            for l in range(L)])
    params = [wte, as_f32(t["wpe.weight"]), stack("ln_1.weight"), stack("ln_1.bias"),
              stack("attn.c_attn.weight", True), stack("attn.c_attn.bias"), stack("attn.c_proj.weight", True),
              stack("attn.c_proj.bias"), stack("ln_2.weight"), stack("ln_2.bias"), stack("mlp.c_fc.weight", True),
              stack("mlp.c_fc.bias"), stack("mlp.c_proj.weight", True), stack("mlp.c_proj.bias"),
              as_f32(t["ln_f.weight"]), as_f32(t["ln_f.bias"])]
    flat = np.concatenate([np.ascontiguousarray(p, dtype=np.float32).reshape(-1) for p in params])
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(flat.astype("<f4").tobytes() if dtype == "fp32" else f32_to_bf16(flat).astype("<u2").tobytes())


def write_ggml_example(directory, path):
    config, t = load_hf(directory)
    C, L, V, H = config["n_embd"], config["n_layer"], config["vocab_size"], config["n_head"]
    T = config.get("n_positions", config.get("n_ctx", 1024))
    tokens, _ = tokenizer_lists(directory, V)
    if tokens is None or len(tokens) != V:
        sys.exit("error: --ggml-example needs GPT-2's vocabulary of %d tokens" % V)
    byte_of = {c: b for b, c in bytes_to_unicode().items()}
    with open(path, "wb") as f:
        f.write(struct.pack("<I6i", 0x67676D6C, V, T, C, H, L, 0))
        f.write(struct.pack("<i", V))
        for tok in tokens:
            raw = bytes(byte_of[c] for c in tok)
            f.write(struct.pack("<i", len(raw)) + raw)

        def tensor(name, data):
            data = np.ascontiguousarray(data, dtype="<f4")
            name_b = name.encode()
            f.write(struct.pack("<iii", data.ndim, len(name_b), 0))
            f.write(struct.pack("<%di" % data.ndim, *reversed(data.shape)))
            f.write(name_b + data.tobytes())

        tensor("model/ln_f/g", as_f32(t["ln_f.weight"]))
        tensor("model/ln_f/b", as_f32(t["ln_f.bias"]))
        tensor("model/wte", as_f32(t["wte.weight"]))
        tensor("model/wpe", as_f32(t["wpe.weight"]))
        for l in range(L):
            p, q = "h.%d." % l, "model/h%d/" % l
            for hf, gg in (("ln_1.weight", "ln_1/g"), ("ln_1.bias", "ln_1/b"), ("ln_2.weight", "ln_2/g"),
                           ("ln_2.bias", "ln_2/b"), ("attn.c_attn.bias", "attn/c_attn/b"),
                           ("attn.c_proj.bias", "attn/c_proj/b"), ("mlp.c_fc.bias", "mlp/c_fc/b"),
                           ("mlp.c_proj.bias", "mlp/c_proj/b")):
                tensor(q + gg, as_f32(t[p + hf]))
            for hf, gg in (("attn.c_attn.weight", "attn/c_attn/w"), ("attn.c_proj.weight", "attn/c_proj/w"),
                           ("mlp.c_fc.weight", "mlp/c_fc/w"), ("mlp.c_proj.weight", "mlp/c_proj/w")):
                tensor(q + gg, as_f32(t[p + hf]).T)  # Conv1D [in, out] -> [out][in]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("directory", help="a Hugging Face GPT-2 directory (config.json + model.safetensors), or random:gpt2")
    ap.add_argument("--gguf", help="write a GGUF file here")
    ap.add_argument("--type", default="f32", choices=sorted(TYPES), help="GGUF type of the block matrices")
    ap.add_argument("--output-type", choices=sorted(TYPES), help="GGUF type of the head (default: see above)")
    ap.add_argument("--untied-output", action="store_true", help="write output.weight even when tied")
    ap.add_argument("--name", default="gpt2", help="general.name")
    ap.add_argument("--llmc", help="write an llm.c checkpoint here")
    ap.add_argument("--llmc-dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--ggml-example", help="write a model file of ggml's examples/gpt-2 here (f32)")
    a = ap.parse_args()
    if not a.gguf and not a.llmc and not a.ggml_example:
        ap.error("give --gguf, --llmc and/or --ggml-example")
    if a.gguf:
        write_gguf(a.directory, a.gguf, a.type, a.output_type, a.untied_output, a.name)
    if a.llmc:
        write_llmc(a.directory, a.llmc, a.llmc_dtype)
    if a.ggml_example:
        write_ggml_example(a.directory, a.ggml_example)


if __name__ == "__main__":
    main()
