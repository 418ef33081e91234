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
      // Columns: images i0..i1, rows g0..g1, all x. Segments split at panel edges.
      const bool small = use_small(nimg * (g1 - g0) * W);
      const int NR = small ? ks_->NR_small : ks_->NR;
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
      PackBArgs pa = pack_args(L, io, 1, H, W, sc, NR, ncols);
      const double tp0 = prof ? thread_cpu_ms() : 0.0;
      for (int kb = 0; kb < K; kb += cp.kcb) {
        const int kcur = std::min(cp.kcb, K - kb);
        pa.kc = kcur;
        pa.k0 = kb;
        ks_->pack_b(pa);
        gemm_conv(cp, g, kb, kcur, 0, panels, pa.Bp, npan, small, C, ldc, kb > 0, sc);
      }
      const double tp1 = prof ? thread_cpu_ms() : 0.0;
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
      if (prof) {
        gemm_us += int64_t(1e3 * (tp1 - tp0));
        fir_us += int64_t(1e3 * (thread_cpu_ms() - tp1));
      }
    }
    if (stream) ks_->store_fence();
  });
  if (prof)
    std::fprintf(stderr, "    (%s: GEMM + packing %.2f ms, col2im + FIR + epilogue %.2f ms, thread cpu summed)\n",
                 L.name.c_str(), 1e-3 * double(gemm_us.load()), 1e-3 * double(fir_us.load()));
}

