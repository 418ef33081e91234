// The CPU engine's weights at load: per conv layer the squared-weight sums for the
// demodulation, and the packed forms its algorithm runs on (cpu_engine.h):
//  - 3×3 up 1 below 8² (and ProGAN's nearest ×2 + 3×3 without Winograd): A panels of MR output
//    channels × K = 9·C_in for the im2col GEMM;
//  - 3×3 up 1 from 8²: Winograd F(2×2, 3×3) U = G·g·Gᵀ, 16 planes;
//  - ProGAN's nearest ×2 + 3×3 from 16²: the polyphase Winograd F(2×2, 2×2) form, 36 planes;
//  - StyleGAN2's transposed up-conv: A panels of GEMM rows (o, ky, kx) per group of output
//    channels × K = C_in (cpu_upconv.cc), and its fixed schedule (images per task, row steps).
// Every choice depends on the layer shape only (batch invariance).
#include <algorithm>
#include <cmath>

#include "cpu_engine.h"

namespace facegan {
namespace cpu {

void CpuBackend::prepare_conv(const LayerDesc& L, int index, bool use_wino, int wino_min_res, size_t* max_cols,
                              size_t* max_crows, size_t* max_z, size_t* max_bp) {
  const int MR = ks_->MR;
  ConvPrep cp;
  // The packing below reads the layer with its weights widened to float32 (the network keeps conv
  // weights as stored, layer_weight_f32); cp.L points back to the network's layer when it is kept.
  std::vector<float> wtmp;
  LayerDesc Lw = L;
  Lw.weight = layer_weight_f32(L, &wtmp);
  cp.L = &Lw;
  cp.index = index;
  cp.ordinal = int(convs_.size());
  const int Ci = L.in_ch, Co = L.out_ch;
  cp.wsq.assign(size_t(Co) * Ci, 0.0f);
  for (int o = 0; o < Co; ++o)
    for (int i = 0; i < Ci; ++i) {
      double s = 0.0;
      for (int k = 0; k < 9; ++k) {
        double w = Lw.weight[(size_t(o) * Ci + i) * 9 + k];
        s += w * w;
      }
      cp.wsq[size_t(o) * Ci + i] = float(s);
    }
  cp.demod_off = demod_total_;
  demod_total_ += size_t(Co);
  if (L.up == 2 && L.resample == LayerDesc::TransposedFir) {
    if (L.in_res >= sub_min_res_) pack_upconv_sub(cp);
    else pack_upconv(cp, max_crows, max_z, max_cols);
    if (bf16_) pack_bf16(cp);
    cp.L = &L;
    convs_.push_back(std::move(cp));
    return;
  }
  // 3×3 on the output grid (ProGAN's nearest ×2 + 3×3: on the upsampled grid).
  cp.K = 9 * Ci;
  cp.og = Co;
  cp.ngroups = 1;
  const int panels = ceil_div(Co, MR);
  cp.group_off = {0};
  cp.group_panels = {panels};
  // One algorithm per layer. Nearest ×2 layers: the polyphase Winograd form on the low-
  // resolution input, or the plain conv on the upsampled grid.
  // Default thresholds (one rule per layer shape, whatever the batch): 3×3 up 1 from 8² (ffhq256
  // b8.conv1, 1 thread: 2.5–2.6 → 2.0–2.2 ms per image at batch 1, 2.2–4.0 → 1.6 at batch 4);
  // the polyphase form from 16², whose 36 planes of weights at 8² (4 tiles per image) cost more
  // than they save at batch 1 (ProGAN b8.conv0: 2.7 → 3.9 ms).
  const int min_res = wino_min_res > 0 ? wino_min_res : L.up == 2 ? 16 : 8;
  const bool wino = use_wino && L.out_res >= min_res;
  cp.direct = !wino;
  if (L.up == 2 && wino) {
    prepare_wino_up(cp, max_cols, max_bp);
  } else {
    if (L.up == 2) max_up_ = std::max(max_up_, size_t(L.in_ch) * L.out_res * L.out_res);
    if (cp.direct) {
      pack_direct(cp);
      *max_crows = std::max(*max_crows, size_t(panels) * MR);
    }
    if (wino) prepare_wino(cp, max_cols, max_bp);
  }
  if (bf16_) pack_bf16(cp);
  cp.L = &L;
  convs_.push_back(std::move(cp));
}

// precision bf16: each group's fp32 panels as the AMX kernel's bf16 rows (kernels.h amx_pack_a).
void CpuBackend::pack_bf16(ConvPrep& cp) {
  const int MR = ks_->MR;
  cp.kpad = int(round_up(size_t(cp.K), 32));
  cp.ab_off.clear();
  size_t total = 0;
  for (int g = 0; g < cp.ngroups; ++g) {
    cp.ab_off.push_back(total);
    total += size_t(cp.group_panels[size_t(g)] * MR + 16) * cp.kpad;
  }
  cp.Ab.assign(total, 0);
  for (int g = 0; g < cp.ngroups; ++g)
    amx_pack_a(cp.A.data() + cp.group_off[size_t(g)], layout(cp, cp.group_panels[size_t(g)]), cp.kpad,
               cp.Ab.data() + cp.ab_off[size_t(g)]);
}

// Panels of MR output channels (zero past C_out) × K = 9·C_in, k = c·9 + ky·3 + kx.
void CpuBackend::pack_direct(ConvPrep& cp) {
  const LayerDesc& L = *cp.L;
  const int MR = ks_->MR, Co = L.out_ch, panels = cp.group_panels[0];
  cp.kcb = kc_;
  const PanelLayout lay = layout(cp, panels);
  cp.A.reserve(lay.size());
  float* A = cp.A.data();
  for (int p = 0; p < panels; ++p)
    for (int k = 0; k < cp.K; ++k)
      for (int i = 0; i < MR; ++i) {
        const int o = p * MR + i;
        A[lay.at(p, k) + size_t(i)] = o < Co ? L.weight[size_t(o) * cp.K + k] : 0.0f;
      }
}

// The transposed up-conv's GEMM rows (o_local, ky, kx) per group of og output channels, MR-row
// panels × K = C_in, and its schedule: small inputs put several whole images in one GEMM
// (multi), larger ones step through G input rows at a time.
void CpuBackend::pack_upconv(ConvPrep& cp, size_t* max_crows, size_t* max_z, size_t* max_cols) {
  const LayerDesc& L = *cp.L;
  const int MR = ks_->MR, Ci = L.in_ch, Co = L.out_ch;
  cp.K = Ci;
  cp.kcb = kc_;
  cp.og = std::min(Co, env_int("FACEGAN_UP_OG", 32));
  cp.ngroups = ceil_div(Co, cp.og);
  size_t total = 0;
  for (int g = 0; g < cp.ngroups; ++g) {
    const int ogg = std::min(cp.og, Co - g * cp.og);
    const int panels = ceil_div(9 * ogg, MR);
    cp.group_off.push_back(total);
    cp.group_panels.push_back(panels);
    total += size_t(panels) * MR * cp.K;
    *max_crows = std::max(*max_crows, size_t(panels) * MR);
  }
  cp.A.reserve(total);
  for (int g = 0; g < cp.ngroups; ++g) {
    const int o0 = g * cp.og, ogg = std::min(cp.og, Co - o0);
    float* A = cp.A.data() + cp.group_off[size_t(g)];
    const PanelLayout lay = layout(cp, cp.group_panels[size_t(g)]);
    for (int p = 0; p < cp.group_panels[size_t(g)]; ++p)
      for (int c = 0; c < Ci; ++c)
        for (int i = 0; i < MR; ++i) {
          const int r = p * MR + i;  // (o_local, ky, kx)
          float v = 0.0f;
          if (r < 9 * ogg) {
            const int o = o0 + r / 9, t = r % 9;
            v = L.weight[(size_t(o) * Ci + c) * 9 + t];
          }
          A[lay.at(p, c) + size_t(i)] = v;
        }
  }
  const int H = L.in_res;
  if (H * H * 2 <= nc_target_) {
    cp.multi = true;
    cp.ipt = std::max(1, std::min(64, nc_target_ / (H * H)));
    cp.G = H;
    *max_z = std::max(*max_z, size_t(cp.ipt) * H * cp.og * 6 * H);
    *max_cols = std::max(*max_cols, size_t(cp.ipt) * H * H);
  } else {
    cp.multi = false;
    cp.ipt = 1;
    cp.G = std::max(1, std::min(H, nc_target_ / H));
    *max_z = std::max(*max_z, size_t(cp.G + 2) * cp.og * 6 * H);
    *max_cols = std::max(*max_cols, size_t(cp.G) * H);
  }
}

void CpuBackend::prepare_wino(ConvPrep& cp, size_t* max_cols, size_t* max_bp) {
  const LayerDesc& L = *cp.L;
  const int MR = ks_->MR, Ci = L.in_ch, Co = L.out_ch;
  const int Mp = ceil_div(Co, MR);
  cp.wino = true;
  // Blocking: V (16·kc·NT) and the accumulators (16·rows·NT) should stay in L2.
  set_wino_blocking(cp, 16, {"FACEGAN_WG_ROWS", 512}, {"FACEGAN_WG_KC", 128}, {"FACEGAN_WG_BUDGET", 20480},
                    (L.out_res / 2) * (L.out_res / 2), max_cols, max_bp);
  // Transformed weights U = G·g·Gᵀ, G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1]: panel ξ·Mp + p.
  const PanelLayout lay{MR, 16 * Mp, Ci, cp.wg_kc};
  cp.U.reserve(lay.size());
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
        for (int xi = 0; xi < 16; ++xi) U[lay.at(xi * Mp + p, c) + size_t(i)] = float(u[xi / 4][xi % 4]);
      }
    }
}


