// Small helpers for the N-API layer: argument errors thrown as TypeError / RangeError with the
// name of the argument, and readers for already-validated values (lib/ checks options first;
// these checks only keep a direct caller of the raw addon from crashing the process).
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

namespace facegan_binding {

#define FG_THROW_TYPE(env, msg)                                  \
  do {                                                           \
    Napi::TypeError::New((env), (msg)).ThrowAsJavaScriptException(); \
    return {};                                                   \
  } while (0)

#define FG_THROW_RANGE(env, msg)                                  \
  do {                                                            \
    Napi::RangeError::New((env), (msg)).ThrowAsJavaScriptException(); \
    return {};                                                    \
  } while (0)

inline bool IsTypedArrayOf(const Napi::Value& v, napi_typedarray_type type) {
  return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == type;
}

// Reads obj[key] as a number, or `fallback` when absent/undefined.
inline double AttrAsDouble(const Napi::Object& obj, const char* key, double fallback) {
  Napi::Value v = obj.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : fallback;
}

inline std::string AttrAsString(const Napi::Object& obj, const char* key, const std::string& fallback) {
  Napi::Value v = obj.Get(key);
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : fallback;
}

}  // namespace facegan_binding
