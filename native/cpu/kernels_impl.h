// ISA-generic kernel bodies. Included once per variant (kernels_scalar.cc, kernels_avx2.cc,
// kernels_avx512.cc) inside that variant's own namespace, after it has defined:
//   constexpr int VL;                 lanes per vector
//   struct V;                         one vector of VL floats
//   V vload(const float*), void vstore(float*, V), V vset1(float), V vzero(),
//   V vadd(V, V), V vmul(V, V), V vfma(V a, V b, V c) (a·b + c), V vmax(V, V), V vmin(V, V),
//   void vinterleave(V a, V b, V* lo, V* hi)   lo = a0 b0 a1 b1 …, hi = the upper halves
//   void vdeinterleave(const float* p, V* even, V* odd)   from 2·VL floats at p
//   void vstream(float*, V) (non-temporal, p aligned to VL floats), void vfence()
//   V vsub(V, V), V vand(V, V) (bitwise), V vloadmask(const uint32_t*) (VL words as a vector)
//   V vloadn(const float* p, int n)   lanes [0, n) from p, the others 0 (0 ≤ n ≤ VL; reads only n)
//   void vstoren(float* p, V, int n)  lanes [0, n) to p (writes only n)
//   constexpr int kMR, kNV;           GEMM tile: kMR rows × kNV·VL columns
//   constexpr int kSmallP, kSmallNV;  small-N tile: kSmallP panels of kMR rows × kSmallNV·VL columns
// Everything here has internal linkage (static) so that the variants never collide.
//
// Batch invariance: a value's arithmetic must not depend on where it falls in a run (vector
// body or tail, first or last tile of a task), because runs are cut where a task's columns
// begin and end, which depends on the batch. So every tail goes through the same vector code
// as the body, on partial loads / stores (vloadn / vstoren), never through a scalar variant
// whose rounding (fused or not) could differ.

static constexpr int kNR = kNV * VL;
static constexpr float kSqrt2f = 1.41421356237309504880f;

// ACC a template parameter: with a run-time branch around the two initialisations, GCC kept the
// accumulators in a stack array through the prologue (72 extra loads and stores per call).
template <int MR, int NV, bool ACC>
static inline __attribute__((always_inline)) void gemm_tile_body(int kc, const float* __restrict A,
                                                                 const float* __restrict B, float* __restrict C,
                                                                 size_t ldc) {
  constexpr int NR = NV * VL;
  V acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = ACC ? vload(C + size_t(i) * ldc + size_t(v) * VL) : vzero();
  // The next A panel (the GEMMs walk a K block's panels in order, kernels.h PanelLayout), one
  // cache line ahead per line of this one: a weight-bound layer's panels stream from L3 without
  // a miss at each call (ffhq256 batch 1, 1 thread: b32.conv1 / b64.conv1 GEMMs −7 % / −9 %).
  const float* Anext = A + size_t(kc) * MR;
  for (int k = 0; k < kc; ++k) {
    const int f = (k * MR) & 15;  // this step's first float within its cache line
    if (f == 0 || f > 16 - MR) __builtin_prefetch(Anext + size_t(k) * MR + (MR - 1), 0, 3);
    V b[NV];
    for (int v = 0; v < NV; ++v) b[v] = vload(B + v * VL);
    for (int i = 0; i < MR; ++i) {
      V a = vset1(A[i]);
      for (int v = 0; v < NV; ++v) acc[i][v] = vfma(a, b[v], acc[i][v]);
    }
    A += MR;
    B += NR;
  }
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) vstore(C + size_t(i) * ldc + size_t(v) * VL, acc[i][v]);
}

template <int MR, int NV>
static void gemm_tile(int kc, const float* __restrict A, const float* __restrict B, float* __restrict C,
                      size_t ldc, int accumulate) {
  if (accumulate) gemm_tile_body<MR, NV, true>(kc, A, B, C, ldc);
  else gemm_tile_body<MR, NV, false>(kc, A, B, C, ldc);
}

// P panels of MR rows (A + i·astride) × NV·VL columns: the small-N kernel.
template <int P, int NV>
static void gemm_small_tile(int kc, const float* __restrict A, size_t astride, const float* __restrict B,
                            float* __restrict C, size_t ldc, int accumulate) {
  constexpr int MR = kMR, NR = NV * VL, R = P * MR;
  V acc[R][NV];
  if (accumulate) {
    for (int i = 0; i < R; ++i)
      for (int v = 0; v < NV; ++v) acc[i][v] = vload(C + size_t(i) * ldc + size_t(v) * VL);
  } else {
    for (int i = 0; i < R; ++i)
      for (int v = 0; v < NV; ++v) acc[i][v] = vzero();
  }
  const float* Ap[P];
  for (int p = 0; p < P; ++p) Ap[p] = A + size_t(p) * astride;
  for (int k = 0; k < kc; ++k) {
    V b[NV];
    for (int v = 0; v < NV; ++v) b[v] = vload(B + v * VL);
    for (int p = 0; p < P; ++p)
      for (int i = 0; i < MR; ++i) {
        V a = vset1(Ap[p][i]);
        for (int v = 0; v < NV; ++v) acc[p * MR + i][v] = vfma(a, b[v], acc[p * MR + i][v]);
      }
    for (int p = 0; p < P; ++p) Ap[p] += MR;
    B += NR;
  }
  for (int i = 0; i < R; ++i)
    for (int v = 0; v < NV; ++v) vstore(C + size_t(i) * ldc + size_t(v) * VL, acc[i][v]);
}

