// facegan-native core: the public C++ API. Plain C++17, no Node, no CUDA headers.
// Used by the N-API binding (native/binding) and by the C++ tools (native/tools).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace facegan {

// What kind of failure a Status is. The binding maps the kinds to distinct JS error codes.
enum class StatusCode {
  Ok = 0,
  Error,      // any failure not listed below (bad argument, out of memory, engine fault)
  Cancelled,  // the call's cancel flag was set (dispose() / AbortSignal); outputs are undefined
  NonFinite,  // the computation finished but produced NaN / ±Inf (corrupt weights or absurd config)
  // A backend could not get the memory for the images of one call. The Generator then halves
  // its chunk (see Generator::chunk_images) and retries; callers see it only when one image
  // does not fit.
  OutOfMemory,
};

// A failure is a message, never an exception across this API and never an abort.
struct Status {
  bool ok = true;
  std::string message;
  StatusCode code = StatusCode::Ok;
  static Status Ok() { return {}; }
  static Status Error(std::string msg) { return {false, std::move(msg), StatusCode::Error}; }
  static Status Cancelled(std::string msg = "cancelled") { return {false, std::move(msg), StatusCode::Cancelled}; }
  static Status NonFinite(std::string msg) { return {false, std::move(msg), StatusCode::NonFinite}; }
  static Status OutOfMemory(std::string msg) { return {false, std::move(msg), StatusCode::OutOfMemory}; }
  bool cancelled() const { return !ok && code == StatusCode::Cancelled; }
  bool non_finite() const { return !ok && code == StatusCode::NonFinite; }
  explicit operator bool() const { return ok; }
};

// A cancel flag a call reads (never writes). Set it (store true, any memory order) from any
// thread while the call runs; the engine stops at its next check (between layers / sub-batches /
// images, see backend.h) and the call returns Status::Cancelled. nullptr: not cancellable.
using CancelFlag = std::atomic<bool>;

inline bool is_cancelled(const CancelFlag* f) { return f && f->load(std::memory_order_relaxed); }

enum class DType { F32, F16, BF16 };

// A tensor the caller owns (e.g. a view into a safetensors file or a JS TypedArray).
// The core reads it during Generator::create and keeps no pointer to it afterwards.
struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t nbytes = 0;
};

enum class NoiseMode { Const, Random, None };
enum class Precision { FP32, FP16, BF16 };

struct ModelInfo {
  std::string arch;  // "stylegan2" or "progan" (ProGAN: w_dim = c_dim = num_ws = mapping_layers = 0)
  int z_dim = 0, w_dim = 0, c_dim = 0;
  int img_resolution = 0, img_channels = 0, num_ws = 0;
  int mapping_layers = 0;
  float conv_clamp = -1.0f;  // < 0: no clamp
  int64_t num_params = 0;
};

struct LoadOptions {
  std::string backend = "cpu";  // a name from available_backends(): "cpu", "cuda"
  int device_index = 0;         // GPU ordinal for "cuda"
  Precision precision = Precision::FP32;
  int num_threads = 0;          // CPU worker threads; 0 = one per hardware thread
  // The most images the backend runs at once (a "chunk"); 0 = as many as the backend's memory
  // estimate allows (Backend::images_per_call). Larger requests are split by the Generator into
  // chunks; the images are the same bits whatever the chunk (a documented knob: tests force a
  // tiny chunk with it, a service may bound its memory with it). In [0, 1024].
  int max_chunk = 0;
};

struct MappingArgs {
  int n = 0;
  const float* z = nullptr;  // n × z_dim
  const float* c = nullptr;  // n × c_dim (one-hot), nullptr when c_dim == 0
  float psi = 1.0f;
  int truncation_cutoff = -1;  // truncate rows [0, cutoff); -1 = all rows
  float* ws = nullptr;         // out: n × num_ws × w_dim
  // Optional: stop early when *cancel becomes true (Status::Cancelled). The Generator scans ws
  // after the backend returns and answers Status::NonFinite if any value is NaN / ±Inf.
  const CancelFlag* cancel = nullptr;
};

// The synthesis network. StyleGAN2: the input is ws (from mapping), z must be null. ProGAN
// (info().arch == "progan"): there is no mapping network; the input is z itself (n × z_dim,
// normalised inside), ws must be null, and the noise fields are ignored (ProGAN has no noise).
struct SynthesisArgs {
  int n = 0;
  const float* ws = nullptr;  // StyleGAN2: n × num_ws × w_dim
  const float* z = nullptr;   // ProGAN: n × z_dim
  NoiseMode noise = NoiseMode::Const;
  uint64_t noise_seed = 0;     // for NoiseMode::Random
  // For NoiseMode::Random only: the first image of this call is image #image_offset of the
  // request. Image i's random noise depends on (noise_seed, image_offset + i) alone, so a request
  // split into chunks (same noise_seed, image_offset = chunk start) gives the same images.
  uint32_t image_offset = 0;
  float* img = nullptr;        // out (optional): n × C × H × W float32, unclamped (ProGAN: the toRGB value v)
  // out (optional): n × H × W × C. StyleGAN2: clamp(img·127.5 + 128, 0, 255) truncated (float32
  // steps, as generate.py). ProGAN: round(clamp(v·scale + offset, 0, 255)) with the config's
  // output.scale / offset, computed in double and rounded half up (progan-reference.ts
  // proganToUint8); the TF-Hub clip of v to [0, 1] is never applied.
  uint8_t* img_u8 = nullptr;
  // Optional: stop early when *cancel becomes true (Status::Cancelled; outputs undefined).
  const CancelFlag* cancel = nullptr;
  // Set by the Generator for the backend (callers leave it null): where a backend that
  // reports_nonfinite() stores the number of NaN / ±Inf values of the float image of this call
  // (before any clamp / uint8 conversion). Generator::synthesis answers Status::NonFinite when
  // it is > 0, so no NaN image is ever handed back as a face. See backend.h.
  uint64_t* nonfinite_count = nullptr;
};

