#include "generator_wrap.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "common.h"

namespace facegan_binding {
namespace {

// Output memory is handed to JS without a copy: an external ArrayBuffer that frees it.
// Runtimes that forbid external buffers (Electron's memory cage) get a copy instead.
Napi::ArrayBuffer HandOver(Napi::Env env, void* data, size_t bytes) {
#ifdef NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, bytes);
  std::memcpy(ab.Data(), data, bytes);
  std::free(data);
  return ab;
#else
  return Napi::ArrayBuffer::New(env, data, bytes, [](Napi::Env, void* p) { std::free(p); });
#endif
}

void* AllocOrNull(size_t bytes) { return std::malloc(bytes == 0 ? 1 : bytes); }

// The JS error for a failed Status: its message, and for the kinds lib/ maps to their own
// codes a `status` property ('cancelled' | 'non-finite').
Napi::Value StatusError(Napi::Env env, const facegan::Status& s) {
  Napi::Error e = Napi::Error::New(env, s.message);
  if (s.code == facegan::StatusCode::Cancelled) e.Set("status", Napi::String::New(env, "cancelled"));
  if (s.code == facegan::StatusCode::NonFinite) e.Set("status", Napi::String::New(env, "non-finite"));
  return e.Value();
}

// Base for every job: a deferred Promise, a Status, and references that keep the JS inputs
// (read in place) alive until the job is done.
class Job : public Napi::AsyncWorker {
 public:
  explicit Job(Napi::Env env, const char* name)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Keep(Napi::Value v) {
    if (v.IsObject()) keep_.push_back(Napi::Persistent(v.As<Napi::Object>()));
  }

 protected:
  void OnError(const Napi::Error& e) override {
    if (failed_) return deferred_.Reject(StatusError(Env(), status_));
    deferred_.Reject(e.Value());
  }
  void Fail(const facegan::Status& s) {
    status_ = s;
    failed_ = true;
    SetError(s.message);
  }
  Napi::Promise::Deferred deferred_;
  facegan::Status status_;
  bool failed_ = false;

 private:
  std::vector<Napi::ObjectReference> keep_;
};

class CreateJob : public Job {
 public:
  CreateJob(Napi::Env env, std::string config, std::vector<facegan::TensorView> tensors,
            facegan::LoadOptions options, Napi::FunctionReference* ctor)
      : Job(env, "facegan:create"), config_(std::move(config)), tensors_(std::move(tensors)),
        options_(std::move(options)), ctor_(ctor) {}

  void Execute() override {
    std::unique_ptr<facegan::Generator> gen;
    facegan::Status s = facegan::Generator::create(config_, tensors_, options_, &gen);
    if (!s) return Fail(s);
    gen_ = std::move(gen);
  }

  void OnOK() override {
    Napi::Object obj = ctor_->New({});
    GeneratorWrap::Attach(obj, std::shared_ptr<facegan::Generator>(std::move(gen_)));
    deferred_.Resolve(obj);
  }

 private:
  std::string config_;
  std::vector<facegan::TensorView> tensors_;
  facegan::LoadOptions options_;
  Napi::FunctionReference* ctor_;
  std::unique_ptr<facegan::Generator> gen_;
};

class MappingJob : public Job {
 public:
  // z and c are copied here, when the call is made: a later change to the JS arrays (or their
  // buffers being detached) cannot reach the running job.
  MappingJob(Napi::Env env, std::shared_ptr<facegan::Generator> gen, facegan::MappingArgs args,
             std::shared_ptr<facegan::CancelFlag> cancel, size_t z_len, size_t c_len)
      : Job(env, "facegan:mapping"), gen_(std::move(gen)), args_(args), cancel_(std::move(cancel)),
        z_(args.z, args.z + z_len), c_(args.c ? args.c : nullptr, args.c ? args.c + c_len : nullptr) {
    args_.z = z_.data();
    args_.c = args.c ? c_.data() : nullptr;
    args_.cancel = cancel_.get();
  }

