// The CUDA backend: prepare() validates the Network description, pre-packs every weight once for
// the chosen precision and uploads it in one copy; mapping(), synthesis() and generate() (z ->
// mapping -> synthesis, the ws never leaving the device) run each call in one pass on one stream
// per generator, with device memory from pools sized by batch (grown on demand; when cudaMalloc
// fails the call answers Status::OutOfMemory and the Generator halves its chunk) and, for
// synthesis, one CUDA graph captured per (batch size, noise mode) and replayed. Host pointers in
// and out: one host->device copy of the inputs and one device->host copy per requested output.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backend.h"
#include "common.cuh"
#include "kernels.h"
#include "modconv_sm90.cuh"
#include "plan.h"

namespace facegan {

bool cuda_backend_available(std::string* why_not);

namespace cuda {
namespace {

constexpr int kRowsPerTile = 32;
constexpr size_t kAlign = 256;
constexpr size_t kNone = ~size_t(0);
constexpr size_t kMaxGraphs = 16;

size_t align_up(size_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

// Host staging of everything prepare() uploads: one allocation and one copy.
class Blob {
 public:
  size_t add(const void* p, size_t bytes) {
    const size_t off = align_up(data_.size());
    data_.resize(off + bytes);
    if (bytes) std::memcpy(data_.data() + off, p, bytes);
    return off;
  }
  template <class T>
  size_t add_vec(const std::vector<T>& v) {
    return add(v.data(), v.size() * sizeof(T));
  }
  const std::vector<uint8_t>& data() const { return data_; }

 private:
  std::vector<uint8_t> data_;
};

// One device allocation, freed on destruction or reset.
class DeviceMem {
 public:
  DeviceMem() = default;
  DeviceMem(const DeviceMem&) = delete;
  DeviceMem& operator=(const DeviceMem&) = delete;
  ~DeviceMem() { reset(); }
  void reset() {
    if (p_) cudaFree(p_);
    p_ = nullptr;
    size_ = 0;
  }
  cudaError_t alloc(size_t bytes) {
    reset();
    if (bytes == 0) return cudaSuccess;
    const cudaError_t e = cudaMalloc(&p_, bytes);
    if (e != cudaSuccess) {
      p_ = nullptr;
      return e;
    }
    size_ = bytes;
    return cudaSuccess;
  }
  uint8_t* get() const { return static_cast<uint8_t*>(p_); }
  size_t size() const { return size_; }

 private:
  void* p_ = nullptr;
  size_t size_ = 0;
};

// Pinned (page-locked) host memory for staging copies: truly asynchronous DMA, no hidden
// pageable bounce buffer. Grows on demand; freed on destruction.
class PinnedMem {
 public:
  PinnedMem() = default;
  PinnedMem(const PinnedMem&) = delete;
  PinnedMem& operator=(const PinnedMem&) = delete;
  ~PinnedMem() { reset(); }
  void reset() {
    if (p_) cudaFreeHost(p_);
    p_ = nullptr;
    size_ = 0;
  }
  cudaError_t reserve(size_t bytes) {
    if (bytes <= size_) return cudaSuccess;
    reset();
    const cudaError_t e = cudaMallocHost(&p_, bytes);
    if (e != cudaSuccess) {
      p_ = nullptr;
      return e;
    }
    size_ = bytes;
    return cudaSuccess;
  }
  template <class T>
  T* as() const {
    return static_cast<T*>(p_);
  }

 private:
  void* p_ = nullptr;
  size_t size_ = 0;
};

// Aligned sub-buffers of one allocation; with a null base it only measures. In the emulator
// build each buffer is followed by a guard gap that AddressSanitizer poisons, so a kernel that
// runs past one buffer into the next is caught instead of silently reading its neighbour.
#ifdef FACEGAN_CUDA_EMU
constexpr size_t kGuard = 256;
#endif
class Carver {
 public:
  explicit Carver(uint8_t* base) : base_(base) {}
  template <class T>
  T* take(size_t count) {
    const size_t off = align_up(used_);
    used_ = off + count * sizeof(T);
#ifdef FACEGAN_CUDA_EMU
    const size_t end = used_;
    used_ = align_up(used_) + kGuard;
    if (base_) ::fg_emu::poison(base_ + end, used_ - end);
#endif
    return base_ ? reinterpret_cast<T*>(base_ + off) : nullptr;
  }
  size_t used() const { return used_; }

 private:
  uint8_t* base_;
  size_t used_ = 0;
};

size_t act_size(ActType t) { return t == ActType::F32 ? 4 : 2; }

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::FP32: return "fp32";
    case Precision::FP16: return "fp16";
    case Precision::BF16: return "bf16";
  }
  return "?";
}

uint16_t to_half_bits(float v, ActType t) {
  uint16_t u;
  if (t == ActType::F16) {
    const __half h = __float2half_rn(v);
    std::memcpy(&u, &h, 2);
  } else {
    const __nv_bfloat16 h = __float2bfloat16_rn(v);
    std::memcpy(&u, &h, 2);
  }
  return u;
}

// Appends `v` converted to the activation type.
size_t add_act_values(Blob* blob, const std::vector<float>& v, ActType t) {
  if (t == ActType::F32) return blob->add_vec(v);
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = to_half_bits(v[i], t);
  return blob->add_vec(h);
}

struct FcStep {
  int in = 0, out = 0;
  size_t W = kNone, b = kNone, tiles = kNone;
  int num_tiles = 0;
  int lrelu = 0;
};

struct ConvStep {
  ConvGeom g;  // batch filled per launch
  ConvTile tile = ConvTile::Ffma;
  int Kpad = 0, Npad = 0;
  size_t w = kNone, colscale = kNone, bias = kNone, noise_const = kNone;
  bool modulated = true;  // false: s = 1 (the ones vector), d = 1
  bool has_noise = false;
  float noise_strength = 0.0f;
  int style_off = 0, conv_idx = 0, d_off = -1;
  int activate = 1;
  float slope = 0.2f, gain = 1.41421356237309515f, clamp = -1.0f;
  bool pixel_norm = false;
  float pn_eps = 1e-8f;
  int rgb = -1;  // the toRGB (index in rgbs_) its epilogue runs (modconv.cu: conv_rgb_fits), -1: none
};

struct RgbStep {
  int R = 0, Cin = 0, Cimg = 0;
  size_t w = kNone, bias = kNone;
  bool modulated = true;
  int style_off = 0;
  float clamp = -1.0f;
  bool fused = false;  // run by the previous conv's epilogue (unless the sm_90a kernel takes that conv)
};

// ProGAN's 4x4 start: a row-dot launch (rows packed in NHWC order, indexing.cuh: dense_src_row)
// into a float buffer, then bias + leaky ReLU + pixel norm into the first activation.
struct DenseStep {
  int in = 0, C = 0;  // z_dim, channels of the 4x4 output
  size_t w = kNone, bias = kNone, tiles = kNone;
  int num_tiles = 0;
  int activate = 1;
  float slope = 0.2f, gain = 1.0f;
  bool pixel_norm = true;
  float pn_eps = 1e-8f;
};

struct Step {
  enum Kind { Conv, Rgb, Dense } kind;
  int idx;
};

struct MapBuffers {
  float *z = nullptr, *c = nullptr, *e = nullptr, *xa = nullptr, *xb = nullptr;
  float* ws = nullptr;  // mapping()'s output (generate() writes the ws into the synthesis pool's)
  unsigned long long* nonfinite = nullptr;  // generate(): non-finite values among the ws
};

struct SynthBuffers {
  float* ws = nullptr;
  float* z = nullptr;      // ProGAN input [n][z_dim]
  float* zn = nullptr;     // ProGAN normalised latent
  float* dense = nullptr;  // ProGAN dense output, float [n][16 * C]
  float* styles = nullptr;
  float* dcoef = nullptr;
  float* sinv = nullptr;
  void* act[2] = {nullptr, nullptr};
  void* t = nullptr;  // an up-conv's transposed-conv output before the FIR pass
  float* img[2] = {nullptr, nullptr};
  uint8_t* u8 = nullptr;
  float* noise = nullptr;
  NoiseParams* params = nullptr;
  unsigned long long* nonfinite = nullptr;  // non-finite values of the final image (torgb.cu)
};

class CudaBackend final : public Backend {
 public:
  CudaBackend() = default;
  ~CudaBackend() override;
  const char* name() const override { return "cuda"; }
  bool supports(Arch arch) const override { return arch == Arch::StyleGAN2 || arch == Arch::ProGAN; }
  Status prepare(const Network& net, const LoadOptions& options) override;
  Status mapping(const MappingArgs& args) override;
  Status synthesis(const SynthesisArgs& args) override;
  bool reports_nonfinite() const override { return true; }
  int images_per_call() override;
  bool provides_generate() const override { return !progan_; }
  Status generate(const BackendGenerateArgs& args) override;