// dst[t] = src[t]·s for t < n.
static inline void scale_copy(float* __restrict dst, const float* __restrict src, int n, float s) {
  V vs = vset1(s);
  int t = 0;
  for (; t + 2 * VL <= n; t += 2 * VL) {
    vstore(dst + t, vmul(vload(src + t), vs));
    vstore(dst + t + VL, vmul(vload(src + t + VL), vs));
  }
  for (; t + VL <= n; t += VL) vstore(dst + t, vmul(vload(src + t), vs));
  for (; t < n; ++t) dst[t] = src[t] * s;
}

static void pack_b(const PackBArgs& a) {
  const int NR = a.nr;
  const int npanels = (a.ncols + NR - 1) / NR;
  const int tail = npanels * NR - a.ncols;
  if (tail) {
    float* p = a.Bp + size_t(npanels - 1) * a.kc * NR + (NR - tail);
    for (int kk = 0; kk < a.kc; ++kk)
      for (int t = 0; t < tail; ++t) p[size_t(kk) * NR + t] = 0.0f;
  }
  const size_t HW = size_t(a.H) * a.W;
  int c = -1, dy = 0, dx = 0;
  for (int kk = 0; kk < a.kc; ++kk) {
    const int k = a.k0 + kk;
    if (a.taps == 9) {
      c = k / 9;
      const int t = k - c * 9;
      dy = t / 3 - 1;
      dx = t % 3 - 1;
    } else {
      c = k;
    }
    for (int si = 0; si < a.nsegs; ++si) {
      const ColSeg& sg = a.segs[si];
      float* dst = a.Bp + size_t(sg.col / NR) * a.kc * NR + size_t(kk) * NR + (sg.col % NR);
      const int sy = sg.y + dy;
      if (sy < 0 || sy >= a.H) {
        for (int t = 0; t < sg.len; ++t) dst[t] = 0.0f;
        continue;
      }
      const float* row = a.in + size_t(sg.img) * a.in_img_stride + size_t(c) * HW + size_t(sy) * a.W;
      const float s = a.styles[size_t(sg.img) * a.style_stride + c];
      const int x = sg.x0 + dx;  // source column of dst[0]
      int t = 0;
      while (t < sg.len && x + t < 0) dst[t++] = 0.0f;
      int tend = a.W - x;
      if (tend > sg.len) tend = sg.len;
      if (tend > t) {
        scale_copy(dst + t, row + x + t, tend - t, s);
        t = tend;
      }
      for (; t < sg.len; ++t) dst[t] = 0.0f;
    }
  }
}

static inline float epi_scalar(float v, const EpilogueArgs& e, const float* noise, int i) {
  v *= e.d;
  if (noise) v += noise[i] * e.noise_strength;
  v += e.bias;
  if (e.act) {
    v = v < 0.0f ? v * e.slope : v;
    if (e.gain != 1.0f) v = v * e.gain;
  }
  if (e.clamp >= 0.0f) v = v < -e.clamp ? -e.clamp : (v > e.clamp ? e.clamp : v);
  return v;
}

struct EpiVec {
  V d, b, ns, slope, gain, lo, hi;
  bool noise, act, has_gain, clamp;
  explicit EpiVec(const EpilogueArgs& e)
      : d(vset1(e.d)), b(vset1(e.bias)), ns(vset1(e.noise_strength)), slope(vset1(e.slope)), gain(vset1(e.gain)),
        lo(vset1(-e.clamp)), hi(vset1(e.clamp)), noise(e.noise != nullptr), act(e.act), has_gain(e.gain != 1.0f),
        clamp(e.clamp >= 0.0f) {}
  // nz: the noise values (used only when the layer has noise).
  inline V apply_n(V v, V nz) const {
    v = vmul(v, d);
    if (noise) v = vadd(v, vmul(nz, ns));
    v = vadd(v, b);
    if (act) {
      v = vmax(v, vmul(v, slope));
      if (has_gain) v = vmul(v, gain);
    }
    if (clamp) v = vmin(vmax(v, lo), hi);
    return v;
  }
  inline V apply(V v, const float* noise_ptr) const { return apply_n(v, noise ? vload(noise_ptr) : vzero()); }
};

static void epilogue(float* __restrict dst, const float* __restrict src, int n, const EpilogueArgs& e) {
  const EpiVec ev(e);
  int i = 0;
  for (; i + VL <= n; i += VL) vstore(dst + i, ev.apply(vload(src + i), e.noise ? e.noise + i : nullptr));
  if (i < n) {
    const int r = n - i;
    vstoren(dst + i, ev.apply_n(vloadn(src + i, r), e.noise ? vloadn(e.noise + i, r) : vzero()), r);
  }
}

