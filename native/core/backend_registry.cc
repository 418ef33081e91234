// The backend registry: best first, the CPU last. It starts empty: the backends built in are added
// by register_builtin_backends() (native/backends), the emulated ones by the tools.
#include "backend.h"

namespace facegan {

namespace {
std::vector<BackendReg>& mutable_registry() {
  static std::vector<BackendReg> registry;
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
