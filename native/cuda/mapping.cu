// Mapping network on the GPU: normalise z (and the embedded label, normalised the same way and
// concatenated after), the FC layers (launch_rows, gemv.cu, one launch per layer, all samples), and
// the broadcast to num_ws rows with truncation (counting non-finite ws when asked: generate keeps
// the ws on the device, so the host cannot scan them). The backend drives the sequence.
#include "common.cuh"
#include "kernels.h"

namespace facegan {
namespace cuda {
namespace {

constexpr int kNormThreads = 256;

// One block per sample.
__global__ void __launch_bounds__(kNormThreads)
    normalize_concat_kernel(const float* z, int z_dim, const float* e, int e_dim, float* x0) {
  __shared__ float scratch[32];
  const int b = blockIdx.x;
  const int out_dim = z_dim + e_dim;
  for (int seg = 0; seg < 2; ++seg) {
    const float* src = seg == 0 ? z + (int64_t)b * z_dim : e + (int64_t)b * e_dim;
    const int len = seg == 0 ? z_dim : e_dim;
    if (len == 0) continue;  // uniform over the block
    float ss = 0.0f;
    for (int i = threadIdx.x; i < len; i += blockDim.x) ss += src[i] * src[i];
    ss = block_sum(ss, scratch);
    const float r = 1.0f / sqrtf(ss / (float)len + 1e-8f);
    float* dst = x0 + (int64_t)b * out_dim + (seg == 0 ? 0 : z_dim);
    for (int i = threadIdx.x; i < len; i += blockDim.x) dst[i] = src[i] * r;
  }
}

__global__ void broadcast_truncate_kernel(int64_t total, const float* w, int w_dim, int num_ws,
                                          const float* w_avg, float psi, int cutoff, float* ws,
                                          unsigned long long* nonfinite) {
  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const int k = (int)(i % w_dim);
  const int64_t br = i / w_dim;  // b*num_ws + r
  const int r = (int)(br % num_ws);
  const int64_t b = br / num_ws;
  const float v = w[b * w_dim + k];
  const float out = (psi != 1.0f && r < cutoff) ? lerp_torch(w_avg[k], v, psi) : v;
  ws[i] = out;
  if (nonfinite && !isfinite(out)) atomicAdd(nonfinite, 1ull);
}

}  // namespace

Status launch_normalize_concat(int n, const float* z, int z_dim, const float* e, int e_dim, float* x0,
                               cudaStream_t stream) {
  if (n <= 0) return Status::Ok();
  normalize_concat_kernel<<<n, kNormThreads, 0, stream>>>(z, z_dim, e, e_dim, x0);
  FG_CUDA_CHECK_LAUNCH("normalize_concat_kernel");
  return Status::Ok();
}

Status launch_broadcast_truncate(int n, const float* w, int w_dim, int num_ws, const float* w_avg,
                                 float psi, int cutoff, float* ws, cudaStream_t stream,
                                 unsigned long long* nonfinite) {
  const int64_t total = (int64_t)n * num_ws * w_dim;
  if (total <= 0) return Status::Ok();
  const int threads = 256;
  const int64_t blocks = (total + threads - 1) / threads;
  if (blocks > 0x7fffffff) return Status::Error("mapping: batch too large");
  broadcast_truncate_kernel<<<(unsigned)blocks, threads, 0, stream>>>(total, w, w_dim, num_ws, w_avg, psi,
                                                                      cutoff, ws, nonfinite);
  FG_CUDA_CHECK_LAUNCH("broadcast_truncate_kernel");
  return Status::Ok();
}

}  // namespace cuda
}  // namespace facegan
