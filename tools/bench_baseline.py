#!/usr/bin/env python3
"""PyTorch baseline for `gpt2 bench`: the same GPT-2 shapes with random weights, fp32, decoding
with a preallocated KV cache, timed the same way (one warm-up run, then --reps runs of
prefill + decode; median/min/max tokens/s). Prints JSON in `gpt2 bench --json`'s schema.

Needs only torch (Debian: python3-torch); no transformers. Example:
    /usr/bin/python3 tools/bench_baseline.py --model gpt2 --threads 2 --prompt-tokens 128 \
        --gen-tokens 128 --batch 1,8 --reps 5
"""
import argparse
import json
import math
import os
import resource
import statistics
import sys
import time

# Debian's torch runs its matrix products on OpenBLAS, which keeps its own thread pool sized
# from the environment when the library loads: give it --threads before torch is imported,
# or it takes every core whatever torch.set_num_threads says.
_pre = argparse.ArgumentParser(add_help=False)
_pre.add_argument("--threads", type=int, default=0)
_threads = _pre.parse_known_args()[0].threads
if _threads > 0:
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, str(_threads))

import torch  # noqa: E402  (after the thread environment above)
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

# (n_layer, n_embd, n_head) as in design.md; n_vocab 50257, n_ctx 1024 for all.
PRESETS = {"gpt2": (12, 768, 12), "gpt2-medium": (24, 1024, 16), "gpt2-large": (36, 1280, 20),
           "gpt2-xl": (48, 1600, 25), "distilgpt2": (6, 768, 12)}
N_VOCAB, N_CTX = 50257, 1024


class Block(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.n_head = n_head
        self.ln_1 = nn.LayerNorm(n_embd, eps=1e-5)
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.attn_proj = nn.Linear(n_embd, n_embd)
        self.ln_2 = nn.LayerNorm(n_embd, eps=1e-5)
        self.c_fc = nn.Linear(n_embd, 4 * n_embd)
        self.mlp_proj = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x, k_cache, v_cache, pos):
        # x [B, T, C]; k_cache, v_cache [B, H, n_ctx, D]; the new tokens sit at [pos, pos + T).
        B, T, C = x.shape
        H, D = self.n_head, C // self.n_head
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, H, D).transpose(1, 2) for t in (q, k, v))  # [B, H, T, D]
        k_cache[:, :, pos:pos + T] = k
        v_cache[:, :, pos:pos + T] = v
        keys, values = k_cache[:, :, :pos + T], v_cache[:, :, :pos + T]  # [B, H, S, D], S = pos + T
        att = (q @ keys.transpose(-2, -1)) / math.sqrt(D)  # [B, H, T, S]
        if T > 1:  # causal mask: query t sees keys up to pos + t
            mask = torch.ones(T, pos + T, dtype=torch.bool, device=x.device).tril(diagonal=pos)
            att = att.masked_fill(~mask, float("-inf"))
        y = (F.softmax(att, dim=-1) @ values).transpose(1, 2).reshape(B, T, C)
        x = x + self.attn_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT2(nn.Module):
    def __init__(self, n_layer, n_embd, n_head):
        super().__init__()
        self.wte = nn.Embedding(N_VOCAB, n_embd)
        self.wpe = nn.Embedding(N_CTX, n_embd)
        self.h = nn.ModuleList(Block(n_embd, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd, eps=1e-5)
        for p in self.parameters():  # GPT-2's init scale; the values do not matter for speed
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)
            else:
                nn.init.zeros_(p)
        for m in self.modules():
            if isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)

    def forward(self, ids, caches, pos):
        # ids [B, T] -> logits of each sequence's last token [B, V] (head tied to wte).
        T = ids.shape[1]
        x = self.wte(ids) + self.wpe(torch.arange(pos, pos + T, device=ids.device))
        for block, (k_cache, v_cache) in zip(self.h, caches):
            x = block(x, k_cache, v_cache, pos)
        return self.ln_f(x[:, -1]) @ self.wte.weight.t()


def summarize(values):
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_batch(model, caches_for, batch, args, device):
    gen = torch.Generator().manual_seed(1234 + batch)
    prompt = torch.randint(0, N_VOCAB - 1, (batch, args.prompt_tokens), generator=gen).to(device)
    decode_ids = torch.randint(0, N_VOCAB - 1, (args.gen_tokens, batch, 1), generator=gen).to(device)
    caches = caches_for(batch)

    def run_once(gen_tokens):
        sync(device)
        t0 = time.perf_counter()
        logits = model(prompt, caches, 0)
        logits.argmax(dim=-1).tolist()  # the first generated token, on the host
        t1 = time.perf_counter()
        for g in range(gen_tokens):
            logits = model(decode_ids[g], caches, args.prompt_tokens + g)
            # Each sequence's 42 most likely tokens reach the host every step, as in gpt2 bench
            # (what its default sampler, top-k 40, takes from the logits).
            torch.topk(logits, 42, dim=-1).values.cpu()
        sync(device)
        return t1 - t0, time.perf_counter() - t1

    run_once(min(args.gen_tokens, 2))  # warm-up
    prefill, decode, ttft = [], [], []
    for _ in range(args.reps):
        t_prefill, t_decode = run_once(args.gen_tokens)
        prefill.append(batch * args.prompt_tokens / t_prefill)
        ttft.append(t_prefill * 1e3)
        if args.gen_tokens > 0:
            decode.append(batch * args.gen_tokens / t_decode)
    return {"batch": batch, "prompt_tokens": args.prompt_tokens, "gen_tokens": args.gen_tokens,
            "prefill_tokens_per_s": summarize(prefill), "decode_tokens_per_s": summarize(decode),
            "ttft_ms": summarize(ttft)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="gpt2", choices=sorted(PRESETS))
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--gen-tokens", type=int, default=128)
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = ap.parse_args()
    batches = [int(b) for b in args.batch.split(",")]
    if args.prompt_tokens < 1 or args.gen_tokens < 0 or args.reps < 1 or min(batches) < 1:
        sys.exit("error: --prompt-tokens, --reps and --batch must be >= 1, --gen-tokens >= 0")
    if args.prompt_tokens + args.gen_tokens > N_CTX:
        sys.exit(f"error: --prompt-tokens + --gen-tokens exceeds the context of {N_CTX} tokens")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    torch.manual_seed(0)
    t0 = time.perf_counter()
    n_layer, n_embd, n_head = PRESETS[args.model]
    model = GPT2(n_layer, n_embd, n_head).to(device).eval()
    load_seconds = time.perf_counter() - t0

    def caches_for(batch):  # allocated once per batch size, never inside the decode loop
        shape = (batch, n_head, N_CTX, n_embd // n_head)
        return [(torch.zeros(shape, device=device), torch.zeros(shape, device=device)) for _ in range(n_layer)]

    with torch.inference_mode():
        results = [bench_batch(model, caches_for, b, args, device) for b in batches]
    out = {"model": "torch:" + args.model, "device": args.device, "dtype": "fp32",
           "threads": torch.get_num_threads(), "load_seconds": load_seconds,
           "peak_host_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
           "peak_device_bytes": torch.cuda.max_memory_allocated() if device.type == "cuda" else None,
           "results": results}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
