// The Generator facade: builds the network description, picks the backend by name, checks
// arguments and serialises calls. No exception crosses this API.
#include <algorithm>
#include <atomic>
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
// A backend that does not count non-finite values (reports_nonfinite() false) and a call that
// wants only uint8: the chunk's float image goes to a scratch buffer of at most this many bytes.
constexpr size_t kScanScratchBytes = size_t(64) << 20;

template <typename F>
Status guarded(const char* what, F&& f) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return Status::OutOfMemory(std::string(what) + ": out of memory");
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
Status nonfinite_ws(size_t bad, size_t count) {
  return Status::NonFinite("mapping: " + std::to_string(bad) + " of " + std::to_string(count) +
                           " output values are NaN or infinite (the weights or the config, e.g. "
                           "mapping_lr_multiplier, give values beyond float32)");
}
Status nonfinite_image(uint64_t bad, size_t values) {
  return Status::NonFinite("synthesis: " + std::to_string(bad) + " of " + std::to_string(values) +
                           " image values are NaN or infinite (the weights hold values too large for float32 "
                           "arithmetic, or the ws / config are extreme)");
}
}  // namespace

struct Generator::Impl {
  std::unique_ptr<Network> net;
  std::unique_ptr<Backend> backend;
  const char* backend_reg_name = nullptr;  // the registry's name (e.g. "cuda-emu" runs backend "cuda")
  int max_chunk = 0;                       // LoadOptions::max_chunk (0: the backend's estimate)
  int oom_chunk = kMaxBatch;               // at most this many after an out-of-memory (halved)
  // Fault injection for tests of the halving (FACEGAN_INJECT_OOM_ABOVE=N, read at create): a
  // chunk of more than N images answers Status::OutOfMemory without reaching the backend.
  int inject_oom_above = 0;
  std::mutex mu;
  std::atomic<int> last_chunk{1};  // chunk()'s last answer, for chunk_images() (which never waits for mu)

  // Under mu: the chunk size of the next call.
  int chunk() {
    int c = max_chunk > 0 ? max_chunk : std::max(1, backend->images_per_call());
    c = std::max(1, std::min({c, oom_chunk, kMaxBatch}));
    last_chunk.store(c, std::memory_order_relaxed);
    return c;
  }

  // Runs images [0, n) in chunks of at most `limit`: run(start, count) for each, checking the
  // cancel flag between chunks. On Status::OutOfMemory a chunk of more than one image is halved
  // and retried, and the halved size is kept for later calls. Under mu.
  template <typename F>
  Status chunked(int n, int limit, const CancelFlag* cancel, const char* what, F&& run) {
    int step = std::max(1, std::min(limit, chunk()));
    for (int start = 0; start < n;) {
      if (is_cancelled(cancel)) return Status::Cancelled(std::string(what) + ": cancelled");
      const int count = std::min(step, n - start);
      Status s = inject_oom_above > 0 && count > inject_oom_above
                     ? Status::OutOfMemory(std::string(what) + ": out of memory (injected, FACEGAN_INJECT_OOM_ABOVE)")
                     : guarded(what, [&] { return run(start, count); });
      if (s.code == StatusCode::OutOfMemory && count > 1) {
        step = count / 2;
        oom_chunk = std::min(oom_chunk, step);
        last_chunk.store(std::min(last_chunk.load(std::memory_order_relaxed), step), std::memory_order_relaxed);
        continue;
      }
      if (!s) return s;
      start += count;
    }
    return Status::Ok();
  }

  // One chunk of synthesis (args already offset to the chunk), with the non-finite check of
  // backend.h: counted by the backend, or scanned here in args.img or `scratch`.
  Status synthesis_chunk(SynthesisArgs a, std::vector<float>* scratch, uint64_t* bad) {
    const ModelInfo& m = net->info;
    const size_t values = size_t(a.n) * size_t(m.img_channels) * size_t(m.img_resolution) * size_t(m.img_resolution);
    uint64_t count = 0;
    if (backend->reports_nonfinite()) {
      a.nonfinite_count = &count;
    } else if (!a.img) {
      scratch->resize(values);
      a.img = scratch->data();
    }
    Status s = backend->synthesis(a);
    if (!s) return s;
    if (!backend->reports_nonfinite()) count = count_nonfinite(a.img, values);
    *bad += count;
    return Status::Ok();
  }