 private:
  Status prepare_impl(const Network& net, const LoadOptions& options);
  Status validate(const Network& net) const;
  Status mapping_impl(const MappingArgs& args);
  Status synthesis_impl(const SynthesisArgs& args);
  Status generate_impl(const BackendGenerateArgs& args);
  void carve_mapping(Carver* c, int n, MapBuffers* b) const;
  void carve_synthesis(Carver* c, int n, SynthBuffers* b) const;
  Status ensure_mapping_pool(int n);
  Status enqueue_mapping(const MappingArgs& args, float* ws, unsigned long long* nonfinite);
  Status synthesis_fit(int want, int* fit);
  Status ensure_synthesis_pool(int n);
  Status finish_synthesis(const SynthesisArgs& args, uint64_t* ws_nonfinite);
  Status enqueue_synthesis(int n, NoiseMode mode);
  Status run_synthesis(int n, NoiseMode mode);
  Status check_usable();
  template <typename F>
  Status entry(const char* what, F&& impl);
  void note_failure();
  void clear_graphs();
  template <class T>
  const T* wptr(size_t off) const {
    return off == kNone ? nullptr : reinterpret_cast<const T*>(weights_.get() + off);
  }

  const Network* net_ = nullptr;
  bool progan_ = false;
  bool ready_ = false;
  int dev_ = 0;
  ActType act_ = ActType::F32;
  cudaStream_t stream_ = nullptr;
  bool use_graphs_ = true;
  bool sm90_ = false;  // the sm_90a wgmma / TMA conv runs the layers it fits (modconv_sm90.cu)

  DeviceMem weights_;
  // mapping
  bool has_embed_ = false;
  FcStep embed_;
  std::vector<FcStep> fcs_;
  size_t w_avg_ = kNone;
  int map_width_ = 0;  // widest mapping vector
  // synthesis
  StyleDevice style_dev_;
  size_t affine_W_ = kNone, affine_b_ = kNone, affine_tiles_ = kNone, wsq_ = kNone, demod_tiles_ = kNone;
  size_t const_ = kNone;
  size_t ones_ = kNone;  // s = 1 for unmodulated layers (style stride 0)

  // One fully connected layer of the mapping network (or the class embedding) on n samples.
  Status run_fc(const FcStep& fc, int n, const float* x, float* y) {
    RowsArgs r;
    r.n = n;
    r.tiles = wptr<RowTile>(fc.tiles);
    r.num_tiles = fc.num_tiles;
    r.max_K = fc.in;
    r.x = x;
    r.x_stride = fc.in;
    r.M = wptr<float>(fc.W);
    r.bias = wptr<float>(fc.b);
    r.y = y;
    r.y_stride = fc.out;
    r.lrelu = fc.lrelu;
    return launch_rows(r, stream_);
  }

  // A toRGB's launch arguments (x: its input activation; unused when a conv epilogue runs it).
  ToRgbArgs rgb_args(const RgbStep& r, int n, const void* x, const float* img_prev, float* img) const {
    ToRgbArgs a;
    a.n = n;
    a.R = r.R;
    a.Cin = r.Cin;
    a.Cimg = r.Cimg;
    a.x = x;
    set_styles(a, r.modulated, r.style_off);
    a.weight = wptr<float>(r.w);
    a.bias = wptr<float>(r.bias);
    a.clamp = r.clamp;
    a.img_prev = img_prev;
    a.img = img;
    a.u8 = r.R == net_->info.img_resolution ? sb_.u8 : nullptr;
    a.u8_round = output_.mode == OutputMap::RoundF64 ? 1 : 0;
    a.u8_scale = output_.scale;
    a.u8_offset = output_.offset;
    a.nonfinite = r.R == net_->info.img_resolution ? sb_.nonfinite : nullptr;
    return a;
  }

  // The styles a conv / toRGB launch reads: its slice of the packed per-sample styles, or the
  // shared row of ones (stride 0) for an unmodulated layer.
  template <class Args>
  void set_styles(Args& a, bool modulated, int style_off) const {
    a.styles = modulated ? sb_.styles : wptr<float>(ones_);
    a.style_stride = modulated ? style_dev_.style_dim : 0;
    a.style_off = modulated ? style_off : 0;
  }
  DenseStep dense_;
  bool normalize_latent_ = false;
  float latent_eps_ = 1e-8f;
  OutputMap output_;
  std::vector<ConvStep> convs_;
  std::vector<RgbStep> rgbs_;
  std::vector<Step> steps_;
  // Multiply-adds per image of every launch, from the plan (printed at prepare with FACEGAN_CUDA_MACS=1).
  struct MacLine {
    std::string name, kind;
    MacCount m;
  };
  std::vector<MacLine> macs_;
  double rgb_fused_bytes_ = 0;  // per image: the activation re-reads the fused toRGBs save
  void add_macs(const std::string& name, const std::string& kind, double nominal, double gemm, double tiles) {
    MacLine l;
    l.name = name;
    l.kind = kind;
    l.m.nominal = nominal;
    l.m.gemm = gemm;
    l.m.tiles = tiles;
    macs_.push_back(l);
  }
  void print_macs() const;
  int64_t max_act_ = 0;  // elements per sample of the largest activation
  int64_t max_t_ = 0;    // elements per sample of the largest up-conv buffer t ((2H+1)^2 x Cout)
  int final_img_ = 0;    // which of the two image buffers holds the result

