#!/usr/bin/python3
"""Writes the small GPT-2 models the C++ tests load, in the exact Hugging Face layout, and the
reference outputs on them (gpt2_reference.py), into tests/data/models/<variant>/:

  f32       plain HF names (wte.weight, h.0.ln_1.weight, ...), F32, head tied to wte
  prefixed  every name under "transformer.", the mask buffers h.N.attn.bias / h.N.attn.masked_bias,
            and an lm_head.weight equal to wte (as some conversions save it)      -- same weights as f32
  untied    a separate lm_head.weight
  f16       the f32 weights rounded to F16
  bf16      the f32 weights rounded to BF16
  sharded   the f32 weights in model-00001-of-00002.safetensors + model-00002-of-00002.safetensors
            with model.safetensors.index.json                                      -- same weights as f32
  tiny-gpt2 GPT-2's full 50257-token vocabulary with n_embd 16, F16, for the CLI tests (real tokenizer)
  heads-2l  a model built by hand, one attention head of each pattern (previous token, first token,
            induction, duplicate token), with a byte-level tokenizer of its own

and inside.json (f32, tiny-gpt2, heads-2l): attention weights, logit-lens log-probs and drift cosines
for fixed texts, what `gpt2 attention`, `lens` and `drift` must show.

The small variants are n_embd 48, n_head 4 (head_dim 12), n_layer 3, n_positions 64, vocab 500:
awkward sizes on purpose (no power-of-two head_dim or vocabulary). Weights are larger than GPT-2's
N(0, 0.02) initialisation (which gives nearly uniform logits) so that logits vary by several units
and greedy picks have clear margins; each expected.json records the smallest top-1/top-2 gap.

Run from anywhere with /usr/bin/python3 (needs torch and numpy only):
    /usr/bin/python3 tools/reference/make_fixtures.py
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpt2_reference as ref  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from gpt2_bytes import bytes_to_unicode  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "models"))

SMALL = {"vocab_size": 500, "n_positions": 64, "n_embd": 48, "n_head": 4, "n_layer": 3}
TINY = {"vocab_size": 50257, "n_positions": 256, "n_embd": 16, "n_head": 2, "n_layer": 2}

# "The quick brown fox jumps over the lazy dog." in GPT-2's tokenizer.
TINY_PROMPT = [464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13]
TINY_PROMPT_TEXT = "The quick brown fox jumps over the lazy dog."


def hf_config(dims):
    """A config.json as transformers writes it for GPT-2 (the fields the engine reads and more)."""
    return {
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1,
        "bos_token_id": 50256,
        "embd_pdrop": 0.1,
        "eos_token_id": 50256,
        "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05,
        "model_type": "gpt2",
        "n_ctx": dims["n_positions"],
        "n_embd": dims["n_embd"],
        "n_head": dims["n_head"],
        "n_inner": None,
        "n_layer": dims["n_layer"],
        "n_positions": dims["n_positions"],
        "resid_pdrop": 0.1,
        "scale_attn_weights": True,
        "vocab_size": dims["vocab_size"],
    }


def make_weights(dims, seed, untied=False):
    """Ordered [(HF name, fp32 tensor)] with Conv1D weights [in, out]."""
    g = torch.Generator().manual_seed(seed)
    C, V, P, L = dims["n_embd"], dims["vocab_size"], dims["n_positions"], dims["n_layer"]

    def normal(*shape, std=1.0, mean=0.0):
        return torch.randn(*shape, generator=g, dtype=torch.float32) * std + mean

    w = [("wte.weight", normal(V, C, std=0.4)), ("wpe.weight", normal(P, C, std=0.3))]
    for l in range(L):
        p = f"h.{l}."
        w += [
            (p + "ln_1.weight", normal(C, std=0.1, mean=1.0)),
            (p + "ln_1.bias", normal(C, std=0.1)),
            (p + "attn.c_attn.weight", normal(C, 3 * C, std=0.2)),
            (p + "attn.c_attn.bias", normal(3 * C, std=0.1)),
            (p + "attn.c_proj.weight", normal(C, C, std=0.45)),
            (p + "attn.c_proj.bias", normal(C, std=0.1)),
            (p + "ln_2.weight", normal(C, std=0.1, mean=1.0)),
            (p + "ln_2.bias", normal(C, std=0.1)),
            (p + "mlp.c_fc.weight", normal(C, 4 * C, std=0.2)),
            (p + "mlp.c_fc.bias", normal(4 * C, std=0.1)),
            (p + "mlp.c_proj.weight", normal(4 * C, C, std=0.3)),
            (p + "mlp.c_proj.bias", normal(C, std=0.1)),
        ]
    w += [("ln_f.weight", normal(C, std=0.1, mean=1.0)), ("ln_f.bias", normal(C, std=0.1))]
    if untied:
        w.append(("lm_head.weight", normal(V, C, std=0.4)))
    return w


def write_model(path, dims, weights, dtype="F32", prefixed=False, mask_buffers=False, head_copy=False,
                shards=1):
    os.makedirs(path, exist_ok=True)
    for f in os.listdir(path):
        if f.endswith(".safetensors") or f.endswith(".json"):
            os.remove(os.path.join(path, f))
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(hf_config(dims), f, indent=2)
        f.write("\n")
    entries = []
    for name, t in weights:
        entries.append(("transformer." + name if prefixed else name, t, dtype))
        if mask_buffers and name.endswith("attn.c_attn.bias"):
            # As the original gpt2 checkpoint: the causal mask and the masked-score constant,
            # named exactly like weights minus a component (h.N.attn.bias vs h.N.attn.c_attn.bias).
            layer = name.split(".")[1]
            P = dims["n_positions"]
            pre = "transformer." if prefixed else ""
            entries.append((f"{pre}h.{layer}.attn.bias", torch.tril(torch.ones(P, P)).view(1, 1, P, P), "F32"))
            entries.append((f"{pre}h.{layer}.attn.masked_bias", torch.tensor(-1e4), "F32"))
    if head_copy:
        entries.append(("lm_head.weight", dict(weights)["wte.weight"], dtype))
    if shards == 1:
        ref.write_safetensors(os.path.join(path, "model.safetensors"), entries)
        return
    # Shards split the tensor list in order, as save_pretrained's max_shard_size does.
    per = (len(entries) + shards - 1) // shards
    weight_map = {}
    total = 0
    for s in range(shards):
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = entries[s * per:(s + 1) * per]
        ref.write_safetensors(os.path.join(path, fname), part)
        for name, t, dt in part:
            weight_map[name] = fname
            total += t.numel() * (4 if dt == "F32" else 2)
    with open(os.path.join(path, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
        f.write("\n")


def rounded(x, ndigits=7):
    return [round(float(v), ndigits) for v in x]


def small_expected(path, dims, seed):
    """Reference outputs for a small variant, computed from the files just written."""
    config, w = ref.load_directory(path)
    g = torch.Generator().manual_seed(seed)
    V, P = dims["vocab_size"], dims["n_positions"]
    prompt = torch.randint(0, V, (13,), generator=g).tolist()
    full = torch.randint(0, V, (P,), generator=g).tolist()
    logits = ref.forward(config, w, prompt)
    check = (logits - ref.forward_functional(config, w, prompt)).abs().max().item()
    assert check < 1e-9, f"{path}: the two reference formulations differ by {check}"
    greedy, gap = ref.greedy(config, w, prompt, 20)
    return {
        "about": "reference outputs of tools/reference/gpt2_reference.py (float64) for this directory's weights",
        "tolerance": 1e-4,
        "prompt": prompt,
        "logits": [rounded(row) for row in logits],  # [T, V], every position of the prompt
        "logprobs": ref.token_logprobs(config, w, prompt),
        "greedy": greedy,  # 20 tokens after the prompt
        "greedy_min_gap": gap,
        "full_context": full,  # n_positions tokens: the last position uses wpe's last row
        "full_context_last_logits": rounded(ref.forward(config, w, full)[-1]),
    }


def tiny_expected(path):
    config, w = ref.load_directory(path)
    logits = ref.forward(config, w, TINY_PROMPT)
    check = (logits - ref.forward_functional(config, w, TINY_PROMPT)).abs().max().item()
    assert check < 1e-9, f"{path}: the two reference formulations differ by {check}"
    logp = torch.log_softmax(logits[-1], dim=-1)
    top = torch.topk(logp, 10)
    greedy, gap = ref.greedy(config, w, TINY_PROMPT, 20)
    return {
        "about": "reference outputs of tools/reference/gpt2_reference.py (float64) for this directory's weights",
        "tolerance": 1e-4,
        "prompt_text": TINY_PROMPT_TEXT,
        "prompt": TINY_PROMPT,
        "logprobs": ref.token_logprobs(config, w, TINY_PROMPT),  # first is null: no context
        "bos_logprobs": ref.token_logprobs(config, w, [50256] + TINY_PROMPT)[1:],  # with <|endoftext|> first
        "next_top10": [{"id": int(i), "logprob": float(v)} for v, i in zip(top.values, top.indices)],
        "last_logits_head": rounded(logits[-1][:64]),
        "greedy": greedy,
        "greedy_min_gap": gap,
    }


# ---- inside the model: attention weights, the logit lens, drift (tests/inspect, tests/cli) ----------

def lens_json(lens_logits, ids, top):
    """The logit lens of every layer as `gpt2 lens --json` writes it (ids only, no text)."""
    out = []
    for l, logits in enumerate(lens_logits):
        logp = torch.log_softmax(logits, dim=-1)
        positions = []
        for t in range(len(ids)):
            vals, idx = torch.topk(logp[t], top)
            pos = {"top": [{"id": int(i), "logprob": float(v)} for v, i in zip(vals, idx)],
                   "target_logprob": None, "target_rank": None}
            if t + 1 < len(ids):
                pos["target_logprob"] = float(logp[t, ids[t + 1]])
                pos["target_rank"] = ref.token_rank(logits[t], ids[t + 1])
            positions.append(pos)
        out.append({"layer": l, "positions": positions})
    return out


def attention_json(attention, ids):
    """Every head's weights as `gpt2 attention --json` writes them, with the head-pattern scores."""
    heads = []
    for l, att in enumerate(attention):
        for h in range(att.shape[0]):
            heads.append({"layer": l, "head": h,
                          "weights": [rounded(att[h, t, :t + 1], 9) for t in range(len(ids))],
                          "scores": ref.head_pattern_scores(att[h], ids)})
    return heads


