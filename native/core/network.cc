// build_network: config + tensors → the validated Network description (network.h).
#include "network.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <new>
#include <set>

#include "json.h"
#include "safetensors.h"

namespace facegan {

namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) r += ", ";
    r += std::to_string(s[i]);
  }
  return r + "]";
}

const char* dtype_name(DType d) {
  switch (d) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
  }
  return "?";
}

size_t dtype_size(DType d) { return d == DType::F32 ? 4 : 2; }

struct Config {
  int z_dim = 0, w_dim = 0, c_dim = 0, res = 0, img_channels = 0, num_ws = 0, mapping_layers = 0;
  double lr_mul = 0.01;
  int64_t channel_base = 0, channel_max = 0;
  double conv_clamp = -1.0;
  int num_fp16_res = 0;
};

Status get_int(const json::Value& cfg, const char* key, int64_t lo, int64_t hi, bool required, int64_t* out) {
  const json::Value* v = cfg.get(key);
  if (!v) {
    if (required) return Status::Error(std::string("config: missing \"") + key + "\"");
    return Status::Ok();
  }
  if (!v->is_number() || v->number != std::floor(v->number) || v->number < double(lo) || v->number > double(hi))
    return Status::Error(std::string("config: \"") + key + "\" must be an integer in [" + std::to_string(lo) + ", " +
                         std::to_string(hi) + "]");
  *out = int64_t(v->number);
  return Status::Ok();
}

Status parse_config(const json::Value& root, Config* c) {
  Status s;
  int64_t v = 0;
#define FG_INT(key, lo, hi, field)                     \
  if (!(s = get_int(root, key, lo, hi, true, &v))) return s; \
  c->field = decltype(c->field)(v);
  FG_INT("z_dim", 1, 1 << 16, z_dim)
  FG_INT("w_dim", 1, 1 << 16, w_dim)
  FG_INT("c_dim", 0, 1 << 16, c_dim)
  FG_INT("img_resolution", 4, 1 << 14, res)
  FG_INT("img_channels", 1, 64, img_channels)
  FG_INT("num_ws", 1, 64, num_ws)
  FG_INT("mapping_layers", 1, 64, mapping_layers)
  FG_INT("channel_base", 1, int64_t(1) << 40, channel_base)
  FG_INT("channel_max", 1, 1 << 16, channel_max)
#undef FG_INT
  v = 0;
  if (!(s = get_int(root, "num_fp16_res", 0, 64, false, &v))) return s;
  c->num_fp16_res = int(v);
  if (c->res & (c->res - 1)) return Status::Error("config: img_resolution must be a power of two");
  int log2r = 0;
  while ((1 << log2r) < c->res) ++log2r;
  if (c->num_ws != 2 * log2r - 2)
    return Status::Error("config: num_ws is " + std::to_string(c->num_ws) + ", expected " +
                         std::to_string(2 * log2r - 2) + " for img_resolution " + std::to_string(c->res));
  const json::Value* lr = root.get("mapping_lr_multiplier");
  if (!lr) return Status::Error("config: missing \"mapping_lr_multiplier\"");
  if (!lr->is_number() || !(lr->number > 0) || !std::isfinite(lr->number))
    return Status::Error("config: \"mapping_lr_multiplier\" must be a positive number");
  c->lr_mul = lr->number;
  const json::Value* cc = root.get("conv_clamp");
  if (!cc) return Status::Error("config: missing \"conv_clamp\"");
  if (cc->is_null()) {
    c->conv_clamp = -1.0;
  } else if (cc->is_number() && cc->number >= 0 && cc->number < 1e30) {
    c->conv_clamp = cc->number;
  } else {
    return Status::Error("config: \"conv_clamp\" must be a non-negative number or null");
  }
  return Status::Ok();
}

size_t tensor_numel(const TensorView& t) {
  size_t n = 1;
  for (int64_t d : t.shape) n *= size_t(d);
  return n;
}

