// A minimal, strict, bounded JSON parser (RFC 8259) for the model config string and the
// safetensors header. Input is untrusted: sizes, nesting and counts are bounded, duplicate
// object keys are rejected, strings must be valid UTF-8, and nothing throws.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "facegan.h"

namespace facegan {
namespace json {

struct Value {
  enum Type { Null, Bool, Number, String, Array, Object };
  Type type = Null;
  bool boolean = false;
  double number = 0.0;
  // Set when the number is written as a plain non-negative integer (no sign, fraction or
  // exponent) that fits 64 bits: `uint_value` then holds it exactly.
  bool is_uint = false;
  uint64_t uint_value = 0;
  std::string str;
  std::vector<Value> array;
  std::vector<std::pair<std::string, Value>> object;  // in document order, keys unique

  bool is_null() const { return type == Null; }
  bool is_number() const { return type == Number; }
  bool is_string() const { return type == String; }
  bool is_array() const { return type == Array; }
  bool is_object() const { return type == Object; }
  // Object member by key, or nullptr (also when this is not an object).
  const Value* get(const std::string& key) const;
};

struct Limits {
  size_t max_bytes = size_t(64) << 20;  // input size
  int max_depth = 64;                   // nesting of arrays / objects
  size_t max_values = size_t(4) << 20;  // total number of values
  size_t max_string = size_t(16) << 20; // one string, in bytes
};

// Parses exactly one JSON value (surrounding whitespace allowed, nothing else).
Status parse(const char* data, size_t size, Value* out, const Limits& limits = Limits());
inline Status parse(const std::string& text, Value* out, const Limits& limits = Limits()) {
  return parse(text.data(), text.size(), out, limits);
}

// Serialises a string as a JSON string literal (for messages and tools).
std::string quote(const std::string& s);

}  // namespace json
}  // namespace facegan
