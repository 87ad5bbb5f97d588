// rewrite_cu IN OUT: turns a CUDA source (kernels/*.cu or *.cuh) into C++ that the host compiler
// builds against the shims of tests/emulation/shim. Three rewrites, everything else verbatim
// (comments, strings and line breaks kept, so compiler messages and __LINE__ point at the
// original through a #line directive):
//
//   kernel<T><<<grid, block, smem, stream>>>(args)
//       -> ::gpt2emu::launch("kernel<T>", kernel<T>, ::gpt2emu::LaunchConfig(grid, block, smem, stream), args)
//   __shared__ __align__(16) float k_s[32][68];          (inside a function)
//       -> using gpt2emu_shared_k_s = float[32][68]; auto& k_s =
//          ::gpt2emu::shared_variable<gpt2emu_shared_k_s>("file:line k_s", 16);
//   extern __shared__ float4 staged4[];
//       -> float4* const staged4 = ::gpt2emu::dynamic_shared<float4>();
//   #pragma unroll [n]   -> an empty line (the host compiler does not know it)
//
// A __shared__ declaration at namespace scope is refused (it would need one object per block).
#include <cctype>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Rewriter {
  std::string path;  // for messages and keys
  std::string in;
  std::string out;
  size_t i = 0;
  int line = 1;
  // Kinds of the open braces: true for a namespace (or extern "C") body.
  std::vector<bool> braces;
  bool namespace_pending = false;

  [[noreturn]] void fail(const std::string& what) const {
    std::cerr << path << ":" << line << ": rewrite_cu: " << what << "\n";
    std::exit(1);
  }

  static bool ident_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

  bool at_word(const char* word) const {
    const size_t n = std::char_traits<char>::length(word);
    if (in.compare(i, n, word) != 0) return false;
    if (i > 0 && ident_char(in[i - 1])) return false;
    return i + n >= in.size() || !ident_char(in[i + n]);
  }

  void copy_char() {
    if (in[i] == '\n') ++line;
    out += in[i++];
  }

  // Copies a comment or a string/char literal starting at i; returns false if none starts here.
  bool copy_comment_or_literal() {
    if (in.compare(i, 2, "//") == 0) {
      while (i < in.size() && in[i] != '\n') copy_char();
      return true;
    }
    if (in.compare(i, 2, "/*") == 0) {
      const size_t end = in.find("*/", i + 2);
      if (end == std::string::npos) fail("unterminated comment");
      while (i < end + 2) copy_char();
      return true;
    }
    if (in[i] == '"' || in[i] == '\'') {
      const char q = in[i];
      copy_char();
      while (i < in.size() && in[i] != q) {
        if (in[i] == '\\') copy_char();
        copy_char();
      }
      if (i < in.size()) copy_char();
      return true;
    }
    return false;
  }

  // Reads text up to (not including) the first `stop` at bracket depth 0, skipping comments
  // and literals; i ends at the stop. Newlines inside are kept.
  std::string read_balanced(const std::string& stop) {
    std::string text;
    int depth = 0;
    while (i < in.size()) {
      if (depth == 0 && in.compare(i, stop.size(), stop) == 0) return text;
      const size_t save = out.size();
      if (copy_comment_or_literal()) {
        text += out.substr(save);
        out.resize(save);
        continue;
      }
      const char c = in[i];
      if (c == '(' || c == '[' || c == '{') ++depth;
      if (c == ')' || c == ']' || c == '}') --depth;
      if (depth < 0) fail("unbalanced brackets while looking for '" + stop + "'");
      if (c == '\n') ++line;
      text += c;
      ++i;
    }
    fail("missing '" + stop + "'");
  }

  static std::string trim(const std::string& s) {
    size_t a = 0, b = s.size();
    while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
    while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
    return s.substr(a, b - a);
  }

  static std::string escape(const std::string& s) {
    std::string r;
    for (char c : s) {
      if (c == '"' || c == '\\') r += '\\';
      r += c;
    }
    return r;
  }

  // kernel<T><<<config>>>(args): the kernel expression is the end of `out`.
  void rewrite_launch() {
    size_t end = out.size();
    while (end > 0 && std::isspace(static_cast<unsigned char>(out[end - 1]))) --end;
    size_t start = end;
    if (start > 0 && out[start - 1] == '>') {  // template arguments
      int depth = 0;
      do {
        --start;
        if (out[start] == '>') ++depth;
        if (out[start] == '<') --depth;
      } while (start > 0 && depth > 0);
      if (depth != 0) fail("cannot find the kernel name before <<<");
    }
    while (start > 0 && (ident_char(out[start - 1]) || out[start - 1] == ':')) --start;
    const std::string kernel = trim(out.substr(start, end - start));
    if (kernel.empty()) fail("cannot find the kernel name before <<<");
    const std::string between = out.substr(end);  // whitespace between the name and <<<
    out.resize(start);
    i += 3;
    const std::string config = read_balanced(">>>");
    i += 3;
    std::string gap;
    while (i < in.size() && std::isspace(static_cast<unsigned char>(in[i]))) {
      if (in[i] == '\n') ++line;
      gap += in[i++];
    }
    if (i >= in.size() || in[i] != '(') fail("expected '(' after >>>");
    ++i;
    const std::string args = read_balanced(")");
    ++i;
    out += "::gpt2emu::launch(\"" + escape(kernel) + "\", " + kernel + between + ", ::gpt2emu::LaunchConfig(" +
           config + ")" + gap + (trim(args).empty() ? "" : ", ") + args + ")";
  }

  void rewrite_shared() {
    bool at_namespace_scope = true;
    for (bool ns : braces) at_namespace_scope = at_namespace_scope && ns;
    if (at_namespace_scope) fail("__shared__ at namespace scope is not supported by the emulation");
    // `extern` just before?
    size_t end = out.size();
    while (end > 0 && std::isspace(static_cast<unsigned char>(out[end - 1]))) --end;
    bool is_extern = end >= 6 && out.compare(end - 6, 6, "extern") == 0 && (end == 6 || !ident_char(out[end - 7]));
    if (is_extern) out.resize(end - 6);
    const int decl_line = line;
    i += std::char_traits<char>::length("__shared__");
    std::string decl = read_balanced(";");
    ++i;
    // newlines inside the declaration are re-emitted after it
    int newlines = 0;
    for (char& c : decl)
      if (c == '\n') {
        ++newlines;
        c = ' ';
      }
    decl = trim(decl);
    std::string align = "0";
    const size_t a = decl.find("__align__");
    if (a != std::string::npos) {
      const size_t open = decl.find('(', a), close = decl.find(')', a);
      if (open == std::string::npos || close == std::string::npos) fail("bad __align__");
      align = trim(decl.substr(open + 1, close - open - 1));
      decl = trim(decl.substr(0, a) + " " + decl.substr(close + 1));
    }
    const size_t bracket = decl.find('[');
    std::string head = trim(decl.substr(0, bracket == std::string::npos ? decl.size() : bracket));
    const std::string dims = bracket == std::string::npos ? "" : decl.substr(bracket);
    size_t name_start = head.size();
    while (name_start > 0 && ident_char(head[name_start - 1])) --name_start;
    const std::string name = head.substr(name_start);
    const std::string type = trim(head.substr(0, name_start));
    if (name.empty() || type.empty() || decl.find(',') != std::string::npos || decl.find('=') != std::string::npos)
      fail("cannot parse the __shared__ declaration '" + decl + "' (one variable, no initializer)");
    if (is_extern) {
      if (trim(dims) != "[]") fail("extern __shared__ must be an unsized array");
      out += type + "* const " + name + " = ::gpt2emu::dynamic_shared<" + type + ">();";
    } else {
      const std::string alias = "gpt2emu_shared_" + name;
      const std::string key = path + ":" + std::to_string(decl_line) + " " + name;
      out += "using " + alias + " = " + type + dims + "; auto& " + name + " = ::gpt2emu::shared_variable<" + alias +
             ">(\"" + escape(key) + "\", " + align + ");";
    }
    out.append(static_cast<size_t>(newlines), '\n');
  }

  bool at_line_start() const {
    size_t k = out.size();
    while (k > 0 && (out[k - 1] == ' ' || out[k - 1] == '\t')) --k;
    return k == 0 || out[k - 1] == '\n';
  }

  void run() {
    out = "#line 1 \"" + escape(path) + "\"\n";
    while (i < in.size()) {
      if (copy_comment_or_literal()) continue;
      if (in[i] == '#' && at_line_start()) {
        size_t k = i + 1;
        while (k < in.size() && (in[k] == ' ' || in[k] == '\t')) ++k;
        if (in.compare(k, 6, "pragma") == 0) {
          size_t m = k + 6;
          while (m < in.size() && (in[m] == ' ' || in[m] == '\t')) ++m;
          if (in.compare(m, 6, "unroll") == 0) {  // drop the directive, keep the line
            while (i < in.size() && in[i] != '\n') ++i;
            continue;
          }
        }
        // other directives verbatim (line continuations included)
        while (i < in.size() && in[i] != '\n') {
          if (in[i] == '\\' && i + 1 < in.size() && in[i + 1] == '\n') copy_char();
          if (copy_comment_or_literal()) continue;
          copy_char();
        }
        continue;
      }
      if (in.compare(i, 3, "<<<") == 0) {
        rewrite_launch();
        continue;
      }
      if (in[i] == '_' && at_word("__shared__")) {
        rewrite_shared();
        continue;
      }
      if (in[i] == 'n' && at_word("namespace")) namespace_pending = true;
      if (in[i] == 'e' && at_word("extern") && in.compare(i, 10, "extern \"C\"") == 0) namespace_pending = true;
      if (in[i] == ';') namespace_pending = false;  // namespace alias
      if (in[i] == '{') {
        braces.push_back(namespace_pending);
        namespace_pending = false;
      }
      if (in[i] == '}') {
        if (braces.empty()) fail("unbalanced '}'");
        braces.pop_back();
      }
      if (ident_char(in[i])) {  // copy a whole identifier so words inside it do not match
        while (i < in.size() && ident_char(in[i])) copy_char();
        continue;
      }
      copy_char();
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: rewrite_cu IN.cu OUT.cpp\n";
    return 2;
  }
  std::ifstream f(argv[1], std::ios::binary);
  if (!f) {
    std::cerr << "rewrite_cu: cannot read " << argv[1] << "\n";
    return 1;
  }
  std::ostringstream ss;
  ss << f.rdbuf();
  Rewriter r;
  r.path = argv[1];
  r.in = ss.str();
  r.run();
  const std::string tmp = std::string(argv[2]) + ".tmp";
  {
    std::ofstream o(tmp, std::ios::binary);
    o << r.out;
    if (!o) {
      std::cerr << "rewrite_cu: cannot write " << tmp << "\n";
      return 1;
    }
  }
  if (std::rename(tmp.c_str(), argv[2]) != 0) {
    std::cerr << "rewrite_cu: cannot rename " << tmp << " to " << argv[2] << "\n";
    return 1;
  }
  return 0;
}
