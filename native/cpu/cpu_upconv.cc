// StyleGAN2's up-convolution (transposed 3×3 stride 2, then the [1,3,3,1]² FIR, gain 4,
// padding 1) on the CPU: a 1×1 GEMM Y[(o,ky,kx), pixel] = Σ_c W[o,c,ky,kx]·s[c]·x[c, pixel]
// over the low-resolution input (9·C_in·C_out MACs per input pixel, the cost of the transposed
// conv itself) followed by a fused "col2im + FIR" pass: each output phase (2m+φy, 2n+φx) is a
// fixed 6×6-term combination of Y at input rows/columns m−1..m+1 / n−1..n+1, evaluated
// separably (kernels_impl.h upconv_h / upconv_v). Input rows stream through a small ring buffer
// so the (2H+1)² intermediate is never materialised. (Folding the FIR into four polyphase 3×3
// kernels is the same function but costs 4× the MACs of this scheme: 36 instead of 9 per input
// pixel and channel pair.)
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "cpu_engine.h"

namespace facegan {
namespace cpu {

void CpuBackend::upconv(const ConvPrep& cp, const LayerIO& io) {
  const LayerDesc& L = *cp.L;
  const int nb = io.nb;
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
  // FACEGAN_CPU_PROFILE: thread CPU time in the GEMM (with the packing) and in the col2im + FIR
  // + epilogue passes, summed over the tasks.
  const bool prof = profiling();
  std::atomic<int64_t> gemm_us{0}, fir_us{0};
  // Columns of images [i0, i1), input rows [g0, g1), all x: one segment per row and NR panel.
  // Returns the column count.
  auto step_segs = [&](std::vector<ColSeg>& segs, int i0, int i1, int g0, int g1, int NR) {
    segs.clear();
    int col = 0;
    for (int img = i0; img < i1; ++img)
      for (int m = g0; m < g1; ++m)
        for (int x = 0; x < W;) {
          const int len = std::min(W - x, NR - col % NR);
          segs.push_back({img, m, x, len, col});
          x += len;
          col += len;
        }
    return col;
  };
  // One GEMM step per task (the whole input of an image chunk) and several channel groups: the
  // groups of a chunk would each pack the same B (ffhq256 b32.conv0 at batch 1: 16 times), so a
  // first pool run packs it once per chunk and K block into a shared buffer. Its last column
  // panel, when no wider than the small-N kernels', is packed that wide (b32.conv0 at batch 1:
  // 256 columns = 5 × 48 + 16, not 6 × 48). The same arithmetic per output either way.
  const bool whole = rc == 1 && (cp.multi || cp.G >= H);
  const bool shared = whole && cp.ngroups > 1;
  auto cols_of = [&](int ncols) {
    const bool small = use_small(ncols, shared);
    return Panels(ncols, small ? ks_->NR_small : ks_->NR, ks_->NR_small, shared && !small && !bf16_);
  };
  // Shared B: a chunk's K blocks (kcur × ldc floats each) back to back, at most sld floats per K row.
  const size_t sld = size_t(ipt) * H * W + size_t(std::max(ks_->NR, ks_->NR_small));
  auto shared_b = [&](int ic, int kb, size_t ldc) { return up_b_.data() + size_t(ic) * K * sld + size_t(kb) * ldc; };
  if (shared) {
    up_b_.reserve(size_t(nic) * K * sld);
    const int nkb = ceil_div(K, cp.kcb);
    run_or_throw(nic * nkb, [&](int t, int tid) {
      Scratch& sc = scratch_[size_t(tid)];
      double tp = prof ? thread_cpu_ms() : 0.0;
      const int ic = t / nkb, kb = (t % nkb) * cp.kcb, kcur = std::min(cp.kcb, K - kb);
      const int i0 = ic * ipt, i1 = std::min(nb, i0 + ipt);
      const Panels c = cols_of((i1 - i0) * H * W);
      const int ncols = step_segs(sc.segs, i0, i1, 0, H, c.nr);
      float* Bp = shared_b(ic, kb, c.ldc);
      // The segments of the narrow panel (split at the NR panel edge by step_segs), rebased.
      const int split = c.npan * c.nr;
      size_t nmain = sc.segs.size();
      while (nmain > 0 && sc.segs[nmain - 1].col >= split) --nmain;
      PackBArgs pa = pack_args(L, io, 1, H, W, sc, c.nr, std::min(ncols, split));
      pa.nsegs = int(nmain);
      pa.Bp = Bp;
      pa.kc = kcur;
      pa.k0 = kb;
      ks_->pack_b(pa);
      if (c.tail) {
        for (size_t i = nmain; i < sc.segs.size(); ++i) sc.segs[i].col -= split;
        pa.segs = sc.segs.data() + nmain;
        pa.nsegs = int(sc.segs.size() - nmain);
        pa.nr = c.nrs;
        pa.ncols = c.tail;
        pa.Bp = Bp + size_t(split) * kcur;
        ks_->pack_b(pa);
      }
      profile_lap(prof, &tp, &gemm_us);
    });
  }
  run_or_throw(ntasks, [&](int t, int tid) {
    Scratch& sc = scratch_[size_t(tid)];
    const int ri = t % rc, g = (t / rc) % cp.ngroups, ic = t / (rc * cp.ngroups);
    const int i0 = ic * ipt, i1 = std::min(nb, i0 + ipt), nimg = i1 - i0;
    const int r0 = H * ri / rc, r1 = H * (ri + 1) / rc;
    const int o0 = g * cp.og, ogg = std::min(cp.og, Co - o0);
    const int panels = cp.group_panels[size_t(g)];
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
    EpilogueArgs e;
    for (int g0 = rs; g0 < re; g0 += G) {
      const int g1 = std::min(re, g0 + G), rows = g1 - g0;
      // Columns: images i0..i1, rows g0..g1, all x.
      const Panels c = cols_of(nimg * (g1 - g0) * W);
      const int ncols = step_segs(sc.segs, i0, i1, g0, g1, c.nr);
      const size_t ldc = c.ldc;
      PackBArgs pa = pack_args(L, io, 1, H, W, sc, c.nr, ncols);
      double tp = prof ? thread_cpu_ms() : 0.0;
      for (int kb = 0; kb < K; kb += cp.kcb) {
        const int kcur = std::min(cp.kcb, K - kb);
        const float* Bp = shared ? shared_b(ic, kb, ldc) : pa.Bp;
        if (!shared) {
          pa.kc = kcur;
          pa.k0 = kb;
          ks_->pack_b(pa);
        }
        gemm_conv(cp, g, kb, kcur, 0, panels, Bp, c, C, ldc, kb > 0, sc);
      }
      profile_lap(prof, &tp, &gemm_us);
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
            const float d = demod(io, cp, img, o);
            for (int ph = 0; ph < 2; ++ph) {
              const int oy = 2 * m + ph;
              const size_t pix = size_t(oy) * OW;
              epi_args(&e, L, noise_row(io, L, img, pix), d, o);
              e.stream = stream;
              ks_->upconv_v(io.out + size_t(img) * io.out_stride + size_t(o) * OHW + pix, zm, zc, zp, W, ph, e);
            }
          }
          ++m;
        }
      }
      profile_lap(prof, &tp, &fir_us);
    }
    if (stream) ks_->store_fence();
  });
  if (prof)
    std::fprintf(stderr, "    (%s: GEMM + packing %.2f ms, col2im + FIR + epilogue %.2f ms, thread cpu summed)\n",
                 L.name.c_str(), 1e-3 * double(gemm_us.load()), 1e-3 * double(fir_us.load()));
}