// t (F32, F16 or BF16, already validated) as float32 into dst.
void widen_to_f32(const TensorView& t, float* dst) {
  const size_t numel = tensor_numel(t);
  const uint8_t* src = static_cast<const uint8_t*>(t.data);
  if (t.dtype == DType::F32) {
    if (numel) std::memcpy(dst, src, numel * 4);
    return;
  }
  for (size_t i = 0; i < numel; ++i) {
    uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    dst[i] = t.dtype == DType::F16 ? half_to_float(h) : bf16_to_float(h);
  }
}

class Builder {
 public:
  Builder(const std::vector<TensorView>& tensors, Network* net, const char* what = "a StyleGAN2 generator")
      : net_(net), what_(what) {
    for (size_t i = 0; i < tensors.size(); ++i) by_name_.emplace(tensors[i].name, &tensors[i]);
  }

  Status check_names(const std::vector<TensorView>& tensors) {
    std::set<std::string> seen;
    for (const auto& t : tensors)
      if (!seen.insert(t.name).second) return Status::Error("tensor " + json::quote(t.name) + " appears twice");
    for (const auto& t : tensors)
      if (!expected_.count(t.name) && !optional_.count(t.name))
        return Status::Error("unknown tensor " + json::quote(t.name) + " (not part of " + what_ + ")");
    for (const auto& kv : expected_)
      if (!by_name_.count(kv.first)) return Status::Error("missing tensor " + json::quote(kv.first));
    return Status::Ok();
  }

  void expect(const std::string& name, std::vector<int64_t> shape) {
    declared_.push_back({name, shape, false});
    expected_[name] = std::move(shape);
  }
  void optional(const std::string& name, std::vector<int64_t> shape) {
    declared_.push_back({name, shape, true});
    optional_[name] = std::move(shape);
  }
  // Every declared tensor, in declaration (canonical) order.
  const std::vector<ExpectedTensor>& declared() const { return declared_; }

  // Validates the named tensor (name, shape, dtype, byte size, finite values, checked on the stored
  // bits) and returns its view, not widened.
  Status view(const std::string& name, TensorView* out) {
    auto it = by_name_.find(name);
    if (it == by_name_.end()) return Status::Error("missing tensor " + json::quote(name));
    const TensorView& t = *it->second;
    auto e = expected_.find(name);
    const std::vector<int64_t>& shape = e != expected_.end() ? e->second : optional_.at(name);
    const std::string qn = json::quote(name);
    if (t.shape != shape)
      return Status::Error("tensor " + qn + " has shape " + shape_str(t.shape) + ", expected " + shape_str(shape));
    if (t.dtype != DType::F32 && t.dtype != DType::F16 && t.dtype != DType::BF16)
      return Status::Error("tensor " + qn + " has an unsupported dtype");
    const size_t numel = tensor_numel(t);
    if (t.nbytes != numel * dtype_size(t.dtype))
      return Status::Error("tensor " + qn + " (" + dtype_name(t.dtype) + " " + shape_str(shape) + ") has " +
                           std::to_string(t.nbytes) + " bytes, expected " + std::to_string(numel * dtype_size(t.dtype)));
    if (!t.data && numel) return Status::Error("tensor " + qn + " has no data");
    const uint8_t* src = static_cast<const uint8_t*>(t.data);
    for (size_t i = 0; i < numel; ++i) {
      bool finite;
      if (t.dtype == DType::F32) {
        float f;
        std::memcpy(&f, src + 4 * i, 4);
        finite = std::isfinite(f);
      } else {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        const uint16_t exp_mask = t.dtype == DType::F16 ? 0x7c00 : 0x7f80;  // all-ones exponent: Inf / NaN
        finite = (h & exp_mask) != exp_mask;
      }
      if (!finite) return Status::Error("tensor " + qn + " contains a non-finite value at index " + std::to_string(i));
    }
    *out = t;
    return Status::Ok();
  }

  // Validates the named tensor and returns it widened to float32 (owned by the network).
  Status load(const std::string& name, const float** out) {
    TensorView t;
    Status s = view(name, &t);
    if (!s) return s;
    net_->storage.emplace_back(tensor_numel(t));
    std::vector<float>& dst = net_->storage.back();
    widen_to_f32(t, dst.data());
    *out = dst.data();
    return Status::Ok();
  }

