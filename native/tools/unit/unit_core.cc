// facegan-unit: the core's network description (native/core/network.cc): conv weights are kept
// as the caller's stored tensors (F32 / F16 / BF16) and widened by the backends while they pack
// them (layer_weight_f32), so the checks the widened copy used to get run on the stored bits.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "random_model.h"
#include "safetensors.h"
#include "unit.h"

namespace facegan {
namespace {

using unit::Register;

uint16_t to_half(float f) {  // round to nearest even, finite inputs of the half range only
  uint32_t b;
  std::memcpy(&b, &f, 4);
  const uint32_t sign = (b >> 16) & 0x8000;
  int e = int((b >> 23) & 0xff) - 127 + 15;
  uint32_t m = b & 0x7fffff;
  if (e <= 0) return uint16_t(sign);  // (test data stays in the normal range)
  uint32_t h = (uint32_t(e) << 10) | (m >> 13);
  const uint32_t rest = m & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) ++h;
  return uint16_t(sign | h);
}

// The tiny model with one conv weight re-stored in 16 bits; `poke` may then spoil it.
struct Model16 {
  tools::RandomModel m;
  std::vector<uint16_t> bits;
  std::string name;
};

void make16(DType dtype, Model16* out) {
  tools::RandomModelSpec spec;
  CHECK(tools::random_model_spec("tiny", &spec), "spec tiny");
  tools::make_random_model(spec, 7, &out->m);
  for (TensorView& t : out->m.tensors) {
    const bool conv = t.name.find("synthesis.") == 0 && t.shape.size() == 4 && t.shape[2] == 3;
    if (!conv) continue;
    const float* f = static_cast<const float*>(t.data);
    size_t n = t.nbytes / 4;
    out->bits.resize(n);
    for (size_t i = 0; i < n; ++i) {
      uint32_t b;
      std::memcpy(&b, &f[i], 4);
      out->bits[i] = dtype == DType::F16 ? to_half(f[i]) : uint16_t(b >> 16);
    }
    t.dtype = dtype;
    t.data = out->bits.data();
    t.nbytes = n * 2;
    out->name = t.name;
    return;
  }
  CHECK(false, "the tiny model has a 3x3 conv weight");
}

void test_conv_weights_as_stored() {
  for (DType dt : {DType::F16, DType::BF16}) {
    const char* dn = dt == DType::F16 ? "F16" : "BF16";
    Model16 md;
    make16(dt, &md);
    Network net;
    Status s = build_network(md.m.config_json, md.m.tensors, &net);
    CHECK(s.ok, std::string(dn) + ": " + s.message);
    if (!s.ok) continue;
    int found = 0;
    for (const LayerDesc& L : net.layers) {
      if (L.kind != LayerDesc::Conv) continue;
      // No float32 copy in the network: the weights are read through layer_weight_f32.
      CHECK(L.weight == nullptr && L.weight_src.data != nullptr, L.name + ": conv weights kept as stored");
      if (md.name != L.weight_src.name) continue;
      ++found;
      std::vector<float> w;
      const float* p = layer_weight_f32(L, &w);
      CHECK(p == w.data() && w.size() == md.bits.size(), std::string(dn) + ": widened into the caller's buffer");
      size_t bad = 0;
      for (size_t i = 0; i < w.size() && i < md.bits.size(); ++i) {
        const float want = dt == DType::F16 ? half_to_float(md.bits[i]) : bf16_to_float(md.bits[i]);
        if (std::memcmp(&w[i], &want, 4) != 0) ++bad;
      }
      CHECK(bad == 0, std::string(dn) + ": " + std::to_string(bad) + " widened values differ");
    }
    CHECK(found == 1, std::string(dn) + ": the re-stored layer was seen");

    // Non-finite stored values are refused by name and index, as the widened copy was.
    for (uint16_t badbits : {uint16_t(dt == DType::F16 ? 0x7c00 : 0x7f80), uint16_t(dt == DType::F16 ? 0xfe01 : 0xffc1)}) {
      Model16 b;
      make16(dt, &b);
      b.bits[5] = badbits;
      Network bn;
      Status e = build_network(b.m.config_json, b.m.tensors, &bn);
      CHECK(!e.ok && e.message.find(b.name) != std::string::npos &&
                e.message.find("non-finite value at index 5") != std::string::npos,
            std::string(dn) + ": " + e.message);
    }
    // The largest finite values are accepted (only the all-ones exponent is Inf / NaN).
    Model16 big;
    make16(dt, &big);
    big.bits[3] = dt == DType::F16 ? 0x7bff : 0x7f7f;
    Network gn;
    Status ok = build_network(big.m.config_json, big.m.tensors, &gn);
    CHECK(ok.ok, std::string(dn) + " max finite: " + ok.message);
  }
}

const Register kCases(__FILE__, {
    {"network: conv weights kept as stored (F16 / BF16), widened on demand, non-finite refused", test_conv_weights_as_stored},
});

}  // namespace
}  // namespace facegan
