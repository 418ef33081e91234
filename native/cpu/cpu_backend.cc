// The optimised CPU engine ("cpu").
//
// Layout: activations NCHW float32, whole sub-batches at a time (bounded by a memory budget).
// Work is split into tasks run by a small persistent thread pool; the inner loops are the
// kernels of kernels.h, chosen at run time by cpuid (AVX-512, AVX2+FMA or portable C++).
//
// Every modulated convolution runs as "scale the input channels by s, convolve with the fixed
// weights, scale the output channels by d": the weights are transformed / packed once at load
// and shared by the whole batch; s is applied while the input is packed or transformed;
// d[n,o] = rsqrt(Σ_i s[n,i]²·Wsq[o,i] + 1e-8) uses Wsq = Σ_k W[o,i,k]² precomputed at load;
// ×d, noise, bias, lrelu·√2 and the clamp are applied to the GEMM result while it is in cache.
//
// Batch invariance: an image's bits never depend on the batch size, its position in the batch
// or the thread count. Every algorithm choice (Winograd or direct, the K blocking, the fused
// ToRGB) depends on the layer shape only; work is split across threads over output pixels and
// channels, never inside a reduction; and the kernels give a value the same arithmetic wherever
// it falls in a run (kernels_impl.h). facegan-check verifies it bit for bit.
//
// 3×3 convolutions (up 1):
//  - Winograd F(2×2, 3×3) from 16² up (kWinoMinRes): 16
//    GEMMs U[ξ] (C_out × C_in, precomputed G·g·Gᵀ) × V[ξ] (C_in × tiles), 4 MACs per output
//    pixel instead of 9; input transform fused with the style scaling, output transform with
//    the epilogue and (when the task holds every output channel) with the following ToRGB and
//    the skip upsampling of the previous image, so the activations are not read twice.
//  - below (4², 8²) an im2col-packed GEMM with the register-blocked micro-kernel, or the
//    small-N kernels when there are only a few pixels (the same arithmetic per output).
//
// Up-convolutions (transposed 3×3 stride 2, then the [1,3,3,1]² FIR, gain 4, padding 1) run as
// a 1×1 GEMM Y[(o,ky,kx), pixel] = Σ_c W[o,c,ky,kx]·s[c]·x[c, pixel] over the low-resolution
// input (9·C_in·C_out MACs per input pixel, the cost of the transposed conv itself) followed by
// a fused "col2im + FIR" pass: each output phase (2m+φy, 2n+φx) is a fixed 6×6-term combination
// of Y at input rows/columns m−1..m+1 / n−1..n+1, evaluated separably (kernels_impl.h). Input
// rows stream through a small ring buffer so the (2H+1)² intermediate is never materialised.
// (Folding the FIR into four polyphase 3×3 kernels is the same function but costs 4× the MACs
// of this scheme: 36 instead of 9 per input pixel and channel pair.)
//
// ToRGB (1×1 modulated, no demodulation) runs fused as above, or as its own pass with the skip
// upsampling (out[2j] = .25·x[j−1] + .75·x[j], out[2j+1] = .75·x[j] + .25·x[j+1]).
//
// ProGAN (run_batch_progan): the latent pixel norm, the dense 4×4 start (dot products), then the
// same 3×3 convolutions with unit styles and demodulation (×1 is exact) and no noise, each
// followed by a pixel-norm pass over the channels (kernel pixel_norm); the first conv of a block
// reads the nearest ×2 upsampled input; the final ToRGB is linear, with no skip image.
//
// Environment knobs (for experiments and checks): FACEGAN_CPU_ISA=scalar|avx2|avx512,
// FACEGAN_CPU_WINOGRAD=0, FACEGAN_CPU_WINO_MIN_RES=N, FACEGAN_CPU_FUSE_RGB=0, FACEGAN_CPU_STREAM_KB=N (non-temporal stores
// for up-conv outputs of at least N KiB; 0 = never), FACEGAN_CPU_PROFILE=1 (per-layer timings).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <new>
#include <stdexcept>
#include <thread>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "backend.h"
#include "common.h"
#include "kernels.h"
#include "noise.h"
#include "thread_pool.h"

namespace facegan {
namespace cpu {
namespace {

// 64-byte aligned float buffer (contents not preserved on growth).
class Buf {
 public:
  Buf() = default;
  ~Buf() { release(); }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  Buf(Buf&& o) noexcept : huge_(o.huge_), base_(o.base_), p_(o.p_), n_(o.n_) {
    o.base_ = o.p_ = nullptr;
    o.n_ = 0;
    o.huge_ = false;
  }
  float* data() { return p_; }
  const float* data() const { return p_; }
  size_t size() const { return n_; }
  // Grow-only, throws std::bad_alloc. Every buffer has kPadFront zero floats before data() and
  // kPadBack after its end, so kernels may read one element past either end of a row.
  void reserve(size_t n) {
    if (n <= n_) return;
    release();
    const size_t bytes = (n + kPadFront + kPadBack) * sizeof(float);
#if defined(__linux__)
    if (bytes >= (size_t(4) << 20)) {
      // Large activation buffers: 2 MB aligned and backed by transparent huge pages when the
      // system allows it (fewer TLB misses on the strided plane accesses, cheaper first touch).
      void* p = nullptr;
      const size_t rounded = (bytes + (size_t(2) << 20) - 1) & ~((size_t(2) << 20) - 1);
      if (posix_memalign(&p, size_t(2) << 20, rounded) != 0 || !p) throw std::bad_alloc();
      madvise(p, rounded, MADV_HUGEPAGE);
      huge_ = true;
      base_ = static_cast<float*>(p);
    } else
#endif
    {
      base_ = static_cast<float*>(::operator new(bytes, std::align_val_t(64)));
    }
    std::memset(base_, 0, kPadFront * sizeof(float));
    std::memset(base_ + kPadFront + n, 0, kPadBack * sizeof(float));
    p_ = base_ + kPadFront;
    n_ = n;
  }
  void zero() { if (n_) std::memset(p_, 0, n_ * sizeof(float)); }

 private:
  static constexpr size_t kPadFront = 16, kPadBack = 32;
  void release() {
    if (base_) {
      if (huge_) std::free(base_);
      else ::operator delete(base_, std::align_val_t(64));
    }
    base_ = p_ = nullptr;
    n_ = 0;
    huge_ = false;
  }
  bool huge_ = false;
  float* base_ = nullptr;
  float* p_ = nullptr;
  size_t n_ = 0;
};

// 3×3 convolutions (up 1) run as Winograd from this output resolution up and as the direct
// GEMM below it. The choice depends on the layer shape only, never on the batch, so that an
// image's bits do not depend on the batch it is computed in.
constexpr int kWinoMinRes = 16;

inline int ceil_div(int a, int b) { return (a + b - 1) / b; }
inline size_t round_up(size_t a, size_t b) { return (a + b - 1) / b * b; }

// CPU time of the calling thread in ms (0 where unavailable); for FACEGAN_CPU_PROFILE only.
double thread_cpu_ms() {
#if defined(CLOCK_THREAD_CPUTIME_ID)
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) * 1e3 + double(ts.tv_nsec) * 1e-6;
#else
  return 0.0;
#endif
}

struct ConvPrep {
  const LayerDesc* L = nullptr;
  int index = 0;    // layer index in the network
  int ordinal = 0;  // index among the conv layers (keys the random noise, as on the GPU)
  int K = 0;      // GEMM depth: 9·C_in (up 1) or C_in (up 2)
  // Output-channel groups (up 2: GEMM rows (o, ky, kx) of og channels; up 1: one group, rows o).
  int og = 0, ngroups = 0;
  std::vector<size_t> group_off;  // offset of each group's packed A
  std::vector<int> group_panels;  // MR-row panels per group
  Buf A;                          // packed weights
  std::vector<float> wsq;         // [C_out][C_in] Σ_k W²
  size_t demod_off = 0;           // into the per-batch demodulation buffer
  // Winograd F(2×2, 3×3) (up 1, resolution ≥ 16): U[ξ][panel][C_in][MR] = (G·g·Gᵀ)[ξ].
  // Nearest ×2 + 3×3 (ProGAN, output ≥ 16): the polyphase F(2×2, 2×2) form (wino_up, 36 planes).
  bool wino = false, direct = true;  // which forms are prepared (up 1)
  bool wino_up = false;
  int nxi = 16;                      // Winograd planes
  Buf U;
  int wg_rows = 0, wg_kc = 0, wg_nt = 0;  // M rows per task, K block, tiles per task
  // Up-conv scheduling (fixed per layer).
  bool multi = false;  // several whole images per GEMM
  int ipt = 1, G = 1;  // images per task, input rows per GEMM step
};

// A ToRGB layer fused into the preceding 3×3 convolution's epilogue.
struct FusedRgb {
  const LayerDesc* L = nullptr;
  const float* w = nullptr;     // [img][k][c] modulated weights
  const float* prev = nullptr;  // previous image (prev_res²), or nullptr
  int prev_res = 0;
  float* out = nullptr;         // [img][k][H][W]
};

struct Scratch {
  Buf Bp, C, Z;
  std::vector<ColSeg> segs;
};

class CpuBackend : public Backend {
 public:
  const char* name() const override { return "cpu"; }
  bool supports(Arch) const override { return true; }

