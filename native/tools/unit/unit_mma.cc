// The CUDA conv kernels' tiling on the CPU: mma.sync m16n8k16 / ldmatrix fragment maps
// (bijections, and ldmatrix + mma composed as the PTX ISA defines them), the tile loaders, and host
// emulations of the FFMA and tensor-core kernels (tiling, loaders, epilogue mapping) against the
// direct convolution.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "../../cuda/plan.h"
#include "unit.h"

using namespace facegan;
using namespace facegan::cuda;
using namespace facegan::unit;

namespace {

// Fragment maps: each is a bijection from (lane, element) onto its tile.
void test_mma_fragments() {
  std::vector<int> a(16 * 16, 0), b(16 * 8, 0), c(16 * 8, 0);
  for (int lane = 0; lane < 32; ++lane) {
    for (int i = 0; i < 8; ++i) {
      int r, col;
      mma_a_elem(lane, i, &r, &col);
      CHECK(r >= 0 && r < 16 && col >= 0 && col < 16, "A in tile");
      ++a[r * 16 + col];
    }
    for (int i = 0; i < 4; ++i) {
      int k, n;
      mma_b_elem(lane, i, &k, &n);
      CHECK(k >= 0 && k < 16 && n >= 0 && n < 8, "B in tile");
      ++b[k * 8 + n];
      int r, col;
      mma_c_elem(lane, i, &r, &col);
      CHECK(r >= 0 && r < 16 && col >= 0 && col < 8, "C in tile");
      ++c[r * 8 + col];
    }
  }
  CHECK(std::all_of(a.begin(), a.end(), [](int h) { return h == 1; }), "A bijective");
  CHECK(std::all_of(b.begin(), b.end(), [](int h) { return h == 1; }), "B bijective");
  CHECK(std::all_of(c.begin(), c.end(), [](int h) { return h == 1; }), "C bijective");
  // Spot checks against the PTX ISA tables.
  int r, col;
  mma_a_elem(5, 7, &r, &col);  // groupID 1, tig 1, a7: row g+8, col 2*tig+1+8
  CHECK(r == 9 && col == 11, "a7 of lane 5");
  mma_a_elem(6, 2, &r, &col);  // a2: row g+8, col 2*tig
  CHECK(r == 9 && col == 4, "a2 of lane 6");
  mma_b_elem(6, 3, &r, &col);  // b3: k = 2*tig+1+8, n = g
  CHECK(r == 13 && col == 1, "b3 of lane 6");
  mma_c_elem(31, 3, &r, &col);
  CHECK(r == 15 && col == 7, "c3 of lane 31");
}

// Emulates ldmatrix.x4 as the PTX ISA defines it: matrix q's row i comes from the address supplied
// by lane 8q + i; lane l receives row l/4, columns 2(l%4), 2(l%4)+1 of each matrix in register q.
// addr(lane) gives (row, col) into a 2-D array `mem` with row pitch `ld`.
void emulate_ldsm_x4(const std::vector<float>& mem, int ld, const std::function<void(int, int*, int*)>& addr,
                     float regs[32][4][2]) {
  for (int lane = 0; lane < 32; ++lane)
    for (int q = 0; q < 4; ++q)
      for (int e = 0; e < 2; ++e) {
        int mr, mc;
        ldsm_dst_elem(lane, e, &mr, &mc);
        int r0, c0;
        addr(8 * q + mr, &r0, &c0);
        regs[lane][q][e] = mem[(size_t)r0 * ld + c0 + mc];
      }
}

// ldmatrix (with our lane addresses) composed with the mma fragment maps gives exactly the
// operand tiles of the shared arrays: A [16 rows][16 k] and B [16 n][16 k].
void test_ldmatrix_feeds_mma() {
  const int ld = 40;  // LDS of the configs
  std::vector<float> As(16 * ld), Bs(16 * ld);
  for (int i = 0; i < 16 * ld; ++i) {
    As[i] = (float)i;
    Bs[i] = (float)(100000 + i);
  }
  float ra[32][4][2], rb[32][4][2];
  emulate_ldsm_x4(As, ld, [](int lane, int* r, int* c) { ldsm_a_addr(lane, r, c); }, ra);
  emulate_ldsm_x4(Bs, ld, [](int lane, int* n, int* k) { ldsm_b_addr(lane, n, k); }, rb);
  for (int lane = 0; lane < 32; ++lane) {
    for (int i = 0; i < 8; ++i) {
      int r, c;
      mma_a_elem(lane, i, &r, &c);
      CHECK(ra[lane][i / 2][i % 2] == As[(size_t)r * ld + c], "A fragment element");
    }
    // First n8 tile: registers 0, 1; second: registers 2, 3.
    for (int t = 0; t < 2; ++t)
      for (int i = 0; i < 4; ++i) {
        int k, n;
        mma_b_elem(lane, i, &k, &n);
        CHECK(rb[lane][2 * t + i / 2][i % 2] == Bs[(size_t)(n + 8 * t) * ld + k], "B fragment element");
      }
  }
}

// Loader maps: the 16-byte vectors of all threads cover each [rows][32] k-tile exactly once.
template <class Cfg>
void check_mma_cfg_loaders() {
  std::vector<int> a(Cfg::BM * Cfg::BK, 0), b(Cfg::BN * Cfg::BK, 0);
  for (int tid = 0; tid < Cfg::THREADS; ++tid) {
    for (int i = 0; i < Cfg::A_VECS; ++i) {
      int r, kc;
      tile_vec_coord(tid + i * Cfg::THREADS, &r, &kc);
      for (int e = 0; e < Cfg::VEC; ++e) ++a[r * Cfg::BK + kc + e];
      CHECK(((r * Cfg::LDS + kc) * 2) % 16 == 0, "A vector 16-byte aligned in shared memory");
    }
    for (int i = 0; i < Cfg::B_VECS; ++i) {
      int r, kc;
      tile_vec_coord(tid + i * Cfg::THREADS, &r, &kc);
      for (int e = 0; e < Cfg::VEC; ++e) ++b[r * Cfg::BK + kc + e];
    }
  }
  CHECK(std::all_of(a.begin(), a.end(), [](int h) { return h == 1; }), "A tile covered once");
  CHECK(std::all_of(b.begin(), b.end(), [](int h) { return h == 1; }), "B tile covered once");
  // Warp tiles cover the block tile once.
  std::vector<int> c(Cfg::BM * Cfg::BN, 0);
  for (int w = 0; w < Cfg::WARPS; ++w) {
    int r0, c0;
    warp_tile_origin(w, Cfg::WARPS_N, Cfg::WM, Cfg::WN, &r0, &c0);
    for (int r = 0; r < Cfg::WM; ++r)
      for (int cc = 0; cc < Cfg::WN; ++cc) ++c[(r0 + r) * Cfg::BN + c0 + cc];
  }
  CHECK(std::all_of(c.begin(), c.end(), [](int h) { return h == 1; }), "warp tiles cover the block tile once");
  CHECK((Cfg::LDS * 2) % 16 == 0, "row pitch keeps ldmatrix rows 16-byte aligned");
  // ldmatrix rows of one 8x8 matrix fall in distinct 16-byte bank groups (no conflicts).
  std::set<int> groups;
  for (int i = 0; i < 8; ++i) groups.insert(((i * Cfg::LDS * 2) / 16) % 8);
  CHECK(groups.size() == 8, "conflict-free ldmatrix");
}

void test_tile_loaders() {
  check_mma_cfg_loaders<MmaCfgWide>();
  check_mma_cfg_loaders<MmaCfgNarrow>();
  std::vector<int> a(FfmaCfg::BM * FfmaCfg::BK, 0), b(FfmaCfg::BK * FfmaCfg::BN, 0), c(FfmaCfg::BM * FfmaCfg::BN, 0);
  for (int tid = 0; tid < FfmaCfg::THREADS; ++tid) {
    int r, k;
    ffma_a_coord(tid, &r, &k);
    for (int e = 0; e < 4; ++e) ++a[r * FfmaCfg::BK + k + e];
    ffma_b_coord(tid, &k, &r);
    for (int e = 0; e < 4; ++e) ++b[k * FfmaCfg::BN + r + e];
    int r0, c0;
    ffma_thread_origin(tid, &r0, &c0);
    for (int i = 0; i < FfmaCfg::TM; ++i)
      for (int j = 0; j < FfmaCfg::TN; ++j) ++c[(r0 + i) * FfmaCfg::BN + c0 + j];
  }
  auto once = [](const std::vector<int>& v) { return std::all_of(v.begin(), v.end(), [](int h) { return h == 1; }); };
  CHECK(once(a), "FFMA A tile covered once");
  CHECK(once(b), "FFMA B tile covered once");
  CHECK(once(c), "FFMA outputs covered once");
}

}  // namespace