// z or seeds → images in one call: the mapping network's ws stay in native memory and the core
// chooses the path by architecture (StyleGAN2: mapping, truncation, synthesis from ws; ProGAN:
// z straight into the synthesis network). On a backend that runs the whole chain itself (the
// CUDA backend: Backend::generate) the ws never leave the device.
struct GenerateArgs {
  int n = 0;
  // The latents: exactly one of z (n × z_dim) and seeds (n seeds; image i gets
  // z = numpy.random.RandomState(seeds[i]).randn(z_dim) rounded to float32, as the official
  // generate.py does).
  const float* z = nullptr;
  const uint32_t* seeds = nullptr;
  // Conditional StyleGAN2 (c_dim > 0): n × c_dim one-hot labels, required; otherwise ignored.
  const float* c = nullptr;
  // Truncation (StyleGAN2, as MappingArgs). A ProGAN model has none: psi must be 1, cutoff -1.
  float psi = 1.0f;
  int truncation_cutoff = -1;
  // Noise and outputs as SynthesisArgs (image_offset: this call's first image is image
  // #image_offset of a larger request, for NoiseMode::Random).
  NoiseMode noise = NoiseMode::Const;
  uint64_t noise_seed = 0;
  uint32_t image_offset = 0;
  float* img = nullptr;
  uint8_t* img_u8 = nullptr;
  const CancelFlag* cancel = nullptr;
};

class Backend;
struct Network;

class Generator {
 public:
  // config_json: the `config` string of docs/weights-format.md. The tensors are validated
  // against it; every mismatch is reported by name.
  static Status create(const std::string& config_json, const std::vector<TensorView>& tensors,
                       const LoadOptions& options, std::unique_ptr<Generator>* out);
  ~Generator();
  Generator(const Generator&) = delete;
  Generator& operator=(const Generator&) = delete;

  const ModelInfo& info() const;
  const char* backend_name() const;

  // Thread-safe: calls on one generator are serialised internally.
  // mapping: StyleGAN2 only (a ProGAN model has no mapping network: an error).
  // Status::NonFinite when any output w is NaN / ±Inf; Status::Cancelled when args.cancel was set.
  Status mapping(const MappingArgs& args);
  // synthesis: ws → images (StyleGAN2), or z → images (ProGAN); see SynthesisArgs.
  // Status::NonFinite when any value of the float image is NaN / ±Inf (the outputs are then
  // not meant to be used); Status::Cancelled when args.cancel was set.
  Status synthesis(const SynthesisArgs& args);
  // generate: z / seeds → images (see GenerateArgs). The same bits as mapping then synthesis
  // (StyleGAN2) or synthesis from z (ProGAN). Status::NonFinite / Cancelled as those.
  Status generate(const GenerateArgs& args);

  // The most images synthesis / generate hand to the backend at once: LoadOptions::max_chunk
  // when set, else the backend's Backend::images_per_call(), and never more than a chunk that
  // failed with Status::OutOfMemory (the Generator halves it and retries; the halved size is kept
  // for later calls). Requests of more images run chunk by chunk; the chunking changes no bits
  // (random noise is keyed by the image's index in the request) and cancellation is checked
  // between chunks as well as inside them. This is the only place requests are split: the
  // backends and the JS layer do not (a backend short of memory answers Status::OutOfMemory, see
  // backend.h). (A backend that does not count non-finite values, asked
  // for uint8 only, gets chunks of at most 64 MiB of float image, which the Generator scans.)
  // Tests inject the out-of-memory with FACEGAN_INJECT_OOM_ABOVE=N in the environment of
  // create(): a chunk of more than N images then fails as if the backend had run out of memory.
  // Answers at once, even while a call runs (the chunk as last computed: at create, and at the
  // start and on each halving of a call).
  int chunk_images() const;

 private:
  Generator();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The names of the backends compiled into this build that can run here (e.g. {"cpu"} or
// {"cuda", "cpu"}), best first. `why_not` receives, per missing backend, why it is missing.
std::vector<std::string> available_backends(std::string* why_not = nullptr);

// numpy.random.RandomState(seed).randn(count), bit-exact (MT19937 + polar Gaussian).
void numpy_randn(uint32_t seed, size_t count, double* out);

}  // namespace facegan
