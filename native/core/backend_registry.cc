// The backend registry: best first, the CPU last.
#include "backend.h"

namespace facegan {

namespace {

bool cpu_available(std::string*) { return true; }

std::vector<BackendReg> make_registry() {
  std::vector<BackendReg> r;
#ifdef FACEGAN_WITH_CUDA
  r.push_back({"cuda", &cuda_backend_available, &create_cuda_backend, false});
#endif
  r.push_back({"cpu", &cpu_available, &create_cpu_backend, false});
  // The scalar reference engine (slow, for checks); not listed by available_backends().
  r.push_back({"cpu-ref", &cpu_available, &create_cpu_reference_backend, true});
  return r;
}

std::vector<BackendReg>& mutable_registry() {
  static std::vector<BackendReg> registry = make_registry();
  return registry;
}
}  // namespace

const std::vector<BackendReg>& backend_registry() { return mutable_registry(); }

void register_backend(const BackendReg& reg) {
  for (const BackendReg& r : mutable_registry())
    if (std::string(r.name) == reg.name) return;
  mutable_registry().push_back(reg);
}

std::vector<std::string> available_backends(std::string* why_not) {
  std::vector<std::string> names;
  std::string reasons;
#ifndef FACEGAN_WITH_CUDA
  reasons = "cuda: not compiled in (built without a CUDA toolkit)";
#endif
  for (const auto& reg : backend_registry()) {
    if (reg.hidden) continue;
    std::string why;
    bool ok = false;
    try {
      ok = reg.available(&why);
    } catch (...) {
      ok = false;
      why = "availability check failed";
    }
    if (ok) {
      names.push_back(reg.name);
    } else {
      if (!reasons.empty()) reasons += "; ";
      reasons += std::string(reg.name) + ": " + (why.empty() ? "not available" : why);
    }
  }
  if (why_not) *why_not = reasons;
  return names;
}

}  // namespace facegan
