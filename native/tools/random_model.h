// Random-weight generators of a given StyleGAN2 shape, for the check and bench tools (no
// real checkpoint needed): FFHQ config-f shapes at 1024² and 256², and tiny ones for tests.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "facegan.h"

namespace facegan {
namespace tools {

struct RandomModelSpec {
  std::string name;
  bool progan = false;        // arch "progan" (docs/progan.md): z_dim, resolution, img_channels, channels
  std::vector<int> channels;  // ProGAN widths at 4, 8, …, resolution
  int z_dim = 512, w_dim = 512, c_dim = 0;
  int resolution = 1024, img_channels = 3, mapping_layers = 8;
  int channel_base = 32768, channel_max = 512;
  float conv_clamp = -1.0f;  // < 0: null
};

// Known names: ffhq1024, ffhq256, ffhq512, tiny, tinyc (conditional), wide256, gray16; ProGAN:
// progan128 (the shipped model's shape), progan-tiny (32²), progan-wide (128², few channels).
bool random_model_spec(const std::string& name, RandomModelSpec* out);
std::string random_model_names();

struct RandomModel {
  std::string config_json;
  std::vector<TensorView> tensors;           // views into `data`
  std::vector<std::vector<float>> data;
};

void make_random_model(const RandomModelSpec& spec, uint64_t seed, RandomModel* out);

}  // namespace tools
}  // namespace facegan
