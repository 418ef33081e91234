// The optimised CPU engine ("cpu"): internal declarations shared by its files.
//
// Layout: activations NCHW float32, a whole call's images at a time (the Generator bounds them: images_per_call).
// Work is split into tasks run by a small persistent thread pool; the inner loops are the
// kernels of kernels.h, chosen at run time by cpuid (AVX-512, AVX2+FMA or portable C++).
//
// Files:
//   cpu_backend.cc   prepare, mapping, synthesis: the one walk over the network's LayerDescs
//                    (both architectures, one switch on the layer kind), styles, demodulation,
//                    noise, outputs, per-layer profiling (FACEGAN_CPU_PROFILE=1)
//   cpu_prepare.cc   weight packing at load: GEMM panels, Winograd transforms, blocking
//   cpu_conv.cc      3×3 convolutions (up 1, and ProGAN's on the nearest-upsampled grid) as
//                    an im2col GEMM; the shared GEMM / packing / epilogue helpers
//   cpu_winograd.cc  Winograd F(2×2, 3×3) and the polyphase F(2×2, 2×2) nearest-×2 up-conv,
//                    with the fused ToRGB and pixel norm
//   cpu_upconv.cc    StyleGAN2's up-convolution (transposed 3×3 stride 2 + [1,3,3,1] FIR)
//   cpu_pointwise.cc ToRGB with the skip upsampling, ProGAN's dense start, pixel norm,
//                    nearest ×2 upsampling
//
// Every modulated convolution runs as "scale the input channels by s, convolve with the fixed
// weights, scale the output channels by d": the weights are transformed / packed once at load
// and shared by the whole batch; s is applied while the input is packed or transformed;
// d[n,o] = rsqrt(Σ_i s[n,i]²·Wsq[o,i] + 1e-8) uses Wsq = Σ_k W[o,i,k]² precomputed at load;
// ×d, noise, bias, lrelu·√2 and the clamp are applied to the GEMM result while it is in cache.
// Unmodulated layers (ProGAN) run the same kernels with s = 1 and d = 1 (exact).
//
// Batch invariance: an image's bits never depend on the batch size, its position in the batch
// or the thread count. Every algorithm choice (Winograd or direct, the K blocking, the fused
// ToRGB) depends on the layer shape only; work is split across threads over output pixels and
// channels, never inside a reduction; and the kernels give a value the same arithmetic wherever
// it falls in a run (kernels_impl.h). facegan-check verifies it bit for bit.
//
// Environment knobs (for experiments and checks): FACEGAN_CPU_ISA=scalar|avx2|avx512,
// FACEGAN_CPU_WINOGRAD=0, FACEGAN_CPU_WINO_MIN_RES=N (default: 8² for 3×3 up 1, 16² for the
// polyphase nearest ×2), FACEGAN_CPU_SUB_MIN_RES=N (StyleGAN2 up-convs from input resolution N as
// sub-pixel phases, cpu_upconv.cc; default 32, 0 = never), FACEGAN_CPU_FUSE_RGB=0,
// FACEGAN_CPU_STREAM_KB=N (non-temporal stores for up-conv outputs of at least N KiB; 0 = never),
// FACEGAN_CPU_PROFILE=1 (per-layer timings on stderr).
//
// precision bf16 (opt-in, LoadOptions.precision; only where the CPU has AMX-BF16 and the avx512
// kernels run, else prepare refuses): every 3×3 conv runs as the im2col GEMM and every up-conv
// as its 1×1 GEMM on AMX tiles (gemm_amx.cc; weights rounded to bf16 once at load, the scaled
// activations while packed, fp32 accumulation); Winograd and the sub-pixel form are off (their
// transforms lose precision in bf16); epilogues, ToRGB, mapping and the rest stay fp32.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#include "backend.h"
#include "kernels.h"
#include "thread_pool.h"

