// cudapp: the emulator build's source pass. Rewrites one CUDA source file into host C++ for the
// emulator (fg_emu.h), changing only the four CUDA constructs that are not C++:
//   K<<<g, b[, smem[, stream]]>>>(args)   ->  ::fg_emu::launch_kernel("K", &K, ::fg_emu::LaunchCfg{g, b, smem, stream},
//                                                [=]() { K(args); })
//   __shared__ ... name[..];              ->  static thread_local ... name[..]; ::fg_emu::shared_static(...);
//   extern __shared__ T name[];           ->  T* const name = ::fg_emu::shared_dynamic<T>();
//   asm [volatile] ("ptx" : outs : ins : clobbers)
//                                         ->  ::fg_emu::ptx("ptx", {::fg_emu::op_out('r', &x), ...})
// Comments and string literals are copied untouched; line structure is kept (#line directives point
// compiler messages at the original file). Anything it cannot parse is an error (exit 1), never a
// silent pass-through.
//
// Usage: cudapp IN.cu OUT.cc
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::string g_file;

[[noreturn]] void die(const std::string& msg, size_t line) {
  std::fprintf(stderr, "%s:%zu: cudapp: %s\n", g_file.c_str(), line, msg.c_str());
  std::exit(1);
}

class Pass {
 public:
  explicit Pass(std::string s) : s_(std::move(s)) {}

  std::string run() {
    out_.reserve(s_.size() * 2);
    while (i_ < s_.size()) {
      if (starts("//")) {
        copy_line_comment();
      } else if (starts("/*")) {
        copy_block_comment();
      } else if (s_[i_] == '"' || s_[i_] == '\'') {
        copy_literal();
      } else if (s_[i_] == '#' && at_line_start()) {
        copy_directive();
      } else if (starts("<<<")) {
        rewrite_launch();
      } else if (ident_at("extern") && next_ident_after(i_ + 6) == "__shared__") {
        rewrite_extern_shared();
      } else if (ident_at("__shared__")) {
        rewrite_static_shared();
      } else if (ident_at("asm") || ident_at("__asm__")) {
        rewrite_asm();
      } else {
        out_ += s_[i_++];
      }
    }
    return out_;
  }

 private:
  bool starts(const char* p) const { return s_.compare(i_, std::strlen(p), p) == 0; }
  static bool idch(char c) { return std::isalnum((unsigned char)c) || c == '_'; }
  bool ident_at(const char* w) const {
    const size_t n = std::strlen(w);
    if (s_.compare(i_, n, w) != 0) return false;
    if (i_ > 0 && idch(s_[i_ - 1])) return false;
    return i_ + n >= s_.size() || !idch(s_[i_ + n]);
  }
  std::string next_ident_after(size_t j) const {
    while (j < s_.size() && std::isspace((unsigned char)s_[j])) ++j;
    size_t k = j;
    while (k < s_.size() && idch(s_[k])) ++k;
    return s_.substr(j, k - j);
  }
  bool at_line_start() const {
    size_t j = i_;
    while (j > 0 && (s_[j - 1] == ' ' || s_[j - 1] == '\t')) --j;
    return j == 0 || s_[j - 1] == '\n';
  }
  size_t line_of(size_t pos) const {
    size_t n = 1;
    for (size_t j = 0; j < pos && j < s_.size(); ++j) n += s_[j] == '\n';
    return n;
  }
  void copy_line_comment() {
    while (i_ < s_.size() && s_[i_] != '\n') out_ += s_[i_++];
  }
  void copy_block_comment() {
    const size_t e = s_.find("*/", i_ + 2);
    if (e == std::string::npos) die("unterminated comment", line_of(i_));
    out_.append(s_, i_, e + 2 - i_);
    i_ = e + 2;
  }
  // Index just past the literal starting at j.
  size_t skip_literal(size_t j) const {
    const char q = s_[j++];
    while (j < s_.size() && s_[j] != q) {
      if (s_[j] == '\\') ++j;
      ++j;
    }
    if (j >= s_.size()) die("unterminated literal", line_of(j));
    return j + 1;
  }
  void copy_literal() {
    const size_t e = skip_literal(i_);
    out_.append(s_, i_, e - i_);
    i_ = e;
  }
  void copy_directive() {
    while (i_ < s_.size() && s_[i_] != '\n') {
      if (s_[i_] == '\\' && i_ + 1 < s_.size() && s_[i_ + 1] == '\n') out_ += s_[i_++];
      out_ += s_[i_++];
    }
  }
  // Index of the bracket closing the one at j ((, [ or {), skipping literals and comments.
  size_t match(size_t j) const {
    std::vector<char> st;
    for (; j < s_.size(); ++j) {
      const char c = s_[j];
      if (c == '"' || c == '\'') {
        j = skip_literal(j) - 1;
      } else if (s_.compare(j, 2, "//") == 0) {
        j = s_.find('\n', j);
        if (j == std::string::npos) break;
      } else if (s_.compare(j, 2, "/*") == 0) {
        j = s_.find("*/", j) + 1;
      } else if (c == '(' || c == '[' || c == '{') {
        st.push_back(c);
      } else if (c == ')' || c == ']' || c == '}') {
        if (st.empty()) die("unbalanced brackets", line_of(j));
        st.pop_back();
        if (st.empty()) return j;
      }
    }
    die("unbalanced brackets", line_of(j));
  }
  // Splits [b, e) at top-level `sep` characters.
  std::vector<std::string> split(size_t b, size_t e, char sep) const {
    std::vector<std::string> parts;
    size_t start = b;
    for (size_t j = b; j < e; ++j) {
      const char c = s_[j];
      if (c == '"' || c == '\'') {
        j = skip_literal(j) - 1;
      } else if (c == '(' || c == '[' || c == '{') {
        j = match(j);
      } else if (c == sep && !(sep == ':' && ((j + 1 < e && s_[j + 1] == ':') || (j > b && s_[j - 1] == ':')))) {
        parts.push_back(s_.substr(start, j - start));
        start = j + 1;
      }
    }
    parts.push_back(s_.substr(start, e - start));
    return parts;
  }
  static std::string trim(const std::string& t) {
    size_t a = 0, b = t.size();
    while (a < b && std::isspace((unsigned char)t[a])) ++a;
    while (b > a && std::isspace((unsigned char)t[b - 1])) --b;
    return t.substr(a, b - a);
  }
  static size_t count_newlines(const std::string& t) {
    size_t n = 0;
    for (char c : t) n += c == '\n';
    return n;
  }
  // Keeps the line count: the replacement of a multi-line construct ends with its newlines.
  void emit_replacement(const std::string& text, size_t from, size_t to) {
    out_ += text;
    const size_t want = count_newlines(s_.substr(from, to - from));
    const size_t have = count_newlines(text);
    for (size_t k = have; k < want; ++k) out_ += '\n';
  }