  DeviceMem map_pool_;
  int map_cap_ = 0;
  MapBuffers mb_;
  DeviceMem synth_pool_;
  int synth_cap_ = 0;
  SynthBuffers sb_;
  // Host staging of each call's input and outputs (pinned), and of the mapping's.
  PinnedMem in_h_, img_h_, u8_h_, map_z_h_, map_c_h_, map_ws_h_, count_h_;
  // Set after a kernel fault: CUDA errors of that kind are sticky, the context cannot run again.
  std::string broken_;
  std::map<std::pair<int, int>, cudaGraphExec_t> graphs_;
};

CudaBackend::~CudaBackend() {
  if (!ready_ && stream_ == nullptr) return;
  cudaSetDevice(dev_);
  if (stream_) cudaStreamSynchronize(stream_);
  clear_graphs();
  weights_.reset();
  map_pool_.reset();
  synth_pool_.reset();
  if (stream_) cudaStreamDestroy(stream_);
  cudaGetLastError();  // leave no error behind for the process
}

void CudaBackend::clear_graphs() {
  for (auto& kv : graphs_) cudaGraphExecDestroy(kv.second);
  graphs_.clear();
}

Status CudaBackend::prepare(const Network& net, const LoadOptions& options) {
  try {
    return prepare_impl(net, options);
  } catch (const std::exception& e) {
    return Status::Error(std::string("cuda backend: prepare failed: ") + e.what());
  }
}

// A fault inside a kernel (illegal address, trap, ...) is sticky: every later CUDA call of this
// process fails. Detect it after a failed call (a second synchronisation still fails) and say so
// on every later call instead of a confusing CUDA error.
void CudaBackend::note_failure() {
  if (!stream_ || !broken_.empty()) return;
  const cudaError_t e1 = cudaStreamSynchronize(stream_);
  if (e1 == cudaSuccess) return;
  cudaGetLastError();
  const cudaError_t e2 = cudaStreamSynchronize(stream_);
  if (e2 != cudaSuccess)
    broken_ = std::string(cudaGetErrorName(e2)) + ": " + cudaGetErrorString(e2);
  cudaGetLastError();
}

Status CudaBackend::check_usable() {
  if (broken_.empty()) return Status::Ok();
  return Status::Error("cuda backend: an earlier kernel fault (" + broken_ +
                       ") left this process's CUDA context unusable; no CUDA work can run until the process "
                       "restarts (a CPU generator still works)");
}

// The entry points: refused once the context is dead; a failure (not a cancel) is noted, an
// exception becomes an error naming the call.
template <typename F>
Status CudaBackend::entry(const char* what, F&& impl) {
  try {
    FG_RETURN_IF_ERROR(check_usable());
    const Status st = impl();
    if (!st.ok && !st.cancelled()) note_failure();
    return st;
  } catch (const std::exception& e) {
    return Status::Error(std::string("cuda backend: ") + what + " failed: " + e.what());
  }
}

Status CudaBackend::mapping(const MappingArgs& args) {
  return entry("mapping", [&] { return mapping_impl(args); });
}

Status CudaBackend::synthesis(const SynthesisArgs& args) {
  return entry("synthesis", [&] { return synthesis_impl(args); });
}

Status CudaBackend::generate(const BackendGenerateArgs& args) {
  return entry("generate", [&] { return generate_impl(args); });
}

// What this backend runs: StyleGAN2 (mapping + const input + modulated convs with noise + skip
// ToRGBs) and ProGAN (z -> latent norm -> Dense 4x4 -> unmodulated convs with pixel norm, the
// up-convs on a nearest-x2 input -> one ToRGB). Per layer it reads the description's flags
// (modulated, demodulate, has_noise, activate / lrelu_slope / act_gain, clamp, pixel_norm, resample),
// so the checks below are about shapes and about combinations the kernels do not implement.
Status CudaBackend::validate(const Network& net) const {
  auto err = [](const std::string& m) { return Status::Error("cuda backend: " + m); };
  if (net.arch != Arch::StyleGAN2 && net.arch != Arch::ProGAN) return err("unsupported architecture");
  if (net.layers.empty()) return err("the synthesis network is empty");
  if (net.info.img_channels < 1 || net.info.img_channels > 4)
    return err("1 to 4 image channels are supported, the model has " + std::to_string(net.info.img_channels));
  int ch = 0, res = 0, img_res = 0;
  size_t first = 0;
  if (net.arch == Arch::StyleGAN2) {
    const MappingDesc& m = net.mapping;
    if (m.fcs.empty()) return err("the mapping network has no layers");
    const int in0 = m.z_dim + (m.has_embed ? m.embed.out : 0);
    if (m.fcs.front().in != in0)
      return err("mapping fc0 takes " + std::to_string(m.fcs.front().in) + " features, expected " +
                 std::to_string(in0));
    for (size_t i = 1; i < m.fcs.size(); ++i)
      if (m.fcs[i].in != m.fcs[i - 1].out) return err("mapping layer sizes do not chain");
    if (m.fcs.back().out != m.w_dim) return err("the last mapping layer does not output w_dim");
    if (m.has_embed && (m.embed.in != m.c_dim || m.c_dim <= 0))
      return err("the label embedding does not take c_dim features");
    if (m.w_dim > 12288) return err("w_dim is too large");
    if (net.const_input == nullptr || net.const_ch <= 0) return err("the synthesis network has no const input");
    ch = net.const_ch;
    res = 4;
  } else {
    const LayerDesc& D = net.layers.front();
    if (D.kind != LayerDesc::Dense || D.in_ch != net.info.z_dim || D.in_ch <= 0 || D.in_ch > 12288 ||
        D.in_res != 1 || D.out_res != 4 || D.out_ch <= 0 || D.modulated || D.has_noise || D.clamp >= 0.0f ||
        !D.weight || !D.bias)
      return err("the first ProGAN layer must be the dense z -> 4x4 start, unmodulated, without noise or clamp");
    ch = D.out_ch;
    res = 4;
    first = 1;
  }
  for (size_t li = first; li < net.layers.size(); ++li) {
    const LayerDesc& L = net.layers[li];
    if (L.in_ch <= 0 || L.in_ch > 3072 || L.out_ch <= 0) return err("layer " + L.name + " has unsupported widths");
    if (!L.modulated && L.demodulate) return err("layer " + L.name + ": demodulation without modulation");
    if (L.kind == LayerDesc::Conv) {
      if (L.ksize != 3 || (L.up != 1 && L.up != 2) || L.in_res != res || L.out_res != res * L.up || L.in_ch != ch)
        return err("unsupported conv layer " + L.name);
      if (L.up == 2 && L.resample != LayerDesc::Nearest && L.resample != LayerDesc::TransposedFir)
        return err("unsupported resampling in " + L.name);
      if (L.has_noise && !L.noise_const) return err("layer " + L.name + " has noise but no const noise map");
      ch = L.out_ch;
      res = L.out_res;
    } else if (L.kind == LayerDesc::ToRGB) {
      if (L.ksize != 1 || L.up != 1 || L.in_res != res || L.in_ch != ch || L.out_ch != net.info.img_channels ||
          (img_res != 0 && res != 2 * img_res) || L.activate || L.pixel_norm || L.has_noise || L.demodulate)
        return err("unsupported toRGB layer " + L.name);
      img_res = res;
    } else {
      return err("a dense layer is only supported as ProGAN's first layer (" + L.name + ")");
    }
  }
  if (img_res != net.info.img_resolution || net.layers.back().kind != LayerDesc::ToRGB)
    return err("the last layer must be the toRGB at the image resolution");
  return Status::Ok();
}

Status CudaBackend::prepare_impl(const Network& net, const LoadOptions& options) {
  if (ready_) return Status::Error("cuda backend: prepare called twice");
  FG_RETURN_IF_ERROR(validate(net));
  net_ = &net;

  std::string why;
  if (!cuda_backend_available(&why)) return Status::Error("cuda backend unavailable: " + why);
  int count = 0;
  FG_CUDA_CHECK(cudaGetDeviceCount(&count));
  if (options.device_index < 0 || options.device_index >= count)
    return Status::Error("cuda backend: device_index " + std::to_string(options.device_index) + " out of range (" +
                         std::to_string(count) + " CUDA device" + (count == 1 ? "" : "s") + ")");
  dev_ = options.device_index;
  FG_CUDA_CHECK(cudaSetDevice(dev_));
  int major = 0, minor = 0;
  FG_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev_));
  FG_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev_));
  const int cc = major * 10 + minor;
  const std::string cc_str = std::to_string(major) + "." + std::to_string(minor);
  if (cc < 75)
    return Status::Error("cuda backend: device " + std::to_string(dev_) + " has compute capability " + cc_str +
                         "; 7.5 or newer is required");
  act_ = options.precision == Precision::FP32   ? ActType::F32
         : options.precision == Precision::FP16 ? ActType::F16
                                                : ActType::BF16;
  if (act_ == ActType::BF16 && cc < 80)
    return Status::Error(std::string("cuda backend: precision ") + precision_name(options.precision) +
                         " needs compute capability 8.0 or newer; device " + std::to_string(dev_) + " has " + cc_str);
  const char* graphs_env = std::getenv("FACEGAN_CUDA_GRAPHS");
  use_graphs_ = !(graphs_env && std::strcmp(graphs_env, "0") == 0) && !read_sync_debug();
  // Hopper (compute capability 9.0, the sm_90a cubin present): the wgmma / TMA conv for the plain
  // 3x3 layers it fits. FACEGAN_CUDA_SM90=0 keeps the mma.sync kernels; =1 makes its absence an error.
  const char* sm90_env = std::getenv("FACEGAN_CUDA_SM90");
  sm90_ = !(sm90_env && std::strcmp(sm90_env, "0") == 0) && modconv_sm90_available(dev_);
  if (sm90_env && std::strcmp(sm90_env, "1") == 0 && !sm90_)
    return Status::Error("cuda backend: FACEGAN_CUDA_SM90=1, but the sm_90a kernel cannot run on device " +
                         std::to_string(dev_) + " (it needs compute capability 9.0 and the sm_90a build)");
  FG_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));

  Blob blob;
  std::vector<RowTile> tiles;

  progan_ = net.arch == Arch::ProGAN;
  output_ = net.output;

  // ---- mapping (StyleGAN2; ProGAN has none)
  const MappingDesc& m = net.mapping;
  auto add_fc = [&](const FcDesc& fc, FcStep* s) {
    s->in = fc.in;
    s->out = fc.out;
    s->W = blob.add(fc.W, (size_t)fc.in * fc.out * sizeof(float));
    s->b = blob.add(fc.b, (size_t)fc.out * sizeof(float));
    s->lrelu = fc.lrelu ? 1 : 0;
    RowTile seg;
    seg.K = fc.in;
    seg.ld = fc.in;
    seg.w_gain = fc.w_gain;
    seg.b_gain = fc.b_gain;
    tiles.clear();
    split_rows(seg, fc.out, kRowsPerTile, &tiles);
    s->tiles = blob.add_vec(tiles);
    s->num_tiles = (int)tiles.size();
  };
  if (!progan_) {
    has_embed_ = m.has_embed;
    map_width_ = m.z_dim + (m.has_embed ? m.embed.out : 0);
    if (has_embed_) add_fc(m.embed, &embed_);
    if (has_embed_) add_macs("mapping.embed", "fc", (double)m.embed.in * m.embed.out, (double)m.embed.in * m.embed.out,
                             (double)m.embed.in * m.embed.out);
    fcs_.resize(m.fcs.size());
    for (size_t i = 0; i < m.fcs.size(); ++i) {
      add_fc(m.fcs[i], &fcs_[i]);
      const double fc_macs = (double)m.fcs[i].in * m.fcs[i].out;
      add_macs("mapping.fc" + std::to_string(i), "fc", fc_macs, fc_macs, fc_macs);
      map_width_ = std::max(map_width_, m.fcs[i].out);
    }
    w_avg_ = blob.add(m.w_avg, (size_t)m.w_dim * sizeof(float));
  }

  // ---- styles and demodulation (modulated layers only; empty for ProGAN)
  StylePlan sp;
  std::string err;
  if (!build_style_plan(net, kRowsPerTile, &sp, &err)) return Status::Error("cuda backend: " + err);
  affine_W_ = blob.add_vec(sp.affine_W);
  affine_b_ = blob.add_vec(sp.affine_b);
  affine_tiles_ = blob.add_vec(sp.affine_tiles);
  wsq_ = blob.add_vec(sp.wsq);
  demod_tiles_ = blob.add_vec(sp.demod_tiles);
  style_dev_.num_affine_tiles = (int)sp.affine_tiles.size();
  style_dev_.max_K_affine = max_tile_K(sp.affine_tiles);
  style_dev_.num_demod_tiles = (int)sp.demod_tiles.size();
  style_dev_.max_K_demod = max_tile_K(sp.demod_tiles);
  style_dev_.w_dim = sp.w_dim;
  style_dev_.num_ws = sp.num_ws;
  style_dev_.style_dim = sp.style_dim;
  style_dev_.demod_dim = sp.demod_dim;
  style_dev_.num_conv = sp.num_conv;
  if (sp.style_dim > 0) {
    const double affine = (double)sp.style_dim * sp.w_dim;
    add_macs("affines", "rows", affine, affine, affine);
    double demod = 0;
    for (const RowTile& t : sp.demod_tiles) demod += (double)t.nrows * t.K;
    add_macs("demod", "rows", 0, demod, demod);  // not part of the nominal count (docs/stylegan2.md)
  }

  // ---- const input (StyleGAN2), NHWC [4][4][C] in the activation type
  if (!progan_) {
    std::vector<float> c((size_t)16 * net.const_ch);
    for (int ch = 0; ch < net.const_ch; ++ch)
      for (int p = 0; p < 16; ++p) c[(size_t)p * net.const_ch + ch] = net.const_input[(size_t)ch * 16 + p];
    const_ = add_act_values(&blob, c, act_);
  }

  // ---- s = 1 for the unmodulated layers (read with a style stride of 0)
  {
    int widest = 0;
    for (const LayerDesc& L : net.layers)
      if (!L.modulated && L.kind != LayerDesc::Dense) widest = std::max(widest, L.in_ch);
    if (widest > 0) ones_ = blob.add_vec(std::vector<float>((size_t)widest, 1.0f));
  }

  // ---- layers
  normalize_latent_ = progan_ && net.normalize_latent;
  latent_eps_ = net.latent_eps;
  int rgb_count = 0;
  for (size_t li = 0; li < net.layers.size(); ++li) {
    const LayerDesc& L = net.layers[li];
    if (L.kind == LayerDesc::Dense) {
      DenseStep& d = dense_;
      d.in = L.in_ch;
      d.C = L.out_ch;
      const int rows = 16 * L.out_ch;
      std::vector<float> W((size_t)rows * L.in_ch);
      for (int r = 0; r < rows; ++r)
        std::memcpy(W.data() + (size_t)r * L.in_ch, L.weight + (size_t)dense_src_row(r, L.out_ch) * L.in_ch,
                    (size_t)L.in_ch * sizeof(float));
      d.w = blob.add_vec(W);
      d.bias = blob.add(L.bias, (size_t)L.out_ch * sizeof(float));
      RowTile seg;
      seg.K = L.in_ch;
      seg.ld = L.in_ch;
      tiles.clear();
      split_rows(seg, rows, kRowsPerTile, &tiles);
      d.tiles = blob.add_vec(tiles);
      d.num_tiles = (int)tiles.size();
      d.activate = L.activate ? 1 : 0;
      d.slope = L.lrelu_slope;
      d.gain = L.act_gain;
      d.pixel_norm = L.pixel_norm;
      d.pn_eps = L.pixel_norm_eps;
      max_act_ = std::max(max_act_, (int64_t)16 * L.out_ch);
      steps_.push_back({Step::Dense, 0});
      add_macs(L.name, "dense", (double)rows * L.in_ch, (double)rows * L.in_ch, (double)rows * L.in_ch);
    } else if (L.kind == LayerDesc::Conv) {
      ConvStep s;
      s.g = conv_layer_geom(L);  // (ProGAN's nearest x2 up-conv reads its input through src_shift)
      s.tile = choose_conv_tile(act_, geom_N(s.g));
      s.Kpad = conv_tile_kpad(s.tile, s.g);
      s.Npad = conv_tile_npad(s.tile, geom_N(s.g));
      std::vector<float> B((size_t)s.Kpad * s.Npad), colscale((size_t)conv_phases(s.g) * s.Npad);
      std::vector<float> wtmp;  // conv weights as stored in the network, widened (prepare only)
      pack_conv_layer(s.g, layer_weight_f32(L, &wtmp), conv_tile_bk(s.tile), s.Npad, act_ != ActType::F32, B.data(),
                      colscale.data());
      s.w = add_act_values(&blob, B, act_);
      if (act_ != ActType::F32) s.colscale = blob.add_vec(colscale);
      s.bias = blob.add(L.bias, (size_t)L.out_ch * sizeof(float));
      s.modulated = L.modulated;
      s.has_noise = L.has_noise;
      if (L.has_noise && L.noise_const)
        s.noise_const = blob.add(L.noise_const, (size_t)L.out_res * L.out_res * sizeof(float));
      s.noise_strength = L.noise_strength;
      s.style_off = L.style_offset;
      s.conv_idx = sp.conv_index[li];
      s.d_off = sp.d_off[li];
      s.activate = L.activate ? 1 : 0;
      s.slope = L.lrelu_slope;
      s.gain = L.act_gain;
      s.clamp = L.clamp;
      s.pixel_norm = L.pixel_norm;
      s.pn_eps = L.pixel_norm_eps;
      max_act_ = std::max(max_act_, (int64_t)L.out_res * L.out_res * L.out_ch);
      if (s.g.up == 2) max_t_ = std::max(max_t_, (int64_t)geom_OH(s.g) * geom_OW(s.g) * s.g.Cout);
      steps_.push_back({Step::Conv, (int)convs_.size()});
      {
        const int r = L.resample == LayerDesc::Nearest ? L.out_res : L.in_res;  // an up-conv at its input size
        const MacCount c = conv_gemm_macs(s.g, conv_tile_bm(s.tile), conv_tile_bk(s.tile), s.Npad);
        add_macs(L.name, L.up == 2 ? "up-conv" : "conv", (double)L.out_ch * L.in_ch * 9 * r * r, c.gemm, c.tiles);
        if (s.g.up == 2) add_macs(L.name + ".fir", "fir", 0, upfir_macs(s.g), upfir_macs(s.g));  // not nominal work
      }
      convs_.push_back(s);
    } else {
      RgbStep r;
      // Fused into the preceding conv's epilogue where its output channels lie in one column tile.
      if (!steps_.empty() && steps_.back().kind == Step::Conv) {
        ConvStep& c = convs_[steps_.back().idx];
        if (!c.pixel_norm && c.g.Cout == L.in_ch && conv_rgb_fits(c.tile, c.g, L.out_ch)) {
          c.rgb = (int)rgbs_.size();
          r.fused = true;
          rgb_fused_bytes_ += (double)L.out_res * L.out_res * L.in_ch * act_size(act_);
        }
      }
      r.R = L.out_res;
      r.Cin = L.in_ch;
      r.Cimg = L.out_ch;
      r.w = blob.add(L.weight, (size_t)L.out_ch * L.in_ch * sizeof(float));
      r.bias = blob.add(L.bias, (size_t)L.out_ch * sizeof(float));
      r.modulated = L.modulated;
      r.style_off = L.style_offset;
      r.clamp = L.clamp;
      steps_.push_back({Step::Rgb, (int)rgbs_.size()});
      const double rgb = (double)L.out_res * L.out_res * L.in_ch * L.out_ch;
      add_macs(L.name, r.fused ? "torgb*" : "torgb", rgb, rgb, rgb);
      rgbs_.push_back(r);
      ++rgb_count;
    }
  }
  final_img_ = (rgb_count - 1) & 1;
  const char* macs_env = std::getenv("FACEGAN_CUDA_MACS");
  if (macs_env && std::strcmp(macs_env, "0") != 0) print_macs();

  // ---- upload
  const std::vector<uint8_t>& data = blob.data();
  FG_CUDA_CHECK(weights_.alloc(data.size()));
  // On the compute stream: a synchronous cudaMemcpy runs on the legacy default stream, which a
  // non-blocking stream does not wait for (its DMA may still be in flight when a kernel reads).
  FG_CUDA_CHECK(cudaMemcpyAsync(weights_.get(), data.data(), data.size(), cudaMemcpyHostToDevice, stream_));
  FG_CUDA_CHECK(cudaStreamSynchronize(stream_));
  style_dev_.affine_W = wptr<float>(affine_W_);
  style_dev_.affine_b = wptr<float>(affine_b_);
  style_dev_.affine_tiles = wptr<RowTile>(affine_tiles_);
  style_dev_.wsq = wptr<float>(wsq_);
  style_dev_.demod_tiles = wptr<RowTile>(demod_tiles_);
  ready_ = true;
  return Status::Ok();
}

