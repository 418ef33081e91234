// The CPU engine's im2col GEMM convolution (3×3, padding 1, on the output grid: the layers
// below 8², ProGAN's nearest ×2 + 3×3 below 16², or every 3×3 with FACEGAN_CPU_WINOGRAD=0), and the GEMM, packing and epilogue
// helpers its other convolutions share.
//
// C[o][pixel] = Σ_k A[o][k]·B[k][pixel] with k = (c, ky, kx), B packed per K block from the
// style-scaled input (kernels.h pack_b) into NR-wide panels; the register-blocked micro-kernel,
// or the small-N kernels when there are only a few pixels (the same arithmetic per output).
// Tasks split the batch-flattened pixels and, when there are too few of them, the output
// channels: never a reduction.
#include <algorithm>
#include <stdexcept>

#include "cpu_engine.h"

namespace facegan {
namespace cpu {

// The packing arguments of a layer's input for one task's column block (the caller sets the K
// block: kc, k0).
PackBArgs CpuBackend::pack_args(const LayerDesc& L, const LayerIO& io, int taps, int H, int W, Scratch& sc,
                                int nr, int ncols) const {
  PackBArgs pa;
  pa.Bp = sc.Bp.data();
  pa.nr = nr;
  pa.kc = 0;
  pa.k0 = 0;
  pa.taps = taps;
  pa.segs = sc.segs.data();
  pa.nsegs = int(sc.segs.size());
  pa.ncols = ncols;
  pa.in = io.in;
  pa.in_img_stride = io.in_stride;
  pa.H = H;
  pa.W = W;
  pa.styles = io.S + L.style_offset;
  pa.style_stride = size_t(net_->style_dim);
  return pa;
}

// Column segments for columns [j0, j1) of a batch-flattened (img, y, x) space.
void CpuBackend::build_segs(std::vector<ColSeg>& segs, int j0, int j1, int HW, int W, int NR) {
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

void CpuBackend::epi_args(EpilogueArgs* e, const LayerDesc& L, const float* noise_row, float d, int o) const {
  e->d = d;
  e->bias = L.bias[o];
  e->noise_strength = L.noise_strength;
  e->noise = L.has_noise ? noise_row : nullptr;
  e->clamp = L.clamp;
  e->act = L.activate;
  e->slope = L.lrelu_slope;
  e->gain = L.act_gain;
}

// C[(p − p0)·MR …][…] (+)= A panels [p0, p1) (each K·MR floats, K-block offset kb) × the packed
// B block (npan panels of nr columns, kcur deep). `small`: the small-N kernels (nr = NR_small).
void CpuBackend::gemm_block(const float* A, const PanelLayout& lay, int kb, int kcur, int p0, int p1,
                            const float* Bp, const Panels& pn, float* C, size_t ldc, bool accumulate) const {
  const int MR = ks_->MR, NR = ks_->NR;
  const size_t astride = lay.stride(kb / lay.kcb * lay.kcb);
  if (kcur < 1 || kb / lay.kcb != (kb + kcur - 1) / lay.kcb)
    throw std::logic_error("gemm_block: the K step crosses a K block of the weights' layout");
  const float* A0 = A + lay.at(p0, kb);
  // n NR_small-wide panels of B from Bs into C from Cs, on the small-N kernels.
  auto small_panels = [&](const float* Bs, float* Cs, int n) {
    const int nr = ks_->NR_small, P = ks_->small_panels;
    for (int p = p0; p < p1; p += P) {
      const int np = std::min(P, p1 - p);
      const float* Ap = A0 + size_t(p - p0) * astride;
      float* Cp = Cs + size_t(p - p0) * MR * ldc;
      for (int jp = 0; jp < n; ++jp)
        ks_->gemm_small[np](kcur, Ap, astride, Bs + size_t(jp) * kcur * nr, Cp + size_t(jp) * nr, ldc, accumulate);
    }
  };
  if (pn.nr < NR) {
    small_panels(Bp, C, pn.npan);
    return;
  }
  // Column panels outer, row panels inner (BLIS's order): a B panel (kcur × NR) stays in L1
  // while the block's A panels stream from L2 (ffhq256 batch 1, 1 thread: the sub-pixel up-conv
  // GEMMs −6 to −9 %, b32.conv1 −7 %). The same tile arithmetic in either order.
  for (int jp = 0; jp < pn.npan; ++jp)
    for (int p = p0; p < p1; ++p)
      ks_->gemm(kcur, A0 + size_t(p - p0) * astride, Bp + size_t(jp) * kcur * NR,
                C + size_t(p - p0) * MR * ldc + size_t(jp) * NR, ldc, accumulate);
  if (pn.tail) small_panels(Bp + size_t(pn.npan) * kcur * NR, C + size_t(pn.npan) * NR, 1);
}

// Few columns: the small-N kernels waste less of their tile. `narrow_ok`: the caller can run a
// last panel no wider than NR_small through them (Winograd, the shared up-conv B); then NR-wide
// panels and such a narrow one are preferred (ffhq256 b16.conv1 at batch 1, 64 tiles = 48 + 16:
// 3.1 -> 2.5 ms at 2 threads; the 8 × 48 tile loads far less per multiply-add than the 24 × 16).
bool CpuBackend::use_small(int ncols, bool narrow_ok) const {
  const int NR = ks_->NR, NRs = ks_->NR_small;
  if (bf16_ || NRs >= NR || ncols >= 2 * NR) return false;
  return !(narrow_ok && ncols >= NR && ncols % NR <= NRs);
}

void CpuBackend::gemm_conv(const ConvPrep& cp, int g, int kb, int kcur, int p0, int p1, const float* Bp,
                           const Panels& pn, float* C, size_t ldc, bool accumulate, Scratch& sc) const {
  if (!bf16_) {
    gemm_block(cp.A.data() + cp.group_off[size_t(g)], layout(cp, cp.group_panels[size_t(g)]), kb, kcur, p0, p1, Bp,
               pn, C, ldc, accumulate);
    return;
  }
  const int MR = ks_->MR, NR = ks_->NR, npan = pn.npan;
  if (pn.nr != NR || pn.tail) throw std::logic_error("gemm_conv: precision bf16 runs NR-wide panels only");
  const size_t need = size_t(npan) * NR * round_up(size_t(kcur), 32);
  if (sc.Bb.size() < need) sc.Bb.resize(need);
  amx_gemm(cp.Ab.data() + cp.ab_off[size_t(g)] + size_t(p0) * MR * cp.kpad + kb, cp.kpad, (p1 - p0) * MR, Bp, NR,
           npan, kcur, C, ldc, accumulate, sc.Bb.data());
}

void CpuBackend::conv3x3(const ConvPrep& cp, const LayerIO& io) {
  const LayerDesc& L = *cp.L;
  const int H = L.out_res, W = H, HW = H * W, Co = L.out_ch, K = cp.K;
  const int MR = ks_->MR;
  const int Ntot = io.nb * HW;
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
    const Panels pn(ncols, NR, ks_->NR_small, false);
    const size_t ldc = pn.ldc;
    float* C = sc.C.data();
    PackBArgs pa = pack_args(L, io, 9, H, W, sc, NR, ncols);
    for (int kb = 0; kb < K; kb += cp.kcb) {
      const int kcur = std::min(cp.kcb, K - kb);
      pa.kc = kcur;
      pa.k0 = kb;
      ks_->pack_b(pa);
      gemm_conv(cp, 0, kb, kcur, p0, p1, pa.Bp, pn, C, ldc, kb > 0, sc);
    }
    const int o_end = std::min(Co, p1 * MR);
    EpilogueArgs e;
    for (int o = p0 * MR; o < o_end; ++o) {
      const float* crow = C + size_t(o - p0 * MR) * ldc;
      for (const ColSeg& sg : sc.segs) {
        const size_t pix = size_t(sg.y) * W + sg.x0;
        epi_args(&e, L, noise_row(io, L, sg.img, pix), demod(io, cp, sg.img, o), o);
        ks_->epilogue(io.out + size_t(sg.img) * io.out_stride + size_t(o) * HW + pix, crow + sg.col, sg.len, e);
      }
    }
  });
}

}  // namespace cpu
}  // namespace facegan
