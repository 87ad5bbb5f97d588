#!/usr/bin/python3
"""Writes tests/data/formats/: the test models of tests/data/models/ as GGUF files and llm.c
checkpoints, by tools/export_model.py, for the loader tests (tests/model/test_formats.cpp):

  f32.gguf, f16.gguf, bf16.gguf   models/f32, f16, bf16 as GGUF F32 / F16 / BF16 (no tokenizer:
                                  their vocabulary of 500 is not GPT-2's)
  f32.bin, bf16.bin               models/f32 as llm.c version 3, models/bf16 as version 5
  w64/                            a model 64 wide (n_embd 64, n_head 4, n_layer 2, vocab 300,
                                  n_positions 32; seeded numpy weights), F32 safetensors: rows
                                  of 64 hold whole 32-value blocks, which the n_embd 48 models
                                  cannot
  w64-q4_0.gguf                   w64 with every matrix and the head in Q4_0 (ggml's reference
                                  quantizer)
  w64-q8_0.gguf                   w64 in Q8_0, the head in Q8_0 (Q6_K needs rows of 256)
  w64-q5_0.gguf, w64-q4_1.gguf, w64-q5_1.gguf   the other 32-value types

Deterministic: the files come out byte-identical. Run with /usr/bin/python3 (numpy only):
    /usr/bin/python3 tools/make_format_fixtures.py
"""
import json
import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import export_model as ex  # noqa: E402

DATA = os.path.abspath(os.path.join(HERE, "..", "tests", "data"))
OUT = os.path.join(DATA, "formats")


def write_safetensors(path, tensors):
    header, data = {}, bytearray()
    for name, a in tensors.items():
        a = np.ascontiguousarray(a, dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [len(data), len(data) + a.nbytes]}
        data += a.tobytes()
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((-len(text)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + bytes(data))


def make_w64(directory):
    dims = {"vocab_size": 300, "n_positions": 32, "n_embd": 64, "n_head": 4, "n_layer": 2}
    os.makedirs(directory, exist_ok=True)
    config = {"activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "layer_norm_epsilon": 1e-05,
              "model_type": "gpt2", "n_ctx": dims["n_positions"], **dims}
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    rng = np.random.default_rng(64)
    C, V, T = dims["n_embd"], dims["vocab_size"], dims["n_positions"]
    n = lambda *shape, sd=0.2: (rng.standard_normal(shape) * sd).astype(np.float32)
    t = {"wte.weight": n(V, C, sd=0.5), "wpe.weight": n(T, C, sd=0.1)}
    for l in range(dims["n_layer"]):
        p = "h.%d." % l
        t[p + "ln_1.weight"] = 1 + n(C, sd=0.1)
        t[p + "ln_1.bias"] = n(C, sd=0.05)
        t[p + "attn.c_attn.weight"] = n(C, 3 * C)
        t[p + "attn.c_attn.bias"] = n(3 * C, sd=0.05)
        t[p + "attn.c_proj.weight"] = n(C, C)
        t[p + "attn.c_proj.bias"] = n(C, sd=0.05)
        t[p + "ln_2.weight"] = 1 + n(C, sd=0.1)
        t[p + "ln_2.bias"] = n(C, sd=0.05)
        t[p + "mlp.c_fc.weight"] = n(C, 4 * C)
        t[p + "mlp.c_fc.bias"] = n(4 * C, sd=0.05)
        t[p + "mlp.c_proj.weight"] = n(4 * C, C, sd=0.1)
        t[p + "mlp.c_proj.bias"] = n(C, sd=0.05)
    t["ln_f.weight"] = 1 + n(C, sd=0.1)
    t["ln_f.bias"] = n(C, sd=0.05)
    write_safetensors(os.path.join(directory, "model.safetensors"), t)


def main():
    os.makedirs(OUT, exist_ok=True)
    models = os.path.join(DATA, "models")
    for variant in ("f32", "f16", "bf16"):
        ex.write_gguf(os.path.join(models, variant), os.path.join(OUT, variant + ".gguf"), variant, None, False,
                      "test-" + variant)
    ex.write_llmc(os.path.join(models, "f32"), os.path.join(OUT, "f32.bin"), "fp32")
    ex.write_llmc(os.path.join(models, "bf16"), os.path.join(OUT, "bf16.bin"), "bf16")
    w64 = os.path.join(OUT, "w64")
    make_w64(w64)
    for q in ("q4_0", "q8_0", "q5_0", "q4_1", "q5_1"):
        ex.write_gguf(w64, os.path.join(OUT, "w64-%s.gguf" % q), q, q, False, "test-w64-" + q)


if __name__ == "__main__":
    main()