  void Execute() override {
    const auto& in = gen_->info();
    bytes_ = sizeof(float) * size_t(args_.n) * in.num_ws * in.w_dim;
    out_ = static_cast<float*>(AllocOrNull(bytes_));
    if (!out_) return SetError("out of memory allocating the mapping output");
    args_.ws = out_;
    facegan::Status s = gen_->mapping(args_);
    if (!s) return Fail(s);
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::ArrayBuffer ab = HandOver(env, out_, bytes_);
    out_ = nullptr;
    deferred_.Resolve(Napi::Float32Array::New(env, bytes_ / sizeof(float), ab, 0));
  }

  ~MappingJob() override { std::free(out_); }

 private:
  std::shared_ptr<facegan::Generator> gen_;
  facegan::MappingArgs args_;
  std::shared_ptr<facegan::CancelFlag> cancel_;
  std::vector<float> z_, c_;
  float* out_ = nullptr;
  size_t bytes_ = 0;
};

class SynthesisJob : public Job {
 public:
  // The input (ws or z) is copied here, when the call is made (see MappingJob).
  SynthesisJob(Napi::Env env, std::shared_ptr<facegan::Generator> gen, facegan::SynthesisArgs args,
               bool want_float, bool want_u8, std::shared_ptr<facegan::CancelFlag> cancel, size_t in_len)
      : Job(env, "facegan:synthesis"), gen_(std::move(gen)), args_(args),
        want_float_(want_float), want_u8_(want_u8), cancel_(std::move(cancel)) {
    const float* src = args.ws ? args.ws : args.z;
    input_.assign(src, src + in_len);
    (args.ws ? args_.ws : args_.z) = input_.data();
    args_.cancel = cancel_.get();
  }

  void Execute() override {
    const auto& in = gen_->info();
    size_t values = size_t(args_.n) * in.img_channels * in.img_resolution * in.img_resolution;
    if (want_float_) {
      f32_ = static_cast<float*>(AllocOrNull(values * sizeof(float)));
      if (!f32_) return SetError("out of memory allocating the float image output");
      args_.img = f32_;
    }
    if (want_u8_) {
      u8_ = static_cast<uint8_t*>(AllocOrNull(values));
      if (!u8_) return SetError("out of memory allocating the uint8 image output");
      args_.img_u8 = u8_;
    }
    values_ = values;
    facegan::Status s = gen_->synthesis(args_);
    if (!s) return Fail(s);
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::Object result = Napi::Object::New(env);
    if (f32_) {
      Napi::ArrayBuffer ab = HandOver(env, f32_, values_ * sizeof(float));
      f32_ = nullptr;
      result.Set("float32", Napi::Float32Array::New(env, values_, ab, 0));
    }
    if (u8_) {
      Napi::ArrayBuffer ab = HandOver(env, u8_, values_);
      u8_ = nullptr;
      result.Set("uint8", Napi::Uint8Array::New(env, values_, ab, 0));
    }
    deferred_.Resolve(result);
  }

  ~SynthesisJob() override {
    std::free(f32_);
    std::free(u8_);
  }

