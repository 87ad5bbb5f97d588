"""An independent GPT-2 in PyTorch, written from the architecture (Radford et al. 2019;
OpenAI's gpt-2 model.py; Hugging Face GPT2LMHeadModel), plus a minimal safetensors
reader/writer. It is the oracle the C++ engine's tests compare against: tools/reference/
make_fixtures.py writes small models in the exact Hugging Face layout and this model's
outputs on them into tests/data/models/.

Computation is float64 from the weights as stored in the file (already rounded to F16/BF16
for those variants), so the C++ fp32 engine should match to ~1e-5; the tests use 1e-4.

Architecture (per block l, x is the residual stream [T, C]):
    h   = LayerNorm(x; ln_1)                      eps = layer_norm_epsilon (1e-5)
    qkv = h @ c_attn.weight + c_attn.bias         Conv1D: weight [in, out] = [C, 3C], q|k|v
    a   = softmax(q k^T / sqrt(head_dim) + causal mask) v, per head (n_head heads of head_dim)
    x   = x + a @ attn.c_proj.weight + attn.c_proj.bias
    h   = LayerNorm(x; ln_2)
    x   = x + gelu_new(h @ c_fc.weight + c_fc.bias) @ mlp.c_proj.weight + mlp.c_proj.bias
then logits = LayerNorm(x; ln_f) @ lm_head^T, lm_head = wte unless the file has lm_head.weight;
x starts as wte[ids] + wpe[0..T-1] (learned positions).
gelu_new(u) = 0.5 u (1 + tanh(sqrt(2/pi) (u + 0.044715 u^3))).

No `transformers` import: it is not installed, and an independent implementation is the point.
"""
import json
import math
import struct

import numpy as np
import torch

# ---- safetensors --------------------------------------------------------------------------

_DTYPES = {  # safetensors name -> (numpy dtype used for the raw bytes, bytes per element)
    "F32": (np.float32, 4),
    "F16": (np.float16, 2),
    "BF16": (np.uint16, 2),  # raw bits; converted via torch
}


def to_bytes(t: torch.Tensor, dtype: str) -> bytes:
    """fp32 tensor -> raw little-endian bytes of `dtype` (round to nearest even)."""
    t = t.detach().to(torch.float32).contiguous()
    if dtype == "F32":
        return t.numpy().astype("<f4").tobytes()
    if dtype == "F16":
        return t.to(torch.float16).numpy().astype("<f2").tobytes()
    if dtype == "BF16":
        return t.to(torch.bfloat16).view(torch.int16).numpy().astype("<i2").tobytes()
    raise ValueError(dtype)


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, tensor fp32, dtype name), written in this order."""
    header = {}
    blobs = []
    offset = 0
    for name, t, dtype in tensors:
        data = to_bytes(t, dtype)
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = metadata or {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)  # the format pads the header to 8 bytes with spaces
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """-> {name: float64 tensor} for F32/F16/BF16 entries; other dtypes are skipped."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, e in header.items():
        if name == "__metadata__" or e["dtype"] not in _DTYPES:
            continue
        b, end = e["data_offsets"]
        np_dtype, _ = _DTYPES[e["dtype"]]
        arr = np.frombuffer(data[b:end], dtype=np.dtype(np_dtype).newbyteorder("<")).copy()
        if e["dtype"] == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        out[name] = torch.from_numpy(arr.astype(np.float64)).reshape(e["shape"])
    return out


def load_directory(path):
    """A Hugging Face GPT-2 directory -> (config dict, {name without 'transformer.': tensor})."""
    import os
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    files = []
    if os.path.exists(os.path.join(path, "model.safetensors")):
        files = ["model.safetensors"]
    else:
        with open(os.path.join(path, "model.safetensors.index.json")) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    weights = {}
    for name in files:
        for k, v in read_safetensors(os.path.join(path, name)).items():
            weights[k[len("transformer."):] if k.startswith("transformer.") else k] = v
    return config, weights


# ---- the model --------------------------------------------------------------------------------

def gelu_new(u):
    return 0.5 * u * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (u + 0.044715 * u ** 3)))


def layer_norm(x, g, b, eps):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)  # biased, as torch.nn.LayerNorm
    return (x - mean) / torch.sqrt(var + eps) * g + b