  // ---- K<<<cfg>>>(args)
  void rewrite_launch() {
    // The kernel expression: an identifier (with ::) optionally followed by <template args>,
    // already copied to out_: take it back.
    size_t e = out_.size();
    while (e > 0 && std::isspace((unsigned char)out_[e - 1])) --e;
    size_t b = e;
    if (b > 0 && out_[b - 1] == '>') {
      int depth = 0;
      do {
        --b;
        if (out_[b] == '>') ++depth;
        else if (out_[b] == '<') --depth;
      } while (b > 0 && depth > 0);
      if (depth != 0) die("cannot find the kernel's template arguments", line_of(i_));
    }
    while (b > 0 && (idch(out_[b - 1]) || out_[b - 1] == ':')) --b;
    const std::string kernel = trim(out_.substr(b, e - b));
    if (kernel.empty()) die("launch without a kernel name", line_of(i_));
    out_.resize(b);
    const size_t cfg_b = i_ + 3;
    const size_t cfg_e = s_.find(">>>", cfg_b);
    if (cfg_e == std::string::npos) die("unterminated <<<", line_of(i_));
    std::vector<std::string> cfg = split(cfg_b, cfg_e, ',');
    if (cfg.size() < 2 || cfg.size() > 4) die("a launch takes 2 to 4 configuration arguments", line_of(i_));
    size_t j = cfg_e + 3;
    while (j < s_.size() && std::isspace((unsigned char)s_[j])) ++j;
    if (j >= s_.size() || s_[j] != '(') die("launch without arguments", line_of(i_));
    const size_t args_e = match(j);
    const std::string args = s_.substr(j + 1, args_e - j - 1);
    std::string base = kernel;
    const size_t lt = base.find('<');
    if (lt != std::string::npos) base = trim(base.substr(0, lt));
    std::string r = "::fg_emu::launch_kernel(\"" + base + "\", &" + kernel + ", ::fg_emu::LaunchCfg{dim3(" +
                    trim(cfg[0]) + "), dim3(" + trim(cfg[1]) + "), (size_t)(" + (cfg.size() > 2 ? trim(cfg[2]) : "0") +
                    "), (cudaStream_t)(" + (cfg.size() > 3 ? trim(cfg[3]) : "0") + ")}, [=]() { " + kernel + "(" +
                    args + "); })";
    emit_replacement(r, i_, args_e + 1);
    i_ = args_e + 1;
  }