// The FACEGAN_CUDA_MACS=1 report (stderr): multiply-adds per image of every launch, from the plan.
void CudaBackend::print_macs() const {
  const char* prec = act_ == ActType::F32 ? "fp32" : act_ == ActType::F16 ? "fp16" : "bf16";
  std::fprintf(stderr,
               "cuda MACs per image (%s; M = 1e6): nominal = the layer's own work (docs/stylegan2.md, an up-conv "
               "at its input size), gemm = what the kernels compute, tiles@b1 = the launched tiles at batch 1\n",
               prec);
  std::fprintf(stderr, "  %-16s %-8s %12s %12s %12s %8s\n", "layer", "kind", "nominal M", "gemm M", "tiles@b1 M",
               "gemm/nom");
  MacCount total;
  for (const MacLine& l : macs_) {
    std::fprintf(stderr, "  %-16s %-8s %12.3f %12.3f %12.3f %8.3f\n", l.name.c_str(), l.kind.c_str(), l.m.nominal / 1e6,
                 l.m.gemm / 1e6, l.m.tiles / 1e6, l.m.nominal > 0 ? l.m.gemm / l.m.nominal : 0.0);
    total.nominal += l.m.nominal;
    total.gemm += l.m.gemm;
    total.tiles += l.m.tiles;
  }
  std::fprintf(stderr, "  %-16s %-8s %12.3f %12.3f %12.3f %8.3f\n", "total", "", total.nominal / 1e6, total.gemm / 1e6,
               total.tiles / 1e6, total.nominal > 0 ? total.gemm / total.nominal : 0.0);
  std::fprintf(stderr, "cuda MACs total: nominal %.3f G, gemm %.3f G, tiles@b1 %.3f G per image\n", total.nominal / 1e9,
               total.gemm / 1e9, total.tiles / 1e9);
  // The sm_90a kernel has no fused toRGB: a conv it takes (decided per launch) leaves that toRGB
  // to its own pass, so on such a device the figure is an upper bound.
  std::fprintf(stderr,
               "cuda toRGB*: fused into the preceding conv's epilogue (no separate pass): %s%.3f MB of activation "
               "reads saved per image%s\n",
               sm90_ ? "at most " : "", rgb_fused_bytes_ / 1e6,
               sm90_ ? " (a conv the sm_90a kernel takes runs its toRGB as its own pass)" : "");
}