// The up-conv as sub-pixel phases (cpu_prepare.cc pack_upconv_sub), opt-in (FACEGAN_CPU_SUB_MIN_RES
// = N: from input resolution N): 25 instead of 36 products per 2×2 input tile and channel pair,
// and its GEMMs run at the FMA peak, but on the 2-core AVX-512 machine (bench/RESULTS.md, issue
// 11 §4) the whole layer is not faster yet: the 9 transformed planes are 2.25× the GEMM input
// of the plain form (re-read per channel group) and the T rows take one more pass through memory
// before the FIR (the output transform is the vector kernel sub_out). Per 2×2 input tile (rows
// 2ty, 2ty+1, columns 2tx, 2tx+1) the 9 transformed planes of its 3×3 input patch (kernels.h
// sub_in), 9 GEMMs U[ξ] (the phases using plane ξ × C_in) × V[ξ] (C_in × tiles), then per output
// channel the output transforms give the transposed conv's T at rows 4ty … 4ty+3 and columns
// 4tx … 4tx+3 (the four parities of T(2i+py, 2j+px), i ∈ {2ty, 2ty+1}), complete (no sums
// across tiles). The tile grid runs one past the image (H/2 + 1 tile rows and columns) for T's
// last row and column 2H. Each T row is FIR-filtered horizontally into a ring of rows; an output
// row p is the vertical FIR of ring rows p−1 … p+2 (T(−1) = 0) with the epilogue. Tasks: (image,
// channel group, band of tile rows); a band also computes the tile row before and after it
// (its FIR halo), with the same arithmetic as the band that owns them.
void CpuBackend::upconv_sub(const ConvPrep& cp, const LayerIO& io) {
  const LayerDesc& L = *cp.L;
  const int nb = io.nb, H = L.in_res, W = H, Ci = L.in_ch, Co = L.out_ch;
  const int OW = 2 * W, OHW = OW * OW, HW = H * W;
  const int MR = ks_->MR, NR = ks_->NR;
  const int TH = H / 2 + 1, TWp = W / 2 + 1;  // tile rows / columns, one past the image
  const int nto = H / 2;                      // tile rows that emit output rows 4t … 4t+3
  static const int sub_cols = env_int("FACEGAN_SUB_COLS", 192);
  const int kc = cp.kcb;
  // Tasks: (image, band of tile rows, chunk of channel groups). A band recomputes the tile row
  // before and after it (its FIR halo); a chunk recomputes the input transform. Split an image
  // only when the batch alone does not give the threads enough tasks, the way that wastes the
  // least work (per tile, in multiply-adds: input transform ≈ 324·C_in, GEMM 25·C_in·C_out,
  // output transform + FIR ≈ 1300·C_out; measured per layer at 1 thread). The split is a
  // schedule only: a value's arithmetic is the same in any band or chunk (batch invariance).
  const int want = pool_->size() > 1 ? 2 * pool_->size() : 1;
  int rc = 1, nch = 1;
  if (nb < want) {
    const int need = ceil_div(want, nb);
    double best = 0.0;
    for (int r = 1; r <= std::max(1, nto / 4); ++r)
      for (int c = 1; c <= cp.ngroups; ++c) {
        if (r * c < need || r * c > 2 * need) continue;
        const double tiles = double(TH + 2 * (r - 1)) * TWp;
        const double cost = tiles * (324.0 * Ci * c + 25.0 * Ci * Co + 1300.0 * Co);
        if (rc * nch < need || cost < best) {
          best = cost;
          rc = r;
          nch = c;
        }
      }
  }
  const int gpc = ceil_div(cp.ngroups, nch);  // channel groups per chunk
  nch = ceil_div(cp.ngroups, gpc);
  const int ntasks = nb * rc * nch;
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
  run_or_throw(ntasks, [&](int t, int tid) {
    Scratch& sc = scratch_[size_t(tid)];
    const int ri = t % rc, ci = (t / rc) % nch, img = t / (rc * nch);
    const int g0 = ci * gpc, g1 = std::min(cp.ngroups, g0 + gpc);
    const int t0 = nto * ri / rc, t1 = nto * (ri + 1) / rc;
    const int ta = std::max(0, t0 - 1), te = std::min(TH, t1 + 1);
    const int pend = std::min(OW, 4 * t1);
    int p = 4 * t0;
    // Tile rows per GEMM step: the fewest padded columns (NR panels) over the band, at most
    // sub_cols columns a step (at least one tile row); ties to the larger step.
    int TG = 1;
    {
      const int n = te - ta, cap = std::max(1, std::min(n, sub_cols / TWp));
      long best = -1;
      for (int tg = 1; tg <= cap; ++tg) {
        long cols = 0;
        for (int a = 0; a < n; a += tg) cols += long(ceil_div(std::min(tg, n - a) * TWp, NR)) * NR;
        if (best < 0 || cols <= best) {
          best = cols;
          TG = tg;
        }
      }
    }
    const int RR = 4 * TG + 8;  // ring rows per channel
    const size_t ldc = size_t(ceil_div(TG * TWp, NR)) * NR;
    sc.Bp.reserve(size_t(9) * Ci * ldc);
    sc.C.reserve(size_t(coff[9]) * ldc);
    sc.T.reserve(size_t(4) * TG * TRW);
    sc.Z.reserve(size_t(Co) * RR * OW);
    float* Bp = sc.Bp.data();
    float* C = sc.C.data();
    float* ring = sc.Z.data();
    auto ring_row = [&](int o, int r) -> const float* {
      return r < 0 ? zero : ring + (size_t(o) * RR + size_t(r % RR)) * OW;
    };
    const float* xin = io.in + size_t(img) * io.in_stride;
    const float* srow = io.S + size_t(img) * net_->style_dim + L.style_offset;
    EpilogueArgs e;
    for (int a = ta; a < te; a += TG) {
      const int b = std::min(te, a + TG);
      const int ncols = (b - a) * TWp, npan = ceil_div(ncols, NR);
      double tp = prof ? thread_cpu_ms() : 0.0;
      auto lap = [&](std::atomic<int64_t>& acc) {
        if (!prof) return;
        const double now = thread_cpu_ms();
        acc += int64_t(1e3 * (now - tp));
        tp = now;
      };
      sc.segs.clear();
      for (int ty = a; ty < b; ++ty) {
        int tx = 0, col = (ty - a) * TWp;
        while (tx < TWp) {
          const int len = std::min(TWp - tx, NR - col % NR);
          sc.segs.push_back({img, ty, tx, len, col});
          tx += len;
          col += len;
        }
      }
      // The input transform of every channel, once per step (K blocks of kc, 9 planes each).
      WinoInArgs wa;
      wa.W = W;
      wa.rows[3] = nullptr;
      for (int kb = 0; kb < Ci; kb += kc) {
        const int kcur = std::min(kc, Ci - kb);
        float* Vb = Bp + size_t(9) * kb * ldc;
        const size_t vxs = size_t(kcur) * ldc;  // plane stride of V
        if (ncols % NR) {
          const int tail = NR - ncols % NR;
          for (int xi = 0; xi < 9; ++xi)
            for (int kk = 0; kk < kcur; ++kk)
              std::memset(Vb + xi * vxs + size_t(npan - 1) * kcur * NR + size_t(kk) * NR + (NR - tail), 0,
                          sizeof(float) * size_t(tail));
        }
        wa.xi_stride = vxs;
        for (int kk = 0; kk < kcur; ++kk) {
          const int c = kb + kk;
          const float* plane = xin + size_t(c) * HW;
          wa.s = srow[c];
          for (const ColSeg& sg : sc.segs) {
            for (int r = 0; r < 3; ++r) {
              const int y = 2 * sg.y - 1 + r;
              wa.rows[r] = (y >= 0 && y < H) ? plane + size_t(y) * W : nullptr;
            }
            wa.tx0 = sg.x0;
            wa.len = sg.len;
            wa.dst = Vb + size_t(sg.col / NR) * kcur * NR + size_t(kk) * NR + sg.col % NR;
            ks_->sub_in(wa);
          }
        }
      }
      lap(in_us);
      for (int g = g0; g < g1; ++g) {
        const int o0 = g * cp.og, ogg = std::min(cp.og, Co - o0);
        for (int kb = 0; kb < Ci; kb += kc) {
          const int kcur = std::min(kc, Ci - kb);
          const float* Vb = Bp + size_t(9) * kb * ldc;
          const size_t vxs = size_t(kcur) * ldc;
          for (int xi = 0; xi < 9; ++xi)
            gemm_block(cp.A.data() + cp.sub_off[size_t(g) * 9 + xi], layout(cp, rows_pad[xi] / MR), kb, kcur, 0,
                       rows_pad[xi] / MR,
                       Vb + xi * vxs, npan, false, C + size_t(coff[xi]) * ldc, ldc, kb > 0);
        }
        lap(gemm_us);
        // Output transforms into T rows, then the horizontal FIR into the ring.
        for (int ol = 0; ol < ogg; ++ol) {
          auto M = [&](int xi, int slot) { return C + (size_t(coff[xi]) + size_t(slot) * cp.og + ol) * ldc; };
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
            for (auto& p : st.ee) p += col;
            for (auto& p : st.eo) p += col;
            for (auto& p : st.oe) p += col;
            for (auto& p : st.oo) p += col;
            for (int r = 0; r < 4; ++r) {
              T[r][-1] = 0.0f;
              st.T[r] = T[r];
            }
            ks_->sub_out(st);
            for (int r = 0; r < 4; ++r)
              ks_->fir_h(ring + (size_t(o0 + ol) * RR + size_t((4 * ty + r) % RR)) * OW, T[r], OW);
          }
        }
        // This group's output rows whose four T rows are ready (while its ring rows are in cache).
        for (int q = p; q < pend && q + 2 < 4 * b; ++q) {
          const size_t pix = size_t(q) * OW;
          for (int o = o0; o < o0 + ogg; ++o) {
            epi_args(&e, L, noise_row(io, L, img, pix), demod(io, cp, img, o), o);
            e.stream = stream;
            ks_->fir_v(io.out + size_t(img) * io.out_stride + size_t(o) * OHW + pix, ring_row(o, q - 1),
                       ring_row(o, q), ring_row(o, q + 1), ring_row(o, q + 2), OW, e);
          }
        }
        lap(fir_us);
      }
      while (p < pend && p + 2 < 4 * b) ++p;
    }
    if (stream) ks_->store_fence();
  });
  if (prof)
    std::fprintf(stderr,
                 "    (%s sub-pixel: input transform %.2f ms, GEMM %.2f ms, output transform + FIR + epilogue %.2f ms)\n",
                 L.name.c_str(), 1e-3 * double(in_us.load()), 1e-3 * double(gemm_us.load()),
                 1e-3 * double(fir_us.load()));
}

}  // namespace cpu
}  // namespace facegan
