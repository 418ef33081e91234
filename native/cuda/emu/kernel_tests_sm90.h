// The emulated tests of the sm_90a kernels (kernel_tests_sm90.cc, built only into the sm_90a
// emulator library, where CMake renames emu_tests to emu_tests_sm90a). Plain C++.
#pragma once

#include "kernel_tests.h"

namespace facegan {
namespace emu_tests_sm90a {
// The wgmma / TMA conv against naive references (bf16 and fp16, M / N tails, several column
// tiles, K up to 27 k-tiles), the layer-fit and device checks, the tensor-map encoder's checks.
void run_sm90_kernel_tests(emu_results::Results* out);
}  // namespace emu_tests_sm90a
}  // namespace facegan