  Status prepare(const Network& net, const LoadOptions& options) override {
    if (options.precision != Precision::FP32)
      return Status::Error("the cpu backend computes in fp32 only (precision fp16 / bf16 are GPU options)");
    net_ = &net;
    ks_ = &best_kernel_set();
    int nt = options.num_threads;
    if (nt <= 0) nt = int(std::thread::hardware_concurrency());
    if (nt <= 0) nt = 1;
    nt = std::min(nt, 256);
    const int MR = ks_->MR, NR = ks_->NR;
    nc_target_ = int(round_up(size_t(std::max(384, 8 * NR)), size_t(NR)));

    // Per-layer preparation.
    const char* wenv = std::getenv("FACEGAN_CPU_WINOGRAD");
    const bool use_wino = !(wenv && wenv[0] == '0');
    const char* fenv = std::getenv("FACEGAN_CPU_FUSE_RGB");
    fuse_rgb_ = !(fenv && fenv[0] == '0');
    stream_min_ = size_t(env_int("FACEGAN_CPU_STREAM_KB", 32 << 10)) << 10;
    const int wino_min_res = std::max(4, env_int("FACEGAN_CPU_WINO_MIN_RES", kWinoMinRes));
    size_t max_cols = size_t(nc_target_), max_crows = 0, max_z = 0, max_bp = 0;
    max_act_ = size_t(net.const_ch) * 16;
    size_t demod_total = 0;
    for (size_t li = 0; li < net.layers.size(); ++li) {
      const LayerDesc& L = net.layers[li];
      max_act_ = std::max(max_act_, size_t(L.out_ch) * L.out_res * L.out_res);
      max_act_ = std::max(max_act_, size_t(L.in_ch) * L.in_res * L.in_res);
      if (L.kind != LayerDesc::Conv) continue;
      max_ch_ = std::max(max_ch_, size_t(L.in_ch));
      ConvPrep cp;
      cp.L = &L;
      cp.index = int(li);
      cp.ordinal = int(convs_.size());
      const int Ci = L.in_ch, Co = L.out_ch;
      cp.wsq.assign(size_t(Co) * Ci, 0.0f);
      for (int o = 0; o < Co; ++o)
        for (int i = 0; i < Ci; ++i) {
          double s = 0.0;
          for (int k = 0; k < 9; ++k) {
            double w = L.weight[(size_t(o) * Ci + i) * 9 + k];
            s += w * w;
          }
          cp.wsq[size_t(o) * Ci + i] = float(s);
        }
      cp.demod_off = demod_total;
      demod_total += size_t(Co);
      if (L.up == 1 || L.resample == LayerDesc::Nearest) {
        // (ProGAN's nearest ×2 + 3×3: the plain 3×3 conv on the upsampled grid.)
        cp.K = 9 * Ci;
        cp.og = Co;
        cp.ngroups = 1;
        const int panels = ceil_div(Co, MR);
        cp.group_off = {0};
        cp.group_panels = {panels};
        // One algorithm per layer (see kWinoMinRes). Nearest ×2 layers: the polyphase Winograd
        // form on the low-resolution input, or the plain conv on the upsampled grid.
        const bool wino = use_wino && L.out_res >= wino_min_res;
        cp.direct = !wino;
        if (L.up == 2 && wino) {
          cp.direct = false;
          prepare_wino_up(cp, &max_cols, &max_bp);
          convs_.push_back(std::move(cp));
          continue;
        }
        if (L.up == 2) max_up_ = std::max(max_up_, size_t(L.in_ch) * L.out_res * L.out_res);
        if (cp.direct) {
          cp.A.reserve(size_t(panels) * MR * cp.K);
          float* A = cp.A.data();
          for (int p = 0; p < panels; ++p)
            for (int k = 0; k < cp.K; ++k)
              for (int i = 0; i < MR; ++i) {
                const int o = p * MR + i;
                *A++ = o < Co ? L.weight[size_t(o) * cp.K + k] : 0.0f;
              }
          max_crows = std::max(max_crows, size_t(panels) * MR);
        }
        if (wino) prepare_wino(cp, &max_cols, &max_bp);
      } else {
        cp.K = Ci;
        cp.og = std::min(Co, env_int("FACEGAN_UP_OG", 32));
        cp.ngroups = ceil_div(Co, cp.og);
        size_t total = 0;
        for (int g = 0; g < cp.ngroups; ++g) {
          const int ogg = std::min(cp.og, Co - g * cp.og);
          const int panels = ceil_div(9 * ogg, MR);
          cp.group_off.push_back(total);
          cp.group_panels.push_back(panels);
          total += size_t(panels) * MR * cp.K;
          max_crows = std::max(max_crows, size_t(panels) * MR);
        }
        cp.A.reserve(total);
        for (int g = 0; g < cp.ngroups; ++g) {
          const int o0 = g * cp.og, ogg = std::min(cp.og, Co - o0);
          float* A = cp.A.data() + cp.group_off[size_t(g)];
          for (int p = 0; p < cp.group_panels[size_t(g)]; ++p)
            for (int c = 0; c < Ci; ++c)
              for (int i = 0; i < MR; ++i) {
                const int r = p * MR + i;  // (o_local, ky, kx)
                float v = 0.0f;
                if (r < 9 * ogg) {
                  const int o = o0 + r / 9, t = r % 9;
                  v = L.weight[(size_t(o) * Ci + c) * 9 + t];
                }
                *A++ = v;
              }
        }
        const int H = L.in_res;
        if (H * H * 2 <= nc_target_) {
          cp.multi = true;
          cp.ipt = std::max(1, std::min(64, nc_target_ / (H * H)));
          cp.G = H;
          max_z = std::max(max_z, size_t(cp.ipt) * H * cp.og * 6 * H);
          max_cols = std::max(max_cols, size_t(cp.ipt) * H * H);
        } else {
          cp.multi = false;
          cp.ipt = 1;
          cp.G = std::max(1, std::min(H, nc_target_ / H));
          max_z = std::max(max_z, size_t(cp.G + 2) * cp.og * 6 * H);
          max_cols = std::max(max_cols, size_t(cp.G) * H);
        }
      }
      convs_.push_back(std::move(cp));
    }
    demod_total_ = demod_total;
    max_cols = round_up(max_cols, size_t(NR));
    max_cols_ = max_cols;
    max_z_ = max_z;
    int max_res = net.info.img_resolution;
    zero_block_.reserve(size_t(6) * max_res);
    zero_block_.zero();
    // Unmodulated layers (ProGAN) run the same kernels with s = 1 and d = 1 (exact).
    for (const LayerDesc& L : net.layers) max_ch_ = std::max(max_ch_, size_t(L.in_ch));
    ones_.reserve(std::max<size_t>(max_ch_, 1));
    std::fill(ones_.data(), ones_.data() + ones_.size(), 1.0f);

    // Mapping weights with their gain applied (float32, once).
    map_w_.clear();
    if (net.arch == Arch::StyleGAN2) {
      auto scaled = [&](const FcDesc& f) {
        std::vector<float> w(size_t(f.out) * f.in);
        for (size_t i = 0; i < w.size(); ++i) w[i] = f.W[i] * f.w_gain;
        map_w_.push_back(std::move(w));
      };
      if (net.mapping.has_embed) scaled(net.mapping.embed);
      for (const FcDesc& f : net.mapping.fcs) scaled(f);
    }

    pool_.reset(new ThreadPool(nt));
    scratch_.resize(size_t(pool_->size()));
    for (auto& s : scratch_) {
      s.Bp.reserve(std::max(size_t(kc_) * max_cols, max_bp));
      s.C.reserve(std::max(max_crows * max_cols, max_cbuf_));
      if (max_z) s.Z.reserve(max_z);
      s.segs.reserve(max_cols + 64);
    }
    return Status::Ok();
  }

