// facegan-unit: the Hopper sm_90a path (native/cuda/modconv_sm90.cu: wgmma, TMA, mbarrier) run
// by the emulator's sm_90a library (backend cuda-emu-sm90a), each case against naive references
// (native/cuda/emu/kernel_tests_sm90.cc).
#include "unit.h"

#ifdef FACEGAN_WITH_CUDA_EMU_SM90A
#include "kernel_tests_sm90.h"

namespace facegan {
namespace unit {
namespace {

void run_sm90_kernel_tests() {
  emu_results::Results results;
  emu_tests_sm90a::run_sm90_kernel_tests(&results);
  for (const auto& r : results) report(r.ok, "emulated " + r.name + ": " + r.detail);
}

const Register kCases(__FILE__, {
    {"emulated sm_90a kernels (wgmma, TMA, mbarrier)", run_sm90_kernel_tests, true},
});

}  // namespace
}  // namespace unit
}  // namespace facegan
#endif