 private:
  std::shared_ptr<facegan::Generator> gen_;
  facegan::SynthesisArgs args_;
  bool want_float_, want_u8_;
  std::shared_ptr<facegan::CancelFlag> cancel_;
  std::vector<float> input_;
  float* f32_ = nullptr;
  uint8_t* u8_ = nullptr;
  size_t values_ = 0;
};

bool ParseDType(const std::string& s, facegan::DType* out, size_t* size) {
  if (s == "F32") { *out = facegan::DType::F32; *size = 4; return true; }
  if (s == "F16") { *out = facegan::DType::F16; *size = 2; return true; }
  if (s == "BF16") { *out = facegan::DType::BF16; *size = 2; return true; }
  return false;
}

bool ParsePrecision(const std::string& s, facegan::Precision* out) {
  if (s == "fp32") { *out = facegan::Precision::FP32; return true; }
  if (s == "fp16") { *out = facegan::Precision::FP16; return true; }
  if (s == "bf16") { *out = facegan::Precision::BF16; return true; }
  return false;
}

bool ParseNoise(const std::string& s, facegan::NoiseMode* out) {
  if (s == "const") { *out = facegan::NoiseMode::Const; return true; }
  if (s == "random") { *out = facegan::NoiseMode::Random; return true; }
  if (s == "none") { *out = facegan::NoiseMode::None; return true; }
  return false;
}

}  // namespace

Napi::Function GeneratorWrap::Init(Napi::Env env) {
  Napi::Function ctor = DefineClass(env, "NativeGenerator",
                                    {
                                        InstanceMethod<&GeneratorWrap::Info>("info"),
                                        InstanceMethod<&GeneratorWrap::Mapping>("mapping"),
                                        InstanceMethod<&GeneratorWrap::Synthesis>("synthesis"),
                                        InstanceMethod<&GeneratorWrap::Dispose>("dispose"),
                                    });
  auto* ref = new Napi::FunctionReference(Napi::Persistent(ctor));
  env.SetInstanceData<Napi::FunctionReference>(ref);
  return ctor;
}

GeneratorWrap::GeneratorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GeneratorWrap>(info) {}

void GeneratorWrap::Attach(Napi::Object obj, std::shared_ptr<facegan::Generator> gen) {
  GeneratorWrap::Unwrap(obj)->gen_ = std::move(gen);
}

// createGenerator(configJson: string, tensors: {name, dtype, shape, data}[], options) → Promise
Napi::Value GeneratorWrap::Create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsArray() || !info[2].IsObject())
    FG_THROW_TYPE(env, "createGenerator(config: string, tensors: object[], options: object)");
  std::string config = info[0].As<Napi::String>().Utf8Value();
  Napi::Array arr = info[1].As<Napi::Array>();
  Napi::Object opts = info[2].As<Napi::Object>();

  std::vector<facegan::TensorView> views;
  views.reserve(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value item = arr.Get(i);
    if (!item.IsObject()) FG_THROW_TYPE(env, "tensors[" + std::to_string(i) + "] is not an object");
    Napi::Object t = item.As<Napi::Object>();
    facegan::TensorView v;
    v.name = AttrAsString(t, "name", "");
    size_t esize = 0;
    if (!ParseDType(AttrAsString(t, "dtype", ""), &v.dtype, &esize))
      FG_THROW_TYPE(env, "tensor '" + v.name + "': dtype must be F32, F16 or BF16");
    Napi::Value shape = t.Get("shape");
    if (!shape.IsArray()) FG_THROW_TYPE(env, "tensor '" + v.name + "': shape must be an array");
    Napi::Array sa = shape.As<Napi::Array>();
    size_t count = 1;
    for (uint32_t k = 0; k < sa.Length(); k++) {
      Napi::Value d = sa.Get(k);
      double dv = d.IsNumber() ? d.As<Napi::Number>().DoubleValue() : -1;
      if (!(dv >= 0 && dv <= 1e9) || std::floor(dv) != dv)
        FG_THROW_RANGE(env, "tensor '" + v.name + "': bad dimension in shape");
      v.shape.push_back(int64_t(dv));
      count *= size_t(dv);
    }
    Napi::Value data = t.Get("data");
    if (!data.IsTypedArray()) FG_THROW_TYPE(env, "tensor '" + v.name + "': data must be a TypedArray");
    Napi::TypedArray ta = data.As<Napi::TypedArray>();
    v.data = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    v.nbytes = ta.ByteLength();
    if (v.nbytes != count * esize)
      FG_THROW_RANGE(env, "tensor '" + v.name + "': byte length does not match shape and dtype");
    if (reinterpret_cast<uintptr_t>(v.data) % esize != 0)
      FG_THROW_RANGE(env, "tensor '" + v.name + "': data is not aligned to its element size");
    views.push_back(std::move(v));
  }

  facegan::LoadOptions lo;
  lo.backend = AttrAsString(opts, "backend", "cpu");
  lo.device_index = int(AttrAsDouble(opts, "deviceIndex", 0));
  lo.num_threads = int(AttrAsDouble(opts, "threads", 0));
  if (!ParsePrecision(AttrAsString(opts, "precision", "fp32"), &lo.precision))
    FG_THROW_TYPE(env, "precision must be fp32, fp16 or bf16");

  auto* job = new CreateJob(env, std::move(config), std::move(views), std::move(lo),
                            env.GetInstanceData<Napi::FunctionReference>());
  job->Keep(arr);  // the tensors are read in place while the job runs
  Napi::Promise p = job->Promise();
  job->Queue();
  return p;
}