  // The chunk limit of a synthesis: a backend that does not count non-finite values, asked only
  // for uint8, gets a bounded float scratch image per chunk.
  int scan_limit(bool want_float) const {
    if (backend->reports_nonfinite() || want_float) return kMaxBatch;
    const ModelInfo& m = net->info;
    const size_t per_image = size_t(m.img_channels) * size_t(m.img_resolution) * size_t(m.img_resolution) * sizeof(float);
    return int(std::max<size_t>(1, std::min<size_t>(kMaxBatch, kScanScratchBytes / per_image)));
  }
};

Generator::Generator() : impl_(new Impl()) {}
Generator::~Generator() = default;

const ModelInfo& Generator::info() const { return impl_->net->info; }
const char* Generator::backend_name() const {
  return impl_->backend_reg_name ? impl_->backend_reg_name : impl_->backend->name();
}

int Generator::chunk_images() const { return impl_->last_chunk.load(std::memory_order_relaxed); }

Status Generator::create(const std::string& config_json, const std::vector<TensorView>& tensors,
                         const LoadOptions& options, std::unique_ptr<Generator>* out) {
  if (!out) return Status::Error("Generator::create: null output");
  return guarded("Generator::create", [&]() -> Status {
    if (options.num_threads < 0 || options.num_threads > 1024)
      return Status::Error("num_threads must be in [0, 1024] (0 = one per hardware thread)");
    if (options.device_index < 0) return Status::Error("device_index must be >= 0");
    if (options.max_chunk < 0 || options.max_chunk > kMaxBatch)
      return Status::Error("max_chunk must be in [0, 1024] (0 = the backend's estimate)");
    if (options.precision != Precision::FP32 && options.precision != Precision::FP16 &&
        options.precision != Precision::BF16)
      return Status::Error("invalid precision");
    const BackendReg* reg = nullptr;
    std::string names;
    for (const auto& r : backend_registry()) {
      if (options.backend == r.name) reg = &r;
      if (!r.hidden) names += std::string(names.empty() ? "" : ", ") + r.name;
    }
    if (!reg) return Status::Error("unknown backend \"" + options.backend + "\" (known: " + names + ")");
    std::string why;
    if (!reg->available(&why))
      return Status::Error(std::string("backend ") + reg->name + " is not available: " + (why.empty() ? "unknown reason" : why));

    std::unique_ptr<Generator> g(new Generator());
    g->impl_->net.reset(new Network());
    g->impl_->max_chunk = options.max_chunk;
    if (const char* e = std::getenv("FACEGAN_INJECT_OOM_ABOVE")) g->impl_->inject_oom_above = std::max(0, std::atoi(e));
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
    // The conv weights' views point into the caller's buffers, which may go after create().
    for (LayerDesc& L : g->impl_->net->layers) L.weight_src = TensorView();
    g->impl_->chunk();
    *out = std::move(g);
    return Status::Ok();
  });
}

namespace {
// The checks shared by mapping() and generate() (StyleGAN2 latents, labels and truncation).
Status check_latent_args(const char* what, const ModelInfo& m, bool has_c, float psi, int cutoff) {
  if (m.c_dim > 0 && !has_c)
    return Status::Error(std::string(what) + ": this model is conditional; c (n × c_dim) is required");
  if (!std::isfinite(psi)) return Status::Error(std::string(what) + ": psi must be finite");
  if (cutoff < -1 || cutoff > m.num_ws)
    return Status::Error(std::string(what) + ": truncation_cutoff must be -1 (all rows) or in [0, num_ws]");
  return Status::Ok();
}
Status check_render_args(const char* what, NoiseMode noise, const float* img, const uint8_t* img_u8) {
  if (!img && !img_u8) return Status::Error(std::string(what) + ": no output requested (img and img_u8 are null)");
  if (noise != NoiseMode::Const && noise != NoiseMode::Random && noise != NoiseMode::None)
    return Status::Error(std::string(what) + ": invalid noise mode");
  return Status::Ok();
}
}  // namespace

