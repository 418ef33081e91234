// The Generator facade: builds the network description, picks the backend by name, checks
// arguments and serialises calls. No exception crosses this API.
#include <cmath>
#include <mutex>
#include <new>

#include "backend.h"
#include "facegan.h"
#include "network.h"

namespace facegan {

namespace {
constexpr int kMaxBatch = 1024;

template <typename F>
Status guarded(const char* what, F&& f) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return Status::Error(std::string(what) + ": out of memory");
  } catch (const std::exception& e) {
    return Status::Error(std::string(what) + ": " + e.what());
  } catch (...) {
    return Status::Error(std::string(what) + ": unexpected error");
  }
}
}  // namespace

struct Generator::Impl {
  std::unique_ptr<Network> net;
  std::unique_ptr<Backend> backend;
  std::mutex mu;
};

Generator::Generator() : impl_(new Impl()) {}
Generator::~Generator() = default;

const ModelInfo& Generator::info() const { return impl_->net->info; }
const char* Generator::backend_name() const { return impl_->backend->name(); }

Status Generator::create(const std::string& config_json, const std::vector<TensorView>& tensors,
                         const LoadOptions& options, std::unique_ptr<Generator>* out) {
  if (!out) return Status::Error("Generator::create: null output");
  return guarded("Generator::create", [&]() -> Status {
    if (options.num_threads < 0 || options.num_threads > 1024)
      return Status::Error("num_threads must be in [0, 1024] (0 = one per hardware thread)");
    if (options.device_index < 0) return Status::Error("device_index must be >= 0");
    if (options.precision != Precision::FP32 && options.precision != Precision::FP16 &&
        options.precision != Precision::BF16)
      return Status::Error("invalid precision");
    const BackendReg* reg = nullptr;
    std::string names;
    for (const auto& r : backend_registry()) {
      if (options.backend == r.name) reg = &r;
      if (!r.hidden) names += std::string(names.empty() ? "" : ", ") + r.name;
    }
    if (!reg) return Status::Error("unknown backend \"" + options.backend + "\" (compiled in: " + names + ")");
    std::string why;
    if (!reg->available(&why))
      return Status::Error(std::string("backend ") + reg->name + " is not available: " + (why.empty() ? "unknown reason" : why));

    std::unique_ptr<Generator> g(new Generator());
    g->impl_->net.reset(new Network());
    Status s = build_network(config_json, tensors, g->impl_->net.get());
    if (!s) return s;
    g->impl_->backend = reg->create();
    if (!g->impl_->backend) return Status::Error(std::string("backend ") + reg->name + " could not be created");
    if (!g->impl_->backend->supports(g->impl_->net->arch))
      return Status::Error(std::string("backend ") + reg->name + " does not run " + g->impl_->net->info.arch +
                           " models (yet)");
    s = g->impl_->backend->prepare(*g->impl_->net, options);
    if (!s) return Status::Error(std::string(reg->name) + ": " + s.message);
    *out = std::move(g);
    return Status::Ok();
  });
}

Status Generator::mapping(const MappingArgs& args) {
  const ModelInfo& m = impl_->net->info;
  if (impl_->net->arch != Arch::StyleGAN2)
    return Status::Error("mapping: a " + m.arch + " model has no mapping network (pass z to synthesis)");
  if (args.n < 1 || args.n > kMaxBatch) return Status::Error("mapping: n must be in [1, 1024]");
  if (!args.z) return Status::Error("mapping: z is null");
  if (!args.ws) return Status::Error("mapping: ws (output) is null");
  if (m.c_dim > 0 && !args.c) return Status::Error("mapping: this model is conditional; c (n × c_dim) is required");
  if (!std::isfinite(args.psi)) return Status::Error("mapping: psi must be finite");
  if (args.truncation_cutoff < -1 || args.truncation_cutoff > m.num_ws)
    return Status::Error("mapping: truncation_cutoff must be -1 (all rows) or in [0, num_ws]");
  MappingArgs a = args;
  if (m.c_dim == 0) a.c = nullptr;
  std::lock_guard<std::mutex> lock(impl_->mu);
  return guarded("mapping", [&] { return impl_->backend->mapping(a); });
}

Status Generator::synthesis(const SynthesisArgs& args) {
  if (args.n < 1 || args.n > kMaxBatch) return Status::Error("synthesis: n must be in [1, 1024]");
  if (impl_->net->arch == Arch::ProGAN) {
    if (!args.z) return Status::Error("synthesis: z is null (a progan model takes z, n × z_dim)");
    if (args.ws) return Status::Error("synthesis: a progan model takes z, not ws");
  } else {
    if (!args.ws) return Status::Error("synthesis: ws is null");
    if (args.z) return Status::Error("synthesis: a stylegan2 model takes ws (from mapping), not z");
  }
  if (!args.img && !args.img_u8) return Status::Error("synthesis: no output requested (img and img_u8 are null)");
  if (args.noise != NoiseMode::Const && args.noise != NoiseMode::Random && args.noise != NoiseMode::None)
    return Status::Error("synthesis: invalid noise mode");
  std::lock_guard<std::mutex> lock(impl_->mu);
  return guarded("synthesis", [&] { return impl_->backend->synthesis(args); });
}

}  // namespace facegan
