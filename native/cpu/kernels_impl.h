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
//   constexpr int kMR, kNV;           GEMM tile: kMR rows × kNV·VL columns
//   constexpr int kSmallP, kSmallNV;  small-N tile: kSmallP panels of kMR rows × kSmallNV·VL columns
// Everything here has internal linkage (static) so that the variants never collide.

static constexpr int kNR = kNV * VL;
static constexpr float kSqrt2f = 1.41421356237309504880f;

template <int MR, int NV>
static void gemm_tile(int kc, const float* __restrict A, const float* __restrict B, float* __restrict C,
                      size_t ldc, int accumulate) {
  constexpr int NR = NV * VL;
  V acc[MR][NV];
  if (accumulate) {
    for (int i = 0; i < MR; ++i)
      for (int v = 0; v < NV; ++v) acc[i][v] = vload(C + size_t(i) * ldc + size_t(v) * VL);
  } else {
    for (int i = 0; i < MR; ++i)
      for (int v = 0; v < NV; ++v) acc[i][v] = vzero();
  }
  for (int k = 0; k < kc; ++k) {
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
  if (e.act) v = (v < 0.0f ? v * 0.2f : v) * kSqrt2f;
  if (e.clamp >= 0.0f) v = v < -e.clamp ? -e.clamp : (v > e.clamp ? e.clamp : v);
  return v;
}

struct EpiVec {
  V d, b, ns, slope, gain, lo, hi;
  bool noise, act, clamp;
  explicit EpiVec(const EpilogueArgs& e)
      : d(vset1(e.d)), b(vset1(e.bias)), ns(vset1(e.noise_strength)), slope(vset1(0.2f)), gain(vset1(kSqrt2f)),
        lo(vset1(-e.clamp)), hi(vset1(e.clamp)), noise(e.noise != nullptr), act(e.act), clamp(e.clamp >= 0.0f) {}
  inline V apply(V v, const float* noise_ptr) const {
    v = vmul(v, d);
    if (noise) v = vadd(v, vmul(vload(noise_ptr), ns));
    v = vadd(v, b);
    if (act) v = vmul(vmax(v, vmul(v, slope)), gain);
    if (clamp) v = vmin(vmax(v, lo), hi);
    return v;
  }
};

static void epilogue(float* __restrict dst, const float* __restrict src, int n, const EpilogueArgs& e) {
  const EpiVec ev(e);
  int i = 0;
  for (; i + VL <= n; i += VL) vstore(dst + i, ev.apply(vload(src + i), e.noise ? e.noise + i : nullptr));
  for (; i < n; ++i) dst[i] = epi_scalar(src[i], e, e.noise, i);
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
    for (; x < W; ++x) {
      for (int j = 0; j < kn; ++j) {
        float acc = 0.0f;
        for (int c = 0; c < C; ++c) acc += w[size_t(k0 + j) * C + c] * act[size_t(c) * cstride + x];
        float v = acc + bias[k0 + j];
        if (do_clamp) v = v < -clamp ? -clamp : (v > clamp ? clamp : v);
        float* o = out + size_t(k0 + j) * ostride + x;
        *o = accumulate ? *o + v : v;
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
static inline void wino_in_store(float* dst, size_t xs, const V (&d)[4][4]) {
  V t[4][4];
  for (int r = 0; r < 4; ++r) {
    t[r][0] = vsub(d[r][0], d[r][2]);
    t[r][1] = vadd(d[r][1], d[r][2]);
    t[r][2] = vsub(d[r][2], d[r][1]);
    t[r][3] = vsub(d[r][1], d[r][3]);
  }
  for (int c = 0; c < 4; ++c) {
    vstore(dst + (0 * 4 + c) * xs, vsub(t[0][c], t[2][c]));
    vstore(dst + (1 * 4 + c) * xs, vadd(t[1][c], t[2][c]));
    vstore(dst + (2 * 4 + c) * xs, vsub(t[2][c], t[1][c]));
    vstore(dst + (3 * 4 + c) * xs, vsub(t[1][c], t[3][c]));
  }
}

// Tiles [ja, jb) of a run through a zero-padded, scaled copy of each source row split into
// even / odd columns (any position, image edges included).
static void wino_in_general(const WinoInArgs& a, int ja, int jb) {
  constexpr int kMaxLen = 128;
  constexpr int kT = 2 * kMaxLen + 2 + 2 * VL;
  constexpr int kEO = kMaxLen + 1 + VL;
  alignas(64) float T[kT];
  alignas(64) float E[4][kEO], O[4][kEO];
  const size_t xs = a.xi_stride;
  const int n = jb - ja;
  const int xs0 = 2 * (a.tx0 + ja) - 1;
  const int n2 = 2 * (n + 1);
  const int n2p = (n2 + 2 * VL - 1) / (2 * VL) * (2 * VL);
  for (int r = 0; r < 4; ++r) {
    const float* row = a.rows[r];
    if (!row) {
      for (int j = 0; j < n + 1; ++j) E[r][j] = O[r][j] = 0.0f;
      continue;
    }
    int q = 0;
    while (q < n2 && xs0 + q < 0) T[q++] = 0.0f;
    int qend = a.W - xs0;
    if (qend > n2) qend = n2;
    if (qend > q) {
      scale_copy(T + q, row + xs0 + q, qend - q, a.s);
      q = qend;
    }
    for (; q < n2p; ++q) T[q] = 0.0f;
    for (int j = 0; j < n + 1; j += VL) {
      V ev, od;
      vdeinterleave(T + 2 * j, &ev, &od);
      vstore(&O[r][j], ev);  // T[2j] = x[2t − 1]
      vstore(&E[r][j], od);  // T[2j+1] = x[2t]
    }
  }
  int j = 0;
  for (; j + VL <= n; j += VL) {
    V d[4][4];
    for (int r = 0; r < 4; ++r) {
      d[r][0] = vload(&O[r][j]);
      d[r][1] = vload(&E[r][j]);
      d[r][2] = vload(&O[r][j + 1]);
      d[r][3] = vload(&E[r][j + 1]);
    }
    wino_in_store(a.dst + ja + j, xs, d);
  }
  for (; j < n; ++j) {
    float t[4][4];
    for (int r = 0; r < 4; ++r) {
      float d0 = O[r][j], d1 = E[r][j], d2 = O[r][j + 1], d3 = E[r][j + 1];
      t[r][0] = d0 - d2;
      t[r][1] = d1 + d2;
      t[r][2] = d2 - d1;
      t[r][3] = d1 - d3;
    }
    float* dst = a.dst + ja + j;
    for (int c = 0; c < 4; ++c) {
      dst[(0 * 4 + c) * xs] = t[0][c] - t[2][c];
      dst[(1 * 4 + c) * xs] = t[1][c] + t[2][c];
      dst[(2 * 4 + c) * xs] = t[2][c] - t[1][c];
      dst[(3 * 4 + c) * xs] = t[1][c] - t[3][c];
    }
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

static void wino_in(const WinoInArgs& a) {
  const int len = a.len, TW = a.W / 2;
  const int x0 = 2 * a.tx0 - 1;  // source column of tile 0's first tap
  const int nfull = len / VL * VL;
  const V vs = vset1(a.s);
  const V first_off = vloadmask(kMaskFirstOff + 15);
  const V last_off = vloadmask(kMaskLastOff + 16 - VL + 1);
  for (int j = 0; j < nfull; j += VL) {
    const bool left = x0 + 2 * j < 0;          // tile 0 of the row: x[−1] is padding
    const bool right = a.tx0 + j + VL == TW;    // last tile of the row: x[W] is padding
    V d[4][4];
    for (int r = 0; r < 4; ++r) {
      const float* row = a.rows[r];
      if (!row) {
        d[r][0] = d[r][1] = d[r][2] = d[r][3] = vzero();
        continue;
      }
      const float* p = row + x0 + 2 * j;
      V o0, e0, o1, e1;
      vdeinterleave(p, &o0, &e0);      // x[2t−1], x[2t]
      vdeinterleave(p + 2, &o1, &e1);  // x[2t+1], x[2t+2]
      if (left) o0 = vand(o0, first_off);
      if (right) e1 = vand(e1, last_off);
      d[r][0] = vmul(o0, vs);
      d[r][1] = vmul(e0, vs);
      d[r][2] = vmul(o1, vs);
      d[r][3] = vmul(e1, vs);
    }
    wino_in_store(a.dst + j, a.xi_stride, d);
  }
  if (nfull < len) wino_in_general(a, nfull, len);
}

static void wino_out(const WinoOutArgs& a) {
  const size_t xs = a.xi_stride;
  EpilogueArgs e = a.e;
  e.noise = a.noise0;  // only its presence matters to EpiVec
  const EpiVec ev(e);
  float* outs[2] = {a.out0, a.out1};
  const float* noises[2] = {a.noise0, a.noise1};
  int j = 0;
  for (; j + VL <= a.len; j += VL) {
    const float* m = a.m + j;
    V u[2][4];
    for (int c = 0; c < 4; ++c) {
      V m0 = vload(m + (0 * 4 + c) * xs), m1 = vload(m + (1 * 4 + c) * xs);
      V m2 = vload(m + (2 * 4 + c) * xs), m3 = vload(m + (3 * 4 + c) * xs);
      u[0][c] = vadd(vadd(m0, m1), m2);
      u[1][c] = vsub(vsub(m1, m2), m3);
    }
    for (int r = 0; r < 2; ++r) {
      V y0 = vadd(vadd(u[r][0], u[r][1]), u[r][2]);
      V y1 = vsub(vsub(u[r][1], u[r][2]), u[r][3]);
      V lo, hi;
      vinterleave(y0, y1, &lo, &hi);
      const float* nz = noises[r] ? noises[r] + 2 * j : nullptr;
      vstore(outs[r] + 2 * j, ev.apply(lo, nz));
      vstore(outs[r] + 2 * j + VL, ev.apply(hi, nz ? nz + VL : nullptr));
    }
  }
  for (; j < a.len; ++j) {
    const float* m = a.m + j;
    float u[2][4];
    for (int c = 0; c < 4; ++c) {
      float m0 = m[(0 * 4 + c) * xs], m1 = m[(1 * 4 + c) * xs], m2 = m[(2 * 4 + c) * xs], m3 = m[(3 * 4 + c) * xs];
      u[0][c] = m0 + m1 + m2;
      u[1][c] = m1 - m2 - m3;
    }
    for (int r = 0; r < 2; ++r) {
      float y[2] = {u[r][0] + u[r][1] + u[r][2], u[r][1] - u[r][2] - u[r][3]};
      for (int q = 0; q < 2; ++q) outs[r][2 * j + q] = epi_scalar(y[q], a.e, noises[r], 2 * j + q);
    }
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
                               &vfence};
  return &ks;
}