// Up-conv horizontal pass (see kernels.h). With f = [1,3,3,1]/4 per axis:
//   Z0[n] = .25·(Y1[n−1] + Y2[n] + Y0[n+1]) + .75·(Y2[n−1] + Y0[n] + Y1[n])
//   Z1[n] = .25·(Y2[n−1] + Y0[n] + Y1[n+1]) + .75·(Y1[n] + Y2[n] + Y0[n+1])
static void upconv_h(const float* __restrict Y0, const float* __restrict Y1, const float* __restrict Y2,
                     float* __restrict Z0, float* __restrict Z1, int W) {
  auto at = [W](const float* y, int i) { return (i < 0 || i >= W) ? 0.0f : y[i]; };
  auto one = [&](int n) {
    Z0[n] = 0.25f * (at(Y1, n - 1) + Y2[n] + at(Y0, n + 1)) + 0.75f * (at(Y2, n - 1) + Y0[n] + Y1[n]);
    Z1[n] = 0.25f * (at(Y2, n - 1) + Y0[n] + at(Y1, n + 1)) + 0.75f * (Y1[n] + Y2[n] + at(Y0, n + 1));
  };
  if (W < VL + 2) {
    for (int n = 0; n < W; ++n) one(n);
    return;
  }
  one(0);
  const V q = vset1(0.25f), t = vset1(0.75f);
  int n = 1;
  for (; n + VL <= W - 1; n += VL) {
    V y0m = vload(Y0 + n), y1m = vload(Y1 + n), y2m = vload(Y2 + n);
    V y1l = vload(Y1 + n - 1), y2l = vload(Y2 + n - 1);
    V y0r = vload(Y0 + n + 1), y1r = vload(Y1 + n + 1);
    V z0 = vfma(q, vadd(vadd(y1l, y2m), y0r), vmul(t, vadd(vadd(y2l, y0m), y1m)));
    V z1 = vfma(q, vadd(vadd(y2l, y0m), y1r), vmul(t, vadd(vadd(y1m, y2m), y0r)));
    vstore(Z0 + n, z0);
    vstore(Z1 + n, z1);
  }
  for (; n < W; ++n) one(n);
}

// Up-conv vertical pass for output row 2m + phase, both column phases, interleaved, epilogue.
//   phase 0: .25·(Zm[1] + Zc[2] + Zp[0]) + .75·(Zm[2] + Zc[0] + Zc[1])
//   phase 1: .25·(Zm[2] + Zc[0] + Zp[1]) + .75·(Zc[1] + Zc[2] + Zp[0])
// where Z?[ky] is the [2][W] block of kernel row ky (both column phases).
static void upconv_v(float* __restrict dst, const float* zm, const float* zc, const float* zp, int W, int phase,
                     const EpilogueArgs& e) {
  const size_t KS = size_t(2) * W;  // stride between ky blocks
  const float *qa, *qb, *qc, *ta, *tb, *tc;
  if (phase == 0) {
    qa = zm + 1 * KS; qb = zc + 2 * KS; qc = zp + 0 * KS;
    ta = zm + 2 * KS; tb = zc + 0 * KS; tc = zc + 1 * KS;
  } else {
    qa = zm + 2 * KS; qb = zc + 0 * KS; qc = zp + 1 * KS;
    ta = zc + 1 * KS; tb = zc + 2 * KS; tc = zp + 0 * KS;
  }
  // Column phase p of a ky block is at offset p·W.
  const EpiVec ev(e);
  const V q = vset1(0.25f), t = vset1(0.75f);
  const bool stream = e.stream && (reinterpret_cast<uintptr_t>(dst) % (VL * sizeof(float))) == 0;
  int n = 0;
  for (; n + VL <= W; n += VL) {
    V p0 = vfma(q, vadd(vadd(vload(qa + n), vload(qb + n)), vload(qc + n)),
                vmul(t, vadd(vadd(vload(ta + n), vload(tb + n)), vload(tc + n))));
    const int o = W;
    V p1 = vfma(q, vadd(vadd(vload(qa + o + n), vload(qb + o + n)), vload(qc + o + n)),
                vmul(t, vadd(vadd(vload(ta + o + n), vload(tb + o + n)), vload(tc + o + n))));
    V lo, hi;
    vinterleave(p0, p1, &lo, &hi);
    const float* nz = e.noise ? e.noise + 2 * n : nullptr;
    if (stream) {
      vstream(dst + 2 * n, ev.apply(lo, nz));
      vstream(dst + 2 * n + VL, ev.apply(hi, nz ? nz + VL : nullptr));
    } else {
      vstore(dst + 2 * n, ev.apply(lo, nz));
      vstore(dst + 2 * n + VL, ev.apply(hi, nz ? nz + VL : nullptr));
    }
  }
  for (; n < W; ++n) {
    for (int p = 0; p < 2; ++p) {
      const int o = p * W + n;
      float v = 0.25f * (qa[o] + qb[o] + qc[o]) + 0.75f * (ta[o] + tb[o] + tc[o]);
      dst[2 * n + p] = epi_scalar(v, e, e.noise, 2 * n + p);
    }
  }
}