// Blocks a Winograd convolution with `planes` transform planes: rows of output channels and K
// blocks per task, and a column count NT such that V (planes·kc·NT) and the accumulators
// (planes·rows·NT) stay in L2 (`budget` = NT·(kc + rows)). Grows the shared scratch sizes.
void CpuBackend::set_wino_blocking(ConvPrep& cp, int planes, Tunable rows, Tunable kc, Tunable budget, int tiles,
                                   size_t* max_cols, size_t* max_bp) {
  const int MR = ks_->MR, NR = ks_->NR;
  const int Mp = ceil_div(cp.L->out_ch, MR);
  cp.wg_rows = std::min(Mp * MR, int(round_up(size_t(env_int(rows.env, rows.fallback)), size_t(MR))));
  cp.wg_kc = std::min(cp.L->in_ch, env_int(kc.env, kc.fallback));
  int nt = env_int(budget.env, budget.fallback) / (cp.wg_kc + cp.wg_rows);
  nt = std::max(NR, nt / NR * NR);
  // Weights far beyond L2 (F(2×2, 3×3) at 512 → 512: 16 MB): half the output channels per task
  // and twice the tiles, the same accumulators: each task streams half of U, and U is streamed
  // half as often (ffhq256 b32.conv1, batch 1, 2 threads: 10.5–10.7 → 9.3–9.5 ms).
  const size_t u_bytes = size_t(planes) * Mp * MR * cp.L->in_ch * sizeof(float);
  if (planes == 16 && u_bytes >= (size_t(8) << 20) && cp.wg_rows >= 2 * MR) {
    cp.wg_rows = int(round_up(size_t(cp.wg_rows / 2), size_t(MR)));
    nt *= 2;
  }
  cp.wg_nt = std::min(nt, int(round_up(size_t(tiles), size_t(NR))) * 64);
  *max_cols = std::max(*max_cols, size_t(cp.wg_nt));
  *max_bp = std::max(*max_bp, size_t(planes) * (size_t(cp.wg_kc) * cp.wg_nt + kPlanePad));
  max_cbuf_ = std::max(max_cbuf_, size_t(planes) * (size_t(cp.wg_rows) * cp.wg_nt + kPlanePad));
}

