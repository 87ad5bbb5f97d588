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


if __name__ == "__main__":
    main()
