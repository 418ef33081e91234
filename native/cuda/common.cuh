// facegan CUDA backend: error checks that return a facegan::Status (this code runs inside a user's
// Node process: never abort, never throw), activation-type traits and small device helpers.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "facegan.h"
#include "indexing.cuh"

namespace facegan {
namespace cuda {

// "native/cuda/x.cu" rather than the build machine's absolute path.
inline const char* short_file(const char* file) {
  const char* best = file;
  for (const char* p = file; *p; ++p)
    if (std::strncmp(p, "native/", 7) == 0) best = p;
  return best;
}

inline Status cuda_error(cudaError_t err, const char* call, const char* file, int line) {
  std::string msg = "CUDA error ";
  msg += std::to_string((int)err);
  msg += " (";
  msg += cudaGetErrorName(err);
  msg += ": ";
  msg += cudaGetErrorString(err);
  msg += ") in ";
  msg += call;
  msg += " at ";
  msg += short_file(file);
  msg += ":";
  msg += std::to_string(line);
  return Status::Error(std::move(msg));
}

// FACEGAN_CUDA_SYNC=1: synchronise after every launch. Read from the environment by
// read_sync_debug() when a backend prepares (not on every launch); check_launch tests the flag.
inline std::atomic<bool>& sync_debug_flag() {
  static std::atomic<bool> on{false};
  return on;
}
inline bool read_sync_debug() {
  const char* v = std::getenv("FACEGAN_CUDA_SYNC");
  const bool on = v && std::strcmp(v, "1") == 0;
  sync_debug_flag().store(on, std::memory_order_relaxed);
  return on;
}
inline bool sync_debug() { return sync_debug_flag().load(std::memory_order_relaxed); }

inline Status check_launch(const char* kernel, const char* file, int line) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return cuda_error(e, (std::string("launch of ") + kernel).c_str(), file, line);
  if (sync_debug()) {
    e = cudaDeviceSynchronize();
    if (e != cudaSuccess)
      return cuda_error(e, (std::string("kernel ") + kernel + " (FACEGAN_CUDA_SYNC=1: synchronised after the launch)").c_str(),
                        file, line);
  }
  return Status::Ok();
}

}  // namespace cuda
}  // namespace facegan

// Evaluates a CUDA runtime call; on failure returns a Status naming the call, file and line.
#define FG_CUDA_CHECK(call)                                                               \
  do {                                                                                    \
    const cudaError_t fg_cuda_err_ = (call);                                              \
    if (fg_cuda_err_ != cudaSuccess)                                                      \
      return ::facegan::cuda::cuda_error(fg_cuda_err_, #call, __FILE__, __LINE__);        \
  } while (0)

// After a kernel launch: reports a bad launch configuration. Faults inside a kernel surface
// asynchronously, at the next synchronising call, without the kernel's name; with the debug mode
// FACEGAN_CUDA_SYNC=1 (the backend then runs without CUDA graphs) every launch is followed by a
// device synchronisation and a fault is reported with the kernel that raised it.
#define FG_CUDA_CHECK_LAUNCH(kernel_name)                                                        \
  do {                                                                                           \
    ::facegan::Status fg_launch_st_ = ::facegan::cuda::check_launch(kernel_name, __FILE__, __LINE__); \
    if (!fg_launch_st_.ok) return fg_launch_st_;                                                 \
  } while (0)

// Propagates a failed Status.
#define FG_RETURN_IF_ERROR(expr)                        \
  do {                                                  \
    ::facegan::Status fg_status_ = (expr);              \
    if (!fg_status_.ok) return fg_status_;              \
  } while (0)

namespace facegan {
namespace cuda {

// Activation storage types: float (FP32 path), __half (FP16), __nv_bfloat16 (BF16).
template <typename T>
struct Act;
template <>
struct Act<float> {
  static __device__ __forceinline__ float to_float(float v) { return v; }
  static __device__ __forceinline__ float from_float(float v) { return v; }
};
template <>
struct Act<__half> {
  static __device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
  // Round to nearest: NaN stays NaN and a value beyond the half range becomes +-inf, so that an
  // overflow reaches the final image's non-finite count (torgb.cu) and is reported, never clipped
  // silently (a model without conv_clamp can exceed 65504 in fp16).
  static __device__ __forceinline__ __half from_float(float v) { return __float2half_rn(v); }
};
template <>
struct Act<__nv_bfloat16> {
  static __device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
  static __device__ __forceinline__ __nv_bfloat16 from_float(float v) { return __float2bfloat16_rn(v); }
};

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over a block of blockDim.x (a multiple of 32, at most 1024) threads; every thread gets it.
// `scratch` holds 32 floats of shared memory.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float t = lane < nwarps ? scratch[lane] : 0.0f;
  return warp_sum(t);
}

// bias_act of the official code: lrelu(slope) then * gain, then clamp to [-clamp, clamp] (clamp < 0:
// none).
__device__ __forceinline__ float act_clamp(float v, bool activate, float slope, float gain, float clamp) {
  if (activate) v = (v < 0.0f ? v * slope : v) * gain;
  if (clamp >= 0.0f) v = fminf(fmaxf(v, -clamp), clamp);
  return v;
}

}  // namespace cuda
}  // namespace facegan