namespace facegan {
namespace unit {

// The tensor-core kernel's data flow on the host: loaders -> shared tiles -> ldmatrix -> mma ->
// epilogue, with the kernel's index functions and the PTX-defined ldmatrix / mma semantics.
template <class Cfg>
std::vector<float> emulate_mma_kernel(const ConvGeom& g, const std::vector<float>& x, int64_t bstride,
                                      const std::vector<float>& s, const std::vector<float>& W) {
  const int M = geom_M(g), N = geom_N(g), K = geom_K(g);
  const int Kpad = round_up(K, Cfg::BK), Npad = round_up(N, Cfg::BN);
  std::vector<float> Bp((size_t)Npad * Kpad), colscale(Npad);
  pack_b_nmajor_scaled(g, W.data(), Kpad, Npad, Bp.data(), colscale.data());
  std::vector<float> out((size_t)g.batch * geom_OH(g) * geom_OW(g) * g.Cout, std::nanf(""));
  std::vector<float> As((size_t)Cfg::BM * Cfg::LDS), Bs((size_t)Cfg::BN * Cfg::LDS);
  std::vector<float> acc((size_t)Cfg::WARPS * 32 * Cfg::MI * Cfg::NI * 4);
  auto ACC = [&](int w, int lane, int mi, int ni, int e) -> float& {
    return acc[((((size_t)w * 32 + lane) * Cfg::MI + mi) * Cfg::NI + ni) * 4 + e];
  };
  for (int m0 = 0; m0 < M; m0 += Cfg::BM)
    for (int n0 = 0; n0 < Npad; n0 += Cfg::BN) {
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int k0 = 0; k0 < Kpad; k0 += Cfg::BK) {
        for (int tid = 0; tid < Cfg::THREADS; ++tid) {
          for (int i = 0; i < Cfg::A_VECS; ++i) {
            int row, kc;
            tile_vec_coord(tid + i * Cfg::THREADS, &row, &kc);
            const bool ok = m0 + row < M;
            const Pixel p = gemm_row_pixel(g, ok ? m0 + row : 0);
            for (int e = 0; e < Cfg::VEC; ++e) {
              const int k = k0 + kc + e;
              float v = 0.0f;
              if (ok && k < K) {
                const Tap t = gemm_k_tap(g, k);
                const int64_t off = gemm_a_offset_tap(g, p, t, bstride);
                if (off >= 0) v = x[off] * s[(size_t)p.b * g.Cin + t.c];
              }
              As[(size_t)row * Cfg::LDS + kc + e] = v;
            }
          }
          for (int i = 0; i < Cfg::B_VECS; ++i) {
            int row, kc;
            tile_vec_coord(tid + i * Cfg::THREADS, &row, &kc);
            for (int e = 0; e < Cfg::VEC; ++e)
              Bs[(size_t)row * Cfg::LDS + kc + e] = Bp[(size_t)(n0 + row) * Kpad + k0 + kc + e];
          }
        }
        for (int w = 0; w < Cfg::WARPS; ++w) {
          int wm0, wn0;
          warp_tile_origin(w, Cfg::WARPS_N, Cfg::WM, Cfg::WN, &wm0, &wn0);
          for (int kk = 0; kk < Cfg::BK; kk += 16) {
            std::vector<std::array<std::array<float, 8>, 32>> af(Cfg::MI);
            std::vector<std::array<std::array<float, 4>, 32>> bf(Cfg::NI);
            for (int mi = 0; mi < Cfg::MI; ++mi) {
              float regs[32][4][2];
              emulate_ldsm_x4(As, Cfg::LDS,
                              [&](int lane, int* r, int* c) {
                                ldsm_a_addr(lane, r, c);
                                *r += wm0 + mi * 16;
                                *c += kk;
                              },
                              regs);
              for (int lane = 0; lane < 32; ++lane)
                for (int i = 0; i < 8; ++i) af[mi][lane][i] = regs[lane][i / 2][i % 2];
            }
            for (int p = 0; p < Cfg::NI / 2; ++p) {
              float regs[32][4][2];
              emulate_ldsm_x4(Bs, Cfg::LDS,
                              [&](int lane, int* n, int* k) {
                                ldsm_b_addr(lane, n, k);
                                *n += wn0 + p * 16;
                                *k += kk;
                              },
                              regs);
              for (int lane = 0; lane < 32; ++lane)
                for (int i = 0; i < 4; ++i) {
                  bf[2 * p][lane][i] = regs[lane][i / 2][i % 2];
                  bf[2 * p + 1][lane][i] = regs[lane][2 + i / 2][i % 2];
                }
            }
            // mma.sync m16n8k16 as defined by the fragment maps.
            for (int mi = 0; mi < Cfg::MI; ++mi)
              for (int ni = 0; ni < Cfg::NI; ++ni) {
                float A[16][16], B[16][8];
                for (int lane = 0; lane < 32; ++lane) {
                  for (int i = 0; i < 8; ++i) {
                    int r, c;
                    mma_a_elem(lane, i, &r, &c);
                    A[r][c] = af[mi][lane][i];
                  }
                  for (int i = 0; i < 4; ++i) {
                    int k, n;
                    mma_b_elem(lane, i, &k, &n);
                    B[k][n] = bf[ni][lane][i];
                  }
                }
                for (int lane = 0; lane < 32; ++lane)
                  for (int e = 0; e < 4; ++e) {
                    int r, c;
                    mma_c_elem(lane, e, &r, &c);
                    float d = 0.0f;
                    for (int k = 0; k < 16; ++k) d += A[r][k] * B[k][c];
                    ACC(w, lane, mi, ni, e) += d;
                  }
              }
          }
        }
      }
      // Epilogue (as the kernel: rows from e = 0 / 2, columns from each e).
      for (int w = 0; w < Cfg::WARPS; ++w) {
        int wm0, wn0;
        warp_tile_origin(w, Cfg::WARPS_N, Cfg::WM, Cfg::WN, &wm0, &wn0);
        for (int lane = 0; lane < 32; ++lane)
          for (int mi = 0; mi < Cfg::MI; ++mi)
            for (int h = 0; h < 2; ++h) {
              int r, c;
              mma_c_elem(lane, 2 * h, &r, &c);
              const int m = m0 + wm0 + mi * 16 + r;
              if (m >= M) continue;
              const Pixel p = gemm_row_pixel(g, m);
              for (int ni = 0; ni < Cfg::NI; ++ni)
                for (int e = 0; e < 2; ++e) {
                  int rr, cc;
                  mma_c_elem(lane, 2 * h + e, &rr, &cc);
                  const int col = n0 + wn0 + ni * 8 + cc;
                  if (col < N)
                    out[gemm_out_offset(g, p, gemm_col_out(g, col))] = ACC(w, lane, mi, ni, 2 * h + e) * colscale[col];
                }
            }
      }
    }
  return out;
}

std::vector<float> emulate_ffma_kernel(const ConvGeom& g, const std::vector<float>& x, int64_t bstride,
                                       const std::vector<float>& s, const std::vector<float>& W) {
  const int M = geom_M(g), N = geom_N(g), K = geom_K(g);
  const int Kpad = round_up(K, FfmaCfg::BK), Npad = round_up(N, FfmaCfg::BN);
  std::vector<float> Bp((size_t)Kpad * Npad);
  pack_b_kmajor(g, W.data(), Kpad, Npad, Bp.data());
  std::vector<float> out((size_t)g.batch * geom_OH(g) * geom_OW(g) * g.Cout, std::nanf(""));
  constexpr int BM = FfmaCfg::BM, BN = FfmaCfg::BN, BK = FfmaCfg::BK;
  std::vector<float> As(BK * (BM + FfmaCfg::APAD)), Bs(BK * BN), acc((size_t)FfmaCfg::THREADS * 16);
  for (int m0 = 0; m0 < M; m0 += BM)
    for (int n0 = 0; n0 < Npad; n0 += BN) {
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int k0 = 0; k0 < Kpad; k0 += BK) {
        for (int tid = 0; tid < FfmaCfg::THREADS; ++tid) {
          int row, kq;
          ffma_a_coord(tid, &row, &kq);
          const bool ok = m0 + row < M;
          const Pixel p = gemm_row_pixel(g, ok ? m0 + row : 0);
          for (int e = 0; e < 4; ++e) {
            const int k = k0 + kq + e;
            float v = 0.0f;
            if (ok && k < K) {
              const Tap t = gemm_k_tap(g, k);
              const int64_t off = gemm_a_offset_tap(g, p, t, bstride);
              if (off >= 0) v = x[off] * s[(size_t)p.b * g.Cin + t.c];
            }
            As[(kq + e) * (BM + FfmaCfg::APAD) + row] = v;
          }
          int bk, bnq;
          ffma_b_coord(tid, &bk, &bnq);
          for (int e = 0; e < 4; ++e) Bs[bk * BN + bnq + e] = Bp[(size_t)(k0 + bk) * Npad + n0 + bnq + e];
        }
        for (int tid = 0; tid < FfmaCfg::THREADS; ++tid) {
          int r0, c0;
          ffma_thread_origin(tid, &r0, &c0);
          for (int kk = 0; kk < BK; ++kk)
            for (int i = 0; i < 4; ++i)
              for (int j = 0; j < 4; ++j)
                acc[tid * 16 + i * 4 + j] += As[kk * (BM + FfmaCfg::APAD) + r0 + i] * Bs[kk * BN + c0 + j];
        }
      }
      for (int tid = 0; tid < FfmaCfg::THREADS; ++tid) {
        int r0, c0;
        ffma_thread_origin(tid, &r0, &c0);
        for (int i = 0; i < 4; ++i) {
          const int m = m0 + r0 + i;
          if (m >= M) continue;
          const Pixel p = gemm_row_pixel(g, m);
          for (int j = 0; j < 4; ++j) {
            const int col = n0 + c0 + j;
            if (col < N) out[gemm_out_offset(g, p, gemm_col_out(g, col))] = acc[tid * 16 + i * 4 + j];
          }
        }
      }
    }
  return out;
}