def drift_json(config, w, seqs, positions):
    """Cosine similarity of the residual stream at positions[i] of seqs[i], every pair, every layer;
    and of the token embeddings alone."""
    def cos_matrix(vectors):
        return [[float(torch.nn.functional.cosine_similarity(a, b, dim=0)) for b in vectors] for a in vectors]
    inside = [ref.forward_inside(config, w, s) for s in seqs]
    layers = [{"layer": l, "cosine": cos_matrix([r["residual"][l][p] for r, p in zip(inside, positions)])}
              for l in range(config["n_layer"] + 1)]
    embedding = cos_matrix([w["wte.weight"][s[p]] for s, p in zip(seqs, positions)])
    return {"texts": [{"ids": s, "position": p} for s, p in zip(seqs, positions)],
            "embedding": {"cosine": embedding}, "layers": layers}


def check_inside(config, w, ids, inside):
    logits = ref.forward(config, w, ids)
    check = (inside["lens"][-1] - logits).abs().max().item()
    assert check < 1e-9, f"the last layer's lens differs from forward() by {check}"
    for att in inside["attention"]:
        assert (att.sum(-1) - 1).abs().max().item() < 1e-12


def small_inside(path, seed):
    """inside.json for a small variant: a 14-token text whose second half repeats its first (so the
    duplicate and induction patterns are not empty), and three texts sharing one word for drift."""
    config, w = ref.load_directory(path)
    g = torch.Generator().manual_seed(seed)
    V = config["vocab_size"]
    half = torch.randint(0, V, (7,), generator=g).tolist()
    ids = half + half
    inside = ref.forward_inside(config, w, ids)
    check_inside(config, w, ids, inside)
    word = int(torch.randint(0, V, (1,), generator=g))
    r = torch.randint(0, V, (9,), generator=g).tolist()
    seqs = [r[0:2] + [word], [word] + r[2:5], r[5:6] + [word] + r[6:9]]
    return {
        "about": "tools/reference/gpt2_reference.py forward_inside (float64) for this directory's weights: "
                 "what gpt2 attention, lens and drift show",
        "tolerance": {"attention": 1e-5, "lens_logprob": 2e-4, "cosine": 1e-5},
        "ids": ids,
        "attention": attention_json(inside["attention"], ids),
        "lens": lens_json(inside["lens"], ids, 5),
        "drift": drift_json(config, w, seqs, [2, 0, 1]),
    }


