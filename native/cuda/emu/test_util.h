// Helpers the emulated kernel tests share (kernel_tests.cc, kernel_tests_sm90.cc): device buffers
// from host vectors and back, and values rounded to a 16-bit activation type.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "fg_emu.h"
#include "kernels.h"  // ActType

namespace facegan {
namespace emu_test_util {
namespace {

template <class T>
T* upload(const std::vector<T>& v) {
  void* p = nullptr;
  if (cudaMalloc(&p, std::max<size_t>(1, v.size()) * sizeof(T)) != cudaSuccess) return nullptr;
  cudaMemcpyAsync(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice, 0);
  return static_cast<T*>(p);
}

template <class T>
std::vector<T> download(const void* p, size_t n) {
  std::vector<T> v(n);
  cudaMemcpy(v.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost);
  return v;
}

// v as the bits of the 16-bit activation type t (F16 or BF16), and back.
uint16_t to16(float v, cuda::ActType t) {
  return t == cuda::ActType::F16 ? fg_emu::float_to_half_bits(v) : fg_emu::float_to_bf16_bits(v);
}
float from16(uint16_t h, cuda::ActType t) {
  if (t == cuda::ActType::F16) return fg_emu::half_bits_to_float(h);
  const uint32_t x = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

}  // namespace
}  // namespace emu_test_util
}  // namespace facegan
