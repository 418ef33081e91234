// fg_emu control: what tests use to steer and observe the emulator (plain C++, no CUDA types), so
// that code outside the emulator build (native/tools) can include it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace fg_emu {

struct Config {
  // Fake device memory: cudaMalloc fails with cudaErrorMemoryAllocation past it, cudaMemGetInfo
  // reports it (env FACEGAN_EMU_MEMORY, bytes; default 4 GiB).
  size_t device_memory = size_t(4) << 30;
  // The Nth cudaMalloc from now fails (1 = the next one); 0 = none (env FACEGAN_EMU_FAIL_MALLOC).
  int fail_malloc_at = 0;
  // Order in which a block's threads run between barriers (env FACEGAN_EMU_SCHEDULE): 0 by warps
  // (default, "warps": warp 0 runs until none of its threads can move, then warp 1, ...), 4 by
  // warps from the last ("warps-reverse"); by threads, each to its next barrier or warp collective
  // in turn (warps in lockstep): 1 "threads", 2 "threads-reverse", 3 "shuffle" (seeded, per round).
  int schedule = 0;
  // The shared-memory race checker of the by-warps schedules (runtime.cc: a write and an ldmatrix
  // read of the same byte by two warps with no __syncthreads between them fault); env
  // FACEGAN_EMU_RACECHECK=0 turns it off.
  bool race_check = true;
  // Number of devices reported (env FACEGAN_EMU_DEVICES; 0 behaves as a machine without a GPU).
  int devices = 1;
  // Compute capability reported (env FACEGAN_EMU_CC, e.g. 80; the device code paths compiled in
  // are those of __CUDA_ARCH__, see CMakeLists.txt).
  int cc = 80;
  // Fault injection: every launch of the kernel with this name traps in its first block (env
  // FACEGAN_EMU_FAULT_KERNEL), to drive the error paths.
  std::string fault_kernel;
};
Config& config();

struct Stats {
  uint64_t launches = 0;       // kernel launches executed (graph replays included)
  uint64_t blocks = 0;         // blocks executed
  uint64_t graph_launches = 0;
  uint64_t mallocs = 0;
  size_t bytes_in_use = 0;     // device memory allocated now
  size_t peak_bytes = 0;
};
Stats stats();

// The message of the last fault a kernel raised (deadlock, trap, shared-memory bounds, ...), with
// the kernel, block and thread; empty when none.
std::string fault_message();

// Clears errors, frees every allocation and stream, resets the configuration from the
// environment (cudaDeviceReset does the same).
void reset();

// The emulator's binary16 / bfloat16 conversions (for cross-checks against the CUDA toolkit's).
uint16_t float_to_half_bits(float f);
float half_bits_to_float(uint16_t h);
uint16_t float_to_bf16_bits(float f);

}  // namespace fg_emu