template std::vector<float> emulate_mma_kernel<MmaCfgWide>(const ConvGeom&, const std::vector<float>&, int64_t,
                                                          const std::vector<float>&, const std::vector<float>&);
template std::vector<float> emulate_mma_kernel<MmaCfgNarrow>(const ConvGeom&, const std::vector<float>&, int64_t,
                                                            const std::vector<float>&, const std::vector<float>&);

}  // namespace unit
}  // namespace facegan

namespace {

// A layer through one kernel emulation: its GEMM, or an up-conv's four phase GEMMs + the FIR pass.
template <class F>
std::vector<float> emulate_layer(const ConvGeom& g, F&& gemm) {
  return g.up == 1 ? gemm(g) : upconv_via_phases(g, gemm);
}

void test_kernel_emulation() {
  for (const ConvCase& c : conv_cases()) {
    const ConvGeom& g = c.g;
    const int64_t bstride = c.broadcast ? 0 : in_plane(g);
    const auto x = random_vec((size_t)(c.broadcast ? 1 : g.batch) * in_plane(g));
    const auto s = random_vec((size_t)g.batch * g.Cin, 0.5f, 2.0f);
    const auto W = random_vec((size_t)g.Cout * g.Cin * 9);
    const auto ref = ref_modconv(g, x, bstride, s, W);
    const std::string name = "up " + std::to_string(g.up) + " src_shift " + std::to_string(g.src_shift) + " Cin " +
                             std::to_string(g.Cin) + " Cout " + std::to_string(g.Cout) + ": ";
    double rmax, d;
    d = max_abs_diff(emulate_layer(g, [&](const ConvGeom& p) { return emulate_ffma_kernel(p, x, bstride, s, W); }),
                     ref, &rmax);
    CHECK(d <= 1e-4 * std::max(1.0, rmax), name + fmt("FFMA max diff %g (ref max %g)", d, rmax));
    d = max_abs_diff(
        emulate_layer(g, [&](const ConvGeom& p) { return emulate_mma_kernel<MmaCfgWide>(p, x, bstride, s, W); }), ref,
        &rmax);
    CHECK(d <= 1e-4 * std::max(1.0, rmax), name + fmt("MMA wide max diff %g (ref max %g)", d, rmax));
    d = max_abs_diff(
        emulate_layer(g, [&](const ConvGeom& p) { return emulate_mma_kernel<MmaCfgNarrow>(p, x, bstride, s, W); }),
        ref, &rmax);
    CHECK(d <= 1e-4 * std::max(1.0, rmax), name + fmt("MMA narrow max diff %g (ref max %g)", d, rmax));
  }
  // An up-conv larger than one tile in every dimension (several M, N and K tiles per phase).
  ConvGeom g;
  g.batch = 2; g.H = g.W = 12; g.Cin = 24; g.Cout = 136; g.up = 2;
  const int64_t bstride = (int64_t)g.H * g.W * g.Cin;
  const auto x = random_vec((size_t)g.batch * bstride);
  const auto s = random_vec((size_t)g.batch * g.Cin, 0.5f, 2.0f);
  const auto W = random_vec((size_t)g.Cout * g.Cin * 9);
  const auto ref = ref_upconv(g, x, bstride, s, W);
  double rmax;
  double d = max_abs_diff(
      upconv_via_phases(g, [&](const ConvGeom& p) { return emulate_mma_kernel<MmaCfgWide>(p, x, bstride, s, W); }),
      ref, &rmax);
  CHECK(d <= 1e-4 * std::max(1.0, rmax), fmt("multi-tile MMA max diff %g (ref max %g)", d, rmax));
  d = max_abs_diff(upconv_via_phases(g, [&](const ConvGeom& p) { return emulate_ffma_kernel(p, x, bstride, s, W); }),
                   ref, &rmax);
  CHECK(d <= 1e-4 * std::max(1.0, rmax), fmt("multi-tile FFMA max diff %g (ref max %g)", d, rmax));
  // The same with ProGAN's nearest-x2 input (a 12x12 source read as a 24x24 grid), unmodulated.
  ConvGeom h;
  h.batch = 2; h.H = h.W = 24; h.Cin = 24; h.Cout = 40; h.src_shift = 1;
  const auto xh = random_vec((size_t)h.batch * in_plane(h));
  const std::vector<float> ones((size_t)h.batch * h.Cin, 1.0f);
  const auto refh = ref_modconv(h, xh, in_plane(h), ones, W);
  d = max_abs_diff(emulate_mma_kernel<MmaCfgWide>(h, xh, in_plane(h), ones, W), refh, &rmax);
  CHECK(d <= 1e-4 * std::max(1.0, rmax), fmt("multi-tile nearest-x2 MMA max diff %g (ref max %g)", d, rmax));
  d = max_abs_diff(emulate_ffma_kernel(h, xh, in_plane(h), ones, W), refh, &rmax);
  CHECK(d <= 1e-4 * std::max(1.0, rmax), fmt("multi-tile nearest-x2 FFMA max diff %g (ref max %g)", d, rmax));
}

const Register kCases(__FILE__, {
    {"mma.sync m16n8k16 fragment maps", test_mma_fragments},
    {"ldmatrix addresses feed the mma fragments", test_ldmatrix_feeds_mma},
    {"tile loaders and warp tiles cover their tiles", test_tile_loaders},
    {"FFMA / tensor-core kernel emulation == direct conv", test_kernel_emulation},
});

}  // namespace
