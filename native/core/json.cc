#include "json.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <new>
#include <unordered_set>

namespace facegan {
namespace json {

const Value* Value::get(const std::string& key) const {
  if (type != Object) return nullptr;
  for (const auto& kv : object)
    if (kv.first == key) return &kv.second;
  return nullptr;
}

namespace {

class Parser {
 public:
  Parser(const char* data, size_t size, const Limits& limits)
      : p_(data), begin_(data), end_(data + size), limits_(limits) {}

  Status run(Value* out) {
    skip_ws();
    if (!value(out, 0)) return Status::Error(error_);
    skip_ws();
    if (p_ != end_) return fail_status("unexpected trailing characters");
    return Status::Ok();
  }

 private:
  const char* p_;
  const char* begin_;
  const char* end_;
  const Limits& limits_;
  size_t values_ = 0;
  std::string error_;

  bool fail(const char* what) {
    if (error_.empty())
      error_ = std::string("invalid JSON at byte ") + std::to_string(p_ - begin_) + ": " + what;
    return false;
  }
  Status fail_status(const char* what) {
    fail(what);
    return Status::Error(error_);
  }

  void skip_ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }

  bool literal(const char* word) {
    size_t n = std::strlen(word);
    if (size_t(end_ - p_) < n || std::memcmp(p_, word, n) != 0) return fail("invalid literal");
    p_ += n;
    return true;
  }

  bool value(Value* v, int depth) {
    if (++values_ > limits_.max_values) return fail("too many values");
    if (p_ >= end_) return fail("unexpected end of input");
    switch (*p_) {
      case '{': return object(v, depth + 1);
      case '[': return array(v, depth + 1);
      case '"': v->type = Value::String; return string(&v->str);
      case 't': v->type = Value::Bool; v->boolean = true; return literal("true");
      case 'f': v->type = Value::Bool; v->boolean = false; return literal("false");
      case 'n': v->type = Value::Null; return literal("null");
      default: return number(v);
    }
  }

  bool object(Value* v, int depth) {
    if (depth > limits_.max_depth) return fail("nesting too deep");
    v->type = Value::Object;
    ++p_;  // '{'
    skip_ws();
    if (p_ < end_ && *p_ == '}') { ++p_; return true; }
    std::unordered_set<std::string> keys;
    for (;;) {
      skip_ws();
      if (p_ >= end_ || *p_ != '"') return fail("expected a string key");
      std::string key;
      if (!string(&key)) return false;
      if (!keys.insert(key).second) return fail("duplicate object key");
      skip_ws();
      if (p_ >= end_ || *p_ != ':') return fail("expected ':'");
      ++p_;
      skip_ws();
      v->object.emplace_back(std::move(key), Value());
      if (!value(&v->object.back().second, depth)) return false;
      skip_ws();
      if (p_ >= end_) return fail("unexpected end of input in object");
      if (*p_ == ',') { ++p_; continue; }
      if (*p_ == '}') { ++p_; return true; }
      return fail("expected ',' or '}'");
    }
  }

  bool array(Value* v, int depth) {
    if (depth > limits_.max_depth) return fail("nesting too deep");
    v->type = Value::Array;
    ++p_;  // '['
    skip_ws();
    if (p_ < end_ && *p_ == ']') { ++p_; return true; }
    for (;;) {
      skip_ws();
      v->array.emplace_back();
      if (!value(&v->array.back(), depth)) return false;
      skip_ws();
      if (p_ >= end_) return fail("unexpected end of input in array");
      if (*p_ == ',') { ++p_; continue; }
      if (*p_ == ']') { ++p_; return true; }
      return fail("expected ',' or ']'");
    }
  }

  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  bool hex4(uint32_t* out) {
    if (end_ - p_ < 4) return fail("truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      int h = hex(p_[i]);
      if (h < 0) return fail("invalid \\u escape");
      v = v * 16 + uint32_t(h);
    }
    p_ += 4;
    *out = v;
    return true;
  }