namespace facegan {
namespace cpu {

// 64-byte aligned float buffer (contents not preserved on growth). Every buffer has kPadFront
// zero floats before data() and kPadBack after its end, so kernels may read one element past
// either end of a row. Large ones are 2 MB aligned and backed by transparent huge pages when the
// system allows it.
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
  // Grow-only, throws std::bad_alloc.
  void reserve(size_t n);
  void zero();

 private:
  static constexpr size_t kPadFront = 16, kPadBack = 32;
  void release();
  bool huge_ = false;
  float* base_ = nullptr;
  float* p_ = nullptr;
  size_t n_ = 0;
};

inline int ceil_div(int a, int b) { return (a + b - 1) / b; }
inline size_t round_up(size_t a, size_t b) { return (a + b - 1) / b * b; }
int env_int(const char* name, int def);
// FACEGAN_CPU_PROFILE=1 (read once): per-layer timings on stderr (cpu_backend.cc).
bool profiling();
// CPU time of the calling thread in ms (0 where unavailable); for the profile only.
double thread_cpu_ms();
// FACEGAN_CPU_PROFILE's per-part times: adds the calling thread's CPU time since *tp to *acc (µs)
// and restarts *tp; nothing unless prof.
inline void profile_lap(bool prof, double* tp, std::atomic<int64_t>* acc) {
  if (!prof) return;
  const double now = thread_cpu_ms();
  *acc += int64_t(1e3 * (now - *tp));
  *tp = now;
}

// Floats added to the stride between the planes of a Winograd / sub-pixel V or accumulator block:
// strides that are multiples of 4 KiB (kcur·ldc floats often are) put the 9–36 plane streams of
// a transform on the same L1 sets and alias its loads with its stores (ffhq256 b1, 1 thread:
// the Winograd input transforms −25 % with the prefetch below).
constexpr size_t kPlanePad = 16;
// Offset of the K block at kb (a multiple of kc; kb = K gives the size) in a V laid out as K
// blocks of kc rows, each `planes` planes of kcur·ldc floats kPlanePad apart.
inline size_t vblock_offset(int planes, int kb, int kc, size_t ldc) {
  return size_t(planes) * (size_t(kb) * ldc + size_t(ceil_div(kb, kc)) * kPlanePad);
}
// A block of n GEMM columns packed as npan panels of nr columns (K-row-major inside a panel),
// then, with narrow_ok and when the last panel would hold at most nrs (NR_small) columns, that
// panel nrs wide (tail: its columns; 0 when none), which gemm_block runs on the small-N kernels.
// The same arithmetic per output either way (b32.conv1 at batch 1: 256 tiles = 5 × 48 + 16, not
// 6 × 48).
struct Panels {
  int n, nr, nrs, npan, tail;
  size_t ldc;  // padded columns: npan·nr (+ nrs)
  Panels(int n_, int nr_, int nrs_, bool narrow_ok) : n(n_), nr(nr_), nrs(nrs_) {
    const int tw = n % nr;
    tail = narrow_ok && tw > 0 && tw <= nrs && nrs < nr ? tw : 0;
    npan = tail ? n / nr : ceil_div(n, nr);
    ldc = size_t(npan) * nr + (tail ? nrs : 0);
  }
  // Offset of column col of K row kk in a packed block of kcur rows.
  size_t at(int col, int kk, int kcur) const {
    return col < npan * nr ? size_t(col / nr) * kcur * nr + size_t(kk) * nr + col % nr
                           : size_t(npan) * kcur * nr + size_t(kk) * nrs + size_t(col - npan * nr);
  }
  // Zeroes the padding columns (past n) of K row kk in a packed block B of kcur rows.
  void zero_padding(float* B, int kk, int kcur) const {
    const int w = tail ? nrs : nr, used = tail ? tail : n - (npan - 1) * nr;
    if (used < w) std::memset(B + at(n - used, kk, kcur) + used, 0, sizeof(float) * size_t(w - used));
  }
};

// Rows y0 … y0 + n − 1 of an H × W input plane into rows[] (nullptr outside the image), for a
// transform's input patches; with `next`, also prefetches columns [x0, x0 + len) of the same rows
// of the following plane (the next input channel), which then arrives from L3 while this one is
// transformed.
inline void patch_rows(const float** rows, const float* plane, int y0, int n, int H, int W, bool next, int x0,
                       int len) {
  for (int r = 0; r < n; ++r) {
    const int y = y0 + r;
    rows[r] = (y >= 0 && y < H) ? plane + size_t(y) * W : nullptr;
    if (next && rows[r]) {
      const float* p = rows[r] + size_t(H) * W + x0;
      for (int x = 0; x < len; x += 16) __builtin_prefetch(p + x, 0, 3);
      __builtin_prefetch(p + len - 1, 0, 3);
    }
  }
}

// A convolution layer as prepared at load.
struct ConvPrep {
  const LayerDesc* L = nullptr;
  int index = 0;    // layer index in the network
  int ordinal = 0;  // index among the conv layers (keys the random noise, as on the GPU)
  int K = 0;        // GEMM depth: 9·C_in (up 1) or C_in (up 2)
  // Output-channel groups (up 2: GEMM rows (o, ky, kx) of og channels; up 1: one group, rows o).
  int og = 0, ngroups = 0;
  std::vector<size_t> group_off;  // offset of each group's packed A
  std::vector<int> group_panels;  // MR-row panels per group
  Buf A;                          // packed weights, K-blocked by kcb (PanelLayout)
  int kcb = 0;                    // K block of A's (and U's) layout and of the GEMM steps
  std::vector<float> wsq;         // [C_out][C_in] Σ_k W²
  size_t demod_off = 0;           // into the per-batch demodulation buffer
  // Winograd F(2×2, 3×3) (up 1, resolution ≥ 16): U = (G·g·Gᵀ)[ξ], panels ξ·Mp + p over K = C_in,
  // K-blocked by wg_kc (PanelLayout).
  // Nearest ×2 + 3×3 (ProGAN, output ≥ 16): the polyphase F(2×2, 2×2) form (wino_up, 36 planes).
  bool wino = false, direct = true;  // which forms are prepared (up 1)
  bool wino_up = false;
  int nxi = 16;                      // Winograd planes
  Buf U;
  int wg_rows = 0, wg_kc = 0, wg_nt = 0;  // M rows per task, K block, tiles per task
  // Up-conv scheduling (fixed per layer).
  bool multi = false;  // several whole images per GEMM
  int ipt = 1, G = 1;  // images per task, input rows per GEMM step
  // Up-conv as sub-pixel phases (cpu_upconv.cc upconv_sub): per group of og output channels and
  // per input plane ξ = 3α + β (9), the A panels of the phases that use the plane (rows: phase
  // slot · og + o), K = C_in.
  bool sub = false;
  std::vector<size_t> sub_off;  // [group · 9 + ξ]
  std::vector<int> sub_rows;    // [ξ]: phases using the plane × og (before MR padding)
  // precision bf16 (AMX, gemm_amx.cc): A of each group as bf16 rows of kpad (kernels.h amx_pack_a).
  std::vector<uint16_t> Ab;
  std::vector<size_t> ab_off;  // per group
  int kpad = 0;
};

// A ToRGB layer fused into the preceding 3×3 convolution's epilogue.
struct FusedRgb {
  const LayerDesc* L = nullptr;
  const float* w = nullptr;     // [img][k][c] modulated weights
  const float* prev = nullptr;  // previous image (prev_res²), or nullptr
  int prev_res = 0;
  float* out = nullptr;         // [img][k][H][W]
  // Nothing reads the conv's activations after this ToRGB (the network's last layer): a task
  // keeps its output tile rows in scratch (Scratch::O) and never writes the activation buffer.
  bool last = false;
};

// Per-thread working memory.
struct Scratch {
  Buf Bp, C, Z, T, O;
  std::vector<ColSeg> segs;
  std::vector<int> seg_rows;  // per segment: its tile row among the task's (FusedRgb::last)
  std::vector<uint16_t> Bb;  // bf16 B tiles (precision bf16)
};

// Where a layer reads its input and writes its output, for nb images.
struct LayerIO {
  const float* in;
  size_t in_stride;  // floats per image; 0 when every image shares the input (the learned const)
  float* out;
  size_t out_stride;
  int nb;
  const float* S;  // styles [img][style_dim] (ProGAN: a row of ones, stride 0)
  const float* D;  // demodulation [img][demod_total]
  NoiseMode mode;  // None for layers without noise
  const float* noise;  // per image [out_res²] (NoiseMode::Random), else nullptr
};

// Skip branch: row y, columns [xa, xb) of the ×2 upsampled previous image (P×P per channel, IC
// channels) into o (channel stride HW) (cpu_pointwise.cc).
void skip_upsample(float* o, size_t HW, int W, const float* pv, int P, int IC, int y, int xa, int xb);

class CpuBackend : public Backend {
 public:
  const char* name() const override { return "cpu"; }
  bool supports(Arch) const override { return true; }
  Status prepare(const Network& net, const LoadOptions& options) override;
  Status mapping(const MappingArgs& a) override;
  bool reports_nonfinite() const override { return true; }
  Status synthesis(const SynthesisArgs& a) override;
  int images_per_call() override;

