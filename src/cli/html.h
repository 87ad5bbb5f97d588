// --html FILE: one self-contained page per command that a person opens in a browser. Everything
// is inline (CSS, JavaScript, SVG drawn by the script): the page fetches nothing, so it works
// offline and from any directory. The command writes the data (one JSON object, and for
// attention one payload per head, written head by head so the writer's memory stays one head's);
// the page's script draws it:
//   attention  a head picker, the heatmap of the chosen head (queries down, keys across, the
//              masked upper triangle hatched), hover for a weight, the text shaded by the
//              weights of the query under the pointer, and the pattern scores of every head
//   lens       layers x positions, each cell the layer's top prediction, coloured by probability;
//              hover for the top-k and the target's log-prob and rank
//   drift      the texts with the word marked, cosine against layer for every pair of texts, and
//              the cosine matrix of a chosen layer
//   score      the text coloured by each token's rank under the model (GLTR's buckets), hover for
//              the rank and probability, a legend and the bucket counts
// A fragment such as page.html#head=1.0&cell=5,2 selects a head and shows a cell as if hovered
// (how the headless-browser test checks what a reader would see).
#pragma once

#include <cstddef>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

namespace gpt2::cli {

enum class PageKind { attention, lens, drift, score };

class HtmlPage {
 public:
  // Opens `path` and writes the head of the page; gpt2::Error naming the file when it cannot.
  HtmlPage(const std::string& path, PageKind kind, const std::string& title);
  HtmlPage(const HtmlPage&) = delete;
  HtmlPage& operator=(const HtmlPage&) = delete;

  // The page's data, one JSON object.
  void data(const nlohmann::ordered_json& data);
  // A payload the script finds by `key` (attention: "L.H" -> that head's weights).
  void blob(const std::string& key, const std::string& text);
  // The script and the closing tags; gpt2::Error when the file could not be written.
  void finish();

 private:
  std::string path_;
  PageKind kind_;
  std::ofstream out_;
};

// A head's packed lower triangle of weights (each in [0, 1]) as base64 of little-endian uint16,
// round(w * 65535): 2 bytes a weight, shown by the page to 4 decimals.
std::string weights_base64(const float* w, size_t n);

}  // namespace gpt2::cli
