// The random-noise stream of the CPU engines, identical to the CUDA backend's: element p of the
// noise plane of (seed, conv layer ordinal, image index) is Box-Muller output p % 4 of
// Philox4x32-10 with counter {p / 4, layer, image, 0} and key {seed low, seed high}
// (native/cuda/philox.cuh and indexing.cuh: noise_counter, reused here, not re-implemented).
//  - layer: the ordinal of the convolution among the network's conv layers (0 = the first
//    conv; ToRGB layers are not counted), as the CUDA backend numbers them;
//  - image: the image's index in the request, SynthesisArgs::image_offset + its index in the
//    call, so neither the batch size nor chunking changes an image's noise.
// Counter-based, so any slice of a plane can be produced independently and in parallel.
// Box-Muller there is built from correctly rounded, never-contracted float operations, so the
// CPU and the GPU draw the same bits.
#pragma once

#include <cstddef>
#include <cstdint>

#include "../cuda/philox.cuh"

namespace facegan {

// out[0, end − begin) = elements [begin, end) of the plane (seed, layer, image).
inline void noise_fill(uint64_t seed, int layer, uint32_t image, size_t begin, size_t end, float* out) {
  size_t p = begin;
  while (p < end) {
    uint32_t ctr[4];
    int which = 0;
    cuda::noise_counter(layer, int(image), int(p), ctr, &which);
    float z[4];
    cuda::philox_normals4(ctr, seed, z);
    for (int w = which; w < 4 && p < end; ++w, ++p) out[p - begin] = z[w];
  }
}

}  // namespace facegan
