// The backends built into this binary, registered into the core's registry (native/core/backend.h):
// best first, the CPU last. The core knows no backend's library; the addon and the C++ tools link
// this file (library facegan_backends) and call register_builtin_backends() before creating a
// Generator.
#include <mutex>

#include "backend.h"

namespace facegan {

namespace {

bool cpu_available(std::string*) { return true; }

#ifndef FACEGAN_WITH_CUDA
// Listed so that asking for "cuda" says why it cannot run.
bool cuda_not_compiled(std::string* why_not) {
  if (why_not) *why_not = "not compiled in (built without a CUDA toolkit)";
  return false;
}
std::unique_ptr<Backend> no_backend() { return nullptr; }
#endif

}  // namespace

void register_builtin_backends() {
  static std::once_flag once;
  std::call_once(once, [] {
#ifdef FACEGAN_WITH_CUDA
    register_backend({"cuda", &cuda_backend_available, &create_cuda_backend, false});
#else
    register_backend({"cuda", &cuda_not_compiled, &no_backend, false});
#endif
    register_backend({"cpu", &cpu_available, &create_cpu_backend, false});
    // The scalar reference engine (slow, for checks); not listed by available_backends().
    register_backend({"cpu-ref", &cpu_available, &create_cpu_reference_backend, true});
  });
}

}  // namespace facegan
