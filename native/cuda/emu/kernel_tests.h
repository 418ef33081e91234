// The emulated CUDA kernels' unit tests (kernel_tests.cc). Plain C++: no CUDA or emulator types.
// kernel_tests.cc is compiled once per emulated architecture (CMake renames emu_tests to
// emu_tests_sm75 for the sm_75 build), so both entry points are declared here.
#pragma once

#include <string>
#include <vector>

namespace facegan {
namespace emu_results {

struct Result {
  std::string name;
  bool ok;
  std::string detail;
};
using Results = std::vector<Result>;

}  // namespace emu_results

namespace emu_tests {
using emu_results::Results;
// Every kernel family against naive host references (quick: fewer, smaller shapes).
void run_kernel_tests(Results* out, bool quick);
}  // namespace emu_tests

namespace emu_tests_sm75 {
void run_kernel_tests(emu_results::Results* out, bool quick);
}  // namespace emu_tests_sm75

}  // namespace facegan
