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
  // z and c were copied when the call was made (ParseLatents): a later change to the JS arrays
  // (or their buffers being detached) cannot reach the running job.
  MappingJob(Napi::Env env, std::shared_ptr<facegan::Generator> gen, facegan::MappingArgs args,
             std::shared_ptr<facegan::CancelFlag> cancel, std::vector<float> z, std::vector<float> c)
      : Job(env, "facegan:mapping"), gen_(std::move(gen)), args_(args), cancel_(std::move(cancel)),
        z_(std::move(z)), c_(std::move(c)) {
    args_.z = z_.data();
    args_.c = c_.empty() ? nullptr : c_.data();
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

// The inputs of one image call, copied when the call is made (see MappingJob).
struct ImageInputs {
  std::vector<float> ws, z, c;
  std::vector<uint32_t> seeds;
};

// synthesis (ws / z → images) or generate (z / seeds → images): the outputs are allocated in
// the worker and handed to JS without a copy.
class ImageJob : public Job {
 public:
  ImageJob(Napi::Env env, std::shared_ptr<facegan::Generator> gen, bool generate, facegan::GenerateArgs args,
           bool want_float, bool want_u8, std::shared_ptr<facegan::CancelFlag> cancel, ImageInputs in)
      : Job(env, generate ? "facegan:generate" : "facegan:synthesis"), gen_(std::move(gen)), generate_(generate),
        args_(args), want_float_(want_float), want_u8_(want_u8), cancel_(std::move(cancel)), in_(std::move(in)) {
    args_.cancel = cancel_.get();
  }

  void Execute() override {
    const auto& info = gen_->info();
    values_ = size_t(args_.n) * info.img_channels * info.img_resolution * info.img_resolution;
    if (want_float_) {
      f32_ = static_cast<float*>(AllocOrNull(values_ * sizeof(float)));
      if (!f32_) return SetError("out of memory allocating the float image output");
    }
    if (want_u8_) {
      u8_ = static_cast<uint8_t*>(AllocOrNull(values_));
      if (!u8_) return SetError("out of memory allocating the uint8 image output");
    }
    auto data = [](auto& v) { return v.empty() ? nullptr : v.data(); };
    facegan::Status s;
    if (generate_) {
      facegan::GenerateArgs a = args_;
      a.z = data(in_.z);
      a.seeds = data(in_.seeds);
      a.c = data(in_.c);
      a.img = f32_;
      a.img_u8 = u8_;
      s = gen_->generate(a);
    } else {
      facegan::SynthesisArgs a;
      a.n = args_.n;
      a.ws = data(in_.ws);
      a.z = data(in_.z);
      a.noise = args_.noise;
      a.noise_seed = args_.noise_seed;
      a.image_offset = args_.image_offset;
      a.img = f32_;
      a.img_u8 = u8_;
      a.cancel = args_.cancel;
      s = gen_->synthesis(a);
    }
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

  ~ImageJob() override {
    std::free(f32_);
    std::free(u8_);
  }

 private:
  std::shared_ptr<facegan::Generator> gen_;
  bool generate_;
  facegan::GenerateArgs args_;
  bool want_float_, want_u8_;
  std::shared_ptr<facegan::CancelFlag> cancel_;
  ImageInputs in_;
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


// Readers of the fields of a call's options object. Absent (undefined) gives the fallback; a
// value of the wrong type throws a TypeError, one out of range a RangeError, both naming the
// field; they then return false (the caller returns with the exception pending).
bool ThrowType(Napi::Env env, const std::string& msg) {
  Napi::TypeError::New(env, msg).ThrowAsJavaScriptException();
  return false;
}
bool ThrowRange(Napi::Env env, const std::string& msg) {
  Napi::RangeError::New(env, msg).ThrowAsJavaScriptException();
  return false;
}

bool ReadNumber(const Napi::Object& o, const char* key, double fallback, double* out) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return *out = fallback, true;
  if (!v.IsNumber()) return ThrowType(o.Env(), std::string(key) + " must be a number");
  *out = v.As<Napi::Number>().DoubleValue();
  return true;
}

// An integer field in [lo, hi].
bool ReadInteger(const Napi::Object& o, const char* key, double fallback, double lo, double hi, double* out) {
  if (!ReadNumber(o, key, fallback, out)) return false;
  if (!(*out >= lo && *out <= hi) || std::floor(*out) != *out)
    return ThrowRange(o.Env(), std::string(key) + " must be an integer in [" + std::to_string(int64_t(lo)) + ", " +
                                   std::to_string(int64_t(hi)) + "]");
  return true;
}

bool ReadBool(const Napi::Object& o, const char* key, bool* out) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return *out = false, true;
  if (!v.IsBoolean()) return ThrowType(o.Env(), std::string(key) + " must be a boolean");
  *out = v.As<Napi::Boolean>().Value();
  return true;
}

// A typed-array field copied now (undefined or null: `out` stays empty and *given false).
template <typename T, typename TA>
bool ReadArray(const Napi::Object& o, const char* key, napi_typedarray_type type, const char* type_name,
               std::vector<T>* out, bool* given) {
  Napi::Value v = o.Get(key);
  *given = !(v.IsUndefined() || v.IsNull());
  if (!*given) return true;
  if (!IsTypedArrayOf(v, type)) return ThrowType(o.Env(), std::string(key) + " must be a " + type_name);
  TA a = v.As<TA>();
  out->assign(a.Data(), a.Data() + a.ElementLength());
  return true;
}
bool ReadF32(const Napi::Object& o, const char* key, std::vector<float>* out, bool* given) {
  return ReadArray<float, Napi::Float32Array>(o, key, napi_float32_array, "Float32Array", out, given);
}

// The number of images of an input of `len` values, `row` values per image: a RangeError unless
// it is a whole number in [1, 1024].
bool ImagesOf(Napi::Env env, const char* what, size_t len, size_t row, int* n) {
  if (row == 0) return ThrowRange(env, std::string("this model takes no ") + what);
  if (len == 0 || len % row != 0)
    return ThrowRange(env, std::string(what) + " must hold n × " + std::to_string(row) + " values (n ≥ 1)");
  if (len / row > 1024) return ThrowRange(env, std::string(what) + " holds more than 1024 images (the most per call)");
  *n = int(len / row);
  return true;
}

// The class labels of a call of n images: required (n × cDim) by a conditional model, refused
// by an unconditional one.
bool ReadLabels(const Napi::Object& o, const facegan::ModelInfo& m, int n, std::vector<float>* c) {
  bool given = false;
  if (!ReadF32(o, "c", c, &given)) return false;
  if (m.c_dim == 0) return given ? ThrowRange(o.Env(), "c must be absent: this model is unconditional") : true;
  if (!given) return ThrowType(o.Env(), "c (n × cDim one-hot labels) is required: this model is conditional");
  if (c->size() != size_t(n) * m.c_dim) return ThrowRange(o.Env(), "c must hold n × cDim values");
  return true;
}

// psi and truncationCutoff (the core checks the cutoff against numWs).
bool ReadTruncation(const Napi::Object& o, float* psi, int* cutoff) {
  double p = 1, c = -1;
  if (!ReadNumber(o, "psi", 1, &p)) return false;
  if (!std::isfinite(p)) return ThrowRange(o.Env(), "psi must be finite");
  if (!ReadInteger(o, "truncationCutoff", -1, -1, 1 << 30, &c)) return false;
  *psi = float(p);
  *cutoff = int(c);
  return true;
}

// noiseMode, noiseSeed, imageOffset and the outputs (float32 / uint8, at least one).
bool ReadRender(const Napi::Object& o, facegan::GenerateArgs* a, bool* want_float, bool* want_u8) {
  Napi::Value mode = o.Get("noiseMode");
  if (!mode.IsUndefined() && !(mode.IsString() && ParseNoise(mode.As<Napi::String>().Utf8Value(), &a->noise)))
    return ThrowType(o.Env(), "noiseMode must be 'const', 'random' or 'none'");
  double seed = 0, offset = 0;
  if (!ReadInteger(o, "noiseSeed", 0, 0, 9007199254740991.0, &seed)) return false;
  if (!ReadInteger(o, "imageOffset", 0, 0, 4294967295.0, &offset)) return false;
  a->noise_seed = uint64_t(seed);
  a->image_offset = uint32_t(offset);
  if (!ReadBool(o, "float32", want_float) || !ReadBool(o, "uint8", want_u8)) return false;
  if (!*want_float && !*want_u8) return ThrowType(o.Env(), "no output requested: set float32 and / or uint8 to true");
  return true;
}

}  // namespace