Status Generator::mapping(const MappingArgs& args) {
  const ModelInfo& m = impl_->net->info;
  if (impl_->net->arch != Arch::StyleGAN2)
    return Status::Error("mapping: a " + m.arch + " model has no mapping network (pass z to synthesis)");
  if (args.n < 1 || args.n > kMaxBatch) return Status::Error("mapping: n must be in [1, 1024]");
  if (!args.z) return Status::Error("mapping: z is null");
  if (!args.ws) return Status::Error("mapping: ws (output) is null");
  Status s = check_latent_args("mapping", m, args.c != nullptr, args.psi, args.truncation_cutoff);
  if (!s) return s;
  MappingArgs a = args;
  if (m.c_dim == 0) a.c = nullptr;
  if (is_cancelled(a.cancel)) return Status::Cancelled("mapping: cancelled");
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (is_cancelled(a.cancel)) return Status::Cancelled("mapping: cancelled");
  s = guarded("mapping", [&] { return impl_->backend->mapping(a); });
  if (!s) return s;
  const size_t count = size_t(a.n) * size_t(m.num_ws) * size_t(m.w_dim);
  const size_t bad = count_nonfinite(a.ws, count);
  if (bad > 0) return nonfinite_ws(bad, count);
  return s;
}

Status Generator::synthesis(const SynthesisArgs& args) {
  if (args.n < 1 || args.n > kMaxBatch) return Status::Error("synthesis: n must be in [1, 1024]");
  if (impl_->net->arch == Arch::ProGAN) {
    if (args.ws) return Status::Error("synthesis: a progan model takes z, not ws");
    if (!args.z) return Status::Error("synthesis: z is null (a progan model takes z, n × z_dim)");
  } else {
    if (args.z) return Status::Error("synthesis: a stylegan2 model takes ws (from mapping), not z");
    if (!args.ws) return Status::Error("synthesis: ws is null");
  }
  Status s = check_render_args("synthesis", args.noise, args.img, args.img_u8);
  if (!s) return s;
  if (args.nonfinite_count) return Status::Error("synthesis: nonfinite_count is set by the Generator, not the caller");
  if (is_cancelled(args.cancel)) return Status::Cancelled("synthesis: cancelled");
  const ModelInfo& m = impl_->net->info;
  const size_t per_image = size_t(m.img_channels) * size_t(m.img_resolution) * size_t(m.img_resolution);
  const size_t in_row = args.ws ? size_t(m.num_ws) * size_t(m.w_dim) : size_t(m.z_dim);
  std::lock_guard<std::mutex> lock(impl_->mu);
  uint64_t bad = 0;
  std::vector<float> scratch;
  s = impl_->chunked(args.n, impl_->scan_limit(args.img != nullptr), args.cancel, "synthesis", [&](int start, int count) {
    SynthesisArgs c = args;
    c.n = count;
    if (c.ws) c.ws += size_t(start) * in_row;
    if (c.z) c.z += size_t(start) * in_row;
    c.image_offset = args.image_offset + uint32_t(start);
    if (c.img) c.img += size_t(start) * per_image;
    if (c.img_u8) c.img_u8 += size_t(start) * per_image;
    return impl_->synthesis_chunk(c, &scratch, &bad);
  });
  if (!s) return s;
  if (bad > 0) return nonfinite_image(bad, size_t(args.n) * per_image);
  return Status::Ok();
}