 private:
  // --- cpu_backend.cc: the driver
  Status run_batch(const SynthesisArgs& a, int start, int nb, std::atomic<uint64_t>* bad);
  void styles_and_demod(const float* ws, int nb);
  const float* random_noise(const SynthesisArgs& a, const ConvPrep& cp, int start, int nb);
  void write_outputs(const SynthesisArgs& a, int start, int nb, const float* fimg, std::atomic<uint64_t>* bad);
  const ConvPrep& conv_of(int layer_index) const;
  void run_or_throw(int ntasks, const std::function<void(int, int)>& fn);

  // --- cpu_prepare.cc: weights at load
  void prepare_conv(const LayerDesc& L, int index, bool use_wino, int wino_min_res, size_t* max_cols,
                    size_t* max_crows, size_t* max_z, size_t* max_bp);
  void pack_direct(ConvPrep& cp);
  void pack_bf16(ConvPrep& cp);
  void pack_upconv(ConvPrep& cp, size_t* max_crows, size_t* max_z, size_t* max_cols);
  void pack_upconv_sub(ConvPrep& cp);
  void prepare_wino(ConvPrep& cp, size_t* max_cols, size_t* max_bp);
  void prepare_wino_up(ConvPrep& cp, size_t* max_cols, size_t* max_bp);
  struct Tunable {  // a tuning default that an environment variable may override
    const char* env;
    int fallback;
  };
  void set_wino_blocking(ConvPrep& cp, int planes, Tunable rows, Tunable kc, Tunable budget, int tiles,
                         size_t* max_cols, size_t* max_bp);