// The up-conv as sub-pixel phases (cpu_prepare.cc pack_upconv_sub; the default from input
// resolution 32², FACEGAN_CPU_SUB_MIN_RES): 25 instead of 36 products per 2×2 input tile and
// channel pair (31 % fewer; with the extra tile row and column, 22 % at 32² input, 28 % at 128²).
// Per 2×2 input tile (rows 2ty, 2ty+1, columns 2tx, 2tx+1) the 9 transformed planes of its 3×3
// input patch (kernels.h sub_in), 9 GEMMs U[ξ] (the phases using plane ξ × C_in) × V[ξ] (C_in ×
// tiles), then per output channel the output transforms give the transposed conv's T at rows
// 4ty … 4ty+3 and columns 4tx … 4tx+3 (the four parities of T(2i+py, 2j+px), i ∈ {2ty, 2ty+1}),
// complete (no sums across tiles). The tile grid runs one past the image (H/2 + 1 tile rows and
// columns) for T's last row and column 2H. Each T row is FIR-filtered horizontally into a ring of
// rows; an output row p is the vertical FIR of ring rows p−1 … p+2 (T(−1) = 0) with the
// epilogue. An image runs in steps of TG tile rows (V of all input channels for the step, then
// per group of og output channels its GEMMs, output transforms and FIR passes).
//
// Scheduling (a value's arithmetic is the same in every schedule: batch and thread invariance):
//  - enough images for the threads (or one thread): one task per image;
//  - else either tasks (image, band of tile rows, chunk of channel groups) — a band recomputes the
//    tile row before and after it (its FIR halo), a chunk recomputes the input transform — or
//    "cooperative" steps: per image and step, the input transform split over the threads by
//    channels into a shared V, then one task per channel group (shared FIR ring), two pool runs
//    per step. Chosen by the least estimated work (multiply-add equivalents per tile, measured
//    at 1 thread: input transform ≈ 400·C_in, GEMM 25·C_in·C_out, output transform + FIR ≈
//    1300·C_out; a pool run ≈ 2·10⁶).
void CpuBackend::upconv_sub(const ConvPrep& cp, const LayerIO& io) {
  const LayerDesc& L = *cp.L;
  const int nb = io.nb, H = L.in_res, W = H, Ci = L.in_ch, Co = L.out_ch;
  const int OW = 2 * W, OHW = OW * OW, HW = H * W;
  const int MR = ks_->MR, NR = ks_->NR;
  const int TH = H / 2 + 1, TWp = W / 2 + 1;  // tile rows / columns, one past the image
  const int nto = H / 2;                      // tile rows that emit output rows 4t … 4t+3
  static const int sub_cols = env_int("FACEGAN_SUB_COLS", 192);
  const int coop_env = env_int("FACEGAN_SUB_COOP", -1);  // -1: by the estimate; 0 / 1 force (tests)
  const int kc = cp.kcb;
  const int want = std::max(1, pool_->size());  // tasks wanted: one per thread
  // A step of n columns: NR-wide panels and a narrow last one (Panels).
  auto step_of = [&](int n) { return Panels(n, NR, ks_->NR_small, true); };
  // Tile rows per GEMM step for a run of n tile rows: the fewest padded columns, at most
  // sub_cols columns a step (at least one tile row); ties to the larger step.
  auto choose_tg = [&](int n) {
    int TG = 1;
    const int cap = std::max(1, std::min(n, sub_cols / TWp));
    long best = -1;
    for (int tg = 1; tg <= cap; ++tg) {
      long cols = 0;
      for (int a = 0; a < n; a += tg) cols += long(step_of(std::min(tg, n - a) * TWp).ldc);
      if (best < 0 || cols <= best) {
        best = cols;
        TG = tg;
      }
    }
    return TG;
  };
  const double c_in = 400.0 * Ci, c_gemm = 25.0 * Ci * Co, c_out = 1300.0 * Co, c_run = 2e6;
  int rc = 1, nch = 1;
  bool coop = false;
  if (nb < want) {
    const int need = ceil_div(want, nb);
    double best = 0.0;
    for (int r = 1; r <= std::max(1, nto / 4); ++r)
      for (int c = 1; c <= cp.ngroups; ++c) {
        if (r * c < need || r * c > 2 * need) continue;
        const double cost = double(TH + 2 * (r - 1)) * TWp * (c_in * c + c_gemm + c_out);
        if (rc * nch < need || cost < best) {
          best = cost;
          rc = r;
          nch = c;
        }
      }
    const int TG = choose_tg(TH);
    const double coop_cost = double(TH) * TWp * (c_in + c_gemm + c_out) + 2.0 * ceil_div(TH, TG) * c_run;
    coop = coop_env >= 0 ? coop_env > 0 : coop_cost < best;
    if (coop) rc = nch = 1;
  }
  const int gpc = ceil_div(cp.ngroups, nch);  // channel groups per chunk
  nch = ceil_div(cp.ngroups, gpc);
  // Non-temporal stores for outputs far larger than the caches, decided per image (the layer
  // shape), not per sub-batch as upconv does: fir_v's stream and store loops are separate code,
  // and the compiler (GCC's default -ffp-contract=fast) fuses the epilogue's multiply-adds
  // differently in the two, so a batch-dependent choice broke batch invariance (facegan-check
  // --self-test, ffhq256 batches 5 / 3 / 1).
  const bool stream = stream_min_ > 0 && size_t(Co) * OHW * sizeof(float) >= stream_min_;
  const int TRW = 4 * TWp + 2;  // a T row, columns −1 … 4·TWp
  int rows_pad[9], coff[10];
  coff[0] = 0;
  for (int xi = 0; xi < 9; ++xi) {
    rows_pad[xi] = ceil_div(cp.sub_rows[size_t(xi)], MR) * MR;
    coff[xi + 1] = coff[xi] + rows_pad[xi];
  }
  const float* zero = zero_block_.data();
  const bool prof = profiling();
  std::atomic<int64_t> in_us{0}, gemm_us{0}, fir_us{0};
  auto lap = [&](double& tp, std::atomic<int64_t>& acc) { profile_lap(prof, &tp, &acc); };

  // Columns of the step [a, b) of image img: one segment per tile row and NR panel.
  auto step_segs = [&](std::vector<ColSeg>& segs, int img, int a, int b) {
    segs.clear();
    for (int ty = a; ty < b; ++ty) {
      int tx = 0, col = (ty - a) * TWp;
      while (tx < TWp) {
        const int len = std::min(TWp - tx, NR - col % NR);
        segs.push_back({img, ty, tx, len, col});
        tx += len;
        col += len;
      }
    }
  };
  // V: K blocks of kc rows, 9 planes each of ldc columns, kPlanePad floats between planes; vblock:
  // the offset of the block at kb (kb = C_in: the size). The accumulators of a group: plane ξ's
  // rows from cplane(ξ, ldc) (ξ = 9: the size).
  auto vblock = [&](int kb, size_t ldc) { return vblock_offset(9, kb, kc, ldc); };
  auto cplane = [&](int xi, size_t ldc) { return size_t(coff[xi]) * ldc + size_t(xi) * kPlanePad; };
  // The input transform of channels [c0, c1) into V.
  auto in_transform = [&](const std::vector<ColSeg>& segs, int img, int c0, int c1, float* V, size_t ldc,
                          int ncols) {
    const Panels st = step_of(ncols);
    const float* xin = io.in + size_t(img) * io.in_stride;
    const float* srow = io.S + size_t(img) * net_->style_dim + L.style_offset;
    WinoInArgs wa;
    wa.W = W;
    wa.rows[3] = nullptr;
    for (int c = c0; c < c1; ++c) {
      const int kb = c / kc * kc, kcur = std::min(kc, Ci - kb), kk = c - kb;
      float* Vb = V + vblock(kb, ldc);
      const size_t vxs = size_t(kcur) * ldc + kPlanePad;  // plane stride of V
      for (int xi = 0; xi < 9; ++xi) st.zero_padding(Vb + xi * vxs, kk, kcur);
      wa.xi_stride = vxs;
      const float* plane = xin + size_t(c) * HW;
      wa.s = srow[c];
      for (const ColSeg& sg : segs) {
        patch_rows(wa.rows, plane, 2 * sg.y - 1, 3, H, W, c + 1 < c1, 2 * sg.x0 - 1, 2 * sg.len + 2);
        wa.tx0 = sg.x0;
        wa.len = sg.len;
        wa.dst = Vb + st.at(sg.col, kk, kcur);
        ks_->sub_in(wa);
      }
    }
  };
  // Group g on the step [a, b) of image img: its GEMMs against V into sc.C, the output transforms
  // and the horizontal FIR into the ring (RR rows per channel), then its output rows q ∈ [p, pend)
  // whose four T rows are ready.
  auto group_step = [&](Scratch& sc, int g, int img, int a, int b, const float* V, size_t ldc, float* ring, int RR,
                        int p, int pend, double& tp) {
    const int o0 = g * cp.og, ogg = std::min(cp.og, Co - o0);
    const Panels st = step_of((b - a) * TWp);
    float* C = sc.C.data();
    for (int kb = 0; kb < Ci; kb += kc) {
      const int kcur = std::min(kc, Ci - kb);
      const float* Vb = V + vblock(kb, ldc);
      const size_t vxs = size_t(kcur) * ldc + kPlanePad;
      for (int xi = 0; xi < 9; ++xi) {
        const float* A = cp.A.data() + cp.sub_off[size_t(g) * 9 + xi];
        const PanelLayout lay = layout(cp, rows_pad[xi] / MR);
        gemm_block(A, lay, kb, kcur, 0, rows_pad[xi] / MR, Vb + xi * vxs, st, C + cplane(xi, ldc), ldc, kb > 0);
      }
    }
    lap(tp, gemm_us);
    for (int ol = 0; ol < ogg; ++ol) {
      auto M = [&](int xi, int slot) { return C + cplane(xi, ldc) + (size_t(slot) * cp.og + ol) * ldc; };
      SubOutArgs so;
      for (int xi = 0; xi < 9; ++xi) so.ee[xi] = M(xi, 0);
      for (int al = 0; al < 3; ++al) {  // EO: planes β = 1, 2, slot 1
        so.eo[2 * al] = M(3 * al + 1, 1);
        so.eo[2 * al + 1] = M(3 * al + 2, 1);
      }
      for (int be = 0; be < 3; ++be) {  // OE: planes α = 1, 2, slot 1 + (β ≥ 1)
        so.oe[be] = M(3 + be, be >= 1 ? 2 : 1);
        so.oe[3 + be] = M(6 + be, be >= 1 ? 2 : 1);
      }
      const int oo_planes[4] = {4, 5, 7, 8};  // OO: slot 3
      for (int k = 0; k < 4; ++k) so.oo[k] = M(oo_planes[k], 3);
      so.n = TWp;
      float* T[4];
      for (int r = 0; r < 4; ++r) T[r] = sc.T.data() + size_t(r) * TRW + 1;
      for (int ty = a; ty < b; ++ty) {
        const size_t col = size_t(ty - a) * TWp;
        SubOutArgs st = so;
        for (auto& q : st.ee) q += col;
        for (auto& q : st.eo) q += col;
        for (auto& q : st.oe) q += col;
        for (auto& q : st.oo) q += col;
        for (int r = 0; r < 4; ++r) {
          T[r][-1] = 0.0f;
          st.T[r] = T[r];
        }
        ks_->sub_out(st);
        for (int r = 0; r < 4; ++r)
          ks_->fir_h(ring + (size_t(o0 + ol) * RR + size_t((4 * ty + r) % RR)) * OW, T[r], OW);
      }
    }
    auto ring_row = [&](int o, int r) -> const float* {
      return r < 0 ? zero : ring + (size_t(o) * RR + size_t(r % RR)) * OW;
    };
    EpilogueArgs e;
    for (int q = p; q < pend && q + 2 < 4 * b; ++q) {
      const size_t pix = size_t(q) * OW;
      for (int o = o0; o < o0 + ogg; ++o) {
        epi_args(&e, L, noise_row(io, L, img, pix), demod(io, cp, img, o), o);
        e.stream = stream;
        ks_->fir_v(io.out + size_t(img) * io.out_stride + size_t(o) * OHW + pix, ring_row(o, q - 1), ring_row(o, q),
                   ring_row(o, q + 1), ring_row(o, q + 2), OW, e);
      }
    }
    lap(tp, fir_us);
  };
  auto reserve_task = [&](Scratch& sc, size_t ldc) {
    sc.C.reserve(cplane(9, ldc));
    sc.T.reserve(size_t(4) * TRW);
  };

  if (coop) {
    // Cooperative steps: V and the FIR ring shared by the threads (the backend's, grow-only; no
    // thread_local, whose destructor registration needs glibc 2.18's __cxa_thread_atexit_impl).
    Buf& shared_v = coop_v_;
    Buf& shared_ring = coop_ring_;
    const int TG = choose_tg(TH);
    const int RR = 4 * TG + 8;
    const size_t ldc = size_t(ceil_div(TG * TWp, NR)) * NR;
    shared_v.reserve(vblock(Ci, ldc));
    shared_ring.reserve(size_t(Co) * RR * OW);
    float* V = shared_v.data();
    float* ring = shared_ring.data();
    std::vector<ColSeg> segs;
    const int nin = std::min(Ci, want);
    for (int img = 0; img < nb; ++img) {
      int p = 0;
      for (int a = 0; a < TH; a += TG) {
        const int b = std::min(TH, a + TG);
        step_segs(segs, img, a, b);
        const int ncols = (b - a) * TWp;
        run_or_throw(nin, [&](int t, int) {
          double tp = prof ? thread_cpu_ms() : 0.0;
          in_transform(segs, img, Ci * t / nin, Ci * (t + 1) / nin, V, ldc, ncols);
          lap(tp, in_us);
        });
        run_or_throw(cp.ngroups, [&](int g, int tid) {
          Scratch& sc = scratch_[size_t(tid)];
          reserve_task(sc, ldc);
          double tp = prof ? thread_cpu_ms() : 0.0;
          group_step(sc, g, img, a, b, V, ldc, ring, RR, p, OW, tp);
          if (stream) ks_->store_fence();
        });
        while (p < OW && p + 2 < 4 * b) ++p;
      }
    }
  } else {
    run_or_throw(nb * rc * nch, [&](int t, int tid) {
      Scratch& sc = scratch_[size_t(tid)];
      const int ri = t % rc, ci = (t / rc) % nch, img = t / (rc * nch);
      const int g0 = ci * gpc, g1 = std::min(cp.ngroups, g0 + gpc);
      const int t0 = nto * ri / rc, t1 = nto * (ri + 1) / rc;
      const int ta = std::max(0, t0 - 1), te = std::min(TH, t1 + 1);
      const int pend = std::min(OW, 4 * t1);
      int p = 4 * t0;
      const int TG = choose_tg(te - ta);
      const int RR = 4 * TG + 8;  // ring rows per channel
      const size_t ldc = size_t(ceil_div(TG * TWp, NR)) * NR;
      sc.Bp.reserve(vblock(Ci, ldc));
      sc.Z.reserve(size_t(Co) * RR * OW);
      reserve_task(sc, ldc);
      for (int a = ta; a < te; a += TG) {
        const int b = std::min(te, a + TG);
        double tp = prof ? thread_cpu_ms() : 0.0;
        step_segs(sc.segs, img, a, b);
        in_transform(sc.segs, img, 0, Ci, sc.Bp.data(), ldc, (b - a) * TWp);
        lap(tp, in_us);
        for (int g = g0; g < g1; ++g) group_step(sc, g, img, a, b, sc.Bp.data(), ldc, sc.Z.data(), RR, p, pend, tp);
        while (p < pend && p + 2 < 4 * b) ++p;
      }
      if (stream) ks_->store_fence();
    });
  }
  if (prof)
    std::fprintf(stderr,
                 "    (%s sub-pixel%s: input transform %.2f ms, GEMM %.2f ms, output transform + FIR + epilogue %.2f ms)\n",
                 L.name.c_str(), coop ? " cooperative" : "", 1e-3 * double(in_us.load()),
                 1e-3 * double(gemm_us.load()), 1e-3 * double(fir_us.load()));
}

}  // namespace cpu
}  // namespace facegan