// ---------------------------------------------------------------------------------------------
// Mapping

void CudaBackend::carve_mapping(Carver* c, int n, MapBuffers* b) const {
  const MappingDesc& m = net_->mapping;
  b->z = c->take<float>((size_t)n * std::max(1, m.z_dim));
  b->c = c->take<float>((size_t)n * std::max(1, m.c_dim));
  b->e = c->take<float>((size_t)n * map_width_);
  b->xa = c->take<float>((size_t)n * map_width_);
  b->xb = c->take<float>((size_t)n * map_width_);
  b->ws = c->take<float>((size_t)n * m.num_ws * m.w_dim);
  b->nonfinite = c->take<unsigned long long>(1);
}

// Makes the mapping pool hold n samples; Status::OutOfMemory when cudaMalloc fails.
Status CudaBackend::ensure_mapping_pool(int n) {
  if (map_cap_ >= n) return Status::Ok();
  Carver measure(nullptr);
  carve_mapping(&measure, n, &mb_);
  map_cap_ = 0;
  const cudaError_t e = map_pool_.alloc(measure.used());
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    return Status::OutOfMemory("cuda backend: cudaMalloc of the mapping pool for " + std::to_string(n) +
                               " images failed (out of device memory)");
  }
  FG_CUDA_CHECK(e);
  Carver c(map_pool_.get());
  carve_mapping(&c, n, &mb_);
  map_cap_ = n;
  return Status::Ok();
}