# Texts of tiny-gpt2's prompt tokens (each a single GPT-2 token, so their ids are known here).
TINY_DRIFT = [("The quick brown fox", [464, 2068, 7586, 21831]),
              ("The lazy fox", [464, 16931, 21831]),
              ("The dog jumps over the fox.", [464, 3290, 18045, 625, 262, 21831, 13])]


def tiny_inside(path):
    """inside.json for tiny-gpt2: what the CLI commands must print for the prompt text."""
    config, w = ref.load_directory(path)
    inside = ref.forward_inside(config, w, TINY_PROMPT)
    check_inside(config, w, TINY_PROMPT, inside)
    return {
        "about": "tools/reference/gpt2_reference.py forward_inside (float64) on the prompt text and the drift texts",
        "tolerance": {"attention": 1e-5, "lens_logprob": 2e-4, "cosine": 1e-5},
        "prompt_text": TINY_PROMPT_TEXT,
        "ids": TINY_PROMPT,
        "attention": attention_json(inside["attention"], TINY_PROMPT),
        "lens": lens_json(inside["lens"], TINY_PROMPT, 3),
        "drift_word": "fox",
        "drift_texts": [t for t, _ in TINY_DRIFT],
        "drift": drift_json(config, w, [i for _, i in TINY_DRIFT], [len(i) - 1 if i[-1] == 21831 else i.index(21831)
                                                                     for _, i in TINY_DRIFT]),
    }


