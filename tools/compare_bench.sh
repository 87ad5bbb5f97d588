#!/usr/bin/env bash
# Side by side: `gpt2 bench --json` (random weights) against the PyTorch baseline
# (tools/bench_baseline.py, same shapes, fp32, KV cache) on the same prompt/gen lengths,
# batch sizes and thread count; prints both JSONs' medians and the ratio gpt2 / torch.
#
#   tools/compare_bench.sh [--model gpt2] [--threads 2] [--prompt-tokens 128] [--gen-tokens 128]
#                          [--batch 1,8] [--reps 5] [--gpt2 build/gpt2] [--device cpu]
#                          [--save DIR]   (keeps DIR/gpt2.json and DIR/torch.json)
#
# Needs python3 with torch (Debian: python3-torch). The model is a preset name
# (gpt2, gpt2-medium, gpt2-large, gpt2-xl, distilgpt2); gpt2 runs it as random:NAME.
set -euo pipefail
cd "$(dirname "$0")/.."

model=gpt2 threads=2 prompt=128 gen=128 batch=1,8 reps=5 device=cpu
gpt2_bin=build/gpt2
save=
python=${PYTHON:-/usr/bin/python3}
while [[ $# -gt 0 ]]; do
  case "$1" in
    --model) model=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --prompt-tokens) prompt=$2; shift 2 ;;
    --gen-tokens) gen=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --gpt2) gpt2_bin=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --save) save=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "error: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ -x "$gpt2_bin" ]] || { echo "error: no gpt2 executable at '$gpt2_bin' (build it, or pass --gpt2 PATH)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
common=(--prompt-tokens "$prompt" --gen-tokens "$gen" --batch "$batch" --reps "$reps" --threads "$threads")

echo "running gpt2 bench ($model, $device, $threads threads) ..." >&2
"$gpt2_bin" bench -m "random:$model" --device "$device" "${common[@]}" --json >"$tmp/gpt2.json"
echo "running tools/bench_baseline.py (torch) ..." >&2
"$python" tools/bench_baseline.py --model "$model" --device "$device" "${common[@]}" >"$tmp/torch.json"

if [[ -n "$save" ]]; then
  mkdir -p "$save"
  cp "$tmp/gpt2.json" "$tmp/torch.json" "$save/"
fi

"$python" - "$tmp/gpt2.json" "$tmp/torch.json" <<'EOF'
import json, sys

ours, torch = (json.load(open(p)) for p in sys.argv[1:3])
print(f"model {ours['model']} vs {torch['model']}; gpt2: {ours['device']} {ours['dtype']} {ours['threads']} threads; "
      f"torch: {torch['device']} {torch['dtype']} {torch['threads']} threads")
print()
print("| batch | test   |     gpt2 (median) |     torch (median) |        ratio |")
print("| ----: | :----- | ----------------: | -----------------: | -----------: |")


def median(result, key):
    stats = result.get(key)
    return None if stats is None else stats["median"]


def cell(value, fmt="{:.2f}"):
    return "-" if value is None else fmt.format(value)


theirs = {r["batch"]: r for r in torch["results"]}
for r in ours["results"]:
    t = theirs.get(r["batch"])
    for key, test in (("prefill_tokens_per_s", f"pp{r['prompt_tokens']}"),
                      ("decode_tokens_per_s", f"tg{r['gen_tokens']}"),
                      ("ttft_ms", "ttft")):
        a = median(r, key)
        b = median(t, key) if t else None
        ratio = a / b if a is not None and b else None
        if key == "ttft_ms":  # lower is better: report torch / gpt2 so that > 1 means gpt2 is faster
            ratio = b / a if a and b is not None else None
        print(f"| {r['batch']:>5} | {test:<6} | {cell(a):>17} | {cell(b):>18} | {cell(ratio, '{:.2f}x'):>12} |")
print()
print("ttft rows are milliseconds and their ratio is torch / gpt2; for every row, > 1 means gpt2 is faster.")
mib = lambda b: "-" if b is None else f"{b / 2**20:.0f} MiB"
print(f"peak host memory: gpt2 {mib(ours['peak_host_bytes'])}, torch {mib(torch['peak_host_bytes'])}; "
      f"load: gpt2 {ours['load_seconds']:.2f} s, torch {torch['load_seconds']:.2f} s")
EOF