Napi::Value GeneratorWrap::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!gen_) FG_THROW_TYPE(env, "generator is disposed");
  const facegan::ModelInfo& m = gen_->info();
  Napi::Object o = Napi::Object::New(env);
  o.Set("arch", m.arch);
  o.Set("zDim", m.z_dim);
  o.Set("wDim", m.w_dim);
  o.Set("cDim", m.c_dim);
  o.Set("resolution", m.img_resolution);
  o.Set("imageChannels", m.img_channels);
  o.Set("numWs", m.num_ws);
  o.Set("mappingLayers", m.mapping_layers);
  o.Set("convClamp", m.conv_clamp < 0 ? env.Null() : Napi::Number::New(env, m.conv_clamp));
  o.Set("numParams", double(m.num_params));
  o.Set("backend", gen_->backend_name());
  return o;
}

// mapping(z: Float32Array, c: Float32Array | null, n, psi, cutoff, cancelToken?) → Promise<Float32Array>
// Inputs are copied before this returns. Rejects with an Error whose `status` is 'cancelled'
// (dispose() or the token) or 'non-finite' (NaN / ±Inf ws).
Napi::Value GeneratorWrap::Mapping(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!gen_) FG_THROW_TYPE(env, "generator is disposed");
  const facegan::ModelInfo& m = gen_->info();
  if (info.Length() < 5 || !IsTypedArrayOf(info[0], napi_float32_array) || !info[2].IsNumber() ||
      !info[3].IsNumber() || !info[4].IsNumber())
    FG_THROW_TYPE(env, "mapping(z: Float32Array, c: Float32Array | null, n, psi, cutoff)");
  facegan::MappingArgs a;
  a.n = info[2].As<Napi::Number>().Int32Value();
  a.psi = info[3].As<Napi::Number>().FloatValue();
  a.truncation_cutoff = info[4].As<Napi::Number>().Int32Value();
  Napi::Float32Array z = info[0].As<Napi::Float32Array>();
  if (a.n < 1 || z.ElementLength() != size_t(a.n) * m.z_dim) FG_THROW_RANGE(env, "z must hold n × zDim values");
  a.z = z.Data();
  if (m.c_dim > 0) {
    if (!IsTypedArrayOf(info[1], napi_float32_array)) FG_THROW_TYPE(env, "c must be a Float32Array");
    Napi::Float32Array c = info[1].As<Napi::Float32Array>();
    if (c.ElementLength() != size_t(a.n) * m.c_dim) FG_THROW_RANGE(env, "c must hold n × cDim values");
    a.c = c.Data();
  }
  std::shared_ptr<facegan::CancelFlag> flag = CallFlag(info, 5);
  if (!flag) return {};
  auto* job = new MappingJob(env, gen_, a, std::move(flag), size_t(a.n) * m.z_dim, a.c ? size_t(a.n) * m.c_dim : 0);
  Napi::Promise p = job->Promise();
  job->Queue();
  return p;
}

// synthesis(wsOrZ: Float32Array, n, noiseMode, noiseSeed, imageOffset, wantFloat, wantU8, cancelToken?)
//   → Promise<{float32?, uint8?}>. The input is copied before this returns; errors as mapping().
Napi::Value GeneratorWrap::Synthesis(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!gen_) FG_THROW_TYPE(env, "generator is disposed");
  const facegan::ModelInfo& m = gen_->info();
  if (info.Length() < 7 || !IsTypedArrayOf(info[0], napi_float32_array) || !info[1].IsNumber() ||
      !info[2].IsString() || !info[3].IsNumber() || !info[4].IsNumber() || !info[5].IsBoolean() ||
      !info[6].IsBoolean())
    FG_THROW_TYPE(env, "synthesis(ws: Float32Array, n, noiseMode, noiseSeed, imageOffset, wantFloat, wantU8)");
  facegan::SynthesisArgs a;
  a.n = info[1].As<Napi::Number>().Int32Value();
  // StyleGAN2 synthesises from ws; ProGAN (no mapping network) from z.
  Napi::Float32Array input = info[0].As<Napi::Float32Array>();
  const bool from_z = m.arch == "progan";
  const size_t row = from_z ? size_t(m.z_dim) : size_t(m.num_ws) * m.w_dim;
  if (a.n < 1 || input.ElementLength() != size_t(a.n) * row)
    FG_THROW_RANGE(env, from_z ? "z must hold n × zDim values" : "ws must hold n × numWs × wDim values");
  (from_z ? a.z : a.ws) = input.Data();
  if (!ParseNoise(info[2].As<Napi::String>().Utf8Value(), &a.noise))
    FG_THROW_TYPE(env, "noiseMode must be const, random or none");
  double seed = info[3].As<Napi::Number>().DoubleValue();
  if (!(seed >= 0 && seed <= 9007199254740991.0)) FG_THROW_RANGE(env, "noiseSeed must be a safe integer ≥ 0");
  a.noise_seed = uint64_t(seed);
  double offset = info[4].As<Napi::Number>().DoubleValue();
  if (!(offset >= 0 && offset <= 4294967295.0)) FG_THROW_RANGE(env, "imageOffset must be an integer in [0, 2^32)");
  a.image_offset = uint32_t(offset);
  bool want_float = info[5].As<Napi::Boolean>().Value();
  bool want_u8 = info[6].As<Napi::Boolean>().Value();
  std::shared_ptr<facegan::CancelFlag> flag = CallFlag(info, 7);
  if (!flag) return {};
  auto* job = new SynthesisJob(env, gen_, a, want_float, want_u8, std::move(flag), size_t(a.n) * row);
  Napi::Promise p = job->Promise();
  job->Queue();
  return p;
}

