// ProGAN's pixel norm over channels, per pixel: x <- x * 1/sqrt(mean_c x^2 + eps), used on the
// latent (one "pixel" of z_dim channels per sample, float in and out), after the dense 4x4 start
// (its bias and leaky ReLU applied here, reading the row-dot kernel's float output) and after
// every conv (whose epilogue already added the bias and applied the leaky ReLU; in place). One warp per
// pixel; lanes stride over the channels (coalesced); the sum of squares is taken in float from the
// values as stored, the scale is applied in float and the result rounded once to the storage type.
#include "common.cuh"
#include "kernels.h"

namespace facegan {
namespace cuda {
namespace {

constexpr int kPixNormThreads = 256;

template <typename T>
__global__ void __launch_bounds__(kPixNormThreads) pixnorm_kernel(const PixNormArgs a) {
  const int lane = threadIdx.x & 31;
  const int64_t pix = (int64_t)blockIdx.x * (kPixNormThreads / 32) + (threadIdx.x >> 5);
  if (pix >= a.pixels) return;  // whole warps leave together
  const int C = a.C;
  T* x = static_cast<T*>(a.x) + pix * C;
  const float* src = a.src ? a.src + pix * C : nullptr;
  auto value = [&](int c) -> float {
    if (!src) return Act<T>::to_float(x[c]);
    float v = src[c] + (a.bias ? a.bias[c] : 0.0f);
    if (a.activate) v = (v < 0.0f ? v * a.slope : v) * a.gain;
    return v;
  };
  if (!a.normalize) {
    for (int c = lane; c < C; c += 32) x[c] = Act<T>::from_float(value(c));
    return;
  }
  float ss = 0.0f;
  for (int c = lane; c < C; c += 32) {
    const float v = value(c);
    ss = fmaf(v, v, ss);
  }
  ss = warp_sum(ss);
  const float r = 1.0f / sqrtf(ss / (float)C + a.eps);
  for (int c = lane; c < C; c += 32) x[c] = Act<T>::from_float(value(c) * r);
}

}  // namespace

Status launch_pixnorm(const PixNormArgs& a, ActType t, cudaStream_t stream) {
  if (a.pixels <= 0) return Status::Ok();
  if (a.C <= 0) return Status::Error("pixnorm: no channels");
  const int64_t per_block = kPixNormThreads / 32;
  const int64_t blocks = (a.pixels + per_block - 1) / per_block;
  if (blocks > 0x7fffffff) return Status::Error("pixnorm: batch too large");
  switch (t) {
    case ActType::F32:
      pixnorm_kernel<float><<<(unsigned)blocks, kPixNormThreads, 0, stream>>>(a);
      break;
    case ActType::F16:
      pixnorm_kernel<__half><<<(unsigned)blocks, kPixNormThreads, 0, stream>>>(a);
      break;
    case ActType::BF16:
      pixnorm_kernel<__nv_bfloat16><<<(unsigned)blocks, kPixNormThreads, 0, stream>>>(a);
      break;
  }
  FG_CUDA_CHECK_LAUNCH("pixnorm_kernel");
  return Status::Ok();
}

}  // namespace cuda
}  // namespace facegan