static void torgb_row(float* out, size_t ostride, const float* act, size_t cstride, int C, int W, const float* w,
                      const float* bias, int nk, float clamp, int accumulate) {
  const bool do_clamp = clamp >= 0.0f;
  const V lo = vset1(-clamp), hi = vset1(clamp);
  for (int k0 = 0; k0 < nk; k0 += 4) {
    const int kn = nk - k0 < 4 ? nk - k0 : 4;
    int x = 0;
    for (; x + 2 * VL <= W; x += 2 * VL) {
      V acc[4][2];
      for (int j = 0; j < 4; ++j) acc[j][0] = acc[j][1] = vzero();
      for (int c = 0; c < C; ++c) {
        const float* a = act + size_t(c) * cstride + x;
        V x0 = vload(a), x1 = vload(a + VL);
        for (int j = 0; j < kn; ++j) {
          V wv = vset1(w[size_t(k0 + j) * C + c]);
          acc[j][0] = vfma(wv, x0, acc[j][0]);
          acc[j][1] = vfma(wv, x1, acc[j][1]);
        }
      }
      for (int j = 0; j < kn; ++j) {
        float* o = out + size_t(k0 + j) * ostride + x;
        V b = vset1(bias[k0 + j]);
        for (int h = 0; h < 2; ++h) {
          V v = vadd(acc[j][h], b);
          if (do_clamp) v = vmin(vmax(v, lo), hi);
          if (accumulate) v = vadd(v, vload(o + h * VL));
          vstore(o + h * VL, v);
        }
      }
    }
    // The rest one vector at a time (the last one partial), with the same arithmetic per lane.
    for (; x < W; x += VL) {
      const int r = W - x < VL ? W - x : VL;
      V acc[4];
      for (int j = 0; j < 4; ++j) acc[j] = vzero();
      for (int c = 0; c < C; ++c) {
        const float* a = act + size_t(c) * cstride + x;
        V xv = r == VL ? vload(a) : vloadn(a, r);
        for (int j = 0; j < kn; ++j) acc[j] = vfma(vset1(w[size_t(k0 + j) * C + c]), xv, acc[j]);
      }
      for (int j = 0; j < kn; ++j) {
        float* o = out + size_t(k0 + j) * ostride + x;
        V v = vadd(acc[j], vset1(bias[k0 + j]));
        if (do_clamp) v = vmin(vmax(v, lo), hi);
        if (accumulate) v = vadd(v, r == VL ? vload(o) : vloadn(o, r));
        if (r == VL) vstore(o, v);
        else vstoren(o, v, r);
      }
    }
  }
}

static float dot(const float* a, const float* b, int n) {
  V s0 = vzero(), s1 = vzero(), s2 = vzero(), s3 = vzero();
  int i = 0;
  for (; i + 4 * VL <= n; i += 4 * VL) {
    s0 = vfma(vload(a + i), vload(b + i), s0);
    s1 = vfma(vload(a + i + VL), vload(b + i + VL), s1);
    s2 = vfma(vload(a + i + 2 * VL), vload(b + i + 2 * VL), s2);
    s3 = vfma(vload(a + i + 3 * VL), vload(b + i + 3 * VL), s3);
  }
  for (; i + VL <= n; i += VL) s0 = vfma(vload(a + i), vload(b + i), s0);
  V s = vadd(vadd(s0, s1), vadd(s2, s3));
  float buf[VL];
  vstore(buf, s);
  float r = 0.0f;
  for (int j = 0; j < VL; ++j) r += buf[j];
  for (; i < n; ++i) r += a[i] * b[i];
  return r;
}

// Winograd F(2×2, 3×3): Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1], Aᵀ = [1 1 1 0; 0 1 −1 −1].
static inline void wino_in_store(float* dst, size_t xs, const V (&d)[4][4], int n) {
  V t[4][4];
  for (int r = 0; r < 4; ++r) {
    t[r][0] = vsub(d[r][0], d[r][2]);
    t[r][1] = vadd(d[r][1], d[r][2]);
    t[r][2] = vsub(d[r][2], d[r][1]);
    t[r][3] = vsub(d[r][1], d[r][3]);
  }
  auto st = [n](float* p, V v) {
    if (n == VL) vstore(p, v);
    else vstoren(p, v, n);
  };
  for (int c = 0; c < 4; ++c) {
    st(dst + (0 * 4 + c) * xs, vsub(t[0][c], t[2][c]));
    st(dst + (1 * 4 + c) * xs, vadd(t[1][c], t[2][c]));
    st(dst + (2 * 4 + c) * xs, vsub(t[2][c], t[1][c]));
    st(dst + (3 * 4 + c) * xs, vsub(t[1][c], t[3][c]));
  }
}

// Lane masks: loading VL words at kMaskFirstOff + 15 gives lane 0 cleared, the rest set;
// at kMaskLastOff + 16 − VL + 1, the last lane cleared.
alignas(64) static const uint32_t kMaskFirstOff[32] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                                       ~0u, ~0u, ~0u, ~0u, ~0u, ~0u, ~0u, ~0u,
                                                       ~0u, ~0u, ~0u, ~0u, ~0u, ~0u, ~0u, ~0u};
alignas(64) static const uint32_t kMaskLastOff[32] = {~0u, ~0u, ~0u, ~0u, ~0u, ~0u, ~0u, ~0u,
                                                      ~0u, ~0u, ~0u, ~0u, ~0u, ~0u, ~0u, ~0u,
                                                      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};

