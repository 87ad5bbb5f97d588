#!/usr/bin/env bash
# The --html pages of gpt2 attention, lens, drift and score, rendered in headless Chromium: each page
# draws itself from its embedded data (nothing is fetched), and this reads the page's own DOM back
# after its script ran (--dump-dom) and checks what a reader would see: the head picker, one cell per
# visible weight and the masked triangle, the hovered weight (through the page's #cell= fragment)
# equal to --json's, the lens grid, the drift curves and matrix, score's rank colours and legend.
# A screenshot of each page must not be blank (its PNG is much larger than a blank page's).
#
#   tests/html/check_pages.sh GPT2_BINARY TEST_DATA_DIR
#
# Without chromium it prints "SKIPPED: chromium not found" and exits 0 (ctest maps that line to
# "skipped"). Every chromium call is bounded by `timeout`.
set -uo pipefail

GPT2=${1:?usage: check_pages.sh GPT2_BINARY TEST_DATA_DIR}
DATA=${2:?usage: check_pages.sh GPT2_BINARY TEST_DATA_DIR}
CHROMIUM=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [[ -z "$CHROMIUM" ]]; then
  echo "SKIPPED: chromium not found (apt-get install chromium)"
  exit 0
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
FAILED=0
fail() {
  echo "FAIL: $*"
  FAILED=1
}