Napi::Function GeneratorWrap::Init(Napi::Env env) {
  Napi::Function ctor = DefineClass(env, "NativeGenerator",
                                    {
                                        InstanceMethod<&GeneratorWrap::Info>("info"),
                                        InstanceMethod<&GeneratorWrap::Mapping>("mapping"),
                                        InstanceMethod<&GeneratorWrap::Synthesis>("synthesis"),
                                        InstanceMethod<&GeneratorWrap::Generate>("generate"),
                                        InstanceMethod<&GeneratorWrap::ChunkImages>("chunkImages"),
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
  lo.max_chunk = int(AttrAsDouble(opts, "maxChunk", 0));
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

// Every call takes one options object (lib/native.ts types it); its arrays are copied before
// the call returns its Promise. Bad fields throw a TypeError / RangeError at once; a failed run
// rejects with an Error whose `status` is 'cancelled' (dispose() or the `cancel` token),
// 'non-finite' (NaN / ±Inf output) or absent.

// The options object of a call (a TypeError unless it is an object).
static bool CallOptions(const Napi::CallbackInfo& info, const char* usage, Napi::Object* out) {
  if (info.Length() < 1 || !info[0].IsObject() || info[0].IsArray() || info[0].IsTypedArray())
    return ThrowType(info.Env(), usage);
  *out = info[0].As<Napi::Object>();
  return true;
}

// mapping({ z, c?, psi?, truncationCutoff?, cancel? }) → Promise<Float32Array> (n × numWs × wDim)
Napi::Value GeneratorWrap::Mapping(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!gen_) FG_THROW_TYPE(env, "generator is disposed");
  const facegan::ModelInfo& m = gen_->info();
  Napi::Object o;
  if (!CallOptions(info, "mapping({ z: Float32Array, c?, psi?, truncationCutoff?, cancel? })", &o)) return {};
  std::vector<float> z, c;
  bool given = false;
  facegan::MappingArgs a;
  if (!ReadF32(o, "z", &z, &given)) return {};
  if (!given) FG_THROW_TYPE(env, "z (a Float32Array of n × zDim values) is required");
  if (!ImagesOf(env, "z", z.size(), size_t(m.z_dim), &a.n) || !ReadLabels(o, m, a.n, &c) ||
      !ReadTruncation(o, &a.psi, &a.truncation_cutoff))
    return {};
  std::shared_ptr<facegan::CancelFlag> flag = CallFlag(o.Get("cancel"));
  if (!flag) return {};
  auto* job = new MappingJob(env, gen_, a, std::move(flag), std::move(z), std::move(c));
  Napi::Promise p = job->Promise();
  job->Queue();
  return p;
}

// synthesis({ ws | z, noiseMode?, noiseSeed?, imageOffset?, float32?, uint8?, cancel? })
//   → Promise<{ float32?, uint8? }>. ws (n × numWs × wDim) for StyleGAN2, z (n × zDim) for
// ProGAN: the core refuses the other one.
Napi::Value GeneratorWrap::Synthesis(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!gen_) FG_THROW_TYPE(env, "generator is disposed");
  const facegan::ModelInfo& m = gen_->info();
  Napi::Object o;
  if (!CallOptions(info, "synthesis({ ws | z: Float32Array, noiseMode?, noiseSeed?, imageOffset?, float32?, uint8?, cancel? })", &o))
    return {};
  ImageInputs in;
  bool has_ws = false, has_z = false, want_float = false, want_u8 = false;
  facegan::GenerateArgs a;
  if (!ReadF32(o, "ws", &in.ws, &has_ws) || !ReadF32(o, "z", &in.z, &has_z)) return {};
  if (has_ws == has_z) FG_THROW_TYPE(env, "give exactly one of ws (StyleGAN2) and z (ProGAN)");
  if (has_ws ? !ImagesOf(env, "ws", in.ws.size(), size_t(m.num_ws) * m.w_dim, &a.n)
             : !ImagesOf(env, "z", in.z.size(), size_t(m.z_dim), &a.n))
    return {};
  if (!ReadRender(o, &a, &want_float, &want_u8)) return {};
  std::shared_ptr<facegan::CancelFlag> flag = CallFlag(o.Get("cancel"));
  if (!flag) return {};
  auto* job = new ImageJob(env, gen_, false, a, want_float, want_u8, std::move(flag), std::move(in));
  Napi::Promise p = job->Promise();
  job->Queue();
  return p;
}

// generate({ z | seeds, c?, psi?, truncationCutoff?, noiseMode?, noiseSeed?, imageOffset?,
//            float32?, uint8?, cancel? }) → Promise<{ float32?, uint8? }>: latents → images in one
// native call (facegan::Generator::generate). seeds: a Uint32Array, one per image.
Napi::Value GeneratorWrap::Generate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!gen_) FG_THROW_TYPE(env, "generator is disposed");
  const facegan::ModelInfo& m = gen_->info();
  Napi::Object o;
  if (!CallOptions(info, "generate({ z | seeds, c?, psi?, truncationCutoff?, noiseMode?, noiseSeed?, imageOffset?, float32?, uint8?, cancel? })", &o))
    return {};
  ImageInputs in;
  bool has_z = false, has_seeds = false, want_float = false, want_u8 = false;
  facegan::GenerateArgs a;
  if (!ReadF32(o, "z", &in.z, &has_z) ||
      !ReadArray<uint32_t, Napi::Uint32Array>(o, "seeds", napi_uint32_array, "Uint32Array", &in.seeds, &has_seeds))
    return {};
  if (has_z == has_seeds) FG_THROW_TYPE(env, "give exactly one of z (Float32Array) and seeds (Uint32Array)");
  if (has_z ? !ImagesOf(env, "z", in.z.size(), size_t(m.z_dim), &a.n) : !ImagesOf(env, "seeds", in.seeds.size(), 1, &a.n))
    return {};
  if (!ReadLabels(o, m, a.n, &in.c) || !ReadTruncation(o, &a.psi, &a.truncation_cutoff) ||
      !ReadRender(o, &a, &want_float, &want_u8))
    return {};
  std::shared_ptr<facegan::CancelFlag> flag = CallFlag(o.Get("cancel"));
  if (!flag) return {};
  auto* job = new ImageJob(env, gen_, true, a, want_float, want_u8, std::move(flag), std::move(in));
  Napi::Promise p = job->Promise();
  job->Queue();
  return p;
}

// chunkImages() → number: the most images the engine runs at once (facegan::Generator::chunk_images).
Napi::Value GeneratorWrap::ChunkImages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!gen_) FG_THROW_TYPE(env, "generator is disposed");
  return Napi::Number::New(env, gen_->chunk_images());
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

std::shared_ptr<facegan::CancelFlag> GeneratorWrap::CallFlag(const Napi::Value& token) {
  Napi::Env env = token.Env();
  auto flag = std::make_shared<facegan::CancelFlag>(false);
  if (!token.IsUndefined() && !token.IsNull()) {
    Napi::Value h = token.IsObject() ? token.As<Napi::Object>().Get(kTokenKey) : env.Undefined();
    if (!h.IsExternal()) {
      Napi::TypeError::New(env, "cancel must be a token from createCancelToken()").ThrowAsJavaScriptException();
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
