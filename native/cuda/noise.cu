// Random noise planes: N(0,1) from a Philox4x32-10 counter stream (philox.cuh), four normals per
// Philox block via Box-Muller. Plane element p of (conv layer ordinal, image) depends only on the
// seed, the layer, the image's index in the request and p (indexing.cuh: noise_counter), so
// neither the batch size nor chunking changes an image's noise, and the values are bit-identical
// to the CPU engines' (native/cpu/noise.h uses the same functions; philox.cuh's Box-Muller is
// built from correctly rounded float operations only). The seed and the image base are read from
// device memory so that a captured CUDA graph replays with new values.
#include "common.cuh"
#include "kernels.h"
#include "philox.cuh"

namespace facegan {
namespace cuda {
namespace {

__global__ void noise_kernel(int n, int plane, int layer, const NoiseParams* params, float* out) {
  const int groups = ceil_div(plane, 4);
  const int64_t q = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (q >= (int64_t)n * groups) return;
  const int b = (int)(q / groups);
  const int p0 = (int)(q - (int64_t)b * groups) * 4;
  uint32_t ctr[4];
  int which;
  const uint32_t image = params->image_base + (uint32_t)b;  // wraps like the host's uint32 sum
  noise_counter(layer, (int)image, p0, ctr, &which);
  float z[4];
  philox_normals4(ctr, params->seed, z);
  float* dst = out + (int64_t)b * plane + p0;
  if (p0 + 4 <= plane && (plane & 3) == 0) {
    *reinterpret_cast<float4*>(dst) = make_float4(z[0], z[1], z[2], z[3]);
  } else {
    for (int e = 0; e < 4 && p0 + e < plane; ++e) dst[e] = z[e];
  }
}

}  // namespace

Status launch_noise(int n, int plane, int layer, const NoiseParams* params, float* out, cudaStream_t stream) {
  const int64_t total = (int64_t)n * ceil_div(plane, 4);
  if (total <= 0) return Status::Ok();
  const int threads = 256;
  const int64_t blocks = (total + threads - 1) / threads;
  if (blocks > 0x7fffffff) return Status::Error("noise: batch too large");
  noise_kernel<<<(unsigned)blocks, threads, 0, stream>>>(n, plane, layer, params, out);
  FG_CUDA_CHECK_LAUNCH("noise_kernel");
  return Status::Ok();
}

}  // namespace cuda
}  // namespace facegan
