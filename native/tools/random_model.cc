// Random-weight models for the tools; see random_model.h.
#include "random_model.h"

#include <algorithm>
#include <cmath>


namespace facegan {
namespace tools {

bool random_model_spec(const std::string& name, RandomModelSpec* s) {
  RandomModelSpec r;
  r.name = name;
  if (name == "ffhq1024") {
  } else if (name == "ffhq512") {
    r.resolution = 512;
  } else if (name == "ffhq256") {
    r.resolution = 256;
    r.channel_base = 16384;
    r.conv_clamp = 256.0f;
  } else if (name == "tiny") {
    r.z_dim = r.w_dim = 64;
    r.resolution = 32;
    r.channel_base = 1024;
    r.channel_max = 128;
  } else if (name == "tinyc") {
    r.z_dim = 64;
    r.w_dim = 96;
    r.c_dim = 10;
    r.resolution = 64;
    r.mapping_layers = 4;
    r.channel_base = 2048;
    r.channel_max = 256;
    r.conv_clamp = 0.5f;
  } else if (name == "wide256") {  // full-size spatial path, few channels (fast to check with cpu-ref)
    r.z_dim = r.w_dim = 64;
    r.resolution = 256;
    r.mapping_layers = 2;
    r.channel_base = 4096;
    r.channel_max = 128;
    r.img_channels = 4;
  } else if (name == "progan128") {
    r.progan = true;
    r.resolution = 128;
    r.channels = {512, 512, 512, 512, 256, 128};
  } else if (name == "progan-tiny") {
    r.progan = true;
    r.z_dim = 32;
    r.resolution = 32;
    r.channels = {32, 24, 16, 8};
  } else if (name == "progan-wide") {  // the full 128² spatial path, few channels
    r.progan = true;
    r.z_dim = 24;
    r.resolution = 128;
    r.channels = {16, 16, 16, 12, 8, 8};
  } else if (name == "gray16") {
    r.z_dim = 32;
    r.w_dim = 48;
    r.resolution = 16;
    r.img_channels = 1;
    r.mapping_layers = 2;
    r.channel_base = 512;
    r.channel_max = 64;
  } else {
    return false;
  }
  *s = r;
  return true;
}

std::string random_model_names() {
  return "ffhq1024, ffhq512, ffhq256, tiny, tinyc, wide256, gray16, progan128, progan-tiny, progan-wide";
}

namespace {

// The values the tools' random models have always had: splitmix64 counters + Box-Muller.
uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t stream_key(uint64_t seed, int stream) {
  return splitmix64(splitmix64(seed ^ 0x6661636567616e00ull) + uint64_t(uint32_t(stream)));
}

void normals(uint64_t key, size_t n, float* out) {
  const double two_pi = 6.283185307179586476925286766559;
  for (size_t i = 0; i < n; i += 2) {
    uint64_t r = splitmix64(key + 0x2545F4914F6CDD1Dull * uint64_t(i / 2 + 1));
    double u1 = (double((r >> 32) & 0xFFFFFFFFu) + 1.0) * (1.0 / 4294967296.0);  // (0, 1]
    double u2 = double(r & 0xFFFFFFFFu) * (1.0 / 4294967296.0);                  // [0, 1)
    double rad = std::sqrt(-2.0 * std::log(u1));
    out[i] = float(rad * std::cos(two_pi * u2));
    if (i + 1 < n) out[i + 1] = float(rad * std::sin(two_pi * u2));
  }
}

struct Maker {
  RandomModel* m;
  uint64_t key;
  int stream = 0;
  // N(mean, std) values for a new tensor.
  void add(const std::string& name, std::vector<int64_t> shape, float mean, float stddev) {
    size_t n = 1;
    for (int64_t d : shape) n *= size_t(d);
    m->data.emplace_back(n);
    std::vector<float>& v = m->data.back();
    normals(stream_key(key, stream++), n, v.data());
    for (float& x : v) x = mean + stddev * x;
    TensorView t;
    t.name = name;
    t.dtype = DType::F32;
    t.shape = std::move(shape);
    t.nbytes = n * 4;
    m->tensors.push_back(std::move(t));
  }
};

}  // namespace

static void make_progan(const RandomModelSpec& s, uint64_t seed, RandomModel* out) {
  std::string ch;
  for (size_t i = 0; i < s.channels.size(); ++i) ch += (i ? "," : "") + std::to_string(s.channels[i]);
  out->config_json = "{\"arch\":\"progan\",\"z_dim\":" + std::to_string(s.z_dim) + ",\"img_resolution\":" +
                     std::to_string(s.resolution) + ",\"img_channels\":" + std::to_string(s.img_channels) +
                     ",\"channels\":[" + ch + "],\"lrelu_slope\":0.2,\"pixelnorm_eps\":1e-8,"
                     "\"normalize_latent\":true,\"upsample\":\"nearest\",\"weight_gain\":1,"
                     "\"output\":{\"tfhub_clip\":[0,1],\"scale\":127.5,\"offset\":63.75}}";
  out->data.reserve(4 * s.channels.size() + 8);
  Maker mk{out, seed};
  // He-initialised effective weights (ProGAN's equalised learning rate folded in).
  const auto C = s.channels;
  const int64_t c0 = C[0];
  mk.add("progan.dense.weight", {16 * c0, s.z_dim}, 0.0f, float(std::sqrt(2.0 / s.z_dim)));
  mk.add("progan.dense.bias", {c0}, 0.0f, 0.1f);
  mk.add("progan.b4.conv1.weight", {c0, c0, 3, 3}, 0.0f, float(std::sqrt(2.0 / (9.0 * c0))));
  mk.add("progan.b4.conv1.bias", {c0}, 0.0f, 0.1f);
  for (size_t i = 1; i < C.size(); ++i) {
    const std::string pre = "progan.b" + std::to_string(4 << i) + ".";
    mk.add(pre + "conv0.weight", {C[i], C[i - 1], 3, 3}, 0.0f, float(std::sqrt(2.0 / (9.0 * C[i - 1]))));
    mk.add(pre + "conv0.bias", {C[i]}, 0.0f, 0.1f);
    mk.add(pre + "conv1.weight", {C[i], C[i], 3, 3}, 0.0f, float(std::sqrt(2.0 / (9.0 * C[i]))));
    mk.add(pre + "conv1.bias", {C[i]}, 0.0f, 0.1f);
  }
  mk.add("progan.torgb.weight", {s.img_channels, C.back(), 1, 1}, 0.0f, float(std::sqrt(1.0 / C.back())));
  mk.add("progan.torgb.bias", {s.img_channels}, 0.5f, 0.1f);
  for (size_t i = 0; i < out->tensors.size(); ++i) out->tensors[i].data = out->data[i].data();
}

void make_random_model(const RandomModelSpec& s, uint64_t seed, RandomModel* out) {
  *out = RandomModel();
  if (s.progan) {
    make_progan(s, seed, out);
    return;
  }
  int log2r = 0;
  while ((1 << log2r) < s.resolution) ++log2r;
  const int num_ws = 2 * log2r - 2;
  const float lr = 0.01f;
  out->config_json = "{\"arch\": \"stylegan2\", \"z_dim\": " + std::to_string(s.z_dim) +
                     ", \"w_dim\": " + std::to_string(s.w_dim) + ", \"c_dim\": " + std::to_string(s.c_dim) +
                     ", \"img_resolution\": " + std::to_string(s.resolution) +
                     ", \"img_channels\": " + std::to_string(s.img_channels) + ", \"num_ws\": " +
                     std::to_string(num_ws) + ", \"mapping_layers\": " + std::to_string(s.mapping_layers) +
                     ", \"mapping_lr_multiplier\": 0.01, \"channel_base\": " + std::to_string(s.channel_base) +
                     ", \"channel_max\": " + std::to_string(s.channel_max) + ", \"conv_clamp\": " +
                     (s.conv_clamp < 0 ? std::string("null") : std::to_string(s.conv_clamp)) +
                     ", \"num_fp16_res\": 0}";
  out->data.reserve(size_t(16 + 8 * s.mapping_layers + 16 * log2r));
  Maker mk{out, seed};
  const int64_t w = s.w_dim;
  if (s.c_dim > 0) {
    mk.add("mapping.embed.weight", {w, s.c_dim}, 0.0f, 1.0f);
    mk.add("mapping.embed.bias", {w}, 0.0f, 0.1f);
  }
  for (int i = 0; i < s.mapping_layers; ++i) {
    int64_t in = i == 0 ? s.z_dim + (s.c_dim > 0 ? w : 0) : w;
    mk.add("mapping.fc" + std::to_string(i) + ".weight", {w, in}, 0.0f, 1.0f / lr);
    mk.add("mapping.fc" + std::to_string(i) + ".bias", {w}, 0.0f, 0.1f / lr);
  }
  mk.add("mapping.w_avg", {w}, 0.0f, 0.5f);
  auto C = [&](int r) -> int64_t { return std::min<int64_t>(s.channel_base / r, s.channel_max); };
  for (int r = 4; r <= s.resolution; r *= 2) {
    std::string pre = "synthesis.b" + std::to_string(r) + ".";
    int64_t cin = r == 4 ? C(4) : C(r / 2), cout = C(r);
    if (r == 4) mk.add(pre + "const", {C(4), 4, 4}, 0.0f, 1.0f);
    for (int ci = (r == 4 ? 1 : 0); ci < 2; ++ci) {
      std::string lp = pre + (ci == 0 ? "conv0." : "conv1.");
      int64_t in = ci == 0 ? cin : cout;
      mk.add(lp + "affine.weight", {in, w}, 0.0f, 1.0f);
      mk.add(lp + "affine.bias", {in}, 1.0f, 0.2f);
      mk.add(lp + "weight", {cout, in, 3, 3}, 0.0f, 1.0f);
      mk.add(lp + "bias", {cout}, 0.0f, 0.1f);
      mk.add(lp + "noise_strength", {}, 0.0f, 0.1f);
      mk.add(lp + "noise_const", {r, r}, 0.0f, 1.0f);
    }
    mk.add(pre + "torgb.affine.weight", {cout, w}, 0.0f, 1.0f);
    mk.add(pre + "torgb.affine.bias", {cout}, 1.0f, 0.2f);
    mk.add(pre + "torgb.weight", {s.img_channels, cout, 1, 1}, 0.0f, 1.0f);
    mk.add(pre + "torgb.bias", {s.img_channels}, 0.0f, 0.1f);
  }
  for (size_t i = 0; i < out->tensors.size(); ++i) out->tensors[i].data = out->data[i].data();
}

}  // namespace tools
}  // namespace facegan
