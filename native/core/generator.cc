// The Generator facade: builds the network description, picks the backend by name, checks
// arguments and serialises calls. No exception crosses this API.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <mutex>
#include <new>
#include <string>
#include <vector>

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
size_t count_nonfinite(const float* x, size_t n) {
  size_t bad = 0;
  for (size_t i = 0; i < n; ++i) bad += std::isfinite(x[i]) ? 0 : 1;
  return bad;
}
}  // namespace

struct Generator::Impl {
  std::unique_ptr<Network> net;
  std::unique_ptr<Backend> backend;
  const char* backend_reg_name = nullptr;  // the registry's name (e.g. "cuda-emu" runs backend "cuda")
  std::mutex mu;
};

Generator::Generator() : impl_(new Impl()) {}
Generator::~Generator() = default;

const ModelInfo& Generator::info() const { return impl_->net->info; }
const char* Generator::backend_name() const {
  return impl_->backend_reg_name ? impl_->backend_reg_name : impl_->backend->name();
}

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
    g->impl_->backend_reg_name = reg->name;
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
  if (is_cancelled(a.cancel)) return Status::Cancelled("mapping: cancelled");
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (is_cancelled(a.cancel)) return Status::Cancelled("mapping: cancelled");
  Status s = guarded("mapping", [&] { return impl_->backend->mapping(a); });
  if (!s) return s;
  const size_t count = size_t(a.n) * size_t(m.num_ws) * size_t(m.w_dim);
  const size_t bad = count_nonfinite(a.ws, count);
  if (bad > 0)
    return Status::NonFinite("mapping: " + std::to_string(bad) + " of " + std::to_string(count) +
                             " output values are NaN or infinite (the weights or the config, e.g. "
                             "mapping_lr_multiplier, give values beyond float32)");
  return s;
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
  if (args.nonfinite_count) return Status::Error("synthesis: nonfinite_count is set by the Generator, not the caller");
  if (is_cancelled(args.cancel)) return Status::Cancelled("synthesis: cancelled");
  const ModelInfo& m = impl_->net->info;
  const size_t values = size_t(args.n) * size_t(m.img_channels) * size_t(m.img_resolution) * size_t(m.img_resolution);
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (is_cancelled(args.cancel)) return Status::Cancelled("synthesis: cancelled");
  SynthesisArgs a = args;
  uint64_t bad = 0;
  if (impl_->backend->reports_nonfinite()) {
    a.nonfinite_count = &bad;
    Status s = guarded("synthesis", [&] { return impl_->backend->synthesis(a); });
    if (!s) return s;
  } else if (a.img) {
    Status s = guarded("synthesis", [&] { return impl_->backend->synthesis(a); });
    if (!s) return s;
    bad = count_nonfinite(a.img, values);
  } else {
    // Only uint8 wanted from a backend that does not count: run it in sub-batches with a bounded
    // float scratch image to scan (image_offset keeps random noise the same as one call).
    const size_t per_image = values / size_t(args.n);
    size_t budget = size_t(64) << 20;
    if (const char* e = std::getenv("FACEGAN_SCAN_SCRATCH_BYTES")) {  // for tests of the sub-batching
      const long long v = std::atoll(e);
      if (v > 0) budget = size_t(v);
    }
    const int step = int(std::max<size_t>(1, std::min<size_t>(size_t(args.n), budget / sizeof(float) / per_image)));
    std::vector<float> scratch;
    Status s = guarded("synthesis", [&] {
      scratch.resize(size_t(step) * per_image);
      return Status::Ok();
    });
    if (!s) return s;
    const size_t in_row = args.ws ? size_t(m.num_ws) * size_t(m.w_dim) : size_t(m.z_dim);
    for (int start = 0; start < args.n; start += step) {
      SynthesisArgs c = args;
      c.n = std::min(step, args.n - start);
      if (c.ws) c.ws += size_t(start) * in_row;
      if (c.z) c.z += size_t(start) * in_row;
      c.image_offset = args.image_offset + uint32_t(start);
      c.img = scratch.data();
      c.img_u8 = args.img_u8 + size_t(start) * per_image;
      s = guarded("synthesis", [&] { return impl_->backend->synthesis(c); });
      if (!s) return s;
      bad += count_nonfinite(scratch.data(), size_t(c.n) * per_image);
    }
  }
  if (bad > 0)
    return Status::NonFinite("synthesis: " + std::to_string(bad) + " of " + std::to_string(values) +
                             " image values are NaN or infinite (the weights hold values too large for float32 "
                             "arithmetic, or the ws / config are extreme)");
  return Status::Ok();
}

}  // namespace facegan
