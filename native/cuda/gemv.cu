// Batched row dot products: one launch computes, for every sample of a batch, a set of rows of
// (segmented) matrices against a per-sample vector. Used for the mapping FC layers (mapping.cu
// drives it), for every affine of every synthesis layer at once and for every demodulation
// coefficient at once (styles.cu describes those tiles).
//
// Block = one RowTile x up to 8 samples. The samples' input vectors sit in shared memory; each
// warp takes rows, its lanes stride over k (coalesced reads of the matrix row, which is read once
// for all the block's samples), then a warp reduction per sample.
#include "common.cuh"
#include "kernels.h"

namespace facegan {
namespace cuda {
namespace {

constexpr int kRowsThreads = 256;
constexpr int kRowsMaxNs = 8;

__global__ void __launch_bounds__(kRowsThreads) rows_kernel(RowsArgs a, int ns) {
  extern __shared__ float xs[];  // [ns][t.K]
  __shared__ float smax[kRowsMaxNs];
  const RowTile t = a.tiles[blockIdx.x];
  const int b0 = blockIdx.y * ns;
  const int K = t.K;
  for (int i = threadIdx.x; i < ns * K; i += blockDim.x) {
    const int s = i / K, k = i - s * K;
    const int b = b0 + s;
    xs[i] = b < a.n ? a.x[(int64_t)b * a.x_stride + t.x_off + k] : 0.0f;
  }
  __syncthreads();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const bool scale16 = a.demod && a.sinv != nullptr;
  if (scale16) {
    if (warp < ns) {
      float m = 0.0f;
      for (int k = lane; k < K; k += 32) m = fmaxf(m, fabsf(xs[warp * K + k]));
      m = warp_max(m);
      if (lane == 0) smax[warp] = m > 0.0f ? m : 1.0f;
    }
    __syncthreads();
    const int s = threadIdx.x;
    if (t.first && s < ns && b0 + s < a.n)
      a.sinv[(int64_t)(b0 + s) * a.sinv_stride + t.aux] = 1.0f / smax[s];
  }
  for (int r = warp; r < t.nrows; r += kRowsThreads / 32) {
    const float* row = a.M + t.m_off + (int64_t)r * t.ld;
    float acc[kRowsMaxNs];
#pragma unroll
    for (int s = 0; s < kRowsMaxNs; ++s) acc[s] = 0.0f;
    for (int k = lane; k < K; k += 32) {
      const float w = __ldg(row + k);
#pragma unroll
      for (int s = 0; s < kRowsMaxNs; ++s) {
        if (s < ns) {
          const float v = xs[s * K + k];
          acc[s] += (a.demod ? v * v : v) * w;
        }
      }
    }
#pragma unroll
    for (int s = 0; s < kRowsMaxNs; ++s) {
      if (s < ns) acc[s] = warp_sum(acc[s]);
    }
#pragma unroll
    for (int s = 0; s < kRowsMaxNs; ++s) {
      if (s < ns && lane == s && b0 + s < a.n) {
        float v;
        if (a.demod) {
          v = 1.0f / sqrtf(acc[s] + 1e-8f);
          if (scale16) v *= smax[s];
        } else {
          const float bias = a.bias ? a.bias[t.bias_off + r] : 0.0f;
          v = (acc[s] * t.w_gain + bias * t.b_gain) * t.post_gain;
          if (a.lrelu) v = (v < 0.0f ? v * 0.2f : v) * 1.41421356237309515f;
        }
        a.y[(int64_t)(b0 + s) * a.y_stride + t.out_off + r] = v;
      }
    }
  }
}

}  // namespace

Status launch_rows(const RowsArgs& a, cudaStream_t stream) {
  if (a.n <= 0 || a.num_tiles <= 0) return Status::Ok();
  const int ns = rows_samples_per_block(a.n, a.max_K);
  const size_t smem = (size_t)ns * a.max_K * sizeof(float);
  // The kernel's static shared memory (smax) comes on top: past 48 KB in all, the dynamic part
  // needs the opt-in attribute (up to 64 KB on sm_75, more on newer GPUs).
  constexpr size_t kStatic = kRowsMaxNs * sizeof(float);
  if (smem + kStatic > 48 * 1024) {
    FG_CUDA_CHECK(cudaFuncSetAttribute(rows_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
  }
  const int chunks = ceil_div(a.n, ns);
  if (chunks > 65535) return Status::Error("row-dot kernel: batch too large");
  rows_kernel<<<dim3(a.num_tiles, chunks), kRowsThreads, smem, stream>>>(a, ns);
  FG_CUDA_CHECK_LAUNCH("rows_kernel");
  return Status::Ok();
}

}  // namespace cuda
}  // namespace facegan