// Nearest ×2 + 3×3 as four polyphase 2×2 convolutions on the low-resolution grid, each by
// Winograd F(2×2, 2×2) (kernels.h, WinoUpOutArgs): the 4×4 input patch d (rows / columns
// 2t−1 … 2t+2) gives per phase (py, px) the 3×3 sub-patch at offset (py, px), transformed by
// Bᵀ = [1 −1 0; 0 1 0; 0 −1 1] on both sides, stored as plane ξ = (2·py + px)·9 + 3α + β.
static inline void wino_up_in_store(float* dst, size_t xs, const V (&d)[4][4], int n) {
  V t[6][4];  // row combinations: py 0 → (d0 − d1, d1, d2 − d1), py 1 → (d1 − d2, d2, d3 − d2)
  for (int c = 0; c < 4; ++c) {
    t[0][c] = vsub(d[0][c], d[1][c]);
    t[1][c] = d[1][c];
    t[2][c] = vsub(d[2][c], d[1][c]);
    t[3][c] = vsub(d[1][c], d[2][c]);
    t[4][c] = d[2][c];
    t[5][c] = vsub(d[3][c], d[2][c]);
  }
  for (int py = 0; py < 2; ++py)
    for (int px = 0; px < 2; ++px)
      for (int a = 0; a < 3; ++a) {
        const V* r = t[py * 3 + a];
        V u[3];
        if (px == 0) {
          u[0] = vsub(r[0], r[1]);
          u[1] = r[1];
          u[2] = vsub(r[2], r[1]);
        } else {
          u[0] = vsub(r[1], r[2]);
          u[1] = r[2];
          u[2] = vsub(r[3], r[2]);
        }
        float* o = dst + size_t((py * 2 + px) * 9 + a * 3) * xs;
        for (int b = 0; b < 3; ++b) {
          if (n == VL) vstore(o + b * xs, u[b]);
          else vstoren(o + b * xs, u[b], n);
        }
      }
}

// VL tiles (n of them stored): p[r] points at x[2t − 1] of input row r for the first tile t
// (nullptr: a zero row); 2·VL + 2 floats are read from each. `left` / `right`: the first /
// last lane's tile is at the image edge, whose x[−1] / x[W] read there is masked to 0.
// UP: the polyphase F(2×2, 2×2) transform (36 planes) instead of F(2×2, 3×3) (16 planes).
template <bool UP>
static inline void wino_in_vec(const float* const (&p)[4], V vs, bool left, bool right, V first_off, V last_off,
                               float* dst, size_t xs, int n) {
  V d[4][4];
  for (int r = 0; r < 4; ++r) {
    if (!p[r]) {
      d[r][0] = d[r][1] = d[r][2] = d[r][3] = vzero();
      continue;
    }
    V o0, e0, o1, e1;
    vdeinterleave(p[r], &o0, &e0);      // x[2t−1], x[2t]
    vdeinterleave(p[r] + 2, &o1, &e1);  // x[2t+1], x[2t+2]
    if (left) o0 = vand(o0, first_off);
    if (right) e1 = vand(e1, last_off);
    d[r][0] = vmul(o0, vs);
    d[r][1] = vmul(e0, vs);
    d[r][2] = vmul(o1, vs);
    d[r][3] = vmul(e1, vs);
  }
  if (UP) wino_up_in_store(dst, xs, d, n);
  else wino_in_store(dst, xs, d, n);
}

template <bool UP>
static void wino_in_impl(const WinoInArgs& a) {
  const int len = a.len, TW = a.W / 2;
  const int x0 = 2 * a.tx0 - 1;  // source column of tile 0's first tap
  const int nfull = len / VL * VL;
  const V vs = vset1(a.s);
  const V first_off = vloadmask(kMaskFirstOff + 15);
  const V last_off = vloadmask(kMaskLastOff + 16 - VL + 1);
  for (int j = 0; j < nfull; j += VL) {
    const bool left = x0 + 2 * j < 0;          // tile 0 of the row: x[−1] is padding
    const bool right = a.tx0 + j + VL == TW;    // last tile of the row: x[W] is padding
    const float* p[4];
    for (int r = 0; r < 4; ++r) p[r] = a.rows[r] ? a.rows[r] + x0 + 2 * j : nullptr;
    wino_in_vec<UP>(p, vs, left, right, first_off, last_off, a.dst + j, a.xi_stride, VL);
  }
  if (nfull < len) {
    // The last tiles: the same vector code on zero-padded copies of the source columns.
    const int n = len - nfull;
    const int xs0 = x0 + 2 * nfull;
    alignas(64) float T[4][2 * VL + 2 + VL];
    const float* p[4];
    for (int r = 0; r < 4; ++r) {
      p[r] = nullptr;
      if (!a.rows[r]) continue;
      // Columns q ∈ [qa, qb) are in the image (x = xs0 + q); the rest of the row is zero.
      const int qa = xs0 < 0 ? -xs0 : 0, qb = 2 * n + 2 < a.W - xs0 ? 2 * n + 2 : a.W - xs0;
      std::memset(T[r], 0, sizeof T[r]);
      std::memcpy(T[r] + qa, a.rows[r] + xs0 + qa, sizeof(float) * size_t(qb - qa));
      p[r] = T[r];
    }
    wino_in_vec<UP>(p, vs, false, false, first_off, last_off, a.dst + nfull, a.xi_stride, n);
  }
}

