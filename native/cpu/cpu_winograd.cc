#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>

#include "cpu_engine.h"

namespace facegan {
namespace cpu {

// The pixel norm over the `tile`×`tile` output blocks of the segments a task just wrote (the
// polyphase up-conv: tile 4 on the input grid).
void CpuBackend::pixel_norm_tiles(const Scratch& sc, int tile, float* out, size_t out_stride, int OW, int Co,
                                  float eps) const {
  const size_t OHW = size_t(OW) * OW;
  for (const ColSeg& sg : sc.segs)
    for (int r = 0; r < tile; ++r)
      ks_->pixel_norm(out + size_t(sg.img) * out_stride + size_t(tile * sg.y + r) * OW + tile * sg.x0, OHW, Co,
                      tile * sg.len, eps);
}

// Winograd convolutions, run as 16 (F(2×2, 3×3)) or 36 (polyphase F(2×2, 2×2)) batched GEMMs
// U[ξ] (C_out × C_in, transformed at load, cpu_prepare.cc) × V[ξ] (C_in × tiles):
//  - 3×3 up 1 from 8²: 4 MACs per output pixel instead of 9; the input transform fused with the
//    style scaling, the output transform with the epilogue and, when the task holds every output
//    channel, with the following ToRGB and the skip upsampling of the previous image (so the
//    activations are not read twice) and with ProGAN's pixel norm;
//  - ProGAN's nearest ×2 + 3×3 from 16²: four polyphase 2×2 convolutions on the low-resolution
//    grid, 9 products per 2×2 outputs instead of 16 (kernels.h WinoUpOutArgs).
// Tasks own runs of tiles and blocks of output channels; V and the accumulators of a task stay
// in L2 (the blocking of set_wino_blocking).
// Returns true when it also ran `rgb` (fusion needs every output channel in one task).
// `norm`: also apply the layer's pixel norm to the pixels each task wrote when the task holds
// every output channel (returned in *normed; otherwise the caller runs the pixel-norm pass).
bool CpuBackend::conv3x3_wino(const ConvPrep& cp, const LayerIO& io, const FusedRgb* rgb, bool* normed) {
  const LayerDesc& L = *cp.L;
  const float* in = io.in;
  float* out = io.out;
  const size_t in_stride = io.in_stride, out_stride = io.out_stride;
  const int nb = io.nb;
  // The tile grid: the output (F(2×2, 3×3)) or the low-resolution input (polyphase up).
  const bool up = cp.wino_up;
  const int NX = cp.nxi;
  const int H = L.in_res, W = H, HW = H * W, Ci = L.in_ch, Co = L.out_ch;
  const int OW = L.out_res, OHW = OW * OW;
  const int TW = W / 2, TPI = (H / 2) * TW, Ttot = nb * TPI;
  // Few tiles (small batches at 8², 16²): the small-N GEMM kernels on NR_small-wide panels
  // waste less of each panel and give the pool more tasks (the same arithmetic per output, so
  // the choice may follow the batch).
  const bool small = use_small(Ttot, true);
  const int MR = ks_->MR, NR = small ? ks_->NR_small : ks_->NR;
  const int Mp = ceil_div(Co, MR);
  const PanelLayout ulay{MR, NX * Mp, Ci, cp.wg_kc};
  int pan_per = cp.wg_rows / MR;
  int nt = std::min(cp.wg_nt, int(round_up(size_t(Ttot), size_t(NR))));
  int ntc = ceil_div(Ttot, nt);
  int nmc = ceil_div(Mp, pan_per);
  // Enough tasks for the pool: split the tiles finer when needed, then the output channels (a
  // few tiles at 8², 16²: ProGAN b16.conv0 at batch 1 ran as one task). Neither changes the
  // arithmetic of any output.
  const int pstep = small ? ks_->small_panels : 1;
  // Every tile in one column block, but too few tasks (8², 16² at batch 1, whose 16 MB of U make
  // them weight-bound): splitting the tiles would stream U once per tile block, and splitting
  // the output channels would transform V once per channel block. Cooperative instead: a first
  // pool run transforms V once into a shared buffer (split by input channels), then tasks split
  // the output channels only. The same arithmetic per output.
  const bool coop = ntc == 1 && nmc < 2 * pool_->size() && pan_per >= 2 * pstep;
  while (!coop && ntc * nmc < 2 * pool_->size() && nt > NR) {
    nt = std::max(NR, int(round_up(size_t(nt / 2), size_t(NR))));
    ntc = ceil_div(Ttot, nt);
  }
  while (ntc * nmc < 2 * pool_->size() && pan_per >= 2 * pstep) {
    pan_per = int(round_up(size_t(pan_per / 2), size_t(pstep)));
    nmc = ceil_div(Mp, pan_per);
  }
  if (nmc != 1 || up) rgb = nullptr;
  const bool norm = normed && L.pixel_norm && nmc == 1;
  if (normed) *normed = norm;
  // FACEGAN_CPU_PROFILE: thread CPU time in the input transform, the GEMMs and the output
  // transform (+ epilogue, pixel norm, fused ToRGB), summed over the tasks.
  const bool prof = profiling();
  std::atomic<int64_t> in_us{0}, gemm_us{0}, out_us{0};
  // A block of ncols columns (a narrow last panel unless the small-N kernels run every panel).
  auto block_of = [&](int ncols) { return Panels(ncols, NR, ks_->NR_small, !small); };
  // Input channel c of the tiles `segs` into V row kk of its K block (Vb: the block at kb = c −
  // kk, kcur rows, NX planes), with the row's padding columns zeroed.
  auto in_channel = [&](const std::vector<ColSeg>& segs, const Panels& bk, int c, int kk, int kcur, float* Vb) {
    const size_t vxs = size_t(kcur) * bk.ldc + kPlanePad;  // ξ stride of V
    for (int xi = 0; xi < NX; ++xi) bk.zero_padding(Vb + xi * vxs, kk, kcur);
    WinoInArgs wa;
    wa.xi_stride = vxs;
    wa.W = W;
    for (const ColSeg& sg : segs) {
      const float* plane = in + size_t(sg.img) * in_stride + size_t(c) * HW;
      patch_rows(wa.rows, plane, 2 * sg.y - 1, 4, H, W, c + 1 < Ci, 2 * sg.x0 - 1, 2 * sg.len + 2);
      wa.s = io.S[size_t(sg.img) * net_->style_dim + L.style_offset + c];
      wa.tx0 = sg.x0;
      wa.len = sg.len;
      wa.dst = Vb + bk.at(sg.col, kk, kcur);
      if (up) ks_->wino_up_in(wa);
      else ks_->wino_in(wa);
    }
  };
  // Cooperative: V of every tile and input channel, K blocks back to back (NX·kcur·ldc each).
  const float* Vshared = nullptr;
  if (coop) {
    const Panels bk = block_of(Ttot);
    wino_v_.reserve(vblock_offset(NX, Ci, cp.wg_kc, bk.ldc));
    float* V = wino_v_.data();
    const int nin = std::max(1, std::min(Ci, pool_->size()));
    run_or_throw(nin, [&](int t, int tid) {
      Scratch& sc = scratch_[size_t(tid)];
      double tp = prof ? thread_cpu_ms() : 0.0;
      build_segs(sc.segs, 0, Ttot, TPI, TW, NR);  // tile runs: (img, tile row, first tile column, …)
      for (int c = Ci * t / nin; c < Ci * (t + 1) / nin; ++c) {
        const int kb = c / cp.wg_kc * cp.wg_kc, kcur = std::min(cp.wg_kc, Ci - kb);
        in_channel(sc.segs, bk, c, c - kb, kcur, V + vblock_offset(NX, kb, cp.wg_kc, bk.ldc));
      }
      profile_lap(prof, &tp, &in_us);
    });
    Vshared = V;
  }
  run_or_throw(ntc * nmc, [&](int t, int tid) {
    Scratch& sc = scratch_[size_t(tid)];
    double tp = prof ? thread_cpu_ms() : 0.0;
    auto lap = [&](std::atomic<int64_t>& acc) { profile_lap(prof, &tp, &acc); };
    const int ti = t / nmc, mi = t % nmc;
    const int t0 = ti * nt, t1 = std::min(Ttot, t0 + nt), ncols = t1 - t0;
    const int p0 = mi * pan_per, p1 = std::min(Mp, p0 + pan_per);
    const int rows = (p1 - p0) * MR;
    build_segs(sc.segs, t0, t1, TPI, TW, NR);  // tile runs: (img, tile row, first tile column, …)
    const Panels bk = block_of(ncols);
    const size_t ldc = bk.ldc;
    float* C = sc.C.data();
    const size_t cxs = size_t(rows) * ldc + kPlanePad;  // ξ stride of the accumulators
    for (int kb = 0; kb < Ci; kb += cp.wg_kc) {
      const int kcur = std::min(cp.wg_kc, Ci - kb);
      const size_t vxs = size_t(kcur) * ldc + kPlanePad;  // ξ stride of V
      const float* Vp = Vshared ? Vshared + vblock_offset(NX, kb, cp.wg_kc, ldc) : sc.Bp.data();
      // Channel-major so that each channel's rows stream through once per block.
      if (!Vshared)
        for (int kk = 0; kk < kcur; ++kk) in_channel(sc.segs, bk, kb + kk, kk, kcur, sc.Bp.data());
      lap(in_us);
      for (int xi = 0; xi < NX; ++xi)
        gemm_block(cp.U.data(), ulay, kb, kcur, xi * Mp + p0, xi * Mp + p1, Vp + xi * vxs, bk, C + xi * cxs, ldc,
                   kb > 0);
      lap(gemm_us);
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
          epi_args(&wu.e, L, nullptr, demod(io, cp, sg.img, o), o);
          ks_->wino_up_out(wu);
        }
      }
      if (norm) pixel_norm_tiles(sc, 4, out, out_stride, OW, Co, L.pixel_norm_eps);
      lap(out_us);
      return;
    }
    // The network's last conv (its ToRGB fused, nothing else reads it): the output tile rows
    // go to this task's scratch, rows [2·r, 2·r + 2) for the task's r-th tile row, channel
    // stride ocs; otherwise to the activation buffer.
    const bool last = rgb && rgb->last;
    size_t ocs = HW;
    if (last) {
      sc.seg_rows.clear();
      int nrow = 0;
      for (size_t i = 0; i < sc.segs.size(); ++i) {
        if (i == 0 || sc.segs[i].img != sc.segs[i - 1].img || sc.segs[i].y != sc.segs[i - 1].y) ++nrow;
        sc.seg_rows.push_back(nrow - 1);
      }
      ocs = size_t(2) * nrow * W;
      sc.O.reserve(size_t(Co) * ocs);
    }
    // Output row 2·y + r of segment si, channel o, from the segment's first column.
    auto orow = [&](size_t si, int o, int r) -> float* {
      const ColSeg& sg = sc.segs[si];
      return last ? sc.O.data() + size_t(o) * ocs + size_t(2 * sc.seg_rows[si] + r) * W + 2 * sg.x0
                  : out + size_t(sg.img) * out_stride + size_t(o) * HW + size_t(2 * sg.y + r) * W + 2 * sg.x0;
    };
    WinoOutArgs wo;
    wo.xi_stride = cxs;
    for (int o = p0 * MR; o < o_end; ++o) {
      const float* crow = C + size_t(o - p0 * MR) * ldc;
      for (size_t si = 0; si < sc.segs.size(); ++si) {
        const ColSeg& sg = sc.segs[si];
        const int y = 2 * sg.y, x = 2 * sg.x0;
        wo.out0 = orow(si, o, 0);
        wo.out1 = orow(si, o, 1);
        wo.m = crow + sg.col;
        wo.len = sg.len;
        wo.noise0 = noise_row(io, L, sg.img, size_t(y) * W + x);
        wo.noise1 = wo.noise0 ? wo.noise0 + W : nullptr;
        epi_args(&wo.e, L, nullptr, demod(io, cp, sg.img, o), o);
        ks_->wino_out(wo);
      }
    }
    if (norm)
      for (size_t si = 0; si < sc.segs.size(); ++si)
        for (int r = 0; r < 2; ++r) ks_->pixel_norm(orow(si, 0, r), ocs, Co, 2 * sc.segs[si].len, L.pixel_norm_eps);
    if (rgb) {
      // ToRGB on the rows just written (still in cache), plus the upsampled skip image.
      const LayerDesc& R = *rgb->L;
      const int IC = R.out_ch;
      for (size_t si = 0; si < sc.segs.size(); ++si) {
        const ColSeg& sg = sc.segs[si];
        const float* w = rgb->w + size_t(sg.img) * IC * Co;
        float* o = rgb->out + size_t(sg.img) * IC * HW;
        const float* pv = rgb->prev ? rgb->prev + size_t(sg.img) * IC * size_t(rgb->prev_res) * rgb->prev_res : nullptr;
        const int xa = 2 * sg.x0, xb = xa + 2 * sg.len;
        for (int r = 0; r < 2; ++r) {
          const int y = 2 * sg.y + r;
          if (pv) skip_upsample(o, size_t(HW), W, pv, rgb->prev_res, IC, y, xa, xb);
          const size_t off = size_t(y) * W + xa;
          ks_->torgb_row(o + off, size_t(HW), orow(si, 0, r), ocs, Co, xb - xa, w, R.bias, IC, R.clamp, pv ? 1 : 0);
        }
      }
    }
    lap(out_us);
  });
  if (prof)
    std::fprintf(stderr, "    (%s: input transform %.2f ms, GEMM %.2f ms, output transform + epilogue %.2f ms)\n",
                 L.name.c_str(), 1e-3 * double(in_us.load()), 1e-3 * double(gemm_us.load()),
                 1e-3 * double(out_us.load()));
  return rgb != nullptr;
}

}  // namespace cpu
}  // namespace facegan