  // The mapping network, one image per task: y = dot(x, W'[o]) + b[o]·b_gain with W' = W·w_gain
  // rounded to float32 once at load (as the official code forms weight·gain), the dot products
  // by the vector kernel in a fixed order (so an image's ws never depends on the batch).
  Status mapping(const MappingArgs& a) override {
    const MappingDesc& m = net_->mapping;
    const int zd = m.z_dim, wd = m.w_dim, in0 = zd + (m.has_embed ? wd : 0);
    bool ok = pool_->run(a.n, [&](int img, int) {
      if (is_cancelled(a.cancel)) return;  // checked per image; the call answers Cancelled below
      std::vector<float> x(static_cast<size_t>(std::max(in0, wd)));
      std::vector<float> y(static_cast<size_t>(wd)), e(static_cast<size_t>(wd));
      for (int i = 0; i < zd; ++i) x[size_t(i)] = a.z[size_t(img) * zd + i];
      normalize_2nd_moment(x.data(), zd);
      if (m.has_embed) {
        fc_layer(map_w_[0], m.embed, a.c + size_t(img) * m.c_dim, e.data());
        normalize_2nd_moment(e.data(), wd);
        for (int i = 0; i < wd; ++i) x[size_t(zd + i)] = e[size_t(i)];
      }
      for (size_t l = 0; l < m.fcs.size(); ++l) {
        fc_layer(map_w_[l + (m.has_embed ? 1 : 0)], m.fcs[l], x.data(), y.data());
        std::copy(y.begin(), y.end(), x.begin());
      }
      float* out = a.ws + size_t(img) * m.num_ws * wd;
      const int cutoff = a.truncation_cutoff < 0 ? m.num_ws : a.truncation_cutoff;
      for (int r = 0; r < m.num_ws; ++r)
        for (int i = 0; i < wd; ++i) {
          float v = x[size_t(i)];
          if (r < cutoff && a.psi != 1.0f) v = lerp_torch(m.w_avg[i], v, a.psi);
          out[size_t(r) * wd + i] = v;
        }
    });
    if (is_cancelled(a.cancel)) return Status::Cancelled("mapping: cancelled");
    return ok ? Status::Ok() : Status::Error("mapping failed: " + pool_->error());
  }

  bool reports_nonfinite() const override { return true; }

  Status synthesis(const SynthesisArgs& a) override {
    const Network& net = *net_;
    const int R = net.info.img_resolution, IC = net.info.img_channels;
    // Sub-batches bounded by memory: two activation buffers + images per sample.
    const size_t per_img = (2 * max_act_ + max_up_ + 2 * size_t(IC) * R * R + size_t(R) * R) * sizeof(float);
    const size_t budget = size_t(768) << 20;
    int nb_max = int(std::max<size_t>(1, std::min<size_t>(size_t(a.n), budget / per_img)));
    nb_max = std::min(nb_max, 64);
    std::atomic<uint64_t> bad{0};
    for (int start = 0; start < a.n; start += nb_max) {
      const int nb = std::min(nb_max, a.n - start);
      Status s = net.arch == Arch::ProGAN ? run_batch_progan(a, start, nb, &bad) : run_batch(a, start, nb, &bad);
      if (!s) return s;
    }
    if (a.nonfinite_count) *a.nonfinite_count = bad.load();
    return Status::Ok();
  }

 private:
  const Network* net_ = nullptr;
  const KernelSet* ks_ = nullptr;
  std::unique_ptr<ThreadPool> pool_;
  std::vector<Scratch> scratch_;
  std::vector<ConvPrep> convs_;
  int kc_ = 256;
  int nc_target_ = 384;
  size_t max_act_ = 0, max_cols_ = 0, max_z_ = 0, demod_total_ = 0, max_cbuf_ = 0;
  size_t max_up_ = 0, max_ch_ = 0;  // nearest-upsampled input (ProGAN); widest layer input
  Buf act_[2], img_[2], styles_, demod_, noise_, zero_block_, up_, ones_, zn_;
  std::vector<float> rgbw_;
  bool fuse_rgb_ = true;
  size_t stream_min_ = 0;  // bytes of an up-conv output (sub-batch) from which to store non-temporally

  std::vector<std::vector<float>> map_w_;  // mapping weights × w_gain: [embed], fc0, fc1, …

  // x ← x · rsqrt(mean(x²) + 1e-8) (as common.cc's reference mapping).
  static void normalize_2nd_moment(float* x, int n) {
    double ss = 0.0;
    for (int i = 0; i < n; ++i) ss += double(x[i]) * x[i];
    const float mean = float(ss / n);
    const float k = float(1.0 / std::sqrt(double(mean + 1e-8f)));
    for (int i = 0; i < n; ++i) x[i] *= k;
  }

  void fc_layer(const std::vector<float>& Wg, const FcDesc& f, const float* x, float* y) const {
    for (int o = 0; o < f.out; ++o) {
      float v = ks_->dot(x, Wg.data() + size_t(o) * f.in, f.in) + f.b[o] * f.b_gain;
      if (f.lrelu) v = (v < 0.0f ? v * 0.2f : v) * 1.41421356237309504880f;
      y[o] = v;
    }
  }

  const ConvPrep& conv_of(int layer_index) const {
    for (const auto& c : convs_)
      if (c.index == layer_index) return c;
    return convs_[0];
  }

  void run_or_throw(int ntasks, const std::function<void(int, int)>& fn) {
    if (!pool_->run(ntasks, fn)) throw std::runtime_error("a worker task failed: " + pool_->error());
  }

  // Writes the outputs of images [start, start + nb) from the float images `fimg` (nb × isz)
  // and adds the number of NaN / ±Inf values among them to *bad (the backend.h contract).
  void write_outputs(const SynthesisArgs& a, int start, int nb, const float* fimg, std::atomic<uint64_t>* bad) {
    const Network& net = *net_;
    const int R = net.info.img_resolution, IC = net.info.img_channels;
    const size_t isz = size_t(IC) * R * R;
    run_or_throw(nb, [&](int t, int) {
      const float* src = fimg + size_t(t) * isz;
      uint64_t nf = 0;
      for (size_t i = 0; i < isz; ++i) nf += std::isfinite(src[i]) ? 0 : 1;
      if (nf) bad->fetch_add(nf, std::memory_order_relaxed);
      if (a.img) std::memcpy(a.img + size_t(start + t) * isz, src, isz * sizeof(float));
      if (a.img_u8) to_u8_hwc(src, IC, R, R, a.img_u8 + size_t(start + t) * isz, net.output);
    });
  }