def forward(config, w, ids):
    """ids: list of token ids (one sequence) -> logits [T, V] (float64)."""
    C = config["n_embd"]
    H = config["n_head"]
    D = C // H
    eps = config.get("layer_norm_epsilon", 1e-5)
    T = len(ids)
    ids = torch.tensor(ids, dtype=torch.long)
    x = w["wte.weight"][ids] + w["wpe.weight"][:T]  # [T, C]
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for l in range(config["n_layer"]):
        p = f"h.{l}."
        h = layer_norm(x, w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps)
        qkv = h @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]  # [T, 3C]
        q, k, v = qkv.split(C, dim=-1)
        q = q.view(T, H, D).transpose(0, 1)  # [H, T, D]
        k = k.view(T, H, D).transpose(0, 1)
        v = v.view(T, H, D).transpose(0, 1)
        scores = q @ k.transpose(-1, -2) / math.sqrt(D)  # [H, T, T]
        scores = scores.masked_fill(~mask, float("-inf"))
        a = torch.softmax(scores, dim=-1) @ v  # [H, T, D]
        a = a.transpose(0, 1).reshape(T, C)
        x = x + a @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
        h = layer_norm(x, w[p + "ln_2.weight"], w[p + "ln_2.bias"], eps)
        m = gelu_new(h @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"])  # [T, 4C]
        x = x + m @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
    x = layer_norm(x, w["ln_f.weight"], w["ln_f.bias"], eps)
    head = w.get("lm_head.weight", w["wte.weight"])  # [V, C]; tied to wte when absent
    return x @ head.T


def token_logprobs(config, w, ids):
    """log p(ids[t] | ids[:t]) for t >= 1 (index 0 has no context: None)."""
    logp = torch.log_softmax(forward(config, w, ids), dim=-1)
    return [None] + [float(logp[t - 1, ids[t]]) for t in range(1, len(ids))]


def greedy(config, w, ids, n):
    """n greedy tokens after ids (full recompute each step: no cache to get wrong), and the
    smallest top-1 minus top-2 logit gap met, so callers can check the picks are stable."""
    ids = list(ids)
    out, min_gap = [], float("inf")
    for _ in range(n):
        last = forward(config, w, ids)[-1]
        top = torch.topk(last, 2)
        min_gap = min(min_gap, float(top.values[0] - top.values[1]))
        nxt = int(torch.argmax(last))
        out.append(nxt)
        ids.append(nxt)
    return out, min_gap


def forward_functional(config, w, ids):
    """The same model through torch.nn.functional's own LayerNorm, tanh-GELU and a batched
    attention with an additive mask: a second formulation that make_fixtures.py checks
    forward() against, so a slip in the hand-written math above cannot hide in the fixtures."""
    import torch.nn.functional as F
    C, H = config["n_embd"], config["n_head"]
    D = C // H
    eps = config.get("layer_norm_epsilon", 1e-5)
    T = len(ids)
    x = F.embedding(torch.tensor(ids), w["wte.weight"]) + F.embedding(torch.arange(T), w["wpe.weight"])
    bias = torch.triu(torch.full((T, T), float("-inf"), dtype=x.dtype), diagonal=1)
    for l in range(config["n_layer"]):
        p = f"h.{l}."
        h = F.layer_norm(x, (C,), w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps)
        # Conv1D(x) = x @ W + b  ==  F.linear(x, W^T, b)
        q, k, v = F.linear(h, w[p + "attn.c_attn.weight"].T, w[p + "attn.c_attn.bias"]).chunk(3, dim=-1)
        q, k, v = (t.reshape(T, H, D).permute(1, 0, 2) for t in (q, k, v))
        att = F.softmax(torch.baddbmm(bias.expand(H, T, T), q, k.transpose(1, 2), alpha=D ** -0.5), dim=-1)
        a = torch.bmm(att, v).permute(1, 0, 2).reshape(T, C)
        x = x + F.linear(a, w[p + "attn.c_proj.weight"].T, w[p + "attn.c_proj.bias"])
        h = F.layer_norm(x, (C,), w[p + "ln_2.weight"], w[p + "ln_2.bias"], eps)
        m = F.gelu(F.linear(h, w[p + "mlp.c_fc.weight"].T, w[p + "mlp.c_fc.bias"]), approximate="tanh")
        x = x + F.linear(m, w[p + "mlp.c_proj.weight"].T, w[p + "mlp.c_proj.bias"])
    x = F.layer_norm(x, (C,), w["ln_f.weight"], w["ln_f.bias"], eps)
    return F.linear(x, w.get("lm_head.weight", w["wte.weight"]))


# ---- inside the model: what `gpt2 attention`, `lens` and `drift` show -----------------------------

def forward_inside(config, w, ids):
    """forward() again, keeping what the inspection tools show:
        residual[l]  [T, C]     the stream entering block l (l = 0: wte + wpe); residual[n_layer]
                                the stream after the last block, before ln_f
        attention[l] [H, T, T]  softmax(q k^T / sqrt(D) + causal mask) of every head of layer l
        lens[l]      [T, V]     ln_f and the LM head applied to residual[l] (the logit lens;
                                lens[n_layer] is forward()'s logits)
    Written out again rather than hooked into forward() so that forward() stays the plain oracle;
    make_fixtures.py checks that lens[n_layer] equals forward()."""
    C = config["n_embd"]
    H = config["n_head"]
    D = C // H
    eps = config.get("layer_norm_epsilon", 1e-5)
    T = len(ids)
    t_ids = torch.tensor(ids, dtype=torch.long)
    x = w["wte.weight"][t_ids] + w["wpe.weight"][:T]
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    head = w.get("lm_head.weight", w["wte.weight"])
    residual, attention = [x.clone()], []
    for l in range(config["n_layer"]):
        p = f"h.{l}."
        h = layer_norm(x, w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps)
        qkv = h @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]
        q, k, v = qkv.split(C, dim=-1)
        q = q.view(T, H, D).transpose(0, 1)
        k = k.view(T, H, D).transpose(0, 1)
        v = v.view(T, H, D).transpose(0, 1)
        scores = (q @ k.transpose(-1, -2) / math.sqrt(D)).masked_fill(~mask, float("-inf"))
        att = torch.softmax(scores, dim=-1)  # [H, T, T]
        attention.append(att)
        a = (att @ v).transpose(0, 1).reshape(T, C)
        x = x + a @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
        h = layer_norm(x, w[p + "ln_2.weight"], w[p + "ln_2.bias"], eps)
        x = x + gelu_new(h @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"]) @ w[p + "mlp.c_proj.weight"] + \
            w[p + "mlp.c_proj.bias"]
        residual.append(x.clone())
    lens = [layer_norm(r, w["ln_f.weight"], w["ln_f.bias"], eps) @ head.T for r in residual]
    return {"residual": residual, "attention": attention, "lens": lens}


def token_rank(logits, target):
    """Rank (1 = most likely) of `target` in a row of logits: larger first, equal values by the
    smaller id, as the engine orders candidates (src/common/order.h)."""
    v = logits[target]
    ids = torch.arange(logits.shape[0])
    return 1 + int(((logits > v) | ((logits == v) & (ids < target))).sum())


def head_pattern_scores(att, ids):
    """TransformerLens's head detector (detect_head, error_measure "mul", nothing excluded) for one
    head's weights [T, T]: the fraction of the attention mass on the previous-token, duplicate-token
    and induction patterns, and (not in TransformerLens) on the first token."""
    T = len(ids)
    tok = torch.tensor(ids)
    prev = torch.zeros(T, T, dtype=att.dtype)
    prev[1:, :-1] = torch.eye(T - 1, dtype=att.dtype)
    dup = (tok[:, None] == tok[None, :]).to(att.dtype)
    dup.fill_diagonal_(0)
    dup = torch.tril(dup)
    ind = torch.zeros(T, T, dtype=att.dtype)
    ind[:, 1:] = dup[:, :-1]  # the duplicate pattern shifted one key to the right
    ind = torch.tril(ind)
    first = torch.zeros(T, T, dtype=att.dtype)
    first[:, 0] = 1
    total = att.sum()
    return {name: float((att * pat).sum() / total)
            for name, pat in (("previous_token", prev), ("duplicate_token", dup), ("induction", ind), ("first_token", first))}


def main():
    """Reference outputs for any Hugging Face GPT-2 directory (e.g. real gpt2 weights from
    scripts/download-model.sh), to compare with `gpt2 score --json` by hand:
        /usr/bin/python3 tools/reference/gpt2_reference.py MODEL_DIR --ids 464 2068 7586 --top 5
    """
    import argparse
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("model_dir")
    ap.add_argument("--ids", type=int, nargs="+", required=True, help="token ids")
    ap.add_argument("--top", type=int, default=10, help="next-token candidates to print")
    ap.add_argument("--greedy", type=int, default=0, help="greedy tokens to generate")
    args = ap.parse_args()
    config, w = load_directory(args.model_dir)
    logits = forward(config, w, args.ids)
    logp = torch.log_softmax(logits[-1], dim=-1)
    top = torch.topk(logp, args.top)
    out = {
        "tokens": [{"id": i, "logprob": lp} for i, lp in zip(args.ids, token_logprobs(config, w, args.ids))],
        "next": [{"id": int(i), "logprob": float(v)} for v, i in zip(top.values, top.indices)],
    }
    if args.greedy:
        out["greedy"], out["greedy_min_gap"] = greedy(config, w, args.ids, args.greedy)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