  bool has(const std::string& name) const { return by_name_.count(name) != 0; }
  int64_t total_expected_numel() const {
    int64_t n = 0;
    for (const auto& kv : expected_) {
      int64_t m = 1;
      for (int64_t d : kv.second) m *= d;
      n += m;
    }
    return n;
  }
  const std::map<std::string, std::vector<int64_t>>& expected() const { return expected_; }

 private:
  Network* net_;
  const char* what_;
  std::map<std::string, const TensorView*> by_name_;
  std::map<std::string, std::vector<int64_t>> expected_;
  std::map<std::string, std::vector<int64_t>> optional_;
  std::vector<ExpectedTensor> declared_;
};

// With `declared`, only the config is read and the expected tensors listed (no tensors needed).
Status build_stylegan2(const json::Value& root, const std::vector<TensorView>& tensors, Network* net,
                       std::vector<ExpectedTensor>* declared) {
  Config cfg;
  Status s = parse_config(root, &cfg);
  if (!s) return s;
  *net = Network();
  net->arch = Arch::StyleGAN2;
  net->storage.reserve(tensors.size() + 8);

  const int R = cfg.res;
  std::vector<int> block_res;
  for (int r = 4; r <= R; r *= 2) block_res.push_back(r);
  auto C = [&](int r) -> int64_t { return std::min<int64_t>(cfg.channel_base / r, cfg.channel_max); };
  for (int r : block_res)
    if (C(r) < 1) return Status::Error("config: channel_base / " + std::to_string(r) + " is zero channels");

  Builder b(tensors, net);
  const int64_t z = cfg.z_dim, w = cfg.w_dim, cd = cfg.c_dim;
  // Mapping.
  if (cd > 0) {
    b.expect("mapping.embed.weight", {w, cd});
    b.expect("mapping.embed.bias", {w});
  }
  for (int i = 0; i < cfg.mapping_layers; ++i) {
    int64_t in = i == 0 ? z + (cd > 0 ? w : 0) : w;
    b.expect("mapping.fc" + std::to_string(i) + ".weight", {w, in});
    b.expect("mapping.fc" + std::to_string(i) + ".bias", {w});
  }
  b.expect("mapping.w_avg", {w});
  // Synthesis.
  const std::vector<int64_t> filt_shape = {4, 4};
  for (int r : block_res) {
    std::string pre = "synthesis.b" + std::to_string(r) + ".";
    int64_t cin = r == 4 ? C(4) : C(r / 2), cout = C(r);
    if (r == 4) b.expect(pre + "const", {C(4), 4, 4});
    b.optional(pre + "resample_filter", filt_shape);
    for (const char* cname : {"conv0", "conv1"}) {
      if (r == 4 && std::strcmp(cname, "conv0") == 0) continue;
      int64_t ci = std::strcmp(cname, "conv0") == 0 ? cin : cout;
      std::string lp = pre + cname + ".";
      b.expect(lp + "affine.weight", {ci, w});
      b.expect(lp + "affine.bias", {ci});
      b.expect(lp + "weight", {cout, ci, 3, 3});
      b.expect(lp + "bias", {cout});
      b.expect(lp + "noise_strength", {});
      b.expect(lp + "noise_const", {r, r});
      b.optional(lp + "resample_filter", filt_shape);
    }
    std::string lp = pre + "torgb.";
    b.expect(lp + "affine.weight", {cout, w});
    b.expect(lp + "affine.bias", {cout});
    b.expect(lp + "weight", {cfg.img_channels, cout, 1, 1});
    b.expect(lp + "bias", {cfg.img_channels});
  }
  if (declared) {
    *declared = b.declared();
    return Status::Ok();
  }
  if (!(s = b.check_names(tensors))) return s;

  // resample_filter buffers, when present, must be the standard [1,3,3,1]⊗[1,3,3,1]/64.
  for (const auto& t : tensors) {
    const std::string& n = t.name;
    if (n.size() < 16 || n.compare(n.size() - 16, 16, ".resample_filter") != 0) continue;
    const float* f = nullptr;
    if (!(s = b.load(n, &f))) return s;
    static const float k1[4] = {1, 3, 3, 1};
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j)
        if (std::fabs(f[i * 4 + j] - k1[i] * k1[j] / 64.0f) > 1e-6f)
          return Status::Error("tensor " + json::quote(n) + " is not the standard [1,3,3,1] filter");
    net->storage.pop_back();  // not needed at run time
  }

  // ModelInfo.
  ModelInfo& info = net->info;
  info.arch = "stylegan2";
  info.z_dim = cfg.z_dim;
  info.w_dim = cfg.w_dim;
  info.c_dim = cfg.c_dim;
  info.img_resolution = R;
  info.img_channels = cfg.img_channels;
  info.num_ws = cfg.num_ws;
  info.mapping_layers = cfg.mapping_layers;
  info.conv_clamp = float(cfg.conv_clamp);
  // Parameters: every stored tensor except the buffers (w_avg, noise_const, resample_filter).
  int64_t params = 0;
  for (const auto& kv : b.expected()) {
    const std::string& n = kv.first;
    if (n == "mapping.w_avg" || (n.size() > 12 && n.compare(n.size() - 12, 12, ".noise_const") == 0)) continue;
    int64_t m = 1;
    for (int64_t d : kv.second) m *= d;
    params += m;
  }
  info.num_params = params;

  // Mapping description.
  MappingDesc& map = net->mapping;
  map.z_dim = cfg.z_dim;
  map.c_dim = cfg.c_dim;
  map.w_dim = cfg.w_dim;
  map.num_ws = cfg.num_ws;
  map.has_embed = cd > 0;
  if (cd > 0) {
    FcDesc& e = map.embed;
    e.in = cfg.c_dim;
    e.out = cfg.w_dim;
    if (!(s = b.load("mapping.embed.weight", &e.W))) return s;
    if (!(s = b.load("mapping.embed.bias", &e.b))) return s;
    e.w_gain = float(1.0 / std::sqrt(double(cfg.c_dim)));
    e.b_gain = 1.0f;
    e.lrelu = false;
  }
  for (int i = 0; i < cfg.mapping_layers; ++i) {
    FcDesc f;
    f.in = int(i == 0 ? z + (cd > 0 ? w : 0) : w);
    f.out = cfg.w_dim;
    if (!(s = b.load("mapping.fc" + std::to_string(i) + ".weight", &f.W))) return s;
    if (!(s = b.load("mapping.fc" + std::to_string(i) + ".bias", &f.b))) return s;
    f.w_gain = float(cfg.lr_mul / std::sqrt(double(f.in)));
    f.b_gain = float(cfg.lr_mul);
    f.lrelu = true;
    map.fcs.push_back(f);
  }
  if (!(s = b.load("mapping.w_avg", &map.w_avg))) return s;

  // Synthesis layers in execution order.
  if (!(s = b.load("synthesis.b4.const", &net->const_input))) return s;
  net->const_ch = int(C(4));
  const float clamp = float(cfg.conv_clamp);
  const float affine_gain = float(1.0 / std::sqrt(double(cfg.w_dim)));
  int w_idx = 0;
  int style_off = 0;
  for (int r : block_res) {
    std::string pre = "b" + std::to_string(r);
    int cin = int(r == 4 ? C(4) : C(r / 2)), cout = int(C(r));
    for (int ci = (r == 4 ? 1 : 0); ci < 2; ++ci) {
      LayerDesc L;
      L.kind = LayerDesc::Conv;
      L.name = pre + (ci == 0 ? ".conv0" : ".conv1");
      std::string lp = "synthesis." + L.name + ".";
      L.up = ci == 0 ? 2 : 1;
      L.out_res = r;
      L.in_res = r / L.up;
      L.in_ch = ci == 0 ? cin : cout;
      L.out_ch = cout;
      L.ksize = 3;
      L.w_index = w_idx + (r == 4 ? 0 : ci);
      L.affine_gain = affine_gain;
      L.style_gain = 1.0f;
      L.style_offset = style_off;
      style_off += L.in_ch;
      L.demodulate = true;
      L.activate = true;
      L.clamp = clamp;
      const float* ns = nullptr;
      if (!(s = b.load(lp + "affine.weight", &L.affine_W))) return s;
      if (!(s = b.load(lp + "affine.bias", &L.affine_b))) return s;
      if (!(s = b.view(lp + "weight", &L.weight_src))) return s;
      if (!(s = b.load(lp + "bias", &L.bias))) return s;
      if (!(s = b.load(lp + "noise_strength", &ns))) return s;
      if (!(s = b.load(lp + "noise_const", &L.noise_const))) return s;
      L.noise_strength = ns[0];
      L.has_noise = true;
      net->layers.push_back(std::move(L));
    }
    LayerDesc T;
    T.kind = LayerDesc::ToRGB;
    T.name = pre + ".torgb";
    std::string lp = "synthesis." + T.name + ".";
    T.in_res = T.out_res = r;
    T.in_ch = cout;
    T.out_ch = cfg.img_channels;
    T.up = 1;
    T.ksize = 1;
    T.w_index = w_idx + (r == 4 ? 1 : 2);
    T.affine_gain = affine_gain;
    T.style_gain = float(1.0 / std::sqrt(double(cout)));
    T.style_offset = style_off;
    style_off += T.in_ch;
    T.demodulate = false;
    T.activate = false;
    T.clamp = clamp;
    if (!(s = b.load(lp + "affine.weight", &T.affine_W))) return s;
    if (!(s = b.load(lp + "affine.bias", &T.affine_b))) return s;
    if (!(s = b.load(lp + "weight", &T.weight))) return s;
    if (!(s = b.load(lp + "bias", &T.bias))) return s;
    net->layers.push_back(std::move(T));
    w_idx += (r == 4 ? 1 : 2);
  }
  net->style_dim = style_off;
  if (w_idx + 1 != cfg.num_ws) return Status::Error("internal: w index count mismatch");
  return Status::Ok();
}