  Status run_batch(const SynthesisArgs& a, int start, int nb, std::atomic<uint64_t>* bad) {
    const Network& net = *net_;
    const int R = net.info.img_resolution, IC = net.info.img_channels, WD = net.info.w_dim;
    const int NW = net.info.num_ws, SD = net.style_dim;
    act_[0].reserve(size_t(nb) * max_act_);
    act_[1].reserve(size_t(nb) * max_act_);
    img_[0].reserve(size_t(nb) * IC * R * R);
    img_[1].reserve(size_t(nb) * IC * R * R);
    styles_.reserve(size_t(nb) * SD);
    demod_.reserve(size_t(nb) * std::max<size_t>(demod_total_, 1));
    if (a.noise == NoiseMode::Random) noise_.reserve(size_t(nb) * R * R);
    const float* ws = a.ws + size_t(start) * NW * WD;
    float* S = styles_.data();
    float* D = demod_.data();

    // Styles of every layer for every sample, then the demodulation coefficients.
    const int nl = int(net.layers.size());
    run_or_throw(nb * nl, [&](int t, int) {
      const int img = t / nl, li = t % nl;
      const LayerDesc& L = net.layers[size_t(li)];
      const float* w = ws + (size_t(img) * NW + L.w_index) * WD;
      float* s = S + size_t(img) * SD + L.style_offset;
      for (int i = 0; i < L.in_ch; ++i)
        s[i] = (ks_->dot(w, L.affine_W + size_t(i) * WD, WD) * L.affine_gain + L.affine_b[i]) * L.style_gain;
    });
    const int ncv = int(convs_.size());
    run_or_throw(nb * ncv, [&](int t, int) {
      const int img = t / ncv;
      const ConvPrep& cp = convs_[size_t(t % ncv)];
      const LayerDesc& L = *cp.L;
      const float* s = S + size_t(img) * SD + L.style_offset;
      float s2[1024];
      std::vector<float> big;
      float* sq = s2;
      if (L.in_ch > 1024) {
        big.resize(size_t(L.in_ch));
        sq = big.data();
      }
      for (int i = 0; i < L.in_ch; ++i) sq[i] = s[i] * s[i];
      float* d = D + size_t(img) * demod_total_ + cp.demod_off;
      for (int o = 0; o < L.out_ch; ++o)
        d[o] = float(1.0 / std::sqrt(double(ks_->dot(sq, cp.wsq.data() + size_t(o) * L.in_ch, L.in_ch)) + 1e-8));
    });

    // The layers.
    const float* x = net.const_input;
    size_t x_stride = 0;  // per-image stride; 0: shared const
    int cur = 0;          // act_ buffer holding x (when x_stride > 0)
    int img_cur = -1, img_res = 0;
    static const bool profile = std::getenv("FACEGAN_CPU_PROFILE") != nullptr;
    const auto batch_t0 = std::chrono::steady_clock::now();
    const double batch_c0 = profile ? thread_cpu_ms() : 0.0;
    int skip_layer = -1;  // a ToRGB already run fused into the previous convolution
    for (int li = 0; li < nl; ++li) {
      if (is_cancelled(a.cancel)) return Status::Cancelled("synthesis: cancelled");
      const LayerDesc& L = net.layers[size_t(li)];
      if (li == skip_layer) continue;
      struct Report {
        const LayerDesc& L;
        int nb;
        std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
        double c0 = thread_cpu_ms();
        ~Report() {
          if (!profile) return;
          double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
          double cms = thread_cpu_ms() - c0;
          double macs = double(L.in_ch) * L.out_ch * L.ksize * L.ksize * L.in_res * L.in_res * nb;
          std::fprintf(stderr, "  %-12s %4d->%4d %4d^2  %8.2f ms (caller cpu %8.2f ms)  %6.1f GFLOP/s\n",
                       L.name.c_str(), L.in_ch, L.out_ch, L.out_res, ms, cms, 2e-6 * macs / ms);
        }
      } report{L, nb};
      if (L.kind == LayerDesc::Conv) {
        const ConvPrep& cp = conv_of(li);
        const float* noise = nullptr;
        if (a.noise == NoiseMode::Random) {
          const size_t HW = size_t(L.out_res) * L.out_res;
          const int chunks = std::max(1, int(HW / 16384));
          run_or_throw(nb * chunks, [&](int t, int) {
            const int img = t / chunks, c = t % chunks;
            const size_t b = HW * size_t(c) / size_t(chunks), e = HW * size_t(c + 1) / size_t(chunks);
            noise_fill(a.noise_seed, cp.ordinal, a.image_offset + uint32_t(start + img), b, e,
                       noise_.data() + img * HW + b);
          });
          noise = noise_.data();
        }
        const int dst = x_stride ? 1 - cur : 0;
        float* out = act_[dst].data();
        const size_t out_stride = size_t(L.out_ch) * L.out_res * L.out_res;
        if (L.up == 1 && cp.wino) {
          // Fuse the following ToRGB into this convolution when possible.
          FusedRgb fr;
          const bool next_rgb = li + 1 < nl && net.layers[size_t(li + 1)].kind == LayerDesc::ToRGB &&
                                net.layers[size_t(li + 1)].out_res == L.out_res && fuse_rgb_;
          if (next_rgb) {
            const LayerDesc& R = net.layers[size_t(li + 1)];
            rgb_weights(R, S, nb, &rgbw_);
            fr.L = &R;
            fr.w = rgbw_.data();
            fr.prev = img_cur < 0 ? nullptr : img_[img_cur].data();
            fr.prev_res = img_res;
            fr.out = img_[img_cur < 0 ? 0 : 1 - img_cur].data();
          }
          if (conv3x3_wino(cp, x, x_stride, out, out_stride, nb, S, D, a.noise, noise, next_rgb ? &fr : nullptr)) {
            img_cur = img_cur < 0 ? 0 : 1 - img_cur;
            img_res = L.out_res;
            skip_layer = li + 1;
          }
        }
        else if (L.up == 1)
          conv3x3(cp, x, x_stride, out, out_stride, nb, S, D, a.noise, noise);
        else
          upconv(cp, x, x_stride, out, out_stride, nb, S, D, a.noise, noise);
        x = out;
        x_stride = out_stride;
        cur = dst;
      } else {
        const int dst = img_cur < 0 ? 0 : 1 - img_cur;
        torgb(L, x, x_stride, img_cur < 0 ? nullptr : img_[img_cur].data(), img_res, img_[dst].data(), nb, S);
        img_cur = dst;
        img_res = L.out_res;
      }
    }
    if (profile)
      std::fprintf(stderr, "  total: %.2f ms wall, %.2f ms caller cpu (batch %d)\n",
                   std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - batch_t0).count(),
                   thread_cpu_ms() - batch_c0, nb);
    // Outputs.
    write_outputs(a, start, nb, img_[img_cur].data(), bad);
    return Status::Ok();
  }

  // Column segments for columns [j0, j1) of a batch-flattened (img, y, x) space.
  void build_segs(std::vector<ColSeg>& segs, int j0, int j1, int HW, int W, int NR) const {
    segs.clear();
    int j = j0;
    while (j < j1) {
      const int img = j / HW, p = j % HW, y = p / W, x = p % W;
      const int col = j - j0;
      int len = std::min(W - x, j1 - j);
      len = std::min(len, NR - col % NR);
      segs.push_back({img, y, x, len, col});
      j += len;
    }
  }

  void epi_args(EpilogueArgs* e, const LayerDesc& L, const float* noise_row, float d, int o) const {
    e->d = d;
    e->bias = L.bias[o];
    e->noise_strength = L.noise_strength;
    e->noise = L.has_noise ? noise_row : nullptr;
    e->clamp = L.clamp;
    e->act = L.activate;
    e->slope = L.lrelu_slope;
    e->gain = L.act_gain;
  }

  // ---- ProGAN (docs/progan.md): dense start, then plain 3×3 convs (s = 1, d = 1, no noise)
  // with leaky ReLU and a pixel norm, the first of each block on the nearest ×2 upsampled
  // input, then one linear ToRGB. The convolutions are the StyleGAN2 kernels with unit styles.
  Status run_batch_progan(const SynthesisArgs& a, int start, int nb, std::atomic<uint64_t>* bad) {
    const Network& net = *net_;
    const int R = net.info.img_resolution, IC = net.info.img_channels, Z = net.info.z_dim;
    act_[0].reserve(size_t(nb) * max_act_);
    act_[1].reserve(size_t(nb) * max_act_);
    if (max_up_) up_.reserve(size_t(nb) * max_up_);
    img_[0].reserve(size_t(nb) * IC * R * R);
    demod_.reserve(size_t(nb) * std::max<size_t>(demod_total_, 1));
    std::fill(demod_.data(), demod_.data() + demod_.size(), 1.0f);
    zn_.reserve(size_t(nb) * Z);
    const float* S = ones_.data();
    const float* D = demod_.data();
    static const bool profile = std::getenv("FACEGAN_CPU_PROFILE") != nullptr;
    const auto batch_t0 = std::chrono::steady_clock::now();
    // The latent pixel norm (per image; the float64 sum of squares as the reference).
    for (int img = 0; img < nb; ++img) {
      const float* z = a.z + size_t(start + img) * Z;
      float* zn = zn_.data() + size_t(img) * Z;
      std::memcpy(zn, z, size_t(Z) * sizeof(float));
      if (net.normalize_latent) {
        double ss = 0.0;
        for (int k = 0; k < Z; ++k) ss += double(zn[k]) * double(zn[k]);
        const float mean = float(ss / Z);
        const float sc = float(1.0 / std::sqrt(double(float(double(mean) + double(net.latent_eps)))));
        for (int k = 0; k < Z; ++k) zn[k] = zn[k] * sc;
      }
    }
    const float* x = nullptr;
    size_t x_stride = 0;
    int cur = 0;
    for (const LayerDesc& L : net.layers) {
      if (is_cancelled(a.cancel)) return Status::Cancelled("synthesis: cancelled");
      const auto t0 = std::chrono::steady_clock::now();
      if (L.kind == LayerDesc::Dense) {
        // a[o][p] = W[o·16 + p] · ẑ + b[o], lrelu, then the pixel norm of the 16 pixels.
        const int C = L.out_ch;
        float* out = act_[0].data();
        const size_t ostride = size_t(C) * 16;
        const int per = 64;  // output channels per task
        const int chunks = ceil_div(C, per);
        run_or_throw(nb * chunks, [&](int t, int) {
          const int img = t / chunks, o0 = (t % chunks) * per, o1 = std::min(C, o0 + per);
          const float* zn = zn_.data() + size_t(img) * Z;
          float* oi = out + size_t(img) * ostride;
          for (int o = o0; o < o1; ++o)
            for (int p = 0; p < 16; ++p) {
              float v = ks_->dot(L.weight + (size_t(o) * 16 + p) * Z, zn, Z) + L.bias[o];
              if (L.activate) {
                v = v < 0.0f ? v * L.lrelu_slope : v;
                if (L.act_gain != 1.0f) v = v * L.act_gain;
              }
              oi[size_t(o) * 16 + p] = v;
            }
        });
        if (L.pixel_norm)
          run_or_throw(nb, [&](int img, int) { ks_->pixel_norm(out + size_t(img) * ostride, 16, C, 16, L.pixel_norm_eps); });
        x = out;
        x_stride = ostride;
        cur = 0;
      } else if (L.kind == LayerDesc::Conv) {
        const ConvPrep& cp = conv_of(int(&L - net.layers.data()));
        const int H = L.out_res, HW = H * H;
        const float* in = x;
        size_t in_stride = x_stride;
        if (L.up == 2 && !cp.wino_up) {
          // Nearest ×2 into up_: row y of the 2H grid is input row y/2, each value twice.
          const int h = L.in_res, Ci = L.in_ch;
          float* up = up_.data();
          const size_t ustride = size_t(Ci) * HW;
          const int cper = std::max(1, 16384 / HW);
          const int chunks = ceil_div(Ci, cper);
          run_or_throw(nb * chunks, [&](int t, int) {
            const int img = t / chunks, c0 = (t % chunks) * cper, c1 = std::min(Ci, c0 + cper);
            for (int c = c0; c < c1; ++c) {
              const float* src = x + size_t(img) * x_stride + size_t(c) * h * h;
              float* dst = up + size_t(img) * ustride + size_t(c) * HW;
              for (int yy = 0; yy < h; ++yy) {
                float* r0 = dst + size_t(2 * yy) * H;
                for (int xx = 0; xx < h; ++xx) r0[2 * xx] = r0[2 * xx + 1] = src[size_t(yy) * h + xx];
                std::memcpy(r0 + H, r0, size_t(H) * sizeof(float));
              }
            }
          });
          in = up;
          in_stride = ustride;
        }
        const int dst = 1 - cur;
        float* out = act_[dst].data();
        const size_t out_stride = size_t(L.out_ch) * HW;
        bool normed = false;
        if (cp.wino) conv3x3_wino(cp, in, in_stride, out, out_stride, nb, S, D, NoiseMode::None, nullptr, nullptr, &normed);
        else conv3x3(cp, in, in_stride, out, out_stride, nb, S, D, NoiseMode::None, nullptr);
        if (L.pixel_norm && !normed) {
          const int pchunk = 1024;
          const int chunks = ceil_div(HW, pchunk);
          run_or_throw(nb * chunks, [&](int t, int) {
            const int img = t / chunks, p0 = (t % chunks) * pchunk, n = std::min(pchunk, HW - p0);
            ks_->pixel_norm(out + size_t(img) * out_stride + p0, size_t(HW), L.out_ch, n, L.pixel_norm_eps);
          });
        }
        x = out;
        x_stride = out_stride;
        cur = dst;
      } else {
        torgb(L, x, x_stride, nullptr, 0, img_[0].data(), nb, S);
      }
      if (profile) {
        double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        double macs = double(L.in_ch) * L.out_ch * L.ksize * L.ksize * L.out_res * L.out_res * nb;
        if (L.kind == LayerDesc::Dense) macs = double(L.in_ch) * L.out_ch * 16 * nb;
        std::fprintf(stderr, "  %-12s %4d->%4d %4d^2  %8.2f ms  %6.1f GFLOP/s\n", L.name.c_str(), L.in_ch, L.out_ch,
                     L.out_res, ms, 2e-6 * macs / ms);
      }
    }
    if (profile)
      std::fprintf(stderr, "  total: %.2f ms wall (batch %d)\n",
                   std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - batch_t0).count(), nb);
    write_outputs(a, start, nb, img_[0].data(), bad);
    return Status::Ok();
  }

