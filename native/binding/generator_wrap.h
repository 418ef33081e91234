#pragma once

#include <napi.h>

#include <memory>
#include <mutex>
#include <vector>

#include "facegan.h"

namespace facegan_binding {

// A set of cancel flags set together: every native call gets its own facegan::CancelFlag, added
// to its generator's group (dispose() cancels it) and to the group of the cancel token it was
// given, if any (an AbortSignal in lib/ cancels that one). A flag added to a group that is
// already cancelled starts set.
class CancelGroup {
 public:
  void Add(const std::shared_ptr<facegan::CancelFlag>& flag);
  void Cancel();
  bool cancelled() const;

 private:
  mutable std::mutex mu_;
  bool cancelled_ = false;
  std::vector<std::weak_ptr<facegan::CancelFlag>> flags_;
};

// createCancelToken() → { cancel(): void, readonly cancelled: boolean } (see lib/native.ts).
Napi::Value CreateCancelToken(const Napi::CallbackInfo& info);

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
  Napi::Value Generate(const Napi::CallbackInfo& info);
  Napi::Value ChunkImages(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  // A new flag for one call: in this generator's group and in the group of `token` (the call's
  // `cancel` option) when that is a cancel token. Nullptr (a JS exception pending) when `token`
  // is neither undefined / null nor a cancel token.
  std::shared_ptr<facegan::CancelFlag> CallFlag(const Napi::Value& token);

  std::shared_ptr<facegan::Generator> gen_;
  std::shared_ptr<CancelGroup> calls_ = std::make_shared<CancelGroup>();
};

}  // namespace facegan_binding