  // ---- extern __shared__ T name[];
  void rewrite_extern_shared() {
    const size_t semi = s_.find(';', i_);
    if (semi == std::string::npos) die("unterminated extern __shared__", line_of(i_));
    std::string decl = s_.substr(i_, semi - i_);
    decl = trim(decl.substr(decl.find("__shared__") + 10));
    // Drop __align__(n).
    const size_t al = decl.find("__align__");
    if (al != std::string::npos) decl.erase(al, decl.find(')', al) + 1 - al);
    const size_t br = decl.rfind('[');
    if (br == std::string::npos || trim(decl.substr(br)) != "[]") die("extern __shared__ must be T name[]", line_of(i_));
    std::string head = trim(decl.substr(0, br));
    size_t k = head.size();
    while (k > 0 && idch(head[k - 1])) --k;
    const std::string name = head.substr(k), type = trim(head.substr(0, k));
    if (name.empty() || type.empty()) die("cannot parse extern __shared__", line_of(i_));
    emit_replacement(type + "* const " + name + " = ::fg_emu::shared_dynamic<" + type + ">();", i_, semi + 1);
    i_ = semi + 1;
  }

  // ---- __shared__ ... name[dims];
  void rewrite_static_shared() {
    const size_t semi = s_.find(';', i_);
    if (semi == std::string::npos) die("unterminated __shared__", line_of(i_));
    const std::string decl = s_.substr(i_ + 10, semi - i_ - 10);
    if (decl.find('=') != std::string::npos) die("__shared__ variables cannot have initialisers", line_of(i_));
    if (split(i_ + 10, semi, ',').size() != 1) die("one __shared__ variable per declaration", line_of(i_));
    size_t k = decl.find('[');
    if (k == std::string::npos) k = decl.size();
    while (k > 0 && std::isspace((unsigned char)decl[k - 1])) --k;
    size_t b = k;
    while (b > 0 && idch(decl[b - 1])) --b;
    const std::string name = decl.substr(b, k - b);
    if (name.empty()) die("cannot parse __shared__ declaration", line_of(i_));
    emit_replacement("static thread_local" + decl + "; ::fg_emu::shared_static(&" + name + ", sizeof(" + name +
                         "), \"" + name + "\");",
                     i_, semi + 1);
    i_ = semi + 1;
  }

  // ---- asm [volatile] ( "template" [: outputs [: inputs [: clobbers]]] );
  void rewrite_asm() {
    size_t j = i_ + (ident_at("asm") ? 3 : 7);
    for (;;) {
      while (j < s_.size() && std::isspace((unsigned char)s_[j])) ++j;
      const std::string w = next_ident_after(j);
      if (w == "volatile" || w == "__volatile__") j += w.size();
      else break;
    }
    if (j >= s_.size() || s_[j] != '(') die("asm without (", line_of(i_));
    const size_t close = match(j);
    std::vector<std::string> sec = split(j + 1, close, ':');
    if (sec.size() > 4) die("asm with more than 3 colons", line_of(i_));
    std::string tmpl = trim(sec[0]);
    if (tmpl.empty() || tmpl[0] != '"') die("asm template must be a string literal", line_of(i_));
    std::string ops;
    for (int s = 1; s <= 2 && s < (int)sec.size(); ++s) {
      const std::string body = trim(sec[s]);
      if (body.empty()) continue;
      // Split this section's operands (a local Pass over the text keeps literals intact).
      Pass sub(body);
      for (std::string op : sub.split(0, body.size(), ',')) {
        op = trim(op);
        if (op.empty() || op[0] != '"') die("asm operand must be \"constraint\"(expr): " + op, line_of(i_));
        const size_t q = op.find('"', 1);
        const std::string con = op.substr(1, q - 1);
        std::string expr = trim(op.substr(q + 1));
        if (expr.size() < 2 || expr.front() != '(' || expr.back() != ')') die("asm operand expression: " + op, line_of(i_));
        char letter = con.empty() ? '?' : con.back();
        if (std::string("rlhfdn").find(letter) == std::string::npos) die("unsupported asm constraint " + con, line_of(i_));
        if (!ops.empty()) ops += ", ";
        if (s == 1) {
          if (con.size() != 2 || (con[0] != '=' && con[0] != '+')) die("output constraint must be =X or +X", line_of(i_));
          ops += std::string(con[0] == '+' ? "::fg_emu::op_inout('" : "::fg_emu::op_out('") + letter + "', &" + expr + ")";
        } else {
          ops += std::string("::fg_emu::op_in('") + letter + "', " + expr + ")";
        }
      }
    }
    emit_replacement("::fg_emu::ptx(" + tmpl + ", {" + ops + "})", i_, close + 1);
    i_ = close + 1;
  }

  std::string s_;
  size_t i_ = 0;
  std::string out_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: cudapp IN.cu OUT.cc\n");
    return 2;
  }
  g_file = argv[1];
  std::ifstream in(argv[1], std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cudapp: cannot read %s\n", argv[1]);
    return 1;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string out = "#line 1 \"" + g_file + "\"\n" + Pass(ss.str()).run();
  std::ofstream o(argv[2], std::ios::binary);
  o << out;
  if (!o) {
    std::fprintf(stderr, "cudapp: cannot write %s\n", argv[2]);
    return 1;
  }
  return 0;
}