// Enqueues the mapping of args.n latents (copied from the host) into the device ws [n][num_ws]
// [w_dim]; with `nonfinite`, the count of NaN / ±Inf ws is set there (zeroed first). The mapping
// pool must hold n samples. The staging of z / c is reused by the next call: the caller
// synchronises the stream before that.
Status CudaBackend::enqueue_mapping(const MappingArgs& args, float* ws, unsigned long long* nonfinite) {
  const MappingDesc& m = net_->mapping;
  const int n = args.n;
  const int cutoff = args.truncation_cutoff < 0 ? m.num_ws : std::min(args.truncation_cutoff, m.num_ws);
  const size_t z_bytes = (size_t)n * m.z_dim * sizeof(float), c_bytes = (size_t)n * m.c_dim * sizeof(float);
  FG_CUDA_CHECK(map_z_h_.reserve(z_bytes));
  std::memcpy(map_z_h_.as<float>(), args.z, z_bytes);
  FG_CUDA_CHECK(cudaMemcpyAsync(mb_.z, map_z_h_.as<float>(), z_bytes, cudaMemcpyHostToDevice, stream_));
  const float* e = nullptr;
  int e_dim = 0;
  if (has_embed_) {
    FG_CUDA_CHECK(map_c_h_.reserve(c_bytes));
    std::memcpy(map_c_h_.as<float>(), args.c, c_bytes);
    FG_CUDA_CHECK(cudaMemcpyAsync(mb_.c, map_c_h_.as<float>(), c_bytes, cudaMemcpyHostToDevice, stream_));
    FG_RETURN_IF_ERROR(run_fc(embed_, n, mb_.c, mb_.e));
    e = mb_.e;
    e_dim = embed_.out;
  }
  FG_RETURN_IF_ERROR(launch_normalize_concat(n, mb_.z, m.z_dim, e, e_dim, mb_.xa, stream_));
  float* cur = mb_.xa;
  for (const FcStep& fc : fcs_) {
    float* next = cur == mb_.xa ? mb_.xb : mb_.xa;
    FG_RETURN_IF_ERROR(run_fc(fc, n, cur, next));
    cur = next;
  }
  if (nonfinite) FG_CUDA_CHECK(cudaMemsetAsync(nonfinite, 0, sizeof(unsigned long long), stream_));
  return launch_broadcast_truncate(n, cur, m.w_dim, m.num_ws, wptr<float>(w_avg_), args.psi, cutoff, ws, stream_,
                                   nonfinite);
}

Status CudaBackend::mapping_impl(const MappingArgs& args) {
  if (!ready_) return Status::Error("cuda backend: not prepared");
  if (progan_) return Status::Error("mapping: a ProGAN model has no mapping network");
  const MappingDesc& m = net_->mapping;
  if (args.n < 0) return Status::Error("mapping: n must be >= 0");
  if (args.n == 0) return Status::Ok();
  if (!args.z || !args.ws) return Status::Error("mapping: z and ws are required");
  if (m.c_dim > 0 && !args.c) return Status::Error("mapping: the model is conditional and c is missing");
  if (is_cancelled(args.cancel)) return Status::Cancelled();
  FG_CUDA_CHECK(cudaSetDevice(dev_));
  FG_RETURN_IF_ERROR(ensure_mapping_pool(args.n));
  const size_t ws_bytes = (size_t)args.n * m.num_ws * m.w_dim * sizeof(float);
  FG_CUDA_CHECK(map_ws_h_.reserve(ws_bytes));
  FG_RETURN_IF_ERROR(enqueue_mapping(args, mb_.ws, nullptr));
  FG_CUDA_CHECK(cudaMemcpyAsync(map_ws_h_.as<float>(), mb_.ws, ws_bytes, cudaMemcpyDeviceToHost, stream_));
  FG_CUDA_CHECK(cudaStreamSynchronize(stream_));
  std::memcpy(args.ws, map_ws_h_.as<float>(), ws_bytes);
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Synthesis

void CudaBackend::carve_synthesis(Carver* c, int n, SynthBuffers* b) const {
  const ModelInfo& info = net_->info;
  const size_t plane = (size_t)info.img_resolution * info.img_resolution;
  b->ws = c->take<float>((size_t)n * style_dev_.num_ws * style_dev_.w_dim);
  const size_t zd = progan_ ? (size_t)info.z_dim : 0;
  b->z = c->take<float>((size_t)n * zd);
  b->zn = c->take<float>((size_t)n * zd);
  b->dense = c->take<float>(progan_ ? (size_t)n * 16 * dense_.C : 0);
  b->styles = c->take<float>((size_t)n * style_dev_.style_dim);
  b->dcoef = c->take<float>((size_t)n * std::max(1, style_dev_.demod_dim));
  b->sinv = act_ == ActType::F32 ? nullptr : c->take<float>((size_t)n * std::max(1, style_dev_.num_conv));
  for (int i = 0; i < 2; ++i) b->act[i] = c->take<uint8_t>((size_t)n * max_act_ * act_size(act_));
  b->t = c->take<uint8_t>((size_t)n * max_t_ * act_size(act_));
  for (int i = 0; i < 2; ++i) b->img[i] = c->take<float>((size_t)n * info.img_channels * plane);
  b->u8 = c->take<uint8_t>((size_t)n * info.img_channels * plane);
  bool noise = false;
  for (const ConvStep& s : convs_) noise = noise || s.has_noise;
  b->noise = c->take<float>(noise ? (size_t)n * plane : 0);
  b->params = c->take<NoiseParams>(1);
  b->nonfinite = c->take<unsigned long long>(1);
}

// How many samples of the synthesis pool fit, at most `want`: 80 % of the free device memory
// (the current pool counted as free), and at most 2^30 pixels per chunk (GEMM rows are int).
Status CudaBackend::synthesis_fit(int want, int* fit) {
  const int64_t plane = (int64_t)net_->info.img_resolution * net_->info.img_resolution;
  want = (int)std::min<int64_t>(want, std::max<int64_t>(1, ((int64_t)1 << 30) / plane));
  Carver one(nullptr), two(nullptr);
  SynthBuffers tmp;
  carve_synthesis(&one, 1, &tmp);
  carve_synthesis(&two, 2, &tmp);
  const size_t per_sample = std::max<size_t>(1, two.used() - one.used());
  const size_t fixed = one.used() > per_sample ? one.used() - per_sample : 0;
  size_t free_b = 0, total_b = 0;
  FG_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  const size_t avail = (size_t)((double)(free_b + synth_pool_.size()) * 0.8);
  *fit = avail > fixed ? (int)std::min<size_t>((size_t)want, std::max<size_t>(1, (avail - fixed) / per_sample)) : 1;
  return Status::Ok();
}

// Backend::images_per_call: the Generator's chunk is what fits now (the Generator splits larger
// requests; ensure_synthesis_pool then allocates for the chunk, or answers OutOfMemory).
int CudaBackend::images_per_call() {
  int fit = 1;
  if (!ready_ || !broken_.empty()) return 1;
  if (cudaSetDevice(dev_) != cudaSuccess || !synthesis_fit(1024, &fit).ok) {
    cudaGetLastError();
    return std::max(1, synth_cap_);
  }
  return fit;
}

// Makes the synthesis pool hold n samples (a larger pool is kept; a smaller one is freed and
// allocated again for n). When cudaMalloc fails, or n samples exceed 2^30 pixels (GEMM rows are
// int): Status::OutOfMemory, and the Generator halves its chunk (backend.h). The pool is never
// split here.
Status CudaBackend::ensure_synthesis_pool(int n) {
  if (synth_cap_ >= n) return Status::Ok();
  const int64_t plane = (int64_t)net_->info.img_resolution * net_->info.img_resolution;
  if ((int64_t)n * plane > ((int64_t)1 << 30))
    return Status::OutOfMemory("cuda backend: " + std::to_string(n) + " images exceed 2^30 pixels per call");
  clear_graphs();  // they hold the old buffers' addresses
  synth_cap_ = 0;
  synth_pool_.reset();
  Carver measure(nullptr);
  carve_synthesis(&measure, n, &sb_);
  const cudaError_t e = synth_pool_.alloc(measure.used());
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    return Status::OutOfMemory("cuda backend: cudaMalloc of the synthesis pool for " + std::to_string(n) + " images (" +
                               std::to_string(measure.used() >> 20) + " MiB) failed (out of device memory)");
  }
  FG_CUDA_CHECK(e);
  Carver c(synth_pool_.get());
  carve_synthesis(&c, n, &sb_);
  synth_cap_ = n;
  return Status::Ok();
}

