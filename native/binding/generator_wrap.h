#pragma once

#include <napi.h>

#include <memory>

#include "facegan.h"

namespace facegan_binding {

// The JS handle of one native generator. Every long call runs in an AsyncWorker that holds a
// shared_ptr to the generator, so dispose() during a call frees it only when the call ends.
class GeneratorWrap : public Napi::ObjectWrap<GeneratorWrap> {
 public:
  static Napi::Function Init(Napi::Env env);
  static Napi::Value Create(const Napi::CallbackInfo& info);  // createGenerator(config, tensors, options)
  explicit GeneratorWrap(const Napi::CallbackInfo& info);
  static void Attach(Napi::Object obj, std::shared_ptr<facegan::Generator> gen);

 private:
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Mapping(const Napi::CallbackInfo& info);
  Napi::Value Synthesis(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  std::shared_ptr<facegan::Generator> gen_;
};

}  // namespace facegan_binding