  // C[(p − p0)·MR …][…] (+)= A panels [p0, p1) (each K·MR floats, K-block offset kb) × the packed
  // B block (npan panels of nr columns, kcur deep). `small`: the small-N kernels (nr = NR_small).
  void gemm_block(const float* A, int K, int kb, int kcur, int p0, int p1, const float* Bp, int npan, bool small,
                  float* C, size_t ldc, bool accumulate) const {
    const int MR = ks_->MR;
    if (small) {
      const int nr = ks_->NR_small, P = ks_->small_panels;
      for (int p = p0; p < p1; p += P) {
        const int np = std::min(P, p1 - p);
        const float* Ap = A + (size_t(p) * K + kb) * MR;
        float* Cp = C + size_t(p - p0) * MR * ldc;
        for (int jp = 0; jp < npan; ++jp)
          ks_->gemm_small[np](kcur, Ap, size_t(K) * MR, Bp + size_t(jp) * kcur * nr, Cp + size_t(jp) * nr, ldc,
                              accumulate);
      }
      return;
    }
    const int NR = ks_->NR;
    for (int p = p0; p < p1; ++p) {
      const float* Ap = A + (size_t(p) * K + kb) * MR;
      float* Cp = C + size_t(p - p0) * MR * ldc;
      for (int jp = 0; jp < npan; ++jp)
        ks_->gemm(kcur, Ap, Bp + size_t(jp) * kcur * NR, Cp + size_t(jp) * NR, ldc, accumulate);
    }
  }

  // Few columns: the small-N kernels waste less of their tile.
  bool use_small(int ncols) const { return ncols < 2 * ks_->NR && ks_->NR_small < ks_->NR; }

  void conv3x3(const ConvPrep& cp, const float* in, size_t in_stride, float* out, size_t out_stride, int nb,
               const float* S, const float* D, NoiseMode mode, const float* noise) {
    const LayerDesc& L = *cp.L;
    const int H = L.out_res, W = H, HW = H * W, Co = L.out_ch, K = cp.K;
    const int MR = ks_->MR;
    const int Ntot = nb * HW;
    const bool small = use_small(Ntot);
    const int NR = small ? ks_->NR_small : ks_->NR;
    const int pstep = small ? ks_->small_panels : 1;
    const int nc = std::min(int(round_up(size_t(Ntot), size_t(NR))), nc_target_);
    const int ncol = ceil_div(Ntot, nc);
    const int Mp = cp.group_panels[0];
    int nm = 1;
    while (ncol * nm < 2 * pool_->size() && Mp >= 2 * nm * 2 * pstep) nm *= 2;
    const int mchunk = int(round_up(size_t(ceil_div(Mp, nm)), size_t(pstep)));
    run_or_throw(ncol * nm, [&](int t, int tid) {
      Scratch& sc = scratch_[size_t(tid)];
      const int ci = t / nm, mi = t % nm;
      const int j0 = ci * nc, j1 = std::min(Ntot, j0 + nc), ncols = j1 - j0;
      const int p0 = mi * mchunk, p1 = std::min(Mp, p0 + mchunk);
      if (p0 >= p1) return;
      build_segs(sc.segs, j0, j1, HW, W, NR);
      const int npan = ceil_div(ncols, NR);
      const size_t ldc = size_t(npan) * NR;
      float* C = sc.C.data();
      PackBArgs pa;
      pa.nr = NR;
      pa.Bp = sc.Bp.data();
      pa.taps = 9;
      pa.segs = sc.segs.data();
      pa.nsegs = int(sc.segs.size());
      pa.ncols = ncols;
      pa.in = in;
      pa.in_img_stride = in_stride;
      pa.H = H;
      pa.W = W;
      pa.styles = S + L.style_offset;
      pa.style_stride = size_t(net_->style_dim);
      for (int kb = 0; kb < K; kb += kc_) {
        const int kcur = std::min(kc_, K - kb);
        pa.kc = kcur;
        pa.k0 = kb;
        ks_->pack_b(pa);
        gemm_block(cp.A.data(), K, kb, kcur, p0, p1, pa.Bp, npan, small, C, ldc, kb > 0);
      }
      const int o_end = std::min(Co, p1 * MR);
      EpilogueArgs e;
      for (int o = p0 * MR; o < o_end; ++o) {
        const float* crow = C + size_t(o - p0 * MR) * ldc;
        for (const ColSeg& sg : sc.segs) {
          const size_t pix = size_t(sg.y) * W + sg.x0;
          const float* nz = mode == NoiseMode::Const ? L.noise_const + pix
                          : mode == NoiseMode::Random ? noise + size_t(sg.img) * HW + pix : nullptr;
          epi_args(&e, L, nz, D[size_t(sg.img) * demod_total_ + cp.demod_off + o], o);
          ks_->epilogue(out + size_t(sg.img) * out_stride + size_t(o) * HW + pix, crow + sg.col, sg.len, e);
        }
      }
    });
  }

  static int env_int(const char* name, int def) {
    const char* v = std::getenv(name);
    return v && *v ? std::atoi(v) : def;
  }

