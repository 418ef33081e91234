// Small helpers shared by the CPU engines (compiled for the baseline ISA).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "facegan.h"
#include "network.h"

namespace facegan {
namespace cpu {

// img: C × H × W float → H × W × C uint8 by the network's output map (network.h OutputMap).
// StyleGAN2 (TruncF32) exactly as generate.py: the float32 product x·127.5, then the float32 sum
// + 128, clamped to [0, 255], truncated. ProGAN (RoundF64) exactly as proganToUint8: x·scale +
// offset in double, clamped to [0, 255], rounded half up. NaN → 0 in both.
void to_u8_hwc(const float* img, int C, int H, int W, uint8_t* out, const OutputMap& map = OutputMap());

// One fully connected layer of the mapping network: fc(index, f, x, y) computes y from x for
// layer `index` (0 = the class embedding when the network has one, then the mapping layers in
// order). Each CPU engine brings its own (the reference's plain loops; the fast engine's dot
// kernel on weights × gain rounded once at load); the golden tests hold both to the official ws.
using MappingFc = std::function<void(int index, const FcDesc& f, const float* x, float* y)>;

// The mapping network for sample n of `a` on float32, as docs/stylegan2.md states it: z
// normalised, c embedded and normalised, the layers by `fc`, truncation as torch.lerp, w
// broadcast to the num_ws rows of a.ws. Shared by both CPU engines.
void map_sample(const Network& net, const MappingArgs& a, int n, const MappingFc& fc);

// The reference engine's (cpu-ref) mapping: map_sample with plain loops, one sample at a time.
void run_mapping(const Network& net, const MappingArgs& a);

// Truncation as torch.lerp(w_avg, w, psi) computes it.
inline float lerp_torch(float start, float end, float weight) {
  float diff = end - start;
  return weight < 0.5f ? start + weight * diff : end - diff * (1.0f - weight);
}

}  // namespace cpu
}  // namespace facegan