# ---- a model built by hand: one head of each pattern ------------------------------------------------
#
# heads-2l: 2 layers, 2 heads, n_embd 96, 31 positions, a byte-level vocabulary of 257 tokens
# (vocab.json + merges.txt with no merges: token id = byte value, 256 = <|endoftext|>). The
# residual stream is laid out in blocks, each written with zero-mean codes so that LayerNorm
# (gain 1, bias 0) only rescales it by one constant for every position:
#   POS  [0, 32)   rows 1..31 of a 32 x 32 Hadamard matrix, one per position: pos(t).pos(s) = 32 [t == s]
#   TOK  [32, 48)  rows 1..15 of a 16 x 16 Hadamard matrix, row 1 + byte % 15 (distinct for a..o)
#   PREV [48, 64)  the previous token's TOK code, written by head 0.0
#   [64, 96)       zero
# Heads (scores / sqrt(48) after LayerNorm's rescaling, about +-13 to 18, so every softmax is sharp):
#   0.0 previous token  q_t = 2 pos(t-1) (a shift of POS), k_s = pos(s); v = TOK -> c_proj -> PREV
#   0.1 first token     q = e_0 (c_attn bias), k_s = 2 pos(0).pos(s) e_0: only key 0 scores
#   1.0 induction       q_t = 4 tok(t) + e_16, k_s = prev(s) - 8 pos(0).pos(s) e_16: the key after an
#                       earlier copy of token t (key 0, whose PREV is its own token, pushed away)
#   1.1 duplicate token q_t = 4 tok(t) - 4 pos(t), k_s = tok(s) + pos(s): earlier copies of token t,
#                       not t itself
# The MLPs are zero. On HEADS_TEXT (12 distinct letters, then the same 12 again) the detector must
# find 0.0 previous-token, 0.1 first-token, 1.0 induction and 1.1 duplicate-token (checked below).
HEADS = {"vocab_size": 257, "n_positions": 31, "n_embd": 96, "n_head": 2, "n_layer": 2}
HEADS_TEXT = "kbhnadlfgjoc" * 2