  static void put_utf8(std::string* s, uint32_t cp) {
    if (cp < 0x80) {
      s->push_back(char(cp));
    } else if (cp < 0x800) {
      s->push_back(char(0xC0 | (cp >> 6)));
      s->push_back(char(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      s->push_back(char(0xE0 | (cp >> 12)));
      s->push_back(char(0x80 | ((cp >> 6) & 0x3F)));
      s->push_back(char(0x80 | (cp & 0x3F)));
    } else {
      s->push_back(char(0xF0 | (cp >> 18)));
      s->push_back(char(0x80 | ((cp >> 12) & 0x3F)));
      s->push_back(char(0x80 | ((cp >> 6) & 0x3F)));
      s->push_back(char(0x80 | (cp & 0x3F)));
    }
  }

  // Validates one UTF-8 sequence starting at p_ (a byte >= 0x80) and appends it.
  bool utf8(std::string* s) {
    const unsigned char* u = reinterpret_cast<const unsigned char*>(p_);
    size_t avail = size_t(end_ - p_);
    unsigned char c = u[0];
    int n;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) { n = 2; cp = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { n = 3; cp = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 4; cp = c & 0x07; min = 0x10000; }
    else return fail("invalid UTF-8");
    if (avail < size_t(n)) return fail("truncated UTF-8");
    for (int i = 1; i < n; ++i) {
      if ((u[i] & 0xC0) != 0x80) return fail("invalid UTF-8");
      cp = (cp << 6) | (u[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return fail("invalid UTF-8");
    s->append(p_, size_t(n));
    p_ += n;
    return true;
  }

  bool string(std::string* s) {
    ++p_;  // opening quote
    for (;;) {
      if (p_ >= end_) return fail("unterminated string");
      if (s->size() > limits_.max_string) return fail("string too long");
      unsigned char c = static_cast<unsigned char>(*p_);
      if (c == '"') { ++p_; return true; }
      if (c < 0x20) return fail("control character in string");
      if (c == '\\') {
        ++p_;
        if (p_ >= end_) return fail("unterminated escape");
        char e = *p_++;
        switch (e) {
          case '"': s->push_back('"'); break;
          case '\\': s->push_back('\\'); break;
          case '/': s->push_back('/'); break;
          case 'b': s->push_back('\b'); break;
          case 'f': s->push_back('\f'); break;
          case 'n': s->push_back('\n'); break;
          case 'r': s->push_back('\r'); break;
          case 't': s->push_back('\t'); break;
          case 'u': {
            uint32_t cp = 0;
            if (!hex4(&cp)) return false;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
              uint32_t lo = 0;
              if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') return fail("unpaired surrogate");
              p_ += 2;
              if (!hex4(&lo)) return false;
              if (lo < 0xDC00 || lo > 0xDFFF) return fail("unpaired surrogate");
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
              return fail("unpaired surrogate");
            }
            put_utf8(s, cp);
            break;
          }
          default: return fail("invalid escape");
        }
        continue;
      }
      if (c >= 0x80) {
        if (!utf8(s)) return false;
        continue;
      }
      s->push_back(char(c));
      ++p_;
    }
  }

  bool number(Value* v) {
    const char* start = p_;
    bool plain = true;  // non-negative integer without fraction / exponent
    if (p_ < end_ && *p_ == '-') { ++p_; plain = false; }
    if (p_ >= end_) return fail("invalid number");
    if (*p_ == '0') {
      ++p_;
    } else if (*p_ >= '1' && *p_ <= '9') {
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    } else {
      return fail("invalid value");
    }
    if (p_ < end_ && *p_ == '.') {
      plain = false;
      ++p_;
      if (p_ >= end_ || !(*p_ >= '0' && *p_ <= '9')) return fail("invalid number");
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      plain = false;
      ++p_;
      if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ >= end_ || !(*p_ >= '0' && *p_ <= '9')) return fail("invalid number");
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    }
    if (p_ - start > 400) return fail("number too long");
    v->type = Value::Number;
    double d = 0.0;
    auto r = std::from_chars(start, p_, d);
    if (r.ec == std::errc::result_out_of_range) {
      return fail("number out of range");  // overflow or underflow of a double
    } else if (r.ec != std::errc() || r.ptr != p_) {
      return fail("invalid number");
    }
    if (!std::isfinite(d)) return fail("number out of range");
    v->number = d;
    if (plain) {
      uint64_t u = 0;
      auto ri = std::from_chars(start, p_, u);
      if (ri.ec == std::errc() && ri.ptr == p_) {
        v->is_uint = true;
        v->uint_value = u;
      }
    }
    return true;
  }
};

}  // namespace

Status parse(const char* data, size_t size, Value* out, const Limits& limits) {
  if (!out) return Status::Error("json::parse: null output");
  *out = Value();
  if (!data && size) return Status::Error("json::parse: null input");
  if (size > limits.max_bytes) return Status::Error("JSON text too large");
  try {
    Parser parser(data, size, limits);
    Status st = parser.run(out);
    if (!st) *out = Value();
    return st;
  } catch (const std::bad_alloc&) {
    *out = Value();
    return Status::Error("out of memory while parsing JSON");
  } catch (...) {
    *out = Value();
    return Status::Error("unexpected error while parsing JSON");
  }
}

std::string quote(const std::string& s) {
  std::string r = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': r += "\\\""; break;
      case '\\': r += "\\\\"; break;
      case '\n': r += "\\n"; break;
      case '\r': r += "\\r"; break;
      case '\t': r += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          static const char* hx = "0123456789abcdef";
          buf[0] = '\\'; buf[1] = 'u'; buf[2] = '0'; buf[3] = '0';
          buf[4] = hx[c >> 4]; buf[5] = hx[c & 15]; buf[6] = 0;
          r += buf;
        } else {
          r.push_back(char(c));
        }
    }
  }
  r += "\"";
  return r;
}

}  // namespace json
}  // namespace facegan