  void prepare_wino(ConvPrep& cp, size_t* max_cols, size_t* max_bp) {
    const LayerDesc& L = *cp.L;
    const int MR = ks_->MR, Ci = L.in_ch, Co = L.out_ch;
    const int Mp = ceil_div(Co, MR);
    cp.wino = true;
    // Transformed weights U = G·g·Gᵀ, G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1], packed per ξ like A.
    cp.U.reserve(size_t(16) * Mp * MR * Ci);
    float* U = cp.U.data();
    static const double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
    for (int p = 0; p < Mp; ++p)
      for (int i = 0; i < MR; ++i) {
        const int o = p * MR + i;
        for (int c = 0; c < Ci; ++c) {
          double u[4][4] = {};
          if (o < Co) {
            const float* g = L.weight + (size_t(o) * Ci + c) * 9;
            double t[4][3];
            for (int a = 0; a < 4; ++a)
              for (int k = 0; k < 3; ++k) t[a][k] = G[a][0] * g[0 * 3 + k] + G[a][1] * g[1 * 3 + k] + G[a][2] * g[2 * 3 + k];
            for (int a = 0; a < 4; ++a)
              for (int b = 0; b < 4; ++b) u[a][b] = t[a][0] * G[b][0] + t[a][1] * G[b][1] + t[a][2] * G[b][2];
          }
          for (int xi = 0; xi < 16; ++xi) U[((size_t(xi) * Mp + p) * Ci + c) * MR + i] = float(u[xi / 4][xi % 4]);
        }
      }
    // Blocking: V (16·kc·NT) and the accumulators (16·rows·NT) should stay in L2.
    set_wino_blocking(cp, 16, {"FACEGAN_WG_ROWS", 512}, {"FACEGAN_WG_KC", 128}, {"FACEGAN_WG_BUDGET", 20480},
                      (L.out_res / 2) * (L.out_res / 2), max_cols, max_bp);
  }

  // A tuning default that an environment variable may override (for measurements).
  struct Tunable {
    const char* env;
    int fallback;
  };

  // Blocks a Winograd convolution with `planes` transform planes: rows of output channels and K
  // blocks per task, and a column count NT such that V (planes·kc·NT) and the accumulators
  // (planes·rows·NT) stay in L2 (`budget` = NT·(kc + rows)). Grows the shared scratch sizes.
  void set_wino_blocking(ConvPrep& cp, int planes, Tunable rows, Tunable kc, Tunable budget, int tiles,
                         size_t* max_cols, size_t* max_bp) {
    const int MR = ks_->MR, NR = ks_->NR;
    const int Mp = ceil_div(cp.L->out_ch, MR);
    cp.wg_rows = std::min(Mp * MR, int(round_up(size_t(env_int(rows.env, rows.fallback)), size_t(MR))));
    cp.wg_kc = std::min(cp.L->in_ch, env_int(kc.env, kc.fallback));
    int nt = env_int(budget.env, budget.fallback) / (cp.wg_kc + cp.wg_rows);
    nt = std::max(NR, nt / NR * NR);
    cp.wg_nt = std::min(nt, int(round_up(size_t(tiles), size_t(NR))) * 64);
    *max_cols = std::max(*max_cols, size_t(cp.wg_nt));
    *max_bp = std::max(*max_bp, size_t(planes) * cp.wg_kc * cp.wg_nt);
    max_cbuf_ = std::max(max_cbuf_, size_t(planes) * cp.wg_rows * cp.wg_nt);
  }

  // Nearest ×2 + 3×3 as polyphase Winograd F(2×2, 2×2) (kernels.h): per phase (py, px) the 2×2
  // kernel k = the sums of the 3×3 taps reading the same input pixel (rows: py 0 → {g0, g1 + g2},
  // py 1 → {g0 + g1, g2}; columns likewise), U = G·k·Gᵀ with G = [1 0; 1 1; 0 1], 36 planes.
  void prepare_wino_up(ConvPrep& cp, size_t* max_cols, size_t* max_bp) {
    const LayerDesc& L = *cp.L;
    const int MR = ks_->MR, Ci = L.in_ch, Co = L.out_ch;
    const int Mp = ceil_div(Co, MR);
    cp.wino = cp.wino_up = true;
    cp.nxi = 36;
    cp.U.reserve(size_t(36) * Mp * MR * Ci);
    float* U = cp.U.data();
    // S[phase][a][k]: which 3×3 taps k fold into 2×2 tap a.
    static const int S[2][2][3] = {{{1, 0, 0}, {0, 1, 1}}, {{1, 1, 0}, {0, 0, 1}}};
    static const double G[3][2] = {{1, 0}, {1, 1}, {0, 1}};
    for (int p = 0; p < Mp; ++p)
      for (int i = 0; i < MR; ++i) {
        const int o = p * MR + i;
        for (int c = 0; c < Ci; ++c) {
          double u[4][3][3] = {};
          if (o < Co) {
            const float* g = L.weight + (size_t(o) * Ci + c) * 9;
            for (int py = 0; py < 2; ++py)
              for (int px = 0; px < 2; ++px) {
                double k[2][2] = {};
                for (int a = 0; a < 2; ++a)
                  for (int b = 0; b < 2; ++b)
                    for (int ky = 0; ky < 3; ++ky)
                      for (int kx = 0; kx < 3; ++kx)
                        if (S[py][a][ky] && S[px][b][kx]) k[a][b] += double(g[ky * 3 + kx]);
                for (int al = 0; al < 3; ++al)
                  for (int be = 0; be < 3; ++be) {
                    double v = 0.0;
                    for (int a = 0; a < 2; ++a)
                      for (int b = 0; b < 2; ++b) v += G[al][a] * k[a][b] * G[be][b];
                    u[py * 2 + px][al][be] = v;
                  }
              }
          }
          for (int xi = 0; xi < 36; ++xi)
            U[((size_t(xi) * Mp + p) * Ci + c) * MR + i] = float(u[xi / 9][(xi % 9) / 3][xi % 3]);
        }
      }
    // Blocking: V (36·kc·NT) and the accumulators (36·rows·NT) should stay in L2.
    // (Measured on ProGAN-128, AVX-512, batch 4: every output channel in one task, K blocks of
    // 256, one NR-wide column panel per task beat smaller row blocks / K blocks / wider tasks.)
    set_wino_blocking(cp, 36, {"FACEGAN_WGU_ROWS", 512}, {"FACEGAN_WGU_KC", 256}, {"FACEGAN_WGU_BUDGET", 1024},
                      (L.in_res / 2) * (L.in_res / 2), max_cols, max_bp);
  }

  // The pixel norm over the `tile`×`tile` output blocks of the segments a task just wrote (tile
  // 2: F(2×2, 3×3) on the output grid; 4: the polyphase up-conv on the input grid).
  void pixel_norm_tiles(const Scratch& sc, int tile, float* out, size_t out_stride, int OW, int Co, float eps) const {
    const size_t OHW = size_t(OW) * OW;
    for (const ColSeg& sg : sc.segs)
      for (int r = 0; r < tile; ++r)
        ks_->pixel_norm(out + size_t(sg.img) * out_stride + size_t(tile * sg.y + r) * OW + tile * sg.x0, OHW, Co,
                        tile * sg.len, eps);
  }

