// ToRGB of a synthesis block, in one pass per output pixel: the 1x1 modulated conv without
// demodulation (x * s, then the fixed [Cimg][Cin] weight), + bias, clamp, + the x2 upsampled image
// of the previous block (indexing.cuh: up2_taps), written as the running NCHW float image and,
// for the last block, as the final uint8 HWC image (clamp(x*127.5+128, 0, 255) truncated) while
// counting the image's non-finite values (NaN / inf: the backend reports them, see backend.h).
#include "torgb.cuh"

namespace facegan {
namespace cuda {
namespace {

constexpr int kRgbThreads = 256;

template <typename T>
__global__ void __launch_bounds__(kRgbThreads) torgb_kernel(const ToRgbArgs a) {
  extern __shared__ float wsh[];  // [Cimg][Cin]
  for (int i = threadIdx.x; i < a.Cimg * a.Cin; i += blockDim.x) wsh[i] = a.weight[i];
  __syncthreads();
  const int64_t plane = (int64_t)a.R * a.R;
  const int64_t pix = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (pix >= (int64_t)a.n * plane) return;
  const int b = (int)(pix / plane);
  const int rem = (int)(pix - b * plane);
  const int Y = rem / a.R, X = rem - (rem / a.R) * a.R;

  const T* xp = static_cast<const T*>(a.x) + pix * a.Cin;
  const float* s = a.styles + (int64_t)b * a.style_stride + a.style_off;
  float acc[kMaxImgChannels] = {0.0f, 0.0f, 0.0f, 0.0f};
  constexpr int VEC = 16 / sizeof(T);
  if (a.Cin % VEC == 0) {
    for (int i0 = 0; i0 < a.Cin; i0 += VEC) {
      const uint4 raw = *reinterpret_cast<const uint4*>(xp + i0);
      const T* rv = reinterpret_cast<const T*>(&raw);
#pragma unroll
      for (int e = 0; e < VEC; ++e) torgb_accum(a, wsh, Act<T>::to_float(rv[e]), __ldg(s + i0 + e), i0 + e, acc);
    }
  } else {
    for (int i = 0; i < a.Cin; ++i) torgb_accum(a, wsh, Act<T>::to_float(xp[i]), __ldg(s + i), i, acc);
  }
  torgb_store(a, b, Y, X, acc);
}

template <typename T>
Status launch_typed(const ToRgbArgs& a, cudaStream_t stream) {
  const int64_t total = (int64_t)a.n * a.R * a.R;
  const int64_t blocks = (total + kRgbThreads - 1) / kRgbThreads;
  if (blocks > 0x7fffffff) return Status::Error("torgb: batch too large");
  const size_t smem = (size_t)a.Cimg * a.Cin * sizeof(float);
  torgb_kernel<T><<<(unsigned)blocks, kRgbThreads, smem, stream>>>(a);
  FG_CUDA_CHECK_LAUNCH("torgb_kernel");
  return Status::Ok();
}

}  // namespace

Status launch_torgb(const ToRgbArgs& a, ActType t, cudaStream_t stream) {
  if (a.n <= 0) return Status::Ok();
  if (a.Cimg < 1 || a.Cimg > kMaxImgChannels) return Status::Error("torgb: 1 to 4 image channels supported");
  if ((size_t)a.Cimg * a.Cin * sizeof(float) > 48 * 1024) return Status::Error("torgb: too many input channels");
  switch (t) {
    case ActType::F32: return launch_typed<float>(a, stream);
    case ActType::F16: return launch_typed<__half>(a, stream);
    case ActType::BF16: return launch_typed<__nv_bfloat16>(a, stream);
  }
  return Status::Error("torgb: unknown activation type");
}

}  // namespace cuda
}  // namespace facegan
