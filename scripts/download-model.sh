#!/usr/bin/env bash
# Downloads real GPT-2 weights from the Hugging Face hub (needs internet), into models/NAME/:
# config.json, model.safetensors, vocab.json, merges.txt.
#   scripts/download-model.sh gpt2|gpt2-medium|gpt2-large|gpt2-xl|distilgpt2 [DEST_DIR]
set -euo pipefail
name="${1:-}"
case "$name" in
  gpt2|gpt2-medium|gpt2-large|gpt2-xl) repo="openai-community/$name" ;;
  distilgpt2) repo="distilbert/distilgpt2" ;;
  *) echo "usage: $0 gpt2|gpt2-medium|gpt2-large|gpt2-xl|distilgpt2 [DEST_DIR]" >&2; exit 2 ;;
esac
dest="${2:-models/$name}"
mkdir -p "$dest"
base="https://huggingface.co/$repo/resolve/main"
for f in config.json model.safetensors vocab.json merges.txt; do
  if [[ -s "$dest/$f" ]]; then echo "have $dest/$f"; continue; fi
  echo "fetching $f"
  if command -v curl >/dev/null; then
    curl -fL --retry 3 -o "$dest/$f.part" "$base/$f"
  else
    wget -O "$dest/$f.part" "$base/$f"
  fi
  mv "$dest/$f.part" "$dest/$f"
done
echo "done: build/gpt2 generate -m $dest -p 'Hello, my name is'"