  // Returns true when it also ran `rgb` (fusion needs every output channel in one task).
  // `norm`: also apply the layer's pixel norm to the pixels each task wrote when the task holds
  // every output channel (returned in *normed; otherwise the caller runs the pixel-norm pass).
  bool conv3x3_wino(const ConvPrep& cp, const float* in, size_t in_stride, float* out, size_t out_stride, int nb,
                    const float* S, const float* D, NoiseMode mode, const float* noise, const FusedRgb* rgb,
                    bool* normed = nullptr) {
    const LayerDesc& L = *cp.L;
    // The tile grid: the output (F(2×2, 3×3)) or the low-resolution input (polyphase up).
    const bool up = cp.wino_up;
    const int NX = cp.nxi;
    const int H = L.in_res, W = H, HW = H * W, Ci = L.in_ch, Co = L.out_ch;
    const int OW = L.out_res, OHW = OW * OW;
    const int TW = W / 2, TPI = (H / 2) * TW, Ttot = nb * TPI;
    // Few tiles (small batches at 16², 32²): the small-N GEMM kernels on NR_small-wide panels
    // waste less of each panel and give the pool more tasks (the same arithmetic per output, so
    // the choice may follow the batch).
    const bool small = Ttot < 2 * ks_->NR && ks_->NR_small < ks_->NR;
    const int MR = ks_->MR, NR = small ? ks_->NR_small : ks_->NR;
    const int Mp = ceil_div(Co, MR);
    const int pan_per = cp.wg_rows / MR;
    int nt = std::min(cp.wg_nt, int(round_up(size_t(Ttot), size_t(NR))));
    int ntc = ceil_div(Ttot, nt);
    const int nmc = ceil_div(Mp, pan_per);
    // Enough tasks for the pool: split the tiles finer when needed.
    while (ntc * nmc < 2 * pool_->size() && nt > NR) {
      nt = std::max(NR, int(round_up(size_t(nt / 2), size_t(NR))));
      ntc = ceil_div(Ttot, nt);
    }
    if (nmc != 1 || up) rgb = nullptr;
    const bool norm = normed && L.pixel_norm && nmc == 1;
    if (normed) *normed = norm;
    run_or_throw(ntc * nmc, [&](int t, int tid) {
      Scratch& sc = scratch_[size_t(tid)];
      const int ti = t / nmc, mi = t % nmc;
      const int t0 = ti * nt, t1 = std::min(Ttot, t0 + nt), ncols = t1 - t0;
      const int p0 = mi * pan_per, p1 = std::min(Mp, p0 + pan_per);
      const int rows = (p1 - p0) * MR;
      // Tile runs: (img, tile row, first tile column, length, column in the block).
      sc.segs.clear();
      for (int tt = t0; tt < t1;) {
        const int img = tt / TPI, r = tt % TPI, ty = r / TW, tx = r % TW;
        const int col = tt - t0;
        int len = std::min(TW - tx, t1 - tt);
        len = std::min(len, NR - col % NR);
        sc.segs.push_back({img, ty, tx, len, col});
        tt += len;
      }
      const int npan = ceil_div(ncols, NR);
      const size_t ldc = size_t(npan) * NR;
      float* Vp = sc.Bp.data();
      float* C = sc.C.data();
      const size_t cxs = size_t(rows) * ldc;  // ξ stride of the accumulators
      for (int kb = 0; kb < Ci; kb += cp.wg_kc) {
        const int kcur = std::min(cp.wg_kc, Ci - kb);
        const size_t vxs = size_t(kcur) * ldc;  // ξ stride of V
        if (ncols % NR) {
          const int tail = NR - ncols % NR;
          for (int xi = 0; xi < NX; ++xi)
            for (int kk = 0; kk < kcur; ++kk)
              std::memset(Vp + xi * vxs + size_t(npan - 1) * kcur * NR + size_t(kk) * NR + (NR - tail), 0,
                          sizeof(float) * size_t(tail));
        }
        WinoInArgs wa;
        wa.xi_stride = vxs;
        wa.W = W;
        // Channel-major so that each channel's rows stream through once per block.
        for (int kk = 0; kk < kcur; ++kk) {
          const int c = kb + kk;
          for (const ColSeg& sg : sc.segs) {
            const float* base = in + size_t(sg.img) * in_stride;
            const float* srow = S + size_t(sg.img) * net_->style_dim + L.style_offset;
            const float* plane = base + size_t(c) * HW;
            for (int r = 0; r < 4; ++r) {
              const int y = 2 * sg.y - 1 + r;
              wa.rows[r] = (y >= 0 && y < H) ? plane + size_t(y) * W : nullptr;
            }
            wa.s = srow[c];
            wa.tx0 = sg.x0;
            wa.len = sg.len;
            wa.dst = Vp + size_t(sg.col / NR) * kcur * NR + size_t(kk) * NR + sg.col % NR;
            if (up) ks_->wino_up_in(wa);
            else ks_->wino_in(wa);
          }
        }
        for (int xi = 0; xi < NX; ++xi) {
          const float* Ux = cp.U.data() + size_t(xi) * Mp * MR * Ci;
          for (int p = p0; p < p1; ++p) {
            const float* Ap = Ux + (size_t(p) * Ci + kb) * MR;
            float* Cp = C + xi * cxs + size_t(p - p0) * MR * ldc;
            const float* Bx = Vp + xi * vxs;
            if (small) {
              const int np = std::min(ks_->small_panels, p1 - p);
              for (int jp = 0; jp < npan; ++jp)
                ks_->gemm_small[np](kcur, Ap, size_t(Ci) * MR, Bx + size_t(jp) * kcur * NR, Cp + size_t(jp) * NR, ldc,
                                    kb > 0);
              p += np - 1;
              continue;
            }
            for (int jp = 0; jp < npan; ++jp)
              ks_->gemm(kcur, Ap, Bx + size_t(jp) * kcur * NR, Cp + size_t(jp) * NR, ldc, kb > 0);
          }
        }
      }
      const int o_end = std::min(Co, p1 * MR);
      if (up) {
        WinoUpOutArgs wu;
        wu.xi_stride = cxs;
        for (int o = p0 * MR; o < o_end; ++o) {
          const float* crow = C + size_t(o - p0 * MR) * ldc;
          for (const ColSeg& sg : sc.segs) {
            float* ob = out + size_t(sg.img) * out_stride + size_t(o) * OHW + size_t(4 * sg.y) * OW + 4 * sg.x0;
            for (int r = 0; r < 4; ++r) wu.out[r] = ob + size_t(r) * OW;
            wu.m = crow + sg.col;
            wu.len = sg.len;
            epi_args(&wu.e, L, nullptr, D[size_t(sg.img) * demod_total_ + cp.demod_off + o], o);
            ks_->wino_up_out(wu);
          }
        }
        if (norm) pixel_norm_tiles(sc, 4, out, out_stride, OW, Co, L.pixel_norm_eps);
        return;
      }
      WinoOutArgs wo;
      wo.xi_stride = cxs;
      for (int o = p0 * MR; o < o_end; ++o) {
        const float* crow = C + size_t(o - p0 * MR) * ldc;
        for (const ColSeg& sg : sc.segs) {
          const int y = 2 * sg.y, x = 2 * sg.x0;
          float* ob = out + size_t(sg.img) * out_stride + size_t(o) * HW;
          wo.out0 = ob + size_t(y) * W + x;
          wo.out1 = wo.out0 + W;
          wo.m = crow + sg.col;
          wo.len = sg.len;
          const float* nz = mode == NoiseMode::Const ? L.noise_const
                          : mode == NoiseMode::Random ? noise + size_t(sg.img) * HW : nullptr;
          wo.noise0 = nz ? nz + size_t(y) * W + x : nullptr;
          wo.noise1 = nz ? wo.noise0 + W : nullptr;
          epi_args(&wo.e, L, nullptr, D[size_t(sg.img) * demod_total_ + cp.demod_off + o], o);
          ks_->wino_out(wo);
        }
      }
      if (norm) pixel_norm_tiles(sc, 2, out, out_stride, W, Co, L.pixel_norm_eps);
      if (rgb) {
        // ToRGB on the rows just written (still in cache), plus the upsampled skip image.
        const LayerDesc& R = *rgb->L;
        const int IC = R.out_ch;
        for (const ColSeg& sg : sc.segs) {
          const float* w = rgb->w + size_t(sg.img) * IC * Co;
          float* o = rgb->out + size_t(sg.img) * IC * HW;
          const float* act = out + size_t(sg.img) * out_stride;
          const float* pv = rgb->prev ? rgb->prev + size_t(sg.img) * IC * size_t(rgb->prev_res) * rgb->prev_res : nullptr;
          const int xa = 2 * sg.x0, xb = xa + 2 * sg.len;
          for (int y = 2 * sg.y; y < 2 * sg.y + 2; ++y) {
            if (pv) skip_upsample(o, size_t(HW), W, pv, rgb->prev_res, IC, y, xa, xb);
            const size_t off = size_t(y) * W + xa;
            ks_->torgb_row(o + off, size_t(HW), act + off, size_t(HW), Co, xb - xa, w, R.bias, IC, R.clamp, pv ? 1 : 0);
          }
        }
      }
    });
    return rgb != nullptr;
  }