def hadamard(n):
    h = torch.ones(1, 1)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h


def heads_weights():
    C, V, P, D = HEADS["n_embd"], HEADS["vocab_size"], HEADS["n_positions"], HEADS["n_embd"] // HEADS["n_head"]
    POS, TOK, PREV = slice(0, 32), slice(32, 48), slice(48, 64)
    h32, h16 = hadamard(32), hadamard(16)
    pos = [h32[t + 1] for t in range(P)]
    eye16, eye32 = torch.eye(16), torch.eye(32)
    wte = torch.zeros(V, C)
    for b in range(V):
        wte[b, TOK] = h16[1 + b % 15]
    wpe = torch.zeros(P, C)
    for t in range(P):
        wpe[t, POS] = pos[t]
    shift = sum(torch.outer(pos[t], pos[t - 1]) for t in range(1, P)) / 32  # pos(t) @ shift = pos(t-1)

    def q(h, rows):  # columns of c_attn [C, 3C] for head h's q, k, v
        return slice(h * D + rows.start, h * D + rows.stop)

    def k(h, rows):
        return slice(C + h * D + rows.start, C + h * D + rows.stop)

    def v(h, rows):
        return slice(2 * C + h * D + rows.start, 2 * C + h * D + rows.stop)

    attn = [torch.zeros(C, 3 * C), torch.zeros(C, 3 * C)]
    bias = [torch.zeros(3 * C), torch.zeros(3 * C)]
    proj = [torch.zeros(C, C), torch.zeros(C, C)]
    # 0.0 previous token
    attn[0][POS, q(0, slice(0, 32))] = 2 * shift
    attn[0][POS, k(0, slice(0, 32))] = eye32
    attn[0][TOK, v(0, slice(0, 16))] = eye16
    proj[0][0:16, PREV] = 0.75 * eye16
    # 0.1 first token
    bias[0][q(1, slice(0, 1))] = 1
    attn[0][POS, k(1, slice(0, 1))] = (2 * pos[0]).view(32, 1)
    # 1.0 induction
    attn[1][TOK, q(0, slice(0, 16))] = 4 * eye16
    bias[1][q(0, slice(16, 17))] = 1
    attn[1][PREV, k(0, slice(0, 16))] = eye16
    attn[1][POS, k(0, slice(16, 17))] = (-8 * pos[0]).view(32, 1)
    # 1.1 duplicate token
    attn[1][TOK, q(1, slice(0, 16))] = 4 * eye16
    attn[1][POS, q(1, slice(16, 48))] = -4 * eye32
    attn[1][TOK, k(1, slice(0, 16))] = eye16
    attn[1][POS, k(1, slice(16, 48))] = eye32

    w = [("wte.weight", wte), ("wpe.weight", wpe)]
    for l in range(2):
        p = f"h.{l}."
        w += [(p + "ln_1.weight", torch.ones(C)), (p + "ln_1.bias", torch.zeros(C)),
              (p + "attn.c_attn.weight", attn[l]), (p + "attn.c_attn.bias", bias[l]),
              (p + "attn.c_proj.weight", proj[l]), (p + "attn.c_proj.bias", torch.zeros(C)),
              (p + "ln_2.weight", torch.ones(C)), (p + "ln_2.bias", torch.zeros(C)),
              (p + "mlp.c_fc.weight", torch.zeros(C, 4 * C)), (p + "mlp.c_fc.bias", torch.zeros(4 * C)),
              (p + "mlp.c_proj.weight", torch.zeros(4 * C, C)), (p + "mlp.c_proj.bias", torch.zeros(C))]
    w += [("ln_f.weight", torch.ones(C)), ("ln_f.bias", torch.zeros(C))]
    for name, t in w:  # every value is exact in F16, so the file holds exactly this model
        assert torch.equal(t.to(torch.float16).to(torch.float32), t), name
    return w