Status Generator::generate(const GenerateArgs& args) {
  const ModelInfo& m = impl_->net->info;
  const bool progan = impl_->net->arch == Arch::ProGAN;
  if (args.n < 1 || args.n > kMaxBatch) return Status::Error("generate: n must be in [1, 1024]");
  if (!args.z == !args.seeds) return Status::Error("generate: give exactly one of z and seeds");
  if (progan) {
    if (args.psi != 1.0f || args.truncation_cutoff != -1)
      return Status::Error("generate: a progan model has no truncation (psi must be 1, truncation_cutoff -1)");
  } else {
    Status s = check_latent_args("generate", m, args.c != nullptr, args.psi, args.truncation_cutoff);
    if (!s) return s;
  }
  Status s = check_render_args("generate", args.noise, args.img, args.img_u8);
  if (!s) return s;
  if (is_cancelled(args.cancel)) return Status::Cancelled("generate: cancelled");
  const size_t zd = size_t(m.z_dim), cd = size_t(m.c_dim), wrow = size_t(m.num_ws) * size_t(m.w_dim);
  const size_t per_image = size_t(m.img_channels) * size_t(m.img_resolution) * size_t(m.img_resolution);
  // StyleGAN2 on a backend with its own generate(): mapping and synthesis there, ws never here.
  const bool by_backend = !progan && impl_->backend->provides_generate() && impl_->backend->reports_nonfinite();
  std::lock_guard<std::mutex> lock(impl_->mu);
  uint64_t bad = 0;
  std::vector<float> z, ws, scratch;
  std::vector<double> zd64;
  s = impl_->chunked(args.n, impl_->scan_limit(args.img != nullptr), args.cancel, "generate", [&](int start, int count) {
    // The chunk's latents: the caller's z, or numpy's randn of each seed rounded to float32.
    const float* zc = args.z ? args.z + size_t(start) * zd : nullptr;
    if (!zc) {
      z.resize(size_t(count) * zd);
      zd64.resize(zd);
      for (int i = 0; i < count; ++i) {
        numpy_randn(args.seeds[start + i], zd, zd64.data());
        for (size_t k = 0; k < zd; ++k) z[size_t(i) * zd + k] = float(zd64[k]);
      }
      zc = z.data();
    }
    SynthesisArgs sa;
    sa.n = count;
    sa.noise = args.noise;
    sa.noise_seed = args.noise_seed;
    sa.image_offset = args.image_offset + uint32_t(start);
    sa.img = args.img ? args.img + size_t(start) * per_image : nullptr;
    sa.img_u8 = args.img_u8 ? args.img_u8 + size_t(start) * per_image : nullptr;
    sa.cancel = args.cancel;
    if (progan) {
      sa.z = zc;
      return impl_->synthesis_chunk(sa, &scratch, &bad);
    }
    MappingArgs ma;
    ma.n = count;
    ma.z = zc;
    ma.c = cd > 0 ? args.c + size_t(start) * cd : nullptr;
    ma.psi = args.psi;
    ma.truncation_cutoff = args.truncation_cutoff;
    ma.cancel = args.cancel;
    const size_t ws_count = size_t(count) * wrow;
    if (by_backend) {  // the ws stay in the backend's memory (backend.h)
      BackendGenerateArgs ga;
      ga.mapping = ma;
      ga.synthesis = sa;
      uint64_t ws_bad = 0, img_bad = 0;
      ga.ws_nonfinite_count = &ws_bad;
      ga.synthesis.nonfinite_count = &img_bad;
      Status gs = impl_->backend->generate(ga);
      if (!gs) return gs;
      if (ws_bad > 0) return nonfinite_ws(size_t(ws_bad), ws_count);
      bad += img_bad;
      return Status::Ok();
    }
    ws.resize(ws_count);
    ma.ws = ws.data();
    Status ms = impl_->backend->mapping(ma);
    if (!ms) return ms;
    const size_t nbad = count_nonfinite(ws.data(), ws.size());
    if (nbad > 0) return nonfinite_ws(nbad, ws.size());
    sa.ws = ws.data();
    return impl_->synthesis_chunk(sa, &scratch, &bad);
  });
  if (!s) return s;
  if (bad > 0) return nonfinite_image(bad, size_t(args.n) * per_image);
  return Status::Ok();
}

}  // namespace facegan
