// The one description of the network that every backend runs. Built once per generator by
// the core from the config and the tensors (validated, widened to float32, all run-time gains
// worked out); a backend reads it in Backend::prepare and never re-derives any of it.
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

// One synthesis layer: a modulated 3×3 conv (kind Conv, up 1 or 2) or a toRGB 1×1 (kind ToRGB).
struct LayerDesc {
  enum Kind { Conv, ToRGB } kind = Conv;
  std::string name;          // e.g. "b8.conv0", for messages
  int in_res = 0, out_res = 0;   // out_res = in_res · up
  int in_ch = 0, out_ch = 0;
  int up = 1;                // 2 for conv0 of blocks r > 4
  int ksize = 3;             // 3 (Conv) or 1 (ToRGB)
  int w_index = 0;           // row of ws feeding this layer's affine
  // style s[i] = (w · affine_W[i]ᵀ · affine_gain + affine_b[i]) · style_gain
  const float* affine_W = nullptr;  // [in_ch, w_dim]
  const float* affine_b = nullptr;  // [in_ch]
  float affine_gain = 1.0f;  // 1/sqrt(w_dim)
  float style_gain = 1.0f;   // 1 (Conv), 1/sqrt(in_ch) (ToRGB)
  int style_offset = 0;      // where s of this layer starts inside a packed per-sample style row
  const float* weight = nullptr;  // [out_ch, in_ch, ksize, ksize]
  const float* bias = nullptr;    // [out_ch]
  bool demodulate = true;    // Conv: yes; ToRGB: no
  bool activate = true;      // Conv: lrelu(0.2)·√2; ToRGB: linear
  float clamp = -1.0f;       // < 0: no clamp
  // Noise (Conv only): + noise_strength · n, n = noise_const [out_res, out_res] (const),
  // a fresh N(0,1) map per image (random) or 0 (none); added before the bias.
  float noise_strength = 0.0f;
  const float* noise_const = nullptr;  // [out_res, out_res]
};

struct Network {
  ModelInfo info;
  MappingDesc mapping;
  const float* const_input = nullptr;  // [const_ch, 4, 4]
  int const_ch = 0;
  // Execution order: b4.conv1, b4.torgb, then per block r > 4: conv0, conv1, torgb.
  // A ToRGB adds its output to the ×2 upsampled image of the previous ToRGB (skip arch).
  std::vector<LayerDesc> layers;
  int style_dim = 0;         // Σ in_ch over layers: length of one sample's packed style row
  std::vector<std::vector<float>> storage;  // owns every float32 array the pointers above use
};

// Builds and validates the description. Errors name the offending tensor or field.
Status build_network(const std::string& config_json, const std::vector<TensorView>& tensors, Network* out);

}  // namespace facegan