static void wino_in(const WinoInArgs& a) { wino_in_impl<false>(a); }
static void wino_up_in(const WinoInArgs& a) { wino_in_impl<true>(a); }

// n ≤ VL tiles from m (plane ξ at m + ξ·xs) to 2n outputs of each of the two rows (FULL: n = VL).
template <bool FULL>
static inline void wino_out_vec(const float* m, size_t xs, int n, float* const (&outs)[2],
                                const float* const (&noises)[2], const EpiVec& ev) {
  V u[2][4];
  for (int c = 0; c < 4; ++c) {
    V mm[4];
    for (int i = 0; i < 4; ++i) mm[i] = FULL ? vload(m + (i * 4 + c) * xs) : vloadn(m + (i * 4 + c) * xs, n);
    u[0][c] = vadd(vadd(mm[0], mm[1]), mm[2]);
    u[1][c] = vsub(vsub(mm[1], mm[2]), mm[3]);
  }
  const int nlo = 2 * n < VL ? 2 * n : VL, nhi = 2 * n - nlo;
  for (int r = 0; r < 2; ++r) {
    V y0 = vadd(vadd(u[r][0], u[r][1]), u[r][2]);
    V y1 = vsub(vsub(u[r][1], u[r][2]), u[r][3]);
    V lo, hi;
    vinterleave(y0, y1, &lo, &hi);
    const float* nz = noises[r];
    if (FULL) {
      vstore(outs[r], ev.apply_n(lo, nz ? vload(nz) : vzero()));
      vstore(outs[r] + VL, ev.apply_n(hi, nz ? vload(nz + VL) : vzero()));
    } else {
      vstoren(outs[r], ev.apply_n(lo, nz ? vloadn(nz, nlo) : vzero()), nlo);
      if (nhi > 0) vstoren(outs[r] + VL, ev.apply_n(hi, nz ? vloadn(nz + VL, nhi) : vzero()), nhi);
    }
  }
}

static void wino_out(const WinoOutArgs& a) {
  const size_t xs = a.xi_stride;
  EpilogueArgs e = a.e;
  e.noise = a.noise0;  // only its presence matters to EpiVec
  const EpiVec ev(e);
  int j = 0;
  for (; j + VL <= a.len; j += VL) {
    float* const outs[2] = {a.out0 + 2 * j, a.out1 + 2 * j};
    const float* const noises[2] = {a.noise0 ? a.noise0 + 2 * j : nullptr, a.noise1 ? a.noise1 + 2 * j : nullptr};
    wino_out_vec<true>(a.m + j, xs, VL, outs, noises, ev);
  }
  if (j < a.len) {
    float* const outs[2] = {a.out0 + 2 * j, a.out1 + 2 * j};
    const float* const noises[2] = {a.noise0 ? a.noise0 + 2 * j : nullptr, a.noise1 ? a.noise1 + 2 * j : nullptr};
    wino_out_vec<false>(a.m + j, xs, a.len - j, outs, noises, ev);
  }
}

// Polyphase output: per phase (py, px), Y = Aᵀ·m·A with Aᵀ = [1 1 0; 0 1 1] (2×2 outputs at
// low-resolution positions (2t + i, 2t' + j)), epilogue, written to output row 4·ty + 2i + py,
// column 4·t + 2j + px.
static void wino_up_out(const WinoUpOutArgs& a) {
  const size_t xs = a.xi_stride;
  EpilogueArgs e = a.e;
  e.noise = nullptr;
  const EpiVec ev(e);
  for (int j0 = 0; j0 < a.len; j0 += VL) {
    const int n = a.len - j0 < VL ? a.len - j0 : VL;
    V y[2][2][2][2];  // [py][px][i][j]
    for (int ph = 0; ph < 4; ++ph) {
      const float* m = a.m + j0 + size_t(ph * 9) * xs;
      V mm[3][3];
      for (int al = 0; al < 3; ++al)
        for (int be = 0; be < 3; ++be) {
          const float* q = m + size_t(al * 3 + be) * xs;
          mm[al][be] = n == VL ? vload(q) : vloadn(q, n);
        }
      V u[2][3];
      for (int be = 0; be < 3; ++be) {
        u[0][be] = vadd(mm[0][be], mm[1][be]);
        u[1][be] = vadd(mm[1][be], mm[2][be]);
      }
      for (int i = 0; i < 2; ++i) {
        y[ph >> 1][ph & 1][i][0] = ev.apply_n(vadd(u[i][0], u[i][1]), vzero());
        y[ph >> 1][ph & 1][i][1] = ev.apply_n(vadd(u[i][1], u[i][2]), vzero());
      }
    }
    // Row 2i + py holds, per tile, (j 0, px 0), (0, 1), (1, 0), (1, 1): two rounds of interleaving.
    for (int py = 0; py < 2; ++py)
      for (int i = 0; i < 2; ++i) {
        V l1, h1, l2, h2, o[4];
        vinterleave(y[py][0][i][0], y[py][0][i][1], &l1, &h1);
        vinterleave(y[py][1][i][0], y[py][1][i][1], &l2, &h2);
        vinterleave(l1, l2, &o[0], &o[1]);
        vinterleave(h1, h2, &o[2], &o[3]);
        float* dst = a.out[2 * i + py] + 4 * j0;
        for (int q = 0; q < 4; ++q) {
          const int cnt = 4 * n - q * VL;
          if (cnt >= VL) vstore(dst + q * VL, o[q]);
          else if (cnt > 0) vstoren(dst + q * VL, o[q], cnt);
        }
      }
  }
}

