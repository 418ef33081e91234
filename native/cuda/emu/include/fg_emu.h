// fg_emu: a CUDA-on-CPU emulator for this project's own CUDA sources (native/cuda/*.cu), so that the
// very kernels a GPU would run execute, and are checked, on machines without one (CI).
//
// How a .cu file becomes host C++ (see cudapp.cc, the source pass the build runs on each file):
//   kernel<<<grid, block, smem, stream>>>(args)  ->  fg_emu::launch("kernel", {grid, block, smem, stream},
//                                                     [=] { kernel(args); })
//   __shared__ T a[N];                           ->  static thread_local T a[N]; fg_emu::shared_static(...)
//   extern __shared__ T a[];                     ->  T* const a = fg_emu::shared_dynamic<T>();
//   asm volatile("ptx" : outs : ins : clobbers)  ->  fg_emu::ptx("ptx", {fg_emu::op_out_r(x), ...})
// Everything else (threadIdx, __syncthreads, __shfl_xor_sync, __half, the runtime API) is this header
// and its stand-ins for cuda_runtime.h / cuda_fp16.h / cuda_bf16.h, which the emulator build puts
// first on the include path.
//
// Execution model: a grid runs block by block; the threads of a block are fibers (a small
// context switch, see runtime.cc) that run until they reach a barrier, a warp collective or their
// end; by default warp by warp: one warp runs until none of its threads can move before the next
// starts (so a barrier missing between two warps' accesses gives wrong values). __syncthreads is a
// real block barrier; warp collectives (shuffles, ldmatrix, mma) wait for the lanes their mask
// names and then compute for the whole warp at once, from the PTX ISA's definitions (ptx.cc).
// Checkers (runtime.cc): shared memory over 48 KB without the opt-in attribute fails the launch;
// cudaMalloc memory starts as NaN; barriers not reached by all threads and warp collectives missing
// lanes are reported as deadlocks naming the kernel; a shared-memory race checker (a write and an
// ldmatrix read of the same bytes by two warps with no __syncthreads between them); fault
// injection (a small fake device memory, failing the Nth cudaMalloc); AddressSanitizer /
// ThreadSanitizer annotations when the build enables them (FACEGAN_EMU_SANITIZE).
#pragma once

#include <math.h>
#include <stdint.h>
#include <string.h>

#include <cstddef>
#include <functional>
#include <initializer_list>
#include <string>