// ---- ProGAN (docs/progan.md) --------------------------------------------------------------

// A finite number member of an object.
Status get_number(const json::Value& obj, const std::string& where, const char* key, double* out) {
  const json::Value* v = obj.get(key);
  if (!v) return Status::Error("config: missing \"" + where + key + "\"");
  if (!v->is_number() || !std::isfinite(v->number))
    return Status::Error("config: \"" + where + key + "\" must be a finite number");
  *out = v->number;
  return Status::Ok();
}

Status build_progan(const json::Value& root, const std::vector<TensorView>& tensors, Network* net,
                    std::vector<ExpectedTensor>* declared) {
  *net = Network();
  net->arch = Arch::ProGAN;
  Status s;
  int64_t v = 0;
  if (!(s = get_int(root, "z_dim", 1, 1 << 16, true, &v))) return s;
  const int Z = int(v);
  if (!(s = get_int(root, "img_resolution", 4, 1 << 14, true, &v))) return s;
  const int R = int(v);
  if (R & (R - 1)) return Status::Error("config: img_resolution must be a power of two");
  if (!(s = get_int(root, "img_channels", 1, 64, true, &v))) return s;
  const int IC = int(v);
  int nres = 0;
  while ((4 << nres) <= R) ++nres;  // resolutions 4 … R
  const json::Value* ch = root.get("channels");
  if (!ch || !ch->is_array()) return Status::Error("config: missing \"channels\" (an array of widths)");
  if (int(ch->array.size()) != nres)
    return Status::Error("config: \"channels\" has " + std::to_string(ch->array.size()) + " widths, expected " +
                         std::to_string(nres) + " (resolutions 4 … " + std::to_string(R) + ")");
  std::vector<int64_t> C;
  for (const json::Value& c : ch->array) {
    if (!c.is_number() || c.number != std::floor(c.number) || c.number < 1 || c.number > (1 << 16))
      return Status::Error("config: \"channels\" must hold integers in [1, 65536]");
    C.push_back(int64_t(c.number));
  }
  double slope = 0, eps = 0, gain = 0;
  if (!(s = get_number(root, "", "lrelu_slope", &slope))) return s;
  if (!(slope >= 0 && slope < 1)) return Status::Error("config: \"lrelu_slope\" must be in [0, 1)");
  if (!(s = get_number(root, "", "pixelnorm_eps", &eps))) return s;
  if (!(eps > 0 && eps < 1)) return Status::Error("config: \"pixelnorm_eps\" must be in (0, 1)");
  if (!(s = get_number(root, "", "weight_gain", &gain))) return s;
  if (gain != 1) return Status::Error("config: only \"weight_gain\": 1 is supported (gains folded into the weights)");
  const json::Value* nl = root.get("normalize_latent");
  if (!nl || nl->type != json::Value::Bool || !nl->boolean)
    return Status::Error("config: only \"normalize_latent\": true is supported");
  const json::Value* up = root.get("upsample");
  if (!up || !up->is_string() || up->str != "nearest")
    return Status::Error("config: only \"upsample\": \"nearest\" is supported");
  const json::Value* out = root.get("output");
  if (!out || !out->is_object()) return Status::Error("config: missing \"output\" (an object)");
  OutputMap& om = net->output;
  om.mode = OutputMap::RoundF64;
  if (!(s = get_number(*out, "output.", "scale", &om.scale))) return s;
  if (!(s = get_number(*out, "output.", "offset", &om.offset))) return s;
  if (const json::Value* clip = out->get("tfhub_clip")) {
    if (!clip->is_array() || clip->array.size() != 2 || !clip->array[0].is_number() || !clip->array[1].is_number() ||
        !(clip->array[0].number <= clip->array[1].number))
      return Status::Error("config: \"output.tfhub_clip\" must be [lo, hi] with lo <= hi");
    om.has_tfhub_clip = true;
    om.tfhub_clip[0] = clip->array[0].number;
    om.tfhub_clip[1] = clip->array[1].number;
  }

  // Tensors, in the file's canonical order.
  Builder b(tensors, net, "a ProGAN generator");
  b.expect("progan.dense.weight", {16 * C[0], Z});
  b.expect("progan.dense.bias", {C[0]});
  b.expect("progan.b4.conv1.weight", {C[0], C[0], 3, 3});
  b.expect("progan.b4.conv1.bias", {C[0]});
  for (int i = 1; i < nres; ++i) {
    const std::string pre = "progan.b" + std::to_string(4 << i) + ".";
    b.expect(pre + "conv0.weight", {C[size_t(i)], C[size_t(i - 1)], 3, 3});
    b.expect(pre + "conv0.bias", {C[size_t(i)]});
    b.expect(pre + "conv1.weight", {C[size_t(i)], C[size_t(i)], 3, 3});
    b.expect(pre + "conv1.bias", {C[size_t(i)]});
  }
  b.expect("progan.torgb.weight", {IC, C.back(), 1, 1});
  b.expect("progan.torgb.bias", {IC});
  if (declared) {
    *declared = b.declared();
    return Status::Ok();
  }
  if (!(s = b.check_names(tensors))) return s;

  ModelInfo& info = net->info;
  info.arch = "progan";
  info.z_dim = Z;
  info.w_dim = 0;
  info.c_dim = 0;
  info.num_ws = 0;
  info.mapping_layers = 0;
  info.img_resolution = R;
  info.img_channels = IC;
  info.conv_clamp = -1.0f;
  info.num_params = b.total_expected_numel();
  net->mapping = MappingDesc();
  net->mapping.z_dim = Z;
  net->normalize_latent = true;
  net->latent_eps = float(eps);
  net->style_dim = 0;

  auto base = [&](LayerDesc* L) {
    L->modulated = false;
    L->demodulate = false;
    L->activate = true;
    L->lrelu_slope = float(slope);
    L->act_gain = 1.0f;
    L->pixel_norm = true;
    L->pixel_norm_eps = float(eps);
    L->has_noise = false;
    L->clamp = -1.0f;
  };
  {
    LayerDesc D;
    base(&D);
    D.kind = LayerDesc::Dense;
    D.name = "dense";
    D.in_res = 1;
    D.out_res = 4;
    D.in_ch = Z;
    D.out_ch = int(C[0]);
    D.ksize = 4;
    if (!(s = b.load("progan.dense.weight", &D.weight))) return s;
    if (!(s = b.load("progan.dense.bias", &D.bias))) return s;
    net->layers.push_back(std::move(D));
  }
  for (int i = 0; i < nres; ++i) {
    const int r = 4 << i;
    for (int ci = (i == 0 ? 1 : 0); ci < 2; ++ci) {
      LayerDesc L;
      base(&L);
      L.kind = LayerDesc::Conv;
      L.name = "b" + std::to_string(r) + (ci == 0 ? ".conv0" : ".conv1");
      L.up = ci == 0 ? 2 : 1;
      L.resample = LayerDesc::Nearest;
      L.out_res = r;
      L.in_res = r / L.up;
      L.in_ch = int(ci == 0 ? C[size_t(i - 1)] : C[size_t(i)]);
      L.out_ch = int(C[size_t(i)]);
      L.ksize = 3;
      const std::string lp = "progan." + L.name + ".";
      if (!(s = b.view(lp + "weight", &L.weight_src))) return s;
      if (!(s = b.load(lp + "bias", &L.bias))) return s;
      net->layers.push_back(std::move(L));
    }
  }
  {
    LayerDesc T;
    base(&T);
    T.kind = LayerDesc::ToRGB;
    T.name = "torgb";
    T.in_res = T.out_res = R;
    T.in_ch = int(C.back());
    T.out_ch = IC;
    T.ksize = 1;
    T.activate = false;
    T.pixel_norm = false;
    if (!(s = b.load("progan.torgb.weight", &T.weight))) return s;
    if (!(s = b.load("progan.torgb.bias", &T.bias))) return s;
    net->layers.push_back(std::move(T));
  }
  return Status::Ok();
}