static void pixel_norm(float* x, size_t cstride, int C, int n, float eps) {
  constexpr int kChunk = 4 * VL;
  alignas(64) float r[kChunk];
  const float fc = float(C);
  for (int p0 = 0; p0 < n; p0 += kChunk) {
    const int m = n - p0 < kChunk ? n - p0 : kChunk;
    // Σ_c x², one vector per VL pixels (the last one partial), channel by channel.
    V ss[4] = {vzero(), vzero(), vzero(), vzero()};
    const int nv = (m + VL - 1) / VL;
    for (int c = 0; c < C; ++c) {
      const float* xc = x + size_t(c) * cstride + p0;
      for (int v = 0; v < nv; ++v) {
        const int k = m - v * VL < VL ? m - v * VL : VL;
        V xv = k == VL ? vload(xc + v * VL) : vloadn(xc + v * VL, k);
        ss[v] = vfma(xv, xv, ss[v]);
      }
    }
    for (int v = 0; v < nv; ++v) vstore(r + v * VL, ss[v]);
    // (A division, not a product: nothing here can be contracted into an FMA.)
    for (int q = 0; q < m; ++q) r[q] = 1.0f / std::sqrt(r[q] / fc + eps);
    for (int c = 0; c < C; ++c) {
      float* xc = x + size_t(c) * cstride + p0;
      for (int v = 0; v < nv; ++v) {
        const int k = m - v * VL < VL ? m - v * VL : VL;
        if (k == VL) vstore(xc + v * VL, vmul(vload(xc + v * VL), vload(r + v * VL)));
        else vstoren(xc + v * VL, vmul(vloadn(xc + v * VL, k), vload(r + v * VL)), k);
      }
    }
  }
}

// Sub-pixel up-conv input transform (kernels.h sub_in), VL tiles at a time: the same
// operations for every tile (x·s, then the differences), edge columns masked to 0 (the first
// tile's x[−1]; the extra tile's x[W], x[W+1], always the last tile of its run).
static void sub_in(const WinoInArgs& a) {
  const int edge = a.W / 2;  // the tile one past the image
  const V vs = vset1(a.s);
  const V first_off = vloadmask(kMaskFirstOff + 15);
  for (int i = 0; i < a.len; i += VL) {
    const int n = a.len - i < VL ? a.len - i : VL;
    const int t0 = a.tx0 + i;
    const bool left = t0 == 0, right = t0 + n - 1 == edge;
    const V last_off = vloadmask(kMaskLastOff + 16 - n + 1);  // lane n − 1 cleared
    V d[3][3];
    for (int r = 0; r < 3; ++r) {
      if (!a.rows[r]) {
        d[r][0] = d[r][1] = d[r][2] = vzero();
        continue;
      }
      const float* p = a.rows[r] + 2 * t0 - 1;
      V o0, e0, o1, e1;
      vdeinterleave(p, &o0, &e0);      // x[2t−1], x[2t]
      vdeinterleave(p + 2, &o1, &e1);  // x[2t+1], x[2t+2]
      if (left) o0 = vand(o0, first_off);
      if (right) {
        e0 = vand(e0, last_off);
        o1 = vand(o1, last_off);
      }
      d[r][0] = vmul(o0, vs);
      d[r][1] = vmul(e0, vs);
      d[r][2] = vmul(o1, vs);
    }
    V t[3][3];
    for (int c = 0; c < 3; ++c) {
      t[0][c] = vsub(d[0][c], d[1][c]);
      t[1][c] = d[1][c];
      t[2][c] = vsub(d[2][c], d[1][c]);
    }
    float* o = a.dst + i;
    for (int r = 0; r < 3; ++r) {
      const V u[3] = {vsub(t[r][0], t[r][1]), t[r][1], vsub(t[r][2], t[r][1])};
      for (int c = 0; c < 3; ++c) {
        if (n == VL) vstore(o + size_t(3 * r + c) * a.xi_stride, u[c]);
        else vstoren(o + size_t(3 * r + c) * a.xi_stride, u[c], n);
      }
    }
  }
}

static void fir_h(float* __restrict out, const float* __restrict t, int n) {
  const V q = vset1(0.25f), h = vset1(0.75f);
  int i = 0;
  for (; i + VL <= n; i += VL)
    vstore(out + i, vfma(q, vadd(vload(t + i - 1), vload(t + i + 2)), vmul(h, vadd(vload(t + i), vload(t + i + 1)))));
  if (i < n) {
    const int r = n - i;
    const V v = vfma(q, vadd(vloadn(t + i - 1, r), vloadn(t + i + 2, r)),
                     vmul(h, vadd(vloadn(t + i, r), vloadn(t + i + 1, r))));
    vstoren(out + i, v, r);
  }
}