// Cancels every running and queued call of this generator (they reject with status
// 'cancelled' at the engine's next check), then drops the engine: running jobs hold their own
// reference, the last one frees it.
Napi::Value GeneratorWrap::Dispose(const Napi::CallbackInfo& info) {
  calls_->Cancel();
  gen_.reset();
  return info.Env().Undefined();
}

namespace {
// The hidden state of a JS cancel token: its group, kept alive by the token object.
struct TokenState {
  std::shared_ptr<CancelGroup> group = std::make_shared<CancelGroup>();
};
const char kTokenKey[] = "__faceganCancel";
}  // namespace

std::shared_ptr<facegan::CancelFlag> GeneratorWrap::CallFlag(const Napi::CallbackInfo& info, size_t token_index) {
  Napi::Env env = info.Env();
  auto flag = std::make_shared<facegan::CancelFlag>(false);
  if (info.Length() > token_index && !info[token_index].IsUndefined() && !info[token_index].IsNull()) {
    Napi::Value t = info[token_index];
    Napi::Value h = t.IsObject() ? t.As<Napi::Object>().Get(kTokenKey) : env.Undefined();
    if (!h.IsExternal()) {
      Napi::TypeError::New(env, "cancelToken must come from createCancelToken()").ThrowAsJavaScriptException();
      return nullptr;
    }
    h.As<Napi::External<TokenState>>().Data()->group->Add(flag);
  }
  calls_->Add(flag);
  return flag;
}

void CancelGroup::Add(const std::shared_ptr<facegan::CancelFlag>& flag) {
  std::lock_guard<std::mutex> lock(mu_);
  size_t k = 0;
  for (auto& w : flags_)
    if (!w.expired()) flags_[k++] = std::move(w);
  flags_.resize(k);
  if (cancelled_) flag->store(true);
  flags_.push_back(flag);
}

void CancelGroup::Cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_ = true;
  for (auto& w : flags_)
    if (auto f = w.lock()) f->store(true);
  flags_.clear();
}

bool CancelGroup::cancelled() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cancelled_;
}

Napi::Value CreateCancelToken(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto* state = new TokenState();
  std::shared_ptr<CancelGroup> group = state->group;
  Napi::Object token = Napi::Object::New(env);
  token.DefineProperty(Napi::PropertyDescriptor::Value(
      kTokenKey, Napi::External<TokenState>::New(env, state, [](Napi::Env, TokenState* s) { delete s; }),
      napi_default));
  token.Set("cancel", Napi::Function::New(env, [group](const Napi::CallbackInfo& ci) {
              group->Cancel();
              return ci.Env().Undefined();
            }, "cancel"));
  token.DefineProperty(Napi::PropertyDescriptor::Accessor(
      env, token, "cancelled", [group](const Napi::CallbackInfo& ci) { return Napi::Boolean::New(ci.Env(), group->cancelled()); },
      napi_enumerable));
  return token;
}

}  // namespace facegan_binding
