// Small helpers shared by the CPU engines (compiled for the baseline ISA).
#pragma once

#include <cstddef>
#include <cstdint>
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

// The mapping network on float32, one sample at a time, written as plainly as docs/stylegan2.md
// states it: the reference engine's (cpu-ref). The fast CPU backend has its own threaded copy
// (CpuBackend::mapping in cpu_backend.cc, weights × gain rounded once at load); the golden
// tests hold both to the official ws.
void run_mapping(const Network& net, const MappingArgs& a);

// Truncation as torch.lerp(w_avg, w, psi) computes it.
inline float lerp_torch(float start, float end, float weight) {
  float diff = end - start;
  return weight < 0.5f ? start + weight * diff : end - diff * (1.0f - weight);
}

}  // namespace cpu
}  // namespace facegan