// Nearest ×2 + 3×3 as polyphase Winograd F(2×2, 2×2) (kernels.h): per phase (py, px) the 2×2
// kernel k = the sums of the 3×3 taps reading the same input pixel (rows: py 0 → {g0, g1 + g2},
// py 1 → {g0 + g1, g2}; columns likewise), U = G·k·Gᵀ with G = [1 0; 1 1; 0 1], 36 planes.
void CpuBackend::prepare_wino_up(ConvPrep& cp, size_t* max_cols, size_t* max_bp) {
  const LayerDesc& L = *cp.L;
  const int MR = ks_->MR, Ci = L.in_ch, Co = L.out_ch;
  const int Mp = ceil_div(Co, MR);
  cp.wino = cp.wino_up = true;
  cp.nxi = 36;
  // Blocking: V (36·kc·NT) and the accumulators (36·rows·NT) should stay in L2.
  // (Measured on ProGAN-128, AVX-512, batch 4: every output channel in one task, K blocks of
  // 256, one NR-wide column panel per task beat smaller row blocks / K blocks / wider tasks.)
  set_wino_blocking(cp, 36, {"FACEGAN_WGU_ROWS", 512}, {"FACEGAN_WGU_KC", 256}, {"FACEGAN_WGU_BUDGET", 1024},
                    (L.in_res / 2) * (L.in_res / 2), max_cols, max_bp);
  const PanelLayout lay{MR, 36 * Mp, Ci, cp.wg_kc};
  cp.U.reserve(lay.size());
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
          U[lay.at(xi * Mp + p, c) + size_t(i)] = float(u[xi / 9][(xi % 9) / 3][xi % 3]);
      }
    }
}