def byte_vocab():
    """GPT-2's byte -> printable character table (bytes_to_unicode), as vocab.json spells tokens."""
    table = bytes_to_unicode()
    vocab = {table[b]: b for b in range(256)}
    vocab["<|endoftext|>"] = 256
    return vocab


def heads_model(path):
    write_model(path, HEADS, heads_weights(), dtype="F16")
    with open(os.path.join(path, "vocab.json"), "w") as f:
        json.dump(byte_vocab(), f, ensure_ascii=False)
        f.write("\n")
    with open(os.path.join(path, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n")
    config, w = ref.load_directory(path)
    ids = list(HEADS_TEXT.encode())
    inside = ref.forward_inside(config, w, ids)
    check_inside(config, w, ids, inside)
    heads = attention_json(inside["attention"], ids)
    want = {(0, 0): "previous_token", (0, 1): "first_token", (1, 0): "induction", (1, 1): "duplicate_token"}
    for h in heads:
        best = max(h["scores"], key=h["scores"].get)
        assert best == want[(h["layer"], h["head"])], (h["layer"], h["head"], h["scores"])
    return {"about": "a model built by hand (tools/reference/make_fixtures.py heads_weights): one head of each "
                     "pattern; reference attention (float64) on the text",
            "text": HEADS_TEXT, "ids": ids, "kinds": {f"{l}.{h}": k for (l, h), k in want.items()},
            "attention": heads}


def main():
    torch.set_num_threads(2)
    seed = 20240
    base = make_weights(SMALL, seed)
    variants = {
        "f32": dict(weights=base),
        "prefixed": dict(weights=base, prefixed=True, mask_buffers=True, head_copy=True),
        "untied": dict(weights=make_weights(SMALL, seed, untied=True)),
        "f16": dict(weights=base, dtype="F16"),
        "bf16": dict(weights=base, dtype="BF16"),
        "sharded": dict(weights=base, shards=2),
    }
    for name, kw in variants.items():
        path = os.path.join(ROOT, name)
        write_model(path, SMALL, **kw)
        exp = small_expected(path, SMALL, seed=7)
        with open(os.path.join(path, "expected.json"), "w") as f:
            json.dump(exp, f)
            f.write("\n")
        print(f"{name:9s} greedy={exp['greedy'][:8]}... min top-2 gap {exp['greedy_min_gap']:.4f}")

    path = os.path.join(ROOT, "tiny-gpt2")
    write_model(path, TINY, make_weights(TINY, 4246), dtype="F16")
    exp = tiny_expected(path)
    with open(os.path.join(path, "expected.json"), "w") as f:
        json.dump(exp, f, indent=1)
        f.write("\n")
    print(f"tiny-gpt2 greedy={exp['greedy']} min top-2 gap {exp['greedy_min_gap']:.4f}")

    # What the inspection commands show (inside.json), for the f32 variant and tiny-gpt2.
    for name, make in (("f32", lambda p: small_inside(p, seed=11)), ("tiny-gpt2", tiny_inside)):
        path = os.path.join(ROOT, name)
        with open(os.path.join(path, "inside.json"), "w") as f:
            json.dump(make(path), f)
            f.write("\n")
        print(f"{name:9s} inside.json")
    path = os.path.join(ROOT, "heads-2l")
    exp = heads_model(path)
    with open(os.path.join(path, "inside.json"), "w") as f:
        json.dump(exp, f)
        f.write("\n")
    print("heads-2l  " + ", ".join(f"{h['layer']}.{h['head']} " + max(h["scores"], key=h["scores"].get) + " " +
                                   f"{max(h['scores'].values()):.3f}" for h in exp["attention"]))


if __name__ == "__main__":
    main()
