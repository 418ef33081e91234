// The backend interface: a backend takes the shared Network description once (prepare) and then
// runs whole mapping / synthesis passes on host inputs and outputs. How it stores weights, lays
// out activations, fuses ops or schedules work is its own business; what it computes is
// defined by network.h and ../shared/stylegan2-math.md.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "facegan.h"
#include "network.h"

namespace facegan {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  // Whether the backend runs this architecture (Generator::create asks before prepare).
  virtual bool supports(Arch arch) const { return arch == Arch::StyleGAN2; }
  // Called once. `net` outlives the backend. Upload / pre-pack weights here.
  virtual Status prepare(const Network& net, const LoadOptions& options) = 0;
  // Host pointers in and out (see MappingArgs / SynthesisArgs). Never called concurrently.
  // The Generator has checked the arguments against the network (mapping: StyleGAN2 only;
  // synthesis: ws for StyleGAN2, z for ProGAN).
  virtual Status mapping(const MappingArgs& args) = 0;
  virtual Status synthesis(const SynthesisArgs& args) = 0;
};

// An entry of the backend registry (backend_registry.cc), best first; the CPU is always last.
struct BackendReg {
  const char* name;
  // True when the backend can run in this process (compiled in, driver and device present).
  bool (*available)(std::string* why_not);
  std::unique_ptr<Backend> (*create)();
  // Hidden entries (the scalar reference engine "cpu-ref") can be created by name but are not
  // listed by available_backends().
  bool hidden = false;
};

const std::vector<BackendReg>& backend_registry();

// Defined by native/cpu.
std::unique_ptr<Backend> create_cpu_backend();
// The plain scalar reference engine (native/cpu/reference.cc): slow, written straight from
// shared/stylegan2-math.md; the judge for the optimised engines in self-checks.
std::unique_ptr<Backend> create_cpu_reference_backend();

#ifdef FACEGAN_WITH_CUDA
// Defined by native/cuda (compiled only when CMake found a CUDA toolkit).
bool cuda_backend_available(std::string* why_not);
std::unique_ptr<Backend> create_cuda_backend();
#endif

}  // namespace facegan
