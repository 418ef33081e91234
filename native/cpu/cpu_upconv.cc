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
      for (int kb = 0; kb < K; kb += kc_) {
        const int kcur = std::min(kc_, K - kb);
        pa.kc = kcur;
        pa.k0 = kb;
        ks_->pack_b(pa);
        gemm_block(Ag, K, kb, kcur, 0, panels, pa.Bp, npan, small, C, ldc, kb > 0);
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

}  // namespace cpu
}  // namespace facegan