// Sub-pixel output transform (kernels.h sub_out), VL tiles at a time; the same additions, in the
// same order, as the scalar form it replaces (so bit for bit the same T), four values per tile
// interleaved by two rounds of vinterleave.
static void sub_out(const SubOutArgs& a) {
  for (int i = 0; i < a.n; i += VL) {
    const int n = a.n - i < VL ? a.n - i : VL;
    auto ld = [&](const float* p) { return n == VL ? vload(p + i) : vloadn(p + i, n); };
    V z[3][2], eo[3][2], oe[2][3];
    for (int al = 0; al < 3; ++al) {
      const V m0 = ld(a.ee[3 * al]), m1 = ld(a.ee[3 * al + 1]), m2 = ld(a.ee[3 * al + 2]);
      z[al][0] = vadd(m0, m1);
      z[al][1] = vadd(m1, m2);
      const V u = ld(a.eo[2 * al]);
      eo[al][0] = u;
      eo[al][1] = vadd(u, ld(a.eo[2 * al + 1]));
    }
    for (int be = 0; be < 3; ++be) {
      const V v = ld(a.oe[be]);
      oe[0][be] = v;
      oe[1][be] = vadd(v, ld(a.oe[3 + be]));
    }
    const V a11 = ld(a.oo[0]), a12 = ld(a.oo[1]), a21 = ld(a.oo[2]), a22 = ld(a.oo[3]);
    const V oo[2][2] = {{a11, vadd(a11, a12)}, {vadd(a11, a21), vadd(vadd(a11, a12), vadd(a21, a22))}};
    for (int rp = 0; rp < 2; ++rp) {
      const V ev[4] = {vadd(z[rp][0], z[rp + 1][0]), vadd(eo[rp][0], eo[rp + 1][0]), vadd(z[rp][1], z[rp + 1][1]),
                       vadd(eo[rp][1], eo[rp + 1][1])};
      const V od[4] = {vadd(oe[rp][0], oe[rp][1]), oo[rp][0], vadd(oe[rp][1], oe[rp][2]), oo[rp][1]};
      for (int h = 0; h < 2; ++h) {
        const V* q = h == 0 ? ev : od;
        V x0, x1, y0, y1, o[4];
        vinterleave(q[0], q[2], &x0, &x1);
        vinterleave(q[1], q[3], &y0, &y1);
        vinterleave(x0, y0, &o[0], &o[1]);
        vinterleave(x1, y1, &o[2], &o[3]);
        float* dst = a.T[2 * rp + h] + 4 * i;
        for (int k = 0; k < 4; ++k) {
          const int c = 4 * n - k * VL;
          if (c >= VL) vstore(dst + k * VL, o[k]);
          else if (c > 0) vstoren(dst + k * VL, o[k], c);
        }
      }
    }
  }
}

static void fir_v(float* __restrict dst, const float* r0, const float* r1, const float* r2, const float* r3, int n,
                  const EpilogueArgs& e) {
  const EpiVec ev(e);
  const V q = vset1(0.25f), h = vset1(0.75f);
  const bool stream = e.stream && (reinterpret_cast<uintptr_t>(dst) % (VL * sizeof(float))) == 0;
  int i = 0;
  for (; i + VL <= n; i += VL) {
    const V v = vfma(q, vadd(vload(r0 + i), vload(r3 + i)), vmul(h, vadd(vload(r1 + i), vload(r2 + i))));
    const V o = ev.apply(v, e.noise ? e.noise + i : nullptr);
    if (stream) vstream(dst + i, o);
    else vstore(dst + i, o);
  }
  if (i < n) {
    const int r = n - i;
    const V v = vfma(q, vadd(vloadn(r0 + i, r), vloadn(r3 + i, r)), vmul(h, vadd(vloadn(r1 + i, r), vloadn(r2 + i, r))));
    vstoren(dst + i, ev.apply_n(v, e.noise ? vloadn(e.noise + i, r) : vzero()), r);
  }
}

static const KernelSet* make_kernel_set(const char* name) {
  static const KernelSet ks = {name,
                               kMR,
                               kNR,
                               &gemm_tile<kMR, kNV>,
                               kSmallNV * VL,
                               kSmallP,
                               {nullptr, &gemm_small_tile<1, kSmallNV>, &gemm_small_tile<kSmallP >= 2 ? 2 : 1, kSmallNV>,
                                &gemm_small_tile<kSmallP >= 3 ? 3 : 1, kSmallNV>},
                               &pack_b,
                               &epilogue,
                               &upconv_h,
                               &upconv_v,
                               &torgb_row,
                               &dot,
                               &wino_in,
                               &wino_out,
                               &vfence,
                               &pixel_norm,
                               &wino_up_in,
                               &wino_up_out,
                               &sub_in,
                               &fir_h,
                               &sub_out,
                               &fir_v};
  return &ks;
}