Status CudaBackend::enqueue_synthesis(int n, NoiseMode mode) {
  const void* x = nullptr;
  int64_t x_bstride = 0;
  int cur_act = -1;
  if (progan_) {
    // z -> z / sqrt(mean(z^2) + eps) (float), then the dense rows (float), then bias + leaky ReLU +
    // pixel norm into the first activation [n][4][4][C].
    const float* zin = sb_.z;
    if (normalize_latent_) {
      PixNormArgs pz;
      pz.pixels = n;
      pz.C = dense_.in;
      pz.src = sb_.z;
      pz.normalize = 1;
      pz.eps = latent_eps_;
      pz.x = sb_.zn;
      FG_RETURN_IF_ERROR(launch_pixnorm(pz, ActType::F32, stream_));
      zin = sb_.zn;
    }
    RowsArgs r;
    r.n = n;
    r.tiles = wptr<RowTile>(dense_.tiles);
    r.num_tiles = dense_.num_tiles;
    r.max_K = dense_.in;
    r.x = zin;
    r.x_stride = dense_.in;
    r.M = wptr<float>(dense_.w);
    r.bias = nullptr;
    r.y = sb_.dense;
    r.y_stride = 16 * dense_.C;
    r.lrelu = 0;
    FG_RETURN_IF_ERROR(launch_rows(r, stream_));
    PixNormArgs pd;
    pd.pixels = (int64_t)n * 16;
    pd.C = dense_.C;
    pd.src = sb_.dense;
    pd.bias = wptr<float>(dense_.bias);
    pd.activate = dense_.activate;
    pd.slope = dense_.slope;
    pd.gain = dense_.gain;
    pd.normalize = dense_.pixel_norm ? 1 : 0;
    pd.eps = dense_.pn_eps;
    pd.x = sb_.act[0];
    FG_RETURN_IF_ERROR(launch_pixnorm(pd, act_, stream_));
    x = sb_.act[0];
    x_bstride = (int64_t)16 * dense_.C;
    cur_act = 0;
  } else {
    FG_RETURN_IF_ERROR(launch_styles(style_dev_, n, sb_.ws, sb_.styles, sb_.dcoef, sb_.sinv, stream_));
    x = wptr<uint8_t>(const_);
  }
  const float* img_prev = nullptr;
  int img_next = 0;
  bool rgb_done = false;  // the last conv's epilogue ran the next toRGB
  for (const Step& st : steps_) {
    if (st.kind == Step::Dense) continue;  // done above
    if (st.kind == Step::Conv) {
      const ConvStep& s = convs_[st.idx];
      const int out_act = cur_act == 0 ? 1 : 0;
      ConvArgs a;
      a.g = s.g;
      a.g.batch = n;
      a.x = x;
      a.x_bstride = x_bstride;
      set_styles(a, s.modulated, s.style_off);
      if (s.d_off >= 0) {
        a.dcoef = sb_.dcoef;
        a.d_stride = style_dev_.demod_dim;
        a.d_off = s.d_off;
        if (sb_.sinv) {  // 16-bit: the demod launch wrote 1 / max|s| for this layer
          a.sinv = sb_.sinv;
          a.sinv_stride = style_dev_.num_conv;
          a.sinv_off = s.conv_idx;
        }
      }
      a.w = wptr<uint8_t>(s.w);
      a.Kpad = s.Kpad;
      a.Npad = s.Npad;
      a.colscale = wptr<float>(s.colscale);
      const int out_plane = conv_out_h(s.g) * conv_out_w(s.g);
      if (s.has_noise && mode == NoiseMode::Const) {
        a.noise = wptr<float>(s.noise_const);
        a.noise_bstride = 0;
      } else if (s.has_noise && mode == NoiseMode::Random) {
        FG_RETURN_IF_ERROR(launch_noise(n, out_plane, s.conv_idx, sb_.params, sb_.noise, stream_));
        a.noise = sb_.noise;
        a.noise_bstride = out_plane;
      }
      a.noise_strength = s.noise_strength;
      a.bias = wptr<float>(s.bias);
      a.activate = s.activate;
      a.slope = s.slope;
      a.gain = s.gain;
      a.clamp = s.clamp;
      a.y = sb_.act[out_act];
      a.t = sb_.t;
      if (sm90_ && modconv_sm90_fits(a, act_)) {  // Hopper: modconv_sm90.cu (16-bit 3x3 convs and up-conv phases it fits)
        FG_RETURN_IF_ERROR(launch_modconv_sm90(a, act_, stream_));
      } else {
        if (s.rgb >= 0) {  // the next step's toRGB, in the epilogue
          a.rgb = rgb_args(rgbs_[s.rgb], n, nullptr, img_prev, sb_.img[img_next]);
          rgb_done = true;
        }
        FG_RETURN_IF_ERROR(launch_modconv(a, act_, s.tile, stream_));
      }
      if (s.pixel_norm) {
        PixNormArgs pn;
        pn.pixels = (int64_t)n * out_plane;
        pn.C = s.g.Cout;
        pn.eps = s.pn_eps;
        pn.x = sb_.act[out_act];
        FG_RETURN_IF_ERROR(launch_pixnorm(pn, act_, stream_));
      }
      x = sb_.act[out_act];
      x_bstride = (int64_t)out_plane * s.g.Cout;
      cur_act = out_act;
    } else {
      if (!rgb_done)
        FG_RETURN_IF_ERROR(launch_torgb(rgb_args(rgbs_[st.idx], n, x, img_prev, sb_.img[img_next]), act_, stream_));
      rgb_done = false;
      img_prev = sb_.img[img_next];
      img_next ^= 1;
    }
  }
  return Status::Ok();
}