  // --- cpu_conv.cc: im2col GEMM and helpers
  void conv3x3(const ConvPrep& cp, const LayerIO& io);
  // Panels [p0, p1) of A (laid out as `lay`) over the K block at kb (kcur = its length) against a
  // packed B block of columns `pn` (NR_small-wide panels: the small-N kernels; a narrow last panel
  // runs on them too).
  void gemm_block(const float* A, const PanelLayout& lay, int kb, int kcur, int p0, int p1, const float* Bp,
                  const Panels& pn, float* C, size_t ldc, bool accumulate) const;
  PanelLayout layout(const ConvPrep& cp, int panels) const { return {ks_->MR, panels, cp.K, cp.kcb}; }
  bool use_small(int ncols, bool narrow_ok = false) const;
  PackBArgs pack_args(const LayerDesc& L, const LayerIO& io, int taps, int H, int W, Scratch& sc, int nr,
                      int ncols) const;
  void epi_args(EpilogueArgs* e, const LayerDesc& L, const float* noise_row, float d, int o) const;
  float demod(const LayerIO& io, const ConvPrep& cp, int img, int o) const {
    return io.D[size_t(img) * demod_total_ + cp.demod_off + o];
  }
  // The noise of image img from output pixel pix of the layer (nullptr: no noise).
  static const float* noise_row(const LayerIO& io, const LayerDesc& L, int img, size_t pix) {
    return io.mode == NoiseMode::Const ? L.noise_const + pix
         : io.mode == NoiseMode::Random ? io.noise + size_t(img) * L.out_res * L.out_res + pix : nullptr;
  }
  // The GEMM of a direct conv / up-conv: rows = panels [p0, p1) of group g against a packed B
  // block; fp32 (gemm_block) or, with precision bf16, the AMX kernel.
  void gemm_conv(const ConvPrep& cp, int g, int kb, int kcur, int p0, int p1, const float* Bp, const Panels& pn,
                 float* C, size_t ldc, bool accumulate, Scratch& sc) const;
  static void build_segs(std::vector<ColSeg>& segs, int j0, int j1, int HW, int W, int NR);

