// The emulated CUDA kernels' unit tests (kernel_tests.cc). Plain C++: no CUDA or emulator types.
#pragma once

#include <string>
#include <vector>

namespace facegan {
namespace emu_tests {

struct Result {
  std::string name;
  bool ok;
  std::string detail;
};
using Results = std::vector<Result>;

// Every kernel family against naive host references (quick: fewer, smaller shapes).
void run_kernel_tests(Results* out, bool quick);

}  // namespace emu_tests
}  // namespace facegan