chromium_run() {
  timeout -k 5 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --disable-extensions --mute-audio \
    --user-data-dir="$(mktemp -d "$WORK/profile.XXXXXX")" "$@" 2>>"$WORK/chromium.log"
}
# The DOM of a page (and fragment) after its scripts ran.
dump_dom() { chromium_run --dump-dom "file://$1"; }
screenshot() { chromium_run --window-size=1200,900 --hide-scrollbars --screenshot="$2" "file://$1" >/dev/null; }
count() { grep -o -- "$2" <<<"$1" | wc -l; }
expect_count() {  # what, dom, pattern, expected count
  local n
  n=$(count "$2" "$3")
  [[ "$n" -eq "$4" ]] || fail "$1: $n x '$3', expected $4"
}
expect_has() {  # what, dom, fixed string
  grep -qF -- "$3" <<<"$2" || fail "$1: the page does not show '$3'"
}
rendered() {  # what, dom: the script ran to its end without throwing
  grep -q 'data-rendered="1"' <<<"$2" || fail "$1: the page did not render (data-rendered missing)"
  if grep -q 'data-error=' <<<"$2"; then fail "$1: the page's script threw: $(grep -o 'data-error="[^"]*"' <<<"$2" | head -c 300)"; fi
}

MODEL="$DATA/models/tiny-gpt2"
HEADS="$DATA/models/heads-2l"
TEXT="The quick brown fox jumps over the lazy dog."
RUN=("$GPT2")
opts=(--device cpu --threads 2)

# A blank page's screenshot, the size every page's must exceed.
printf '<!DOCTYPE html><html><body></body></html>\n' >"$WORK/blank.html"
screenshot "$WORK/blank.html" "$WORK/blank.png"
[[ -s "$WORK/blank.png" ]] || { echo "FAIL: chromium made no screenshot (see below)"; cat "$WORK/chromium.log"; exit 1; }
BLANK=$(stat -c %s "$WORK/blank.png")
not_blank() {  # what, page
  local png="$WORK/$1.png" size
  screenshot "$2" "$png"
  [[ "$(head -c 8 "$png" | od -An -tx1 | tr -d ' \n')" == "89504e470d0a1a0a" ]] || { fail "$1: no PNG screenshot"; return; }
  size=$(stat -c %s "$png")
  [[ "$size" -gt $((BLANK * 3)) ]] || fail "$1: the screenshot looks blank ($size bytes, a blank page $BLANK)"
}

# ---- attention: the hand-built model (4 heads, 24 tokens) --------------------------------------
"${RUN[@]}" attention -m "$HEADS" "${opts[@]}" -p "kbhnadlfgjockbhnadlfgjoc" --html "$WORK/attention.html" \
  >/dev/null 2>"$WORK/gpt2.log" || fail "attention --html: $(cat "$WORK/gpt2.log")"
"${RUN[@]}" attention -m "$HEADS" "${opts[@]}" -p "kbhnadlfgjockbhnadlfgjoc" --json >"$WORK/attention.json" 2>/dev/null
DOM=$(dump_dom "$WORK/attention.html")
rendered attention "$DOM"
expect_count "attention head picker" "$DOM" '<option value=' 4
expect_count "attention picker grid" "$DOM" 'class="pick' 4
expect_count "attention heatmap cells (24 x 25 / 2)" "$DOM" 'class="cell' 300
expect_count "attention mask" "$DOM" 'class="mask"' 1
expect_count "attention text tokens" "$DOM" 'class="tok' 24
expect_has "attention kinds" "$DOM" "induction"
expect_has "attention kinds" "$DOM" "previous-token"
# Hover through the fragment: head 1.0 (induction), query 13 "b" -> key 2 (after the first "b").
DOM=$(dump_dom "$WORK/attention.html#head=1.0&cell=13,2")
rendered "attention #head=1.0" "$DOM"
ROWS=$(grep -o '"layer":1,"head":0,"weights":\[\[[^}]*' "$WORK/attention.json" |
       sed 's/.*"weights":\[\[//; s/\]\]$//; s/\],\[/\n/g')
WANT=$(sed -n '14p' <<<"$ROWS" | cut -d, -f3)  # query 13, key 2
WANT4=$(LC_ALL=C printf '%.4f' "$WANT")
expect_has "attention hover of head 1.0 query 13 key 2" "$DOM" "weight $WANT4"
expect_has "attention hover names the tokens" "$DOM" 'query 13 "b"'
expect_count "attention hovered cell" "$DOM" 'class="cell on"' 1
DOM=$(dump_dom "$WORK/attention.html#head=0.0&cell=3,7")
expect_has "attention hover above the diagonal" "$DOM" "masked"
not_blank attention "$WORK/attention.html"

# A long text draws on a canvas instead of 500k SVG cells.
LONG=$(printf 'a b c d e f g h i j k l m n o p %.0s' $(seq 1 15))  # 240 tokens (tiny-gpt2 has 256 positions)
"${RUN[@]}" attention -m "$MODEL" "${opts[@]}" -p "$LONG" --layer 0 --head 0 --html "$WORK/long.html" >/dev/null 2>&1 ||
  fail "attention --html of a long text"
DOM=$(dump_dom "$WORK/long.html")
rendered "attention (long text)" "$DOM"
expect_count "attention (long text) canvas" "$DOM" '<canvas id="heatmap"' 1

# ---- lens --------------------------------------------------------------------------------------
"${RUN[@]}" lens -m "$MODEL" "${opts[@]}" -p "$TEXT" --top 3 --html "$WORK/lens.html" >/dev/null 2>&1 || fail "lens --html"
"${RUN[@]}" lens -m "$MODEL" "${opts[@]}" -p "$TEXT" --top 3 --json >"$WORK/lens.json" 2>/dev/null
DOM=$(dump_dom "$WORK/lens.html#cell=2,3")
rendered lens "$DOM"
expect_count "lens cells (3 layers x 10 positions)" "$DOM" 'class="lcell' 30
expect_has "lens header token" "$DOM" '" quick"'
expect_has "lens hover" "$DOM" "layer 2, after token 3"
RANK=$(grep -o '"target_rank":[0-9]*' "$WORK/lens.json" | sed -n '24p' | cut -d: -f2)  # layer 2, position 3
expect_has "lens hover shows --json's rank" "$DOM" "rank $RANK"
not_blank lens "$WORK/lens.html"

# ---- drift -------------------------------------------------------------------------------------
"${RUN[@]}" drift -m "$MODEL" "${opts[@]}" --word fox -p "The quick brown fox" -p "The lazy fox" \
  -p "The dog jumps over the fox." --html "$WORK/drift.html" >/dev/null 2>&1 || fail "drift --html"
DOM=$(dump_dom "$WORK/drift.html#layer=1")
rendered drift "$DOM"
expect_count "drift curves (3 pairs)" "$DOM" 'class="pair"' 3
expect_count "drift points (3 pairs x 4: embed + layers 0..2)" "$DOM" 'class="point"' 12
expect_count "drift matrix cells" "$DOM" 'class="cos"' 9
expect_count "drift word marked in each text" "$DOM" 'class="tok word"' 3
expect_has "drift layer picked" "$DOM" "layer 1"
not_blank drift "$WORK/drift.html"

# ---- score -------------------------------------------------------------------------------------
"${RUN[@]}" score -m "$MODEL" "${opts[@]}" -p "$TEXT" --html "$WORK/score.html" >/dev/null 2>&1 || fail "score --html"
DOM=$(dump_dom "$WORK/score.html#tok=3")
rendered score "$DOM"
expect_count "score tokens" "$DOM" 'class="tok' 10
SCORED=$(( $(count "$DOM" 'class="tok b0"') + $(count "$DOM" 'class="tok b1"') + $(count "$DOM" 'class="tok b2"') + $(count "$DOM" 'class="tok b3"') ))
[[ "$SCORED" -eq 9 ]] || fail "score: $SCORED tokens coloured by rank, expected 9 (all but the first)"
expect_has "score legend" "$DOM" "top 1000"
expect_has "score hover" "$DOM" 'token 3 " fox": rank'
not_blank score "$WORK/score.html"

if [[ $FAILED -ne 0 ]]; then
  echo "--- chromium's messages:"
  grep -v dbus "$WORK/chromium.log" | tail -n 20
  exit 1
fi
echo "all pages render and show what they should"
