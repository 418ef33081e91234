// The one description of the network that every backend runs. Built once per generator by
// the core from the config and the tensors (validated, widened to float32, all run-time gains
// worked out); a backend reads it in Backend::prepare and never re-derives any of it.
//
// Two architectures share it (Network::arch):
//  - StyleGAN2 (docs/stylegan2.md): mapping z → w, then synthesis from the learned const:
//    modulated 3×3 convs (up-convs: transposed conv + [1,3,3,1] FIR), noise, ToRGB with skips.
//  - ProGAN (docs/progan.md): no mapping; z is pixel-normalised (normalize_latent), a Dense
//    layer makes the 4×4 start, then plain (unmodulated, s = 1, d = 1, no noise) 3×3 convs, the
//    first of each block after a nearest ×2 upsampling, each followed by leaky ReLU and a pixel
//    norm; one final unmodulated 1×1 ToRGB (no skip: there is no previous image).
#pragma once

#include <string>
#include <vector>

#include "facegan.h"

namespace facegan {

// A fully connected layer: y = act((x · (W·w_gain)ᵀ) + b·b_gain), act = lrelu(0.2)·√2 or linear.
struct FcDesc {
  int in = 0, out = 0;
  const float* W = nullptr;  // [out, in], raw stored values
  const float* b = nullptr;  // [out]
  float w_gain = 1.0f, b_gain = 1.0f;
  bool lrelu = false;
};

struct MappingDesc {
  int z_dim = 0, c_dim = 0, w_dim = 0, num_ws = 0;
  bool has_embed = false;
  FcDesc embed;              // c → embed_features (linear), when c_dim > 0
  std::vector<FcDesc> fcs;   // the mapping layers, each lrelu
  const float* w_avg = nullptr;  // [w_dim]
};

enum class Arch { StyleGAN2, ProGAN };

// One synthesis layer: a 3×3 conv (kind Conv, up 1 or 2), a toRGB 1×1 (kind ToRGB) or the
// ProGAN start (kind Dense).
//
// Dense (ProGAN only, always the first layer): z (in_ch = z_dim, after the latent norm) →
// [out_ch, 4, 4]: a[o][y][x] = Σ_c weight[(o·16 + y·4 + x)·in_ch + c]·z[c] + bias[o], then the
// activation and the pixel norm. in_res = 1, out_res = 4, ksize = 4, weight [16·out_ch, in_ch].
//
// Per layer, in order: y = conv(x·s)·d (+ noise) + bias; lrelu(slope)·act_gain (activate);
// clamp (clamp ≥ 0); pixel norm over channels (pixel_norm): y ← y·rsqrt(mean_c y² + eps).
struct LayerDesc {
  enum Kind { Conv, ToRGB, Dense } kind = Conv;
  std::string name;          // e.g. "b8.conv0", for messages
  int in_res = 0, out_res = 0;   // out_res = in_res · up (Dense: 1 → 4)
  int in_ch = 0, out_ch = 0;
  int up = 1;                // 2 for conv0 of blocks r > 4
  // How up = 2 is done: StyleGAN2's transposed 3×3 conv (stride 2) + [1,3,3,1]² FIR (gain 4,
  // padding 1), or ProGAN's nearest ×2 upsampling of the input (pixel (y, x) of the 2H grid is
  // input pixel (y/2, x/2)) followed by the plain 3×3 conv (padding 1) on the 2H grid.
  enum Resample { TransposedFir, Nearest } resample = TransposedFir;
  int ksize = 3;             // 3 (Conv), 1 (ToRGB), 4 (Dense)
  // Modulated (StyleGAN2): s from w through the affine below, demodulation d as flagged.
  // Unmodulated (ProGAN): s = 1, d = 1; the affine and style fields are unused (null / 0).
  bool modulated = true;
  int w_index = 0;           // row of ws feeding this layer's affine
  // style s[i] = (w · affine_W[i]ᵀ · affine_gain + affine_b[i]) · style_gain
  const float* affine_W = nullptr;  // [in_ch, w_dim]
  const float* affine_b = nullptr;  // [in_ch]
  float affine_gain = 1.0f;  // 1/sqrt(w_dim)
  float style_gain = 1.0f;   // 1 (Conv), 1/sqrt(in_ch) (ToRGB)
  int style_offset = 0;      // where s of this layer starts inside a packed per-sample style row
  // [out_ch, in_ch, ksize, ksize]. Conv layers built from tensors leave it null and keep the
  // stored tensor instead (weight_src: F32, F16 or BF16, shape and finiteness checked), so the engine
  // never holds a float32 copy of every conv weight: a backend reads conv weights through
  // layer_weight_f32, in prepare() only (the Generator clears weight_src after it; the views die
  // with the caller's buffers). Dense / ToRGB weights are float32 here.
  const float* weight = nullptr;
  TensorView weight_src;
  const float* bias = nullptr;    // [out_ch]
  bool demodulate = true;    // Conv: yes; ToRGB: no (ProGAN: never)
  bool activate = true;      // lrelu: max(y, lrelu_slope·y)·act_gain; else linear
  float lrelu_slope = 0.2f;
  float act_gain = 1.41421356237309504880f;  // StyleGAN2 √2, ProGAN 1
  float clamp = -1.0f;       // < 0: no clamp
  bool pixel_norm = false;   // ProGAN: after the activation, per pixel over the channels
  float pixel_norm_eps = 1e-8f;
  // Noise (StyleGAN2 Conv only): + noise_strength · n, n = noise_const [out_res, out_res]
  // (const), a fresh N(0,1) map per image (random) or 0 (none); added before the bias.
  // has_noise false (ProGAN, ToRGB, Dense): no noise term in any noise mode.
  bool has_noise = false;
  float noise_strength = 0.0f;
  const float* noise_const = nullptr;  // [out_res, out_res]
};

// How the float image becomes uint8 (SynthesisArgs::img_u8, H × W × C):
//  - TruncF32 (StyleGAN2, generate.py): t = (float)((float)(x·scale) + offset) (two float32
//    roundings, never fused), clamped to [0, 255], truncated (NaN → 0);
//  - RoundF64 (ProGAN, progan-reference.ts proganToUint8): t = x·scale + offset in double,
//    clamped to [0, 255], rounded half up (JavaScript Math.round) (NaN → 0).
struct OutputMap {
  enum Mode { TruncF32, RoundF64 } mode = TruncF32;
  double scale = 127.5, offset = 128.0;
  // ProGAN: the TF-Hub module's clip of v (informational; never applied to outputs).
  bool has_tfhub_clip = false;
  double tfhub_clip[2] = {0.0, 1.0};
};

struct Network {
  Arch arch = Arch::StyleGAN2;
  ModelInfo info;            // info.arch: "stylegan2" or "progan"
  MappingDesc mapping;       // StyleGAN2 only (ProGAN: empty, num_ws = w_dim = 0)
  const float* const_input = nullptr;  // StyleGAN2: [const_ch, 4, 4]; ProGAN: null
  int const_ch = 0;
  // ProGAN: the synthesis input is z (n × z_dim), first normalised z ← z·rsqrt(mean(z²) + eps).
  bool normalize_latent = false;
  float latent_eps = 1e-8f;
  // Execution order. StyleGAN2: b4.conv1, b4.torgb, then per block r > 4: conv0, conv1, torgb;
  // a ToRGB adds its output to the ×2 upsampled image of the previous ToRGB (skip arch).
  // ProGAN: dense, b4.conv1, then per block r > 4: conv0 (up 2, Nearest), conv1; then torgb.
  std::vector<LayerDesc> layers;
  OutputMap output;
  int style_dim = 0;         // Σ in_ch over modulated layers: one sample's packed style row (ProGAN 0)
  std::vector<std::vector<float>> storage;  // owns every float32 array the pointers above use
};

// A layer's weights as float32: L.weight when set (Dense, ToRGB, hand-built layers), else
// L.weight_src widened (copied) into *tmp. Conv weights: in
// Backend::prepare only.
const float* layer_weight_f32(const LayerDesc& L, std::vector<float>* tmp);

// A tensor the weight format (docs/weights-format.md, docs/progan.md) holds for a config.
struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> shape;
  bool optional = false;  // StyleGAN2 resample_filter buffers: allowed, not required
};

// The tensors of a config, in canonical order: the one definition of the format's names and
// shapes (the addon exports it as expectedTensors; the TS checkpoint readers and converter take
// their lists from it, lib/convert/tensor-list.ts). Errors: the config's, as build_network gives them.
Status expected_tensors(const std::string& config_json, std::vector<ExpectedTensor>* out);

// Builds and validates the description. Errors name the offending tensor or field.
Status build_network(const std::string& config_json, const std::vector<TensorView>& tensors, Network* out);

}  // namespace facegan