// ---- CUDA's vector and launch types (host-side layout identical to CUDA's)
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
};
struct uint3 {
  unsigned x, y, z;
};
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(8) float2 {
  float x, y;
};
struct alignas(16) int4 {
  int x, y, z, w;
};
struct alignas(8) uint2 {
  unsigned x, y;
};
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
inline float2 make_float2(float x, float y) { return float2{x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return int4{x, y, z, w}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return uint2{x, y}; }

// ---- qualifiers
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __grid_constant__
#define __align__(n) __attribute__((aligned(n)))
#define __constant__ static
#ifndef __CUDA_ARCH__
#error "the emulator build defines __CUDA_ARCH__ (the architecture whose device code paths it runs)"
#endif

struct CUstream_st;
typedef CUstream_st* cudaStream_t;

namespace fg_emu {

// One emulated thread (a fiber) as the kernel sees it.
struct ThreadCtx {
  uint3 tid;          // threadIdx
  uint3 bid;          // blockIdx
  dim3 bdim;          // blockDim
  dim3 gdim;          // gridDim
  int linear = 0;     // linear thread index in the block
};
// The running fiber of this OS thread (set by the scheduler at every switch).
extern thread_local ThreadCtx* tls_thread;

// A launch configuration after <<<grid, block, smem, stream>>>.
struct LaunchCfg {
  dim3 grid;
  dim3 block;
  size_t smem = 0;
  cudaStream_t stream = nullptr;
};

// Runs (or, while the stream is being captured, records) a kernel launch. `body` is the kernel
// call with its arguments captured by value; each fiber of each block calls it once.
void launch(const char* kernel, void (*key)(), const LaunchCfg& cfg, std::function<void()> body);
template <class F>
inline void launch_kernel(const char* kernel, F* fn, const LaunchCfg& cfg, std::function<void()> body) {
  launch(kernel, reinterpret_cast<void (*)()>(fn), cfg, std::move(body));
}

// Marks [p, p + bytes) of device memory as a guard that must never be accessed
// (AddressSanitizer builds; a no-op otherwise). cudaFree releases it.
void poison(void* p, size_t bytes);

// Block-scope memory.
void shared_static(void* p, size_t bytes, const char* name);
void* shared_dynamic_ptr();
template <class T>
inline T* shared_dynamic() {
  return static_cast<T*>(shared_dynamic_ptr());
}
// __cvta_generic_to_shared: a 32-bit shared-window address of a block-scope pointer.
unsigned cvta_shared(const void* p);
// The host pointer of a shared-window address (the inverse, used by the PTX emulation).
void* shared_window_ptr(unsigned addr, size_t bytes);

// Barriers and warp collectives.
void syncthreads();
void syncwarp(unsigned mask);
enum class ShflKind { Idx, Up, Down, Xor };
uint64_t shfl(ShflKind kind, unsigned mask, uint64_t value, int arg, int width);
[[noreturn]] void trap(const char* why);

// Inline PTX: operands as the asm statement lists them (outputs first), %N numbering.
struct PtxOperand {
  char mode;      // 'o' output, 'b' in-out ("+"), 'i' input
  char type;      // constraint letter: r (32-bit), l (64-bit), h (16-bit), f (f32), d (f64), n (immediate)
  void* ptr;      // outputs and in-outs
  uint64_t value;  // inputs (raw bits)
};
void ptx(const char* tmpl, std::initializer_list<PtxOperand> ops);

inline PtxOperand op_out(char t, void* p) { return PtxOperand{'o', t, p, 0}; }
inline PtxOperand op_inout(char t, void* p) { return PtxOperand{'b', t, p, 0}; }
template <class T>
inline PtxOperand op_in(char t, const T& v) {
  PtxOperand o{'i', t, nullptr, 0};
  static_assert(sizeof(T) <= 8, "PTX operand wider than 64 bits");
  memcpy(&o.value, &v, sizeof(T));
  return o;
}

}  // namespace fg_emu

// ---- built-in variables
#define threadIdx (::fg_emu::tls_thread->tid)
#define blockIdx (::fg_emu::tls_thread->bid)
#define blockDim (::fg_emu::tls_thread->bdim)
#define gridDim (::fg_emu::tls_thread->gdim)
#define warpSize 32

// ---- built-in functions
inline void __syncthreads() { ::fg_emu::syncthreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { ::fg_emu::syncwarp(mask); }
[[noreturn]] inline void __trap() { ::fg_emu::trap("__trap()"); }

namespace fg_emu {
template <class T>
inline T shfl_typed(ShflKind k, unsigned mask, T v, int arg, int width) {
  static_assert(sizeof(T) <= 8, "shuffle of a value wider than 64 bits");
  uint64_t bits = 0;
  memcpy(&bits, &v, sizeof(T));
  bits = shfl(k, mask, bits, arg, width);
  T out;
  memcpy(&out, &bits, sizeof(T));
  return out;
}
}  // namespace fg_emu
template <class T>
inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  return ::fg_emu::shfl_typed(::fg_emu::ShflKind::Idx, mask, v, src, width);
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned d, int width = 32) {
  return ::fg_emu::shfl_typed(::fg_emu::ShflKind::Up, mask, v, (int)d, width);
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned d, int width = 32) {
  return ::fg_emu::shfl_typed(::fg_emu::ShflKind::Down, mask, v, (int)d, width);
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  return ::fg_emu::shfl_typed(::fg_emu::ShflKind::Xor, mask, v, lane_mask, width);
}

template <class T>
inline T __ldg(const T* p) {
  return *p;
}
inline size_t __cvta_generic_to_shared(const void* p) { return ::fg_emu::cvta_shared(p); }

// Correctly rounded arithmetic (the emulator build compiles with -ffp-contract=off, so plain
// operators are single IEEE operations, as these intrinsics are on the device).
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return sqrtf(a); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((uint64_t)a * b) >> 32); }
inline float __int_as_float(int v) {
  float f;
  memcpy(&f, &v, 4);
  return f;
}
inline int __float_as_int(float v) {
  int i;
  memcpy(&i, &v, 4);
  return i;
}
inline float __saturatef(float v) { return v > 1.0f ? 1.0f : (v > 0.0f ? v : 0.0f); }

// Atomics: the emulator's threads are fibers of one OS thread per block, but the builtins keep
// ThreadSanitizer builds from reporting atomics as races.
inline int atomicAdd(int* p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
inline unsigned atomicAdd(unsigned* p, unsigned v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
  return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}
inline float atomicAdd(float* p, float v) {
  float old;
  __atomic_load(p, &old, __ATOMIC_RELAXED);
  float sum = old + v;
  while (!__atomic_compare_exchange(p, &old, &sum, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) sum = old + v;
  return old;
}