Status CudaBackend::run_synthesis(int n, NoiseMode mode) {
  if (!use_graphs_) return enqueue_synthesis(n, mode);
  const std::pair<int, int> key(n, progan_ ? 0 : (int)mode);  // ProGAN has no noise
  auto it = graphs_.find(key);
  if (it == graphs_.end()) {
    if (graphs_.size() >= kMaxGraphs) clear_graphs();
    FG_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    const Status st = enqueue_synthesis(n, mode);
    cudaGraph_t graph = nullptr;
    const cudaError_t end = cudaStreamEndCapture(stream_, &graph);
    if (!st.ok) {
      if (graph) cudaGraphDestroy(graph);
      cudaGetLastError();
      return st;
    }
    FG_CUDA_CHECK(end);
    cudaGraphExec_t exec = nullptr;
    const cudaError_t inst = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    FG_CUDA_CHECK(inst);
    it = graphs_.emplace(key, exec).first;
  }
  FG_CUDA_CHECK(cudaGraphLaunch(it->second, stream_));
  return Status::Ok();
}

Status CudaBackend::synthesis_impl(const SynthesisArgs& args) {
  if (!ready_) return Status::Error("cuda backend: not prepared");
  if (args.n < 0) return Status::Error("synthesis: n must be >= 0");
  if (args.n == 0) return Status::Ok();
  if (progan_ ? !args.z : !args.ws)
    return Status::Error(progan_ ? "synthesis: z is required (ProGAN)" : "synthesis: ws is required");
  if (is_cancelled(args.cancel)) return Status::Cancelled();
  FG_CUDA_CHECK(cudaSetDevice(dev_));
  FG_RETURN_IF_ERROR(ensure_synthesis_pool(args.n));
  // One sample's input: ws rows (StyleGAN2) or z (ProGAN), staged in pinned memory.
  const size_t in_bytes =
      (size_t)args.n * (progan_ ? (size_t)net_->info.z_dim : (size_t)style_dev_.num_ws * style_dev_.w_dim) * sizeof(float);
  FG_CUDA_CHECK(in_h_.reserve(in_bytes));
  std::memcpy(in_h_.as<float>(), progan_ ? args.z : args.ws, in_bytes);
  FG_CUDA_CHECK(cudaMemcpyAsync(progan_ ? sb_.z : sb_.ws, in_h_.as<float>(), in_bytes, cudaMemcpyHostToDevice, stream_));
  return finish_synthesis(args, nullptr);
}

// z -> mapping -> ws in the synthesis pool -> synthesis: the same kernels on the same values as
// mapping() then synthesis(), without the ws round trip through the host.
Status CudaBackend::generate_impl(const BackendGenerateArgs& args) {
  if (!ready_) return Status::Error("cuda backend: not prepared");
  if (progan_) return Status::Error("generate: a ProGAN model has no mapping network");
  const MappingArgs& ma = args.mapping;
  if (ma.n < 1 || args.synthesis.n != ma.n) return Status::Error("generate: n must be >= 1 and the same for both parts");
  if (!ma.z || ma.ws || args.synthesis.ws || args.synthesis.z)
    return Status::Error("generate: z is required, ws / synthesis inputs must be null");
  if (net_->mapping.c_dim > 0 && !ma.c) return Status::Error("generate: the model is conditional and c is missing");
  if (is_cancelled(ma.cancel) || is_cancelled(args.synthesis.cancel)) return Status::Cancelled();
  FG_CUDA_CHECK(cudaSetDevice(dev_));
  FG_RETURN_IF_ERROR(ensure_synthesis_pool(ma.n));
  FG_RETURN_IF_ERROR(ensure_mapping_pool(ma.n));
  FG_RETURN_IF_ERROR(enqueue_mapping(ma, sb_.ws, mb_.nonfinite));
  return finish_synthesis(args.synthesis, args.ws_nonfinite_count);
}

// The rest of a synthesis call once its input (ws / z) is enqueued into the pool: the noise
// parameters, the graph, the outputs and the non-finite counts back (with ws_nonfinite: also
// generate()'s count of non-finite ws, mb_.nonfinite), all fetched by one synchronisation.
Status CudaBackend::finish_synthesis(const SynthesisArgs& args, uint64_t* ws_nonfinite) {
  const int n = args.n;
  const ModelInfo& info = net_->info;
  const size_t img_elems = (size_t)n * info.img_channels * info.img_resolution * info.img_resolution;
  if (args.img) FG_CUDA_CHECK(img_h_.reserve(img_elems * sizeof(float)));
  if (args.img_u8) FG_CUDA_CHECK(u8_h_.reserve(img_elems));
  FG_CUDA_CHECK(count_h_.reserve(2 * sizeof(unsigned long long)));
  FG_CUDA_CHECK(cudaMemsetAsync(sb_.nonfinite, 0, sizeof(unsigned long long), stream_));
  if (!progan_ && args.noise == NoiseMode::Random) {
    NoiseParams p;
    p.seed = args.noise_seed;
    p.image_base = args.image_offset;  // the request's image index of this call's first image
    p.pad = 0;
    FG_CUDA_CHECK(cudaMemcpyAsync(sb_.params, &p, sizeof(p), cudaMemcpyHostToDevice, stream_));
    // &p is pageable: the copy is staged before cudaMemcpyAsync returns.
  }
  // The last check before the graph (the inputs' copies are in flight: wait for them).
  if (is_cancelled(args.cancel)) {
    cudaStreamSynchronize(stream_);
    return Status::Cancelled();
  }
  FG_RETURN_IF_ERROR(run_synthesis(n, progan_ ? NoiseMode::None : args.noise));
  if (args.img)
    FG_CUDA_CHECK(cudaMemcpyAsync(img_h_.as<float>(), sb_.img[final_img_], img_elems * sizeof(float),
                                  cudaMemcpyDeviceToHost, stream_));
  if (args.img_u8)
    FG_CUDA_CHECK(cudaMemcpyAsync(u8_h_.as<uint8_t>(), sb_.u8, img_elems, cudaMemcpyDeviceToHost, stream_));
  unsigned long long* counts = count_h_.as<unsigned long long>();
  FG_CUDA_CHECK(cudaMemcpyAsync(counts, sb_.nonfinite, sizeof(unsigned long long), cudaMemcpyDeviceToHost, stream_));
  if (ws_nonfinite)
    FG_CUDA_CHECK(cudaMemcpyAsync(counts + 1, mb_.nonfinite, sizeof(unsigned long long), cudaMemcpyDeviceToHost, stream_));
  FG_CUDA_CHECK(cudaStreamSynchronize(stream_));
  if (args.img) std::memcpy(args.img, img_h_.as<float>(), img_elems * sizeof(float));
  if (args.img_u8) std::memcpy(args.img_u8, u8_h_.as<uint8_t>(), img_elems);
  if (args.nonfinite_count) *args.nonfinite_count = counts[0];
  if (ws_nonfinite) *ws_nonfinite = counts[1];
  return Status::Ok();
}

}  // namespace
}  // namespace cuda

bool cuda_backend_available(std::string* why_not) {
  auto fail = [&](std::string why) {
    if (why_not) *why_not = std::move(why);
    return false;
  };
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();
    switch (e) {
      case cudaErrorNoDevice: return fail("no CUDA device");
      case cudaErrorInsufficientDriver:
        return fail("no CUDA driver, or one older than this build's CUDA " + std::to_string(CUDART_VERSION / 1000) +
                    "." + std::to_string(CUDART_VERSION % 1000 / 10) + " runtime");
      default:
        return fail(std::string("cudaGetDeviceCount failed: ") + cudaGetErrorName(e) + ": " + cudaGetErrorString(e));
    }
  }
  if (count <= 0) return fail("no CUDA device");
  for (int d = 0; d < count; ++d) {
    int major = 0, minor = 0;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, d) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, d) != cudaSuccess) {
      cudaGetLastError();
      continue;
    }
    if (major * 10 + minor >= 75) return true;
  }
  return fail("no CUDA device of compute capability 7.5 or newer");
}

std::unique_ptr<Backend> create_cuda_backend() { return std::unique_ptr<Backend>(new cuda::CudaBackend()); }

}  // namespace facegan
