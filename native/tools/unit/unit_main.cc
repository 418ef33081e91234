// facegan-unit: CPU unit tests of the CUDA backend's index arithmetic (native/cuda/indexing.cuh,
// philox.cuh, plan.h), which compile with a plain C++ compiler, and of the engines end to end on
// tiny networks. Every check compares against a naive reference written here from the definitions
// in docs/stylegan2.md and docs/progan.md. One file per area (this folder), each registering its
// cases (unit.h):
//   unit_noise.cc      Philox, Box-Muller, the noise stream's keying (CPU vs CUDA, bits)
//   unit_indexing.cc   implicit-GEMM and up-conv indexing, packing, uint8 maps, row plans
//   unit_mma.cc        mma / ldmatrix fragment maps, tile loaders, FFMA / tensor-core emulation
//   unit_stylegan2.cc  the tiny StyleGAN2 network: host reference vs cpu-ref, the CUDA backend
//   unit_progan.cc     the tiny ProGAN: spec forward vs cpu-ref, pipeline emulation, CUDA backend
//   unit_emu.cc        the emulated CUDA kernels and the emulated backend's run-time behaviour
//   unit_cpu.cc        the CPU engine's thread pool
// When the build has the CUDA backend and this machine has a usable GPU, the CUDA cases run end
// to end (skipped otherwise).
// FACEGAN_UNIT_FILTER=text runs only the cases whose name contains it (e.g. "emulated"); a filter
// that matches no case fails. Prints "N passed, M failed" and exits non-zero on failure.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "unit.h"
#ifdef FACEGAN_WITH_CUDA_EMU
#include "emu_backend.h"  // backend "cuda-emu": the CUDA sources on the CPU emulator
#endif

namespace facegan {
namespace unit {
namespace {

struct FileCases {
  std::string file;
  std::vector<Case> cases;
};

std::vector<FileCases>& registry() {
  static std::vector<FileCases> files;
  return files;
}

int g_passed = 0, g_failed = 0;
int g_case_failures = 0;

}  // namespace

std::mt19937 g_rng(12345);

Register::Register(const char* file, std::vector<Case> cases) {
  std::string name(file);
  const size_t slash = name.find_last_of("/\\");
  if (slash != std::string::npos) name = name.substr(slash + 1);
  registry().push_back({name, std::move(cases)});
}

void fail(const std::string& what) {
  if (g_case_failures < 8) std::printf("    FAIL: %s\n", what.c_str());
  ++g_case_failures;
}

void report(bool ok, const std::string& line) {
  ++(ok ? g_passed : g_failed);
  std::printf("  %-5s %s\n", ok ? "ok" : "FAIL", line.c_str());
}

std::string fmt(const char* f, double a, double b) {
  char buf[160];
  std::snprintf(buf, sizeof buf, f, a, b);
  return buf;
}

const BackendReg* find_backend(const std::string& name) {
  for (const BackendReg& r : backend_registry())
    if (name == r.name) return &r;
  return nullptr;
}

namespace {

// Runs the cases whose name contains filter (all when null); returns how many were selected.
int run_cases(const char* filter) {
  std::vector<FileCases> files = registry();
  std::sort(files.begin(), files.end(), [](const FileCases& a, const FileCases& b) { return a.file < b.file; });
  int selected = 0;
  for (const FileCases& f : files)
    for (const Case& c : f.cases) {
      const std::string name = c.name;
      if (filter && name.find(filter) == std::string::npos) continue;
      ++selected;
      g_rng.seed(12345);
      g_case_failures = 0;
      c.fn();
      if (c.group && g_case_failures == 0) continue;  // its results are reported
      if (g_case_failures == 0) report(true, name);
      else report(false, name + " (" + std::to_string(g_case_failures) + " failed checks)");
    }
  return selected;
}

}  // namespace
}  // namespace unit
}  // namespace facegan

int main() {
  facegan::register_builtin_backends();
#ifdef FACEGAN_WITH_CUDA_EMU
  facegan::register_cuda_emu_backend();
#ifdef FACEGAN_WITH_CUDA_EMU_SM75
  facegan::register_cuda_emu_sm75_backend();
#endif
#endif
  std::printf("facegan-unit: CUDA backend index arithmetic on the CPU (and end to end on a GPU)\n");
  const char* filter = std::getenv("FACEGAN_UNIT_FILTER");
  const int selected = facegan::unit::run_cases(filter);
  std::printf("%d passed, %d failed\n", facegan::unit::g_passed, facegan::unit::g_failed);
  if (filter && selected == 0) {
    std::printf("FACEGAN_UNIT_FILTER=\"%s\" matches no case\n", filter);
    return 1;
  }
  return facegan::unit::g_failed == 0 ? 0 : 1;
}