  // --- cpu_winograd.cc
  bool conv3x3_wino(const ConvPrep& cp, const LayerIO& io, const FusedRgb* rgb, bool* normed);
  void pixel_norm_tiles(const Scratch& sc, int tile, float* out, size_t out_stride, int OW, int Co, float eps) const;

  // --- cpu_upconv.cc
  void upconv(const ConvPrep& cp, const LayerIO& io);
  void upconv_sub(const ConvPrep& cp, const LayerIO& io);

  // --- cpu_pointwise.cc
  void rgb_weights(const LayerDesc& L, const float* S, int nb, std::vector<float>* w) const;
  void torgb(const LayerDesc& L, const float* x, size_t x_stride, const float* prev, int prev_res, float* out, int nb,
             const float* S);
  void dense(const LayerDesc& L, const float* z, int nb, float* out);
  void pixel_norm(const LayerDesc& L, float* out, size_t out_stride, int nb);
  void upsample_nearest(const LayerDesc& L, const float* x, size_t x_stride, float* up, int nb);

  const Network* net_ = nullptr;
  const KernelSet* ks_ = nullptr;
  std::unique_ptr<ThreadPool> pool_;
  std::vector<Scratch> scratch_;
  std::vector<ConvPrep> convs_;
  int kc_ = 256;
  int nc_target_ = 384;
  size_t max_act_ = 0, max_z_ = 0, demod_total_ = 0, max_cbuf_ = 0;
  size_t max_up_ = 0, max_ch_ = 0;  // nearest-upsampled input (ProGAN); widest layer input
  Buf act_[2], img_[2], styles_, demod_, noise_, zero_block_, up_, ones_, zn_;
  Buf coop_v_, coop_ring_;  // the sub-pixel up-conv's cooperative steps (cpu_upconv.cc)
  Buf up_b_;                // the plain up-conv's packed input, shared by its channel groups
  Buf wino_v_;              // Winograd V shared by the tasks of a cooperative layer (cpu_winograd.cc)
  std::vector<float> rgbw_;
  bool fuse_rgb_ = true;
  bool bf16_ = false;  // precision bf16: direct convs and up-convs on AMX tiles, no Winograd
  int sub_min_res_ = 1 << 30;  // up-convs from this input resolution run as sub-pixel phases (off)
  size_t stream_min_ = 0;  // bytes of an up-conv output (sub-batch) from which to store non-temporally
  std::vector<std::vector<float>> map_w_;  // mapping weights × w_gain: [embed], fc0, fc1, …
};

}  // namespace cpu
}  // namespace facegan