  void upconv(const ConvPrep& cp, const float* in, size_t in_stride, float* out, size_t out_stride, int nb,
              const float* S, const float* D, NoiseMode mode, const float* noise) {
    const LayerDesc& L = *cp.L;
    const int H = L.in_res, W = H, Ci = L.in_ch, Co = L.out_ch;
    const int OW = 2 * W, OHW = OW * OW;
    const int K = Ci;
    const int ipt = std::min(cp.ipt, nb);
    const int nic = ceil_div(nb, ipt);
    int rc = 1;
    if (!cp.multi) {
      const int base = nic * cp.ngroups;
      const int want = 2 * pool_->size();
      if (base < want) rc = std::min(ceil_div(want, base), std::max(1, H / std::max(cp.G, 8)));
    }
    const int ntasks = nic * cp.ngroups * rc;
    const size_t ZB = size_t(6) * W;  // floats per (row, channel) Z block
    // Outputs much larger than the caches: write around them (read back only by the next layer).
    const bool stream = stream_min_ > 0 && size_t(nb) * Co * OHW * sizeof(float) >= stream_min_;
    const float* zero = zero_block_.data();
    run_or_throw(ntasks, [&](int t, int tid) {
      Scratch& sc = scratch_[size_t(tid)];
      const int ri = t % rc, g = (t / rc) % cp.ngroups, ic = t / (rc * cp.ngroups);
      const int i0 = ic * ipt, i1 = std::min(nb, i0 + ipt), nimg = i1 - i0;
      const int r0 = H * ri / rc, r1 = H * (ri + 1) / rc;
      const int o0 = g * cp.og, ogg = std::min(cp.og, Co - o0);
      const int panels = cp.group_panels[size_t(g)];
      const float* Ag = cp.A.data() + cp.group_off[size_t(g)];
      const int nslots = cp.multi ? H : cp.G + 2;
      const int G = cp.multi ? H : cp.G;
      const int rs = std::max(0, r0 - 1), re = std::min(H, r1 + 1);
      int next_out[64];
      for (int i = 0; i < nimg; ++i) next_out[i] = r0;
      float* C = sc.C.data();
      float* Z = sc.Z.data();
      auto zslot = [&](int il, int m, int ol) -> float* {
        return Z + ((size_t(il) * nslots + size_t(m % nslots)) * ogg + ol) * ZB;
      };
      PackBArgs pa;
      pa.Bp = sc.Bp.data();
      pa.taps = 1;
      pa.in = in;
      pa.in_img_stride = in_stride;
      pa.H = H;
      pa.W = W;
      pa.styles = S + L.style_offset;
      pa.style_stride = size_t(net_->style_dim);
      EpilogueArgs e;
      for (int g0 = rs; g0 < re; g0 += G) {
        const int g1 = std::min(re, g0 + G), rows = g1 - g0;
        // Columns: images i0..i1, rows g0..g1, all x. Segments split at panel edges.
        const bool small = use_small(nimg * (g1 - g0) * W);
        const int NR = small ? ks_->NR_small : ks_->NR;
        pa.nr = NR;
        sc.segs.clear();
        int col = 0;
        for (int il = 0; il < nimg; ++il)
          for (int m = g0; m < g1; ++m) {
            int x = 0;
            while (x < W) {
              int len = std::min(W - x, NR - col % NR);
              sc.segs.push_back({i0 + il, m, x, len, col});
              // pack_b reads image sg.img relative to `in`; i0 + il is the absolute image index.
              x += len;
              col += len;
            }
          }
        const int ncols = col;
        const int npan = ceil_div(ncols, NR);
        const size_t ldc = size_t(npan) * NR;
        pa.segs = sc.segs.data();
        pa.nsegs = int(sc.segs.size());
        pa.ncols = ncols;
        for (int kb = 0; kb < K; kb += kc_) {
          const int kcur = std::min(kc_, K - kb);
          pa.kc = kcur;
          pa.k0 = kb;
          ks_->pack_b(pa);
          gemm_block(Ag, K, kb, kcur, 0, panels, pa.Bp, npan, small, C, ldc, kb > 0);
        }
        // Horizontal pass into the Z ring.
        for (int il = 0; il < nimg; ++il)
          for (int m = g0; m < g1; ++m) {
            const size_t cofs = (size_t(il) * rows + size_t(m - g0)) * W;
            for (int ol = 0; ol < ogg; ++ol) {
              float* z = zslot(il, m, ol);
              for (int ky = 0; ky < 3; ++ky) {
                const float* y0 = C + size_t(ol * 9 + ky * 3) * ldc + cofs;
                ks_->upconv_h(y0, y0 + ldc, y0 + 2 * ldc, z + size_t(ky) * 2 * W, z + size_t(ky) * 2 * W + W, W);
              }
            }
          }
        // Emit the output rows whose three input rows are ready.
        for (int il = 0; il < nimg; ++il) {
          const int img = i0 + il;
          int& m = next_out[il];
          while (m < r1 && (m + 1 < g1 || m + 1 >= H)) {
            for (int ol = 0; ol < ogg; ++ol) {
              const int o = o0 + ol;
              const float* zm = m > 0 ? zslot(il, m - 1, ol) : zero;
              const float* zc = zslot(il, m, ol);
              const float* zp = m + 1 < H ? zslot(il, m + 1, ol) : zero;
              const float d = D[size_t(img) * demod_total_ + cp.demod_off + o];
              for (int ph = 0; ph < 2; ++ph) {
                const int oy = 2 * m + ph;
                const size_t pix = size_t(oy) * OW;
                const float* nz = mode == NoiseMode::Const ? L.noise_const + pix
                                : mode == NoiseMode::Random ? noise + size_t(img) * OHW + pix : nullptr;
                epi_args(&e, L, nz, d, o);
                e.stream = stream;
                ks_->upconv_v(out + size_t(img) * out_stride + size_t(o) * OHW + pix, zm, zc, zp, W, ph, e);
              }
            }
            ++m;
          }
        }
      }
      if (stream) ks_->store_fence();
    });
  }

  // Modulated ToRGB weights w[img][k][c] = weight[k][c] · s[img][c].
  void rgb_weights(const LayerDesc& L, const float* S, int nb, std::vector<float>* w) const {
    const int C = L.in_ch, IC = L.out_ch;
    w->resize(size_t(nb) * IC * C);
    for (int img = 0; img < nb; ++img) {
      const float* s = S + size_t(img) * net_->style_dim + L.style_offset;
      float* wi = w->data() + size_t(img) * IC * C;
      for (int k = 0; k < IC; ++k)
        for (int c = 0; c < C; ++c) wi[size_t(k) * C + c] = L.weight[size_t(k) * C + c] * s[c];
    }
  }

  // Skip branch: row y, columns [xa, xb) of the ×2 upsampled previous image (P×P per channel),
  // per axis out[2j] = .25·x[j−1] + .75·x[j], out[2j+1] = .75·x[j] + .25·x[j+1], zero outside.
  static void skip_upsample(float* o, size_t HW, int W, const float* pv, int P, int IC, int y, int xa, int xb) {
    const int i = y / 2;
    const int ia = (y & 1) ? i : i - 1, ib = (y & 1) ? i + 1 : i;
    const float wa = (y & 1) ? 0.75f : 0.25f, wb = (y & 1) ? 0.25f : 0.75f;
    const int ja = std::max(0, xa / 2 - 1), jb = std::min(P, (xb + 1) / 2 + 1);  // source columns needed
    float tmp[8192 + 2];
    float* row = tmp + 1;
    for (int k = 0; k < IC; ++k) {
      const float* pk = pv + size_t(k) * P * P;
      const float* ra = ia >= 0 ? pk + size_t(ia) * P : nullptr;
      const float* rb = ib < P ? pk + size_t(ib) * P : nullptr;
      for (int j = ja; j < jb; ++j) row[j] = (ra ? wa * ra[j] : 0.0f) + (rb ? wb * rb[j] : 0.0f);
      row[ja - 1] = 0.0f;  // only read when ja == 0 (outside the image)
      row[jb] = 0.0f;      // only read when jb == P
      float* orow = o + size_t(k) * HW + size_t(y) * W;
      for (int x = xa; x < xb; ++x) {
        const int j = x >> 1;
        orow[x] = (x & 1) ? 0.75f * row[j] + 0.25f * row[j + 1] : 0.25f * row[j - 1] + 0.75f * row[j];
      }
    }
    (void)W;
  }

  void torgb(const LayerDesc& L, const float* x, size_t x_stride, const float* prev, int prev_res, float* out,
             int nb, const float* S) {
    const int H = L.out_res, W = H, C = L.in_ch, IC = L.out_ch;
    const size_t HW = size_t(H) * W;
    const int rows_per = std::max(1, std::min(H, int(16384 / std::max(W, 1))));
    const int rchunks = ceil_div(H, rows_per);
    std::vector<float> wm;
    rgb_weights(L, S, nb, &wm);
    run_or_throw(nb * rchunks, [&](int t, int) {
      const int img = t / rchunks, rc = t % rchunks;
      const int y0 = rc * rows_per, y1 = std::min(H, y0 + rows_per);
      const float* w = wm.data() + size_t(img) * IC * C;
      float* o = out + size_t(img) * IC * HW;
      const float* xi = x + size_t(img) * x_stride;
      const float* pv = prev ? prev + size_t(img) * IC * size_t(prev_res) * prev_res : nullptr;
      for (int y = y0; y < y1; ++y) {
        if (pv) skip_upsample(o, HW, W, pv, prev_res, IC, y, 0, W);
        ks_->torgb_row(o + size_t(y) * W, HW, xi + size_t(y) * W, HW, C, W, w, L.bias, IC, L.clamp, pv ? 1 : 0);
      }
    });
  }
};

}  // namespace
}  // namespace cpu

std::unique_ptr<Backend> create_cpu_backend() { return std::unique_ptr<Backend>(new cpu::CpuBackend()); }

}  // namespace facegan