Status build(const std::string& config_json, const std::vector<TensorView>& tensors, Network* net,
             std::vector<ExpectedTensor>* declared = nullptr) {
  json::Value root;
  json::Limits lim;
  lim.max_bytes = 1 << 20;
  lim.max_depth = 16;
  Status s = json::parse(config_json, &root, lim);
  if (!s) return Status::Error("config: " + s.message);
  if (!root.is_object()) return Status::Error("config: not a JSON object");
  const json::Value* arch = root.get("arch");
  if (!arch || !arch->is_string()) return Status::Error("config: missing \"arch\"");
  if (arch->str == "stylegan2") return build_stylegan2(root, tensors, net, declared);
  if (arch->str == "progan") return build_progan(root, tensors, net, declared);
  return Status::Error("config: unsupported arch " + json::quote(arch->str) + " (supported: stylegan2, progan)");
}

}  // namespace

Status expected_tensors(const std::string& config_json, std::vector<ExpectedTensor>* out) {
  if (!out) return Status::Error("expected_tensors: null output");
  out->clear();
  try {
    Network scratch;
    return build(config_json, {}, &scratch, out);
  } catch (const std::bad_alloc&) {
    return Status::Error("out of memory while listing the tensors");
  } catch (...) {
    return Status::Error("unexpected error while listing the tensors");
  }
}

Status build_network(const std::string& config_json, const std::vector<TensorView>& tensors, Network* out) {
  if (!out) return Status::Error("build_network: null output");
  try {
    Status s = build(config_json, tensors, out);
    if (!s) *out = Network();
    return s;
  } catch (const std::bad_alloc&) {
    *out = Network();
    return Status::Error("out of memory while loading the network");
  } catch (const std::exception& e) {
    *out = Network();
    return Status::Error(std::string("error while loading the network: ") + e.what());
  } catch (...) {
    *out = Network();
    return Status::Error("unexpected error while loading the network");
  }
}

const float* layer_weight_f32(const LayerDesc& L, std::vector<float>* tmp) {
  if (L.weight || !L.weight_src.data) return L.weight;
  // Always a copy, F32 too: a tensor of a file buffer need not be 4-byte aligned.
  tmp->resize(tensor_numel(L.weight_src));
  widen_to_f32(L.weight_src, tmp->data());
  return tmp->data();
}

}  // namespace facegan
