#include "cli/html.h"

#include <cmath>
#include <cstdint>

#include "common/error.h"

namespace gpt2::cli {
namespace {

// ---- the page: style, then one script that draws the kind of page the body names ------------
// (in pieces under the 4095 characters a string literal may portably have: -Woverlength-strings)

const char* const kStyle[] = {
R"CSS(
:root { --ink: #1d2330; --muted: #5c6577; --line: #d9dde5; --paper: #ffffff; --panel: #f5f6f8; --accent: #1f5fbf; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); background: var(--paper); }
header { padding: 14px 22px 8px; border-bottom: 1px solid var(--line); }
header h1 { margin: 0; font-size: 18px; font-weight: 600; }
header p { margin: 2px 0 0; color: var(--muted); }
main { padding: 14px 22px 40px; }
.controls { display: flex; flex-wrap: wrap; gap: 14px; align-items: center; margin-bottom: 10px; }
.controls label { color: var(--muted); }
select, input { font: inherit; }
#info { min-height: 3.2em; padding: 8px 10px; background: var(--panel); border: 1px solid var(--line); border-radius: 6px;
        font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; white-space: pre-wrap; margin: 8px 0 12px; }
.mono, .tok, text { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.text { line-height: 2.1; margin: 8px 0 16px; white-space: pre-wrap; word-break: break-word; }
.tok { padding: 2px 1px; border-radius: 3px; cursor: default; font-size: 13px; }
.tok.query { outline: 2px solid var(--accent); }
.tok.word { outline: 2px solid #c2410c; font-weight: 700; }
.legend { display: flex; flex-wrap: wrap; gap: 10px; align-items: center; margin: 6px 0 12px; color: var(--muted); }
.swatch { display: inline-block; width: 14px; height: 14px; border-radius: 3px; vertical-align: -2px; margin-right: 4px; border: 1px solid #0002; }
svg text { font-size: 11px; fill: var(--ink); }
svg .cell:hover, svg .cell.on { stroke: #e11d48; stroke-width: 1.5; }
svg .mask { fill: url(#hatch); }
svg .axis { stroke: var(--muted); stroke-width: 1; }
.grid { border-collapse: collapse; margin: 6px 0 14px; }
.grid td, .grid th { border: 1px solid var(--line); padding: 2px 5px; text-align: center; font-size: 12px; }
.grid td.pick { cursor: pointer; min-width: 42px; }
.grid td.pick.on { outline: 2px solid var(--accent); }
.lens { border-collapse: collapse; font-size: 12px; }
.lens th, .lens td { border: 1px solid var(--line); padding: 2px 4px; white-space: nowrap; max-width: 110px; overflow: hidden; text-overflow: ellipsis; }
.lens th { background: var(--panel); font-weight: 600; }
.lens td.lcell { cursor: default; font-family: ui-monospace, Menlo, Consolas, monospace; }
.lens td.hit { font-weight: 700; text-decoration: underline; }
.lens td.on { outline: 2px solid #e11d48; }
.scroll { overflow: auto; max-width: 100%; }
h2 { font-size: 15px; margin: 18px 0 6px; }
.bar { display: inline-block; height: 12px; vertical-align: -1px; }
.note { color: var(--muted); font-size: 12px; }
)CSS"};

// The script reads its data from <script id="gpt2-data"> (and attention's per-head payloads from
// <script class="gpt2-blob">), draws the page for body[data-kind], marks body[data-rendered] when
// done, and body[data-error] if anything threw (the headless-browser test reads both back).
const char* const kScript[] = {
R"JS(
"use strict";
(function () {
const SVG = "http://www.w3.org/2000/svg";
const D = JSON.parse(document.getElementById("gpt2-data").textContent);
const app = document.getElementById("app");
const hash = {};
for (const part of location.hash.replace(/^#/, "").split("&")) {
  const eq = part.indexOf("=");
  if (eq > 0) hash[decodeURIComponent(part.slice(0, eq))] = decodeURIComponent(part.slice(eq + 1));
}
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") e.textContent = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const c of kids) if (c !== null && c !== undefined) e.append(c);
  return e;
}
function sv(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) { if (k === "text") e.textContent = v; else e.setAttribute(k, v); }
  return e;
}
// A token as the terminal shows it: quoted, control characters escaped.
function q(s) { return JSON.stringify(s); }
// A token in running text: newlines kept visible.
function shown(s) { return s.replace(/\n/g, "\u21b5\n").replace(/\t/g, "\u2192\t"); }
function fmt(x, d) { return x === null || x === undefined ? "-" : Number(x).toFixed(d); }
// Weight 0..1 -> white through blue.
function blue(w) {
  const t = Math.max(0, Math.min(1, w));
  const r = Math.round(255 - t * 238), g = Math.round(255 - t * 192), b = Math.round(255 - t * 120);
  return "rgb(" + r + "," + g + "," + b + ")";
}
// Probability -> the shading of `gpt2 score` (red unlikely .. green likely).
function probColour(p) { return p >= 0.5 ? "#87d787" : p >= 0.1 ? "#d7d787" : p >= 0.01 ? "#ffaf87" : "#ff8787"; }
// Similarity -> red .. green.
function cosColour(c) {
  const t = Math.max(0, Math.min(1, (c + 1) / 2));
  const h = Math.round(t * t * 120);
  return "hsl(" + h + ",70%,78%)";
}
const info = el("div", {id: "info", text: "Hover over the picture to see the numbers."});

// ---- attention -------------------------------------------------------------------------------
function renderAttention() {
  const T = D.tokens.length;
  const blobs = {};
  for (const s of document.querySelectorAll("script.gpt2-blob")) blobs[s.dataset.key] = s;
  const cache = {};
  function head(key) {
    if (!cache[key]) {
      const h = JSON.parse(blobs[key].textContent);
      const bin = atob(h.weights);
      const n = bin.length >> 1;
      const w = new Float32Array(n);
      for (let i = 0; i < n; ++i) w[i] = (bin.charCodeAt(2 * i) | (bin.charCodeAt(2 * i + 1) << 8)) / 65535;
      h.w = w;
      cache[key] = h;
    }
    return cache[key];
  }
  const row = t => t * (t + 1) / 2;
  const keys = D.heads.map(h => h[0] + "." + h[1]);
  let current = hash.head && keys.includes(hash.head) ? hash.head : keys[0];

  const select = el("select", {id: "head", onchange: e => pick(e.target.value)});
  for (const k of keys) {
    const h = head(k);
    select.append(el("option", {value: k, text: "head " + k + " \u2014 " + h.kind + " " + fmt(Math.max(
      h.scores.previous_token, h.scores.duplicate_token, h.scores.induction, h.scores.first_token), 2)}));
  }
  app.append(el("div", {class: "controls"}, el("label", {text: "Head (layer.head) "}, select),
    el("span", {class: "note", text: T + " tokens; rows are queries, columns keys; a query sees keys up to itself (the hatched triangle is masked)."})));

  // The picker: every head's best pattern score, layer by layer.
  const grid = el("table", {class: "grid", id: "picker"});
  const hr = el("tr", {}, el("th", {text: "layer \\ head"}));
  for (let h = 0; h < D.n_head; ++h) hr.append(el("th", {text: h}));
  grid.append(hr);
  const pickCells = {};
  for (let l = 0; l < D.n_layer; ++l) {
)JS",
R"JS(    const tr = el("tr", {}, el("th", {text: l}));
    let any = false;
    for (let h = 0; h < D.n_head; ++h) {
      const k = l + "." + h;
      if (!blobs[k]) { tr.append(el("td", {})); continue; }
      any = true;
      const s = head(k);
      const best = Math.max(s.scores.previous_token, s.scores.duplicate_token, s.scores.induction, s.scores.first_token);
      const abbrev = {"previous-token": "prev", "duplicate-token": "dup", "induction": "ind", "first-token": "first", "unclear": "\u00b7"}[s.kind];
      const td = el("td", {class: "pick", "data-key": k, title: "head " + k + ": " + s.kind + " " + fmt(best, 3), text: abbrev,
                           style: "background:" + blue(best * 0.8), onclick: () => pick(k)});
      pickCells[k] = td;
      tr.append(td);
    }
    if (any) grid.append(tr);
  }
  app.append(el("div", {class: "legend"}, "Pattern of each head (fraction of its attention mass): prev = previous token, dup = duplicate token, ind = induction, first = first token."));
  app.append(el("div", {class: "scroll"}, grid));
  app.append(info);
  const figure = el("div", {class: "scroll", id: "figure"});
  app.append(figure);
  const text = el("div", {class: "text", id: "text"});
  const spans = D.tokens.map((tk, i) => el("span", {class: "tok", "data-i": i, text: shown(tk.text)}));
  for (const s of spans) text.append(s);
  app.append(el("h2", {text: "The text (hover a token: it becomes the query, shading what it attends to)"}), text);

  let cells = null, w = null;
  function show(t, j) {
    for (const s of spans) s.style.background = "";
    spans.forEach(s => s.classList.remove("query"));
    if (t < 0 || t >= T) return;
    spans[t].classList.add("query");
    for (let k = 0; k <= t; ++k) spans[k].style.background = blue(w[row(t) + k]);
    if (cells) { for (const c of document.querySelectorAll("rect.cell.on")) c.classList.remove("on"); }
    if (j === undefined) {
      let best = 0;
      for (let k = 1; k <= t; ++k) if (w[row(t) + k] > w[row(t) + best]) best = k;
      j = best;
    }
    if (j > t) { info.textContent = "query " + t + " " + q(D.tokens[t].text) + ", key " + j + ": masked (a query never sees later keys)"; return; }
    if (cells && cells[row(t) + j]) cells[row(t) + j].classList.add("on");
    info.textContent = "head " + current + "   query " + t + " " + q(D.tokens[t].text) + "  \u2192  key " + j + " " +
      q(D.tokens[j].text) + "   weight " + fmt(w[row(t) + j], 4);
  }
  function draw() {
    const h = head(current);
    w = h.w;
    figure.textContent = "";
    const cs = Math.max(2, Math.min(22, Math.floor(720 / T)));
    const left = 150, top = 110, size = cs * T;
    if (T <= 200) {
      const svg = sv("svg", {id: "heatmap", width: left + size + 10, height: top + size + 10});
      const defs = sv("defs");
      const pat = sv("pattern", {id: "hatch", width: 6, height: 6, patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)"});
      pat.append(sv("rect", {width: 6, height: 6, fill: "#eef0f3"}), sv("line", {x1: 0, y1: 0, x2: 0, y2: 6, stroke: "#b8bec9", "stroke-width": 2}));
      defs.append(pat);
      svg.append(defs);
      // The mask: every (query t, key j > t), one staircase polygon over the upper triangle.
      let d = "M" + (left + cs) + "," + top + " H" + (left + size) + " V" + (top + size - cs);
      for (let t = T - 2; t >= 0; --t) d += " H" + (left + (t + 1) * cs) + " V" + (top + t * cs);
      svg.append(sv("path", {class: "mask", d: d + " Z"}));
      cells = new Array(row(T));
      for (let t = 0; t < T; ++t) {
        for (let j = 0; j <= t; ++j) {
          const r = sv("rect", {class: "cell", x: left + j * cs, y: top + t * cs, width: cs, height: cs, fill: blue(w[row(t) + j]),
                                "data-q": t, "data-k": j});
)JS",
R"JS(          cells[row(t) + j] = r;
          svg.append(r);
        }
      }
      const label = s => { const v = q(s); return v.length > 14 ? v.slice(0, 13) + "\u2026" : v; };
      const every = Math.max(1, Math.ceil(11 / cs));
      for (let t = 0; t < T; t += every) {
        svg.append(sv("text", {class: "qlabel", x: left - 4, y: top + t * cs + cs / 2 + 4, "text-anchor": "end", text: t + " " + label(D.tokens[t].text)}));
        const x = left + t * cs + cs / 2 + 4;
        svg.append(sv("text", {class: "klabel", x: x, y: top - 4, transform: "rotate(-60 " + x + " " + (top - 4) + ")", text: t + " " + label(D.tokens[t].text)}));
      }
      svg.append(sv("text", {x: left, y: 12, text: "keys \u2192"}), sv("text", {x: 4, y: top - 8, text: "queries \u2193"}));
      svg.addEventListener("mouseover", e => { const c = e.target; if (c.classList && c.classList.contains("cell")) show(+c.dataset.q, +c.dataset.k); });
      figure.append(svg);
    } else {
      // Long texts (over 200 tokens): one canvas instead of T^2 / 2 SVG cells; the mask is grey.
      cells = null;
      const canvas = el("canvas", {id: "heatmap", width: size, height: size});
      const g = canvas.getContext("2d");
      g.fillStyle = "#e3e6eb";
      g.fillRect(0, 0, size, size);
      for (let t = 0; t < T; ++t) for (let j = 0; j <= t; ++j) { g.fillStyle = blue(w[row(t) + j]); g.fillRect(j * cs, t * cs, cs, cs); }
      canvas.addEventListener("mousemove", e => {
        const b = canvas.getBoundingClientRect();
        show(Math.floor((e.clientY - b.top) / cs), Math.floor((e.clientX - b.left) / cs));
      });
      figure.append(el("div", {class: "note", text: "Rows: queries 0.." + (T - 1) + "; columns: keys; grey: masked."}), canvas);
    }
    select.value = current;
    for (const [k, td] of Object.entries(pickCells)) td.classList.toggle("on", k === current);
  }
  function pick(k) { current = k; draw(); info.textContent = "head " + k + ": hover a cell."; }
  spans.forEach((s, i) => s.addEventListener("mouseenter", () => show(i)));
  draw();
  if (hash.cell) { const [t, j] = hash.cell.split(",").map(Number); show(t, j); }
}

// ---- lens ------------------------------------------------------------------------------------
function renderLens() {
  const T = D.tokens.length, L = D.layers.length;
  let mode = hash.colour === "target" ? "target" : "top";
  const sel = el("select", {id: "colour", onchange: e => { mode = e.target.value; paint(); }},
    el("option", {value: "top", text: "the top prediction's probability"}),
    el("option", {value: "target", text: "the probability of the actual next token"}));
  sel.value = mode;
  app.append(el("div", {class: "controls"}, el("label", {text: "Colour by "}, sel),
    el("span", {class: "note", text: "Each cell: the layer's most likely next token (underlined: it is the text's next token)."})));
  app.append(el("div", {class: "legend"}, ...[[0.9, "p \u2265 0.5"], [0.2, "p \u2265 0.1"], [0.02, "p \u2265 0.01"], [0.001, "p < 0.01"]].map(
    ([p, s]) => el("span", {}, el("span", {class: "swatch", style: "background:" + probColour(p)}), s))));
  app.append(info);
  const table = el("table", {class: "lens", id: "lens"});
  const head = el("tr", {}, el("th", {text: "layer"}));
  D.tokens.forEach((tk, t) => head.append(el("th", {title: "position " + t, text: t + " " + q(tk.text)})));
  table.append(head);
  const cells = [];
  for (let l = L - 1; l >= 0; --l) {
    const tr = el("tr", {}, el("th", {text: l === L - 1 ? l + " (output)" : l === 0 ? "0 (embeddings)" : l}));
    cells[l] = [];
    for (let t = 0; t < T; ++t) {
      const p = D.layers[l].positions[t];
      const best = p.top[0];
      const hit = t + 1 < T && best.id === D.tokens[t + 1].id;
)JS",
R"JS(      const td = el("td", {class: "lcell" + (hit ? " hit" : ""), "data-layer": l, "data-pos": t, text: q(best.text)});
      td.addEventListener("mouseenter", () => show(l, t));
      cells[l][t] = td;
      tr.append(td);
    }
    table.append(tr);
  }
  const next = el("tr", {}, el("th", {text: "next token"}));
  for (let t = 0; t < T; ++t) next.append(el("td", {class: "mono", text: t + 1 < T ? q(D.tokens[t + 1].text) : "-"}));
  table.append(next);
  app.append(el("div", {class: "scroll"}, table));
  function paint() {
    for (let l = 0; l < L; ++l) for (let t = 0; t < T; ++t) {
      const p = D.layers[l].positions[t];
      const lp = mode === "top" ? p.top[0].logprob : p.target_logprob;
      cells[l][t].style.background = lp === null ? "#eee" : probColour(Math.exp(lp));
    }
  }
  function show(l, t) {
    for (const c of document.querySelectorAll(".lens td.on")) c.classList.remove("on");
    cells[l][t].classList.add("on");
    const p = D.layers[l].positions[t];
    let s = "layer " + l + ", after token " + t + " " + q(D.tokens[t].text) + "\n";
    s += p.top.map((c, i) => (i + 1) + ". " + q(c.text) + " p=" + fmt(Math.exp(c.logprob), 4)).join("   ") + "\n";
    s += t + 1 < T ? "next token " + q(D.tokens[t + 1].text) + ": logprob " + fmt(p.target_logprob, 4) + ", p=" +
      fmt(Math.exp(p.target_logprob), 4) + ", rank " + p.target_rank : "(the last position: no next token in the text)";
    info.textContent = s;
  }
  paint();
  if (hash.cell) { const [l, t] = hash.cell.split(",").map(Number); show(l, t); }
}

// ---- drift -----------------------------------------------------------------------------------
function renderDrift() {
  const n = D.texts.length, L = D.layers.length;
  const series = [{name: "embed", m: D.embedding.cosine}].concat(D.layers.map(x => ({name: String(x.layer), m: x.cosine})));
  app.append(el("h2", {text: "The word " + q(D.word) + " in " + n + " texts"}));
  D.texts.forEach((tx, i) => {
    const line = el("div", {class: "text"}, el("b", {text: i + ": "}));
    D.text_tokens[i].forEach((tk, j) => line.append(el("span", {class: "tok" + (j === tx.position ? " word" : ""), text: shown(tk.text)})));
    app.append(line);
  });
  app.append(info);
  const pairs = [];
  for (let a = 0; a < n; ++a) for (let b = a + 1; b < n; ++b) pairs.push([a, b]);
  const palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"];
  let lo = 1;
  for (const s of series) for (const [a, b] of pairs) lo = Math.min(lo, s.m[a][b]);
  lo = Math.min(0, Math.floor(lo * 10) / 10);
  const W = 640, H = 300, left = 50, top = 14, right = 14, bottom = 40;
  const X = i => left + i * (W - left - right) / Math.max(1, series.length - 1);
  const Y = c => top + (1 - c) / (1 - lo) * (H - top - bottom);
  const svg = sv("svg", {id: "curves", width: W, height: H});
  for (let c = lo; c <= 1.0001; c += 0.1) {
    svg.append(sv("line", {class: "axis", x1: left, x2: W - right, y1: Y(c), y2: Y(c), "stroke-opacity": 0.25}));
    svg.append(sv("text", {x: left - 6, y: Y(c) + 4, "text-anchor": "end", text: c.toFixed(1)}));
  }
  series.forEach((s, i) => { if (series.length < 30 || i % 2 === 0) svg.append(sv("text", {x: X(i), y: H - bottom + 16, "text-anchor": "middle", text: s.name})); });
  svg.append(sv("text", {x: (W + left) / 2, y: H - 6, "text-anchor": "middle", text: "layer (embed: the token embedding alone)"}));
  pairs.forEach(([a, b], k) => {
    const colour = palette[k % palette.length];
    svg.append(sv("polyline", {class: "pair", "data-pair": a + "-" + b, fill: "none", stroke: colour, "stroke-width": 2,
                               points: series.map((s, i) => X(i) + "," + Y(s.m[a][b])).join(" ")}));
    series.forEach((s, i) => {
)JS",
R"JS(      const c = sv("circle", {class: "point", cx: X(i), cy: Y(s.m[a][b]), r: 4, fill: colour});
      c.addEventListener("mouseenter", () => { info.textContent = "texts " + a + " and " + b + ", layer " + s.name + ": cosine " + fmt(s.m[a][b], 4); });
      svg.append(c);
    });
  });
  app.append(el("h2", {text: "Cosine similarity of the word's vectors, by layer, for each pair of texts"}), svg);
  app.append(el("div", {class: "legend"}, ...pairs.map(([a, b], k) => el("span", {}, el("span", {class: "swatch", style: "background:" + palette[k % palette.length]}), "texts " + a + "\u2013" + b))));
  const start = hash.layer === "embed" ? 0 : hash.layer !== undefined ? Number(hash.layer) + 1 : series.length - 1;
  const range = el("input", {type: "range", id: "layer", min: 0, max: series.length - 1, value: start});
  const label = el("span", {class: "mono"});
  const matrix = el("table", {class: "grid", id: "matrix"});
  function table(i) {
    label.textContent = "layer " + series[i].name;
    matrix.textContent = "";
    const hr = el("tr", {}, el("th", {text: ""}));
    for (let b = 0; b < n; ++b) hr.append(el("th", {text: b}));
    matrix.append(hr);
    for (let a = 0; a < n; ++a) {
      const tr = el("tr", {}, el("th", {text: a}));
      for (let b = 0; b < n; ++b) {
        const c = series[i].m[a][b];
        tr.append(el("td", {class: "cos", style: "background:" + cosColour(c), text: fmt(c, 3)}));
      }
      matrix.append(tr);
    }
  }
  range.addEventListener("input", () => table(+range.value));
  app.append(el("h2", {text: "The matrix at one layer"}), el("div", {class: "controls"}, range, label), matrix);
  table(start);
}

// ---- score -----------------------------------------------------------------------------------
function renderScore() {
  const buckets = [["top 10", "#a6e3a1", 10], ["top 100", "#f9e2af", 100], ["top 1000", "#f5a3a3", 1000], ["beyond", "#cba6f7", Infinity]];
  const bucket = r => buckets.findIndex(b => r <= b[2]);
  app.append(el("div", {class: "legend", id: "legend"}, "Each token coloured by its rank under the model (as GLTR shows it):",
    ...buckets.map(b => el("span", {}, el("span", {class: "swatch", style: "background:" + b[1]}), b[0])),
    el("span", {}, el("span", {class: "swatch", style: "background:#fff"}), "not scored (no context)")));
  app.append(info);
  D.docs.forEach((doc, di) => {
    if (D.docs.length > 1) app.append(el("h2", {text: doc.name}));
    const counts = [0, 0, 0, 0];
    const text = el("div", {class: "text", "data-doc": di});
    const spans = doc.tokens.map((tk, i) => {
      const s = el("span", {class: "tok", "data-i": i, text: shown(tk.text)});
      if (tk.rank !== null) {
        const b = bucket(tk.rank);
        counts[b]++;
        s.classList.add("b" + b);
        s.style.background = buckets[b][1];
      }
      s.addEventListener("mouseenter", () => {
        info.textContent = "token " + i + " " + q(tk.text) + (tk.rank === null ? ": not scored (nothing before it; try --bos)" :
          ": rank " + tk.rank + ", p=" + fmt(Math.exp(tk.logprob), 4) + ", logprob " + fmt(tk.logprob, 4));
      });
      text.append(s);
      return s;
    });
    app.append(text);
    const total = counts.reduce((a, b) => a + b, 0) || 1;
    app.append(el("div", {class: "legend"}, ...counts.map((c, b) => el("span", {class: "count", "data-bucket": b},
      el("span", {class: "bar", style: "background:" + buckets[b][1] + ";width:" + Math.max(2, Math.round(160 * c / total)) + "px"}),
      " " + buckets[b][0] + ": " + c))));
    app.append(el("p", {class: "note", text: "perplexity " + fmt(doc.perplexity, 3) + " over " + doc.n_scored + " tokens"}));
    if (di === 0 && hash.tok !== undefined) spans[Number(hash.tok)].dispatchEvent(new Event("mouseenter"));
  });
}

try {
)JS",
R"JS(  ({attention: renderAttention, lens: renderLens, drift: renderDrift, score: renderScore})[document.body.dataset.kind]();
  document.body.setAttribute("data-rendered", "1");
} catch (e) {
  document.body.setAttribute("data-error", String(e && e.stack || e));
  app.append(el("pre", {text: "error: " + e}));
}
})();
)JS"};

const char* kind_name(PageKind kind) {
  switch (kind) {
    case PageKind::attention: return "attention";
    case PageKind::lens: return "lens";
    case PageKind::drift: return "drift";
    case PageKind::score: return "score";
  }
  return "";
}

std::string escape_html(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// JSON inside <script>: no "</script" can end it early, since '<' only occurs inside strings
// (JSON's structure has none) and becomes \u003c there.
std::string script_json(const std::string& json) {
  std::string out;
  out.reserve(json.size());
  for (char c : json) {
    if (c == '<') out += "\\u003c";
    else out += c;
  }
  return out;
}

}  // namespace

HtmlPage::HtmlPage(const std::string& path, PageKind kind, const std::string& title) : path_(path), kind_(kind) {
  out_.open(path, std::ios::binary | std::ios::trunc);
  if (!out_) throw Error("cannot write '" + path + "' (--html): check that its directory exists and is writable");
  out_ << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
       << "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
       << "<title>" << escape_html(title) << "</title>\n<style>";
  for (const char* part : kStyle) out_ << part;
  out_ << "</style>\n</head>\n"
       << "<body data-kind=\"" << kind_name(kind_) << "\">\n<header><h1>" << escape_html(title)
       << "</h1><p>written by gpt2 " << kind_name(kind_) << "; self-contained, nothing is fetched</p></header>\n"
       << "<main id=\"app\"><noscript>This page draws itself with JavaScript.</noscript></main>\n";
}

void HtmlPage::data(const nlohmann::ordered_json& data) {
  // Invalid UTF-8 (a token cut mid-character) is replaced rather than thrown on.
  out_ << "<script type=\"application/json\" id=\"gpt2-data\">"
       << script_json(data.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace)) << "</script>\n";
}

void HtmlPage::blob(const std::string& key, const std::string& text) {
  out_ << "<script type=\"text/plain\" class=\"gpt2-blob\" data-key=\"" << escape_html(key) << "\">" << script_json(text)
       << "</script>\n";
}

void HtmlPage::finish() {
  out_ << "<script>";
  for (const char* part : kScript) out_ << part;
  out_ << "</script>\n</body>\n</html>\n";
  out_.flush();
  if (!out_) throw Error("could not write all of '" + path_ + "' (--html): is the disk full?");
  out_.close();
}

std::string weights_base64(const float* w, size_t n) {
  static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string bytes;
  bytes.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    const float v = w[i] < 0 ? 0.0f : w[i] > 1 ? 1.0f : w[i];
    const auto u = static_cast<uint16_t>(std::lround(v * 65535.0f));
    bytes += static_cast<char>(u & 0xFF);
    bytes += static_cast<char>(u >> 8);
  }
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const uint32_t b0 = static_cast<unsigned char>(bytes[i]);
    const uint32_t b1 = i + 1 < bytes.size() ? static_cast<unsigned char>(bytes[i + 1]) : 0;
    const uint32_t b2 = i + 2 < bytes.size() ? static_cast<unsigned char>(bytes[i + 2]) : 0;
    const uint32_t v = (b0 << 16) | (b1 << 8) | b2;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? alphabet[(v >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? alphabet[v & 63] : '=';
  }
  return out;
}

}  // namespace gpt2::cli