// The pixel norm over the `tile`×`tile` output blocks of the segments a task just wrote (tile
// 2: F(2×2, 3×3) on the output grid; 4: the polyphase up-conv on the input grid).

// The sub-pixel phases of the transposed conv (cpu_upconv.cc): T(2i+py, 2j+px) is a 2×2 / 2×1 /
// 1×2 / 1×1 conv of the input (EE: rows i−1 ↔ ky 2, i ↔ ky 0, columns likewise; EO: kx 1;
// OE: ky 1; OO: ky = kx = 1), each by Winograd F(2, 2) along its 2-tap axes on the 3×3 patch of
// a 2×2 input tile: U = G·k·Gᵀ with G = [1 0; 1 1; 0 1] (a 1-tap axis: the tap on planes 1, 2).
// Plane ξ = 3α + β is used by EE (all), EO (β ≥ 1), OE (α ≥ 1), OO (α, β ≥ 1): 25 products per
// tile and channel pair instead of the 36 of the plain transposed conv.
void CpuBackend::pack_upconv_sub(ConvPrep& cp) {
  const LayerDesc& L = *cp.L;
  const int MR = ks_->MR, Ci = L.in_ch, Co = L.out_ch;
  cp.sub = true;
  cp.K = Ci;
  cp.kcb = std::min(Ci, env_int("FACEGAN_SUB_KC", 128));
  cp.og = std::min(Co, env_int("FACEGAN_UP_OG", 32));
  cp.ngroups = ceil_div(Co, cp.og);
  cp.sub_rows.assign(9, 0);
  size_t total = 0;
  cp.sub_off.assign(size_t(cp.ngroups) * 9, 0);
  for (int g = 0; g < cp.ngroups; ++g)
    for (int xi = 0; xi < 9; ++xi) {
      const int al = xi / 3, be = xi % 3;
      const int nph = 1 + (be >= 1) + (al >= 1) + (al >= 1 && be >= 1);
      cp.sub_rows[size_t(xi)] = nph * cp.og;
      cp.sub_off[size_t(g) * 9 + xi] = total;
      total += size_t(ceil_div(nph * cp.og, MR)) * MR * Ci;
    }
  cp.A.reserve(total);
  cp.A.zero();
  static const double G[3][2] = {{1, 0}, {1, 1}, {0, 1}};
  for (int g = 0; g < cp.ngroups; ++g) {
    const int o0 = g * cp.og, ogg = std::min(cp.og, Co - o0);
    for (int xi = 0; xi < 9; ++xi) {
      const int al = xi / 3, be = xi % 3;
      float* A = cp.A.data() + cp.sub_off[size_t(g) * 9 + xi];
      const PanelLayout lay = layout(cp, ceil_div(cp.sub_rows[size_t(xi)], MR));
      for (int ol = 0; ol < ogg; ++ol)
        for (int c = 0; c < Ci; ++c) {
          const float* w = L.weight + (size_t(o0 + ol) * Ci + c) * 9;  // w[ky·3 + kx]
          auto W = [&](int ky, int kx) { return double(w[ky * 3 + kx]); };
          // Taps: index 0 ↔ offset −1 (k = 2), index 1 ↔ offset 0 (k = 0).
          double vals[4];
          int nv = 0;
          double ee = 0.0;
          for (int r = 0; r < 2; ++r)
            for (int q = 0; q < 2; ++q) ee += G[al][r] * W(r ? 0 : 2, q ? 0 : 2) * G[be][q];
          vals[nv++] = ee;
          if (be >= 1) vals[nv++] = G[al][0] * W(2, 1) + G[al][1] * W(0, 1);  // EO
          if (al >= 1) vals[nv++] = G[be][0] * W(1, 2) + G[be][1] * W(1, 0);  // OE
          if (al >= 1 && be >= 1) vals[nv++] = W(1, 1);                       // OO
          for (int ph = 0; ph < nv; ++ph) {
            const int row = ph * cp.og + ol;
            A[lay.at(row / MR, c) + size_t(row % MR)] = float(vals[ph]);
          }
        }
    }
  }
}

}  // namespace cpu
}  // namespace facegan
