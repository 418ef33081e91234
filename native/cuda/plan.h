// facegan CUDA backend: host-side planning and weight packing (plain C++, no CUDA headers), shared
// by backend_cuda.cu and the CPU unit tests in native/tools/facegan_unit.cc.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "indexing.cuh"
#include "network.h"

namespace facegan {
namespace cuda {

// One tile of the batched row-dot kernel (gemv.cu): rows r in [0, nrows) of a matrix,
//   y[b*y_stride + out_off + r] = f( sum_{k<K} g(x[b*x_stride + x_off + k]) * M[m_off + r*ld + k] )
// FC mode:    g = identity, f(a) = act((a*w_gain + bias[bias_off + r]*b_gain) * post_gain)
// demod mode: g = square,   f(a) = 1/sqrt(a + 1e-8) (times max|x| when pre-scaling for 16-bit)
struct RowTile {
  int nrows = 0;
  int x_off = 0;
  int K = 0;
  int64_t m_off = 0;
  int ld = 0;
  int out_off = 0;
  int bias_off = 0;
  float w_gain = 1.0f, b_gain = 1.0f, post_gain = 1.0f;
  int aux = 0;    // demod: which conv layer (index into the per-sample inverse style scales)
  int first = 0;  // 1 on the first tile of a segment
};

// Splits `seg` (total_rows rows) into tiles of at most rows_per_tile rows.
inline void split_rows(const RowTile& seg, int total_rows, int rows_per_tile, std::vector<RowTile>* out) {
  for (int r0 = 0; r0 < total_rows; r0 += rows_per_tile) {
    RowTile t = seg;
    t.nrows = std::min(rows_per_tile, total_rows - r0);
    t.m_off = seg.m_off + (int64_t)r0 * seg.ld;
    t.out_off = seg.out_off + r0;
    t.bias_off = seg.bias_off + r0;
    t.first = r0 == 0 ? 1 : 0;
    out->push_back(t);
  }
}

// Samples per block of the row-dot kernel: the block keeps ns x K floats in shared memory.
inline int rows_samples_per_block(int n, int K) {
  const int cap = std::max(1, 12288 / std::max(1, K));  // 48 KiB of floats
  return std::max(1, std::min(std::min(8, n), cap));
}

// ------------------------------------------------------------------------------------------
// The implicit-GEMM geometry of a conv layer of the description (batch filled per launch):
//  - up 1: the 3x3 conv (pad 1) over the in_res grid;
//  - up 2, TransposedFir (StyleGAN2): the transposed conv over the in_res input as 4 sub-pixel
//    phases (conv_phase_geom), then the FIR pass;
//  - up 2, Nearest (ProGAN): the plain 3x3 conv over the out_res grid, its input read through
//    src_shift 1 (grid pixel (y, x) = input pixel (y/2, x/2)): no upsampled buffer.
inline ConvGeom conv_layer_geom(const LayerDesc& L) {
  ConvGeom g;
  g.batch = 0;
  g.Cin = L.in_ch;
  g.Cout = L.out_ch;
  g.ks = 3;
  if (L.up == 2 && L.resample == LayerDesc::Nearest) {
    g.H = g.W = L.out_res;
    g.up = 1;
    g.src_shift = 1;
  } else {
    g.H = g.W = L.in_res;
    g.up = L.up;
    g.src_shift = 0;
  }
  return g;
}

// ------------------------------------------------------------------------------------------
// Multiply-adds per image, counted from the launch plan (the backend's FACEGAN_CUDA_MACS=1
// report). `nominal` is the layer's own work as docs/stylegan2.md counts it (an up-conv at its
// input resolution); `gemm` is M*N*K of what the kernels compute (taps in the zero padding
// included); `tiles` is what the launched tiles compute at batch 1 (rows rounded up to the
// tile's BM, columns to Npad, the reduction to Kpad).
struct MacCount {
  double nominal = 0, gemm = 0, tiles = 0;
};

// One conv layer's implicit GEMM per image, for a tile of BM rows and weights padded to Kpad x Npad.
// For an up-conv: its four phases; its FIR pass is counted by upfir_macs.
inline MacCount conv_gemm_macs(const ConvGeom& g, int BM, int BK, int Npad) {
  MacCount m;
  for (int ph = 0; ph < conv_phases(g); ++ph) {
    ConvGeom p = conv_phase_geom(g, ph);
    p.batch = 1;
    m.gemm += (double)geom_M(p) * geom_N(p) * geom_K(p);
    m.tiles += (double)round_up(geom_M(p), BM) * Npad * round_up(geom_K(p), BK);
  }
  return m;
}
// The FIR pass of an up-conv per image: 16 taps per output element (4 + 4 when computed separably).
inline double upfir_macs(const ConvGeom& g) { return g.up == 2 ? 16.0 * conv_out_h(g) * conv_out_w(g) * g.Cout : 0.0; }

// ------------------------------------------------------------------------------------------
// Weight packing for the implicit GEMM (B[k][j] = conv_b_value).

// Visits every B[k][j] (k < K, j < N) of one GEMM (one phase of an up-conv) once, one (o, c)
// weight slice at a time: f(k, j, value). Same values as conv_b_value.
template <class F>
inline void for_each_b(const ConvGeom& g, const float* W, F&& f) {
  const int ny = geom_taps_y(g), nx = geom_taps_x(g);
  for (int o = 0; o < g.Cout; ++o)
    for (int c = 0; c < g.Cin; ++c) {
      const float* w9 = W + ((int64_t)o * g.Cin + c) * 9;
      for (int ty = 0; ty < ny; ++ty)
        for (int tx = 0; tx < nx; ++tx)
          f((ty * nx + tx) * g.Cin + c, o,
            w9[tap_kernel_index(g, ty, geom_py(g)) * 3 + tap_kernel_index(g, tx, geom_px(g))]);
    }
}

// FP32 FFMA path: out[k*Npad + j], zero-padded to Kpad x Npad.
inline void pack_b_kmajor(const ConvGeom& g, const float* W, int Kpad, int Npad, float* out) {
  std::fill(out, out + (int64_t)Kpad * Npad, 0.0f);
  for_each_b(g, W, [&](int k, int j, float v) { out[(int64_t)k * Npad + j] = v; });
}

// 16-bit tensor-core paths: out[j*Kpad + k] = B[k][j] / colscale[j] with colscale[j] =
// max_k |B[k][j]| (1 for an all-zero column), so every stored value lies in [-1, 1]; the
// epilogue multiplies by colscale[j]. The caller converts `out` to f16 / bf16.
inline void pack_b_nmajor_scaled(const ConvGeom& g, const float* W, int Kpad, int Npad, float* out,
                                 float* colscale) {
  std::fill(out, out + (int64_t)Kpad * Npad, 0.0f);
  for_each_b(g, W, [&](int k, int j, float v) { out[(int64_t)j * Kpad + k] = v; });
  for (int j = 0; j < Npad; ++j) {
    float* col = out + (int64_t)j * Kpad;
    float mx = 0.0f;
    for (int k = 0; k < Kpad; ++k) mx = std::max(mx, std::fabs(col[k]));
    colscale[j] = mx > 0.0f ? mx : 1.0f;
    for (int k = 0; k < Kpad; ++k) col[k] /= colscale[j];
  }
}

// Every GEMM of a layer (the four phases of an up-conv, one after another at
// conv_phase_w_offset, each padded to round_up(K, bk) x npad), as the kernels read them:
// k-major for FP32 (colscale unused), n-major scaled for 16-bit with colscale [phases][npad].
// `out` holds conv_packed_k(g, bk) * npad values.
inline void pack_conv_layer(const ConvGeom& g, const float* W, int bk, int npad, bool nmajor, float* out,
                            float* colscale) {
  for (int ph = 0; ph < conv_phases(g); ++ph) {
    const ConvGeom p = conv_phase_geom(g, ph);
    const int kpad = round_up(geom_K(p), bk);
    float* dst = out + conv_phase_w_offset(g, ph, bk, npad);
    if (nmajor) pack_b_nmajor_scaled(p, W, kpad, npad, dst, colscale + (int64_t)ph * npad);
    else pack_b_kmajor(p, W, kpad, npad, dst);
  }
}

// Demodulation table: out[o*Cin + c] = sum over taps of W[o][c][tap]^2.
inline void weight_sq_sums(const float* W, int Cout, int Cin, int taps, float* out) {
  for (int o = 0; o < Cout; ++o)
    for (int c = 0; c < Cin; ++c) {
      double acc = 0.0;
      const float* w = W + ((int64_t)o * Cin + c) * taps;
      for (int t = 0; t < taps; ++t) acc += (double)w[t] * w[t];
      out[(int64_t)o * Cin + c] = (float)acc;
    }
}

// ------------------------------------------------------------------------------------------
// Styles and demodulation of all synthesis layers (styles.cu runs them, two launches in all).

struct StylePlan {
  // Every affine at once: a packed [style_dim][w_dim] matrix (layer L's rows at
  // L.style_offset), its bias, and row tiles writing s into a [n][style_dim] buffer.
  std::vector<float> affine_W, affine_b;
  std::vector<RowTile> affine_tiles;
  int w_dim = 0, num_ws = 0, style_dim = 0;
  // Every demodulation coefficient at once: d[b][d_off(L) + o] = 1/sqrt(sum_i s_i^2 Wsq[o][i] + 1e-8),
  // Wsq = sum over taps of W^2, per layer, packed.
  std::vector<float> wsq;
  std::vector<RowTile> demod_tiles;
  int demod_dim = 0, num_conv = 0;
  std::vector<int> conv_index;  // per layer: ordinal among the conv layers (the noise streams' layer
                                // number, native/cpu/noise.h), -1 for ToRGB and Dense
  std::vector<int> d_off;       // per layer: offset of its coefficients in a row of d, -1 if none
};

inline bool build_style_plan(const Network& net, int rows_per_tile, StylePlan* p, std::string* err) {
  const int w_dim = net.mapping.w_dim, num_ws = net.mapping.num_ws;
  p->w_dim = w_dim;
  p->num_ws = num_ws;
  p->style_dim = net.style_dim;
  p->affine_W.assign((size_t)net.style_dim * w_dim, 0.0f);
  p->affine_b.assign((size_t)net.style_dim, 0.0f);
  std::vector<int> owner(net.style_dim, -1);
  int64_t wsq_size = 0;
  for (size_t li = 0; li < net.layers.size(); ++li) {
    const LayerDesc& L = net.layers[li];
    if (!L.modulated) {  // ProGAN (s = 1, d = 1): no affine, no demodulation
      p->conv_index.push_back(L.kind == LayerDesc::Conv ? p->num_conv++ : -1);
      p->d_off.push_back(-1);
      continue;
    }
    if (L.style_offset < 0 || L.in_ch <= 0 || L.style_offset + L.in_ch > net.style_dim) {
      *err = L.name + ": style row [" + std::to_string(L.style_offset) + ", " +
             std::to_string(L.style_offset + L.in_ch) + ") outside style_dim " + std::to_string(net.style_dim);
      return false;
    }
    if (L.w_index < 0 || L.w_index >= num_ws) {
      *err = L.name + ": w_index " + std::to_string(L.w_index) + " outside num_ws " + std::to_string(num_ws);
      return false;
    }
    for (int i = 0; i < L.in_ch; ++i) {
      int& o = owner[L.style_offset + i];
      if (o >= 0) {
        *err = L.name + ": style rows overlap those of " + net.layers[o].name;
        return false;
      }
      o = (int)li;
    }
    std::copy(L.affine_W, L.affine_W + (size_t)L.in_ch * w_dim, p->affine_W.begin() + (size_t)L.style_offset * w_dim);
    std::copy(L.affine_b, L.affine_b + L.in_ch, p->affine_b.begin() + L.style_offset);
    RowTile seg;
    seg.x_off = L.w_index * w_dim;
    seg.K = w_dim;
    seg.m_off = (int64_t)L.style_offset * w_dim;
    seg.ld = w_dim;
    seg.out_off = L.style_offset;
    seg.bias_off = L.style_offset;
    seg.w_gain = L.affine_gain;
    seg.b_gain = 1.0f;
    seg.post_gain = L.style_gain;
    split_rows(seg, L.in_ch, rows_per_tile, &p->affine_tiles);

    const bool demod = L.kind == LayerDesc::Conv && L.demodulate;
    p->conv_index.push_back(L.kind == LayerDesc::Conv ? p->num_conv++ : -1);
    p->d_off.push_back(demod ? p->demod_dim : -1);
    if (demod) {
      const int taps = L.ksize * L.ksize;
      const int64_t at = wsq_size;
      wsq_size += (int64_t)L.out_ch * L.in_ch;
      p->wsq.resize((size_t)wsq_size);
      std::vector<float> wtmp;  // conv weights as stored in the network, widened (prepare only)
      weight_sq_sums(layer_weight_f32(L, &wtmp), L.out_ch, L.in_ch, taps, p->wsq.data() + at);
      RowTile d;
      d.x_off = L.style_offset;
      d.K = L.in_ch;
      d.m_off = at;
      d.ld = L.in_ch;
      d.out_off = p->demod_dim;
      d.aux = p->conv_index.back();
      split_rows(d, L.out_ch, rows_per_tile, &p->demod_tiles);
      p->demod_dim += L.out_ch;
    }
  }
  return true;
}

inline int max_tile_K(const std::vector<RowTile>& tiles) {
  int k = 0;
  for (const RowTile& t : tiles) k = std::max(k, t.K);
  return k;
}

}  // namespace cuda
}  // namespace facegan
