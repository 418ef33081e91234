// The addon's exports. Typed on the JS side by lib/native.ts; keep the two in step.
#include <napi.h>

#include <cmath>
#include <string>
#include <vector>

#include "backend.h"
#include "common.h"
#include "facegan.h"
#include "generator_wrap.h"
#include "network.h"

namespace facegan_binding {
namespace {

// availableBackends() → { backends: string[], unavailable: string }
Napi::Value AvailableBackends(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string why;
  std::vector<std::string> names = facegan::available_backends(&why);
  Napi::Array arr = Napi::Array::New(env, names.size());
  for (size_t i = 0; i < names.size(); i++) arr.Set(uint32_t(i), names[i]);
  Napi::Object o = Napi::Object::New(env);
  o.Set("backends", arr);
  o.Set("unavailable", why);
  return o;
}

// numpyRandn(seed: number, count: number) → Float64Array  (numpy.random.RandomState(seed).randn)
Napi::Value NumpyRandn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber())
    FG_THROW_TYPE(env, "numpyRandn(seed: number, count: number)");
  double seed = info[0].As<Napi::Number>().DoubleValue();
  double count = info[1].As<Napi::Number>().DoubleValue();
  if (!(seed >= 0 && seed <= 4294967295.0) || std::floor(seed) != seed)
    FG_THROW_RANGE(env, "seed must be an integer in [0, 2^32)");
  if (!(count >= 0 && count <= (1 << 24)) || std::floor(count) != count)
    FG_THROW_RANGE(env, "count must be an integer in [0, 2^24]");
  Napi::Float64Array out = Napi::Float64Array::New(env, size_t(count));
  facegan::numpy_randn(uint32_t(seed), size_t(count), out.Data());
  return out;
}

// expectedTensors(configJson: string) → { name, shape, optional }[]: the tensors the engine
// expects for a config, in canonical order (network.cc, the one definition of the weight format).
// Throws an Error with the config's problem.
Napi::Value ExpectedTensors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) FG_THROW_TYPE(env, "expectedTensors(config: string)");
  std::vector<facegan::ExpectedTensor> list;
  facegan::Status s = facegan::expected_tensors(info[0].As<Napi::String>().Utf8Value(), &list);
  if (!s) {
    Napi::Error::New(env, s.message).ThrowAsJavaScriptException();
    return {};
  }
  Napi::Array arr = Napi::Array::New(env, list.size());
  for (size_t i = 0; i < list.size(); i++) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", list[i].name);
    Napi::Array shape = Napi::Array::New(env, list[i].shape.size());
    for (size_t k = 0; k < list[i].shape.size(); k++) shape.Set(uint32_t(k), double(list[i].shape[k]));
    o.Set("shape", shape);
    o.Set("optional", list[i].optional);
    arr.Set(uint32_t(i), o);
  }
  return arr;
}

}  // namespace
}  // namespace facegan_binding

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  using namespace facegan_binding;
  facegan::register_builtin_backends();
  GeneratorWrap::Init(env);
  exports.Set("createGenerator", Napi::Function::New(env, GeneratorWrap::Create, "createGenerator"));
  exports.Set("availableBackends", Napi::Function::New(env, AvailableBackends, "availableBackends"));
  exports.Set("numpyRandn", Napi::Function::New(env, NumpyRandn, "numpyRandn"));
  exports.Set("expectedTensors", Napi::Function::New(env, ExpectedTensors, "expectedTensors"));
  exports.Set("createCancelToken", Napi::Function::New(env, CreateCancelToken, "createCancelToken"));
#ifdef FACEGAN_WITH_CUDA
  exports.Set("builtWithCuda", Napi::Boolean::New(env, true));
#else
  exports.Set("builtWithCuda", Napi::Boolean::New(env, false));
#endif
  return exports;
}

NODE_API_MODULE(facegan, Init)
