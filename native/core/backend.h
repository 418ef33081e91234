// The backend interface: a backend takes the shared Network description once (prepare) and then
// runs whole mapping / synthesis passes on host inputs and outputs. How it stores weights, lays
// out activations, fuses ops or schedules work is its own business; what it computes is
// defined by network.h and docs/stylegan2.md (docs/progan.md for ProGAN).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "facegan.h"
#include "network.h"

namespace facegan {

// Backend::generate's arguments: mapping.ws and synthesis.ws / z are null (the ws are the
// backend's own), synthesis.n == mapping.n; the Generator fills both counts' pointers.
struct BackendGenerateArgs {
  MappingArgs mapping;      // n, z (never seeds: the Generator turns seeds into z), c, psi, cutoff, cancel
  SynthesisArgs synthesis;  // noise, noise_seed, image_offset, img / img_u8, cancel, nonfinite_count
  uint64_t* ws_nonfinite_count = nullptr;  // out: NaN / ±Inf values among the n × num_ws × w_dim ws
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  // Whether the backend runs this architecture (Generator::create asks before prepare). Every
  // backend answers for itself (no default: each one runs both architectures today).
  virtual bool supports(Arch arch) const = 0;
  // Called once. `net` outlives the backend. Upload / pre-pack weights here.
  virtual Status prepare(const Network& net, const LoadOptions& options) = 0;
  // Host pointers in and out (see MappingArgs / SynthesisArgs). Never called concurrently.
  // The Generator has checked the arguments against the network (mapping: StyleGAN2 only;
  // synthesis: ws for StyleGAN2, z for ProGAN).
  //
  // Cancellation (args.cancel, may be null): a backend must test is_cancelled(args.cancel)
  // before each layer of each (sub-)batch it runs, and may test more often (never per element).
  // When set, it stops launching work, waits for (or abandons) work in flight, leaves the
  // outputs undefined and returns Status::Cancelled(). A flag set after the last check does not
  // have to be honoured (the call then succeeds). Mapping: test it at least once per image or
  // per call (the mapping network is small). The goal: dispose() / AbortSignal stop a call within
  // one layer of one chunk, so an abandoned 1024-image request does not run to the end.
  //
  // Chunking: the Generator hands synthesis() / generate() at most images_per_call() images (or
  // fewer: the LoadOptions::max_chunk knob) and splits larger requests itself, with image_offset
  // advanced. A backend runs the n it is given in one pass and never splits it again. When it
  // cannot get the memory for n images it returns Status::OutOfMemory (a std::bad_alloc escaping
  // it counts as one): the Generator halves the chunk and retries.
  //
  // Non-finite output (synthesis): if reports_nonfinite() returns true, then whenever
  // args.nonfinite_count is non-null the backend must store in *args.nonfinite_count the number
  // of NaN / ±Inf values of the float32 image of the whole call (n × C × H × W, the values before
  // any clamp / uint8 conversion; the count may saturate, but must be > 0 iff any value is
  // non-finite), whether or not args.img was requested. It should count in its last pass over the
  // image (e.g. the kernel that writes img / img_u8), and return Status::Ok(): the Generator turns
  // a count > 0 into Status::NonFinite. If reports_nonfinite() is false (the default), the
  // Generator scans the float image itself: the caller's args.img when given, else it limits the
  // chunk to a float scratch image of at most 64 MiB, which costs a device-to-host copy of the
  // float image per call.
  // Mapping needs nothing from the backend: the Generator scans the ws it returned.
  virtual Status mapping(const MappingArgs& args) = 0;
  virtual Status synthesis(const SynthesisArgs& args) = 0;
  // Whether synthesis() fills args.nonfinite_count (see above).
  virtual bool reports_nonfinite() const { return false; }
  // The most images one synthesis() call should take, from the backend's memory estimate (≥ 1).
  // Asked after prepare, before each Generator call, so it may follow free device memory. The
  // default: no limit of the backend's own (the Generator's 1024 images per call).
  virtual int images_per_call() { return 1024; }

  // Optional (StyleGAN2): one chunk of Generator::generate run whole by the backend, so the ws
  // stay in its own memory (on a GPU: z up, images down, no ws round trip through the host).
  // A backend that provides it (provides_generate() true) must also reports_nonfinite(). The
  // result must be the same bits as mapping(args.mapping) into ws, then synthesis(args.synthesis)
  // from those ws; it must store the number of NaN / ±Inf values of those ws in
  // *args.ws_nonfinite_count (the Generator answers Status::NonFinite for them as for mapping)
  // and the image's in *args.synthesis.nonfinite_count. Cancellation and Status::OutOfMemory as
  // synthesis(). Without it (the default) the Generator runs mapping() then synthesis().
  virtual bool provides_generate() const { return false; }
  virtual Status generate(const BackendGenerateArgs&) { return Status::Error(std::string(name()) + ": no generate()"); }
};

// An entry of the backend registry (backend_registry.cc), best first; the CPU is always last.
// The core lists no backend itself: register_builtin_backends() (native/backends, library
// facegan_backends) adds the ones built into the binary.
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
// Adds a backend at run time (before any Generator is created); a name already there is kept.
// The C++ tools also register the emulated CUDA backend "cuda-emu" (native/cuda/emu) this way.
void register_backend(const BackendReg& reg);
// Registers "cuda" (unavailable, with the reason, when not compiled in), "cpu" and the hidden
// "cpu-ref", in that order; once per process. Defined in native/backends/builtin_backends.cc:
// the addon and the tools call it first.
void register_builtin_backends();

// Defined by native/cpu.
std::unique_ptr<Backend> create_cpu_backend();
// The plain scalar reference engine (native/cpu/reference.cc): slow, written straight from
// docs/stylegan2.md; the judge for the optimised engines in self-checks.
std::unique_ptr<Backend> create_cpu_reference_backend();

#ifdef FACEGAN_WITH_CUDA
// Defined by native/cuda (compiled only when CMake found a CUDA toolkit; FACEGAN_WITH_CUDA is
// defined for what links facegan_backends).
bool cuda_backend_available(std::string* why_not);
std::unique_ptr<Backend> create_cuda_backend();
#endif

}  // namespace facegan
