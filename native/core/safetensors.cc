#include "safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <new>

#include "json.h"

#if defined(_WIN32)
#include <cstdio>
#else
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

namespace facegan {

namespace {
constexpr uint64_t kMaxHeader = uint64_t(100) << 20;  // 100 MB, as the reference implementation
constexpr int kMaxRank = 8;
}  // namespace

size_t safetensors_dtype_size(const std::string& dt) {
  if (dt == "F64" || dt == "I64" || dt == "U64") return 8;
  if (dt == "F32" || dt == "I32" || dt == "U32") return 4;
  if (dt == "F16" || dt == "BF16" || dt == "I16" || dt == "U16") return 2;
  if (dt == "U8" || dt == "I8" || dt == "BOOL" || dt == "F8_E4M3" || dt == "F8_E5M2") return 1;
  return 0;
}

float half_to_float(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1F;
  uint32_t mant = h & 0x3FF;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do { ++e; mant <<= 1; } while ((mant & 0x400) == 0);
      mant &= 0x3FF;
      bits = sign | (uint32_t(127 - 15 - e) << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7F800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float bf16_to_float(uint16_t h) {
  uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

SafetensorsFile::~SafetensorsFile() {
#if !defined(_WIN32)
  if (map_) munmap(map_, map_size_);
#endif
}

const SafetensorsEntry* SafetensorsFile::find(const std::string& name) const {
  for (const auto& e : entries_)
    if (e.name == name) return &e;
  return nullptr;
}

const std::string* SafetensorsFile::metadata_value(const std::string& key) const {
  for (const auto& kv : metadata_)
    if (kv.first == key) return &kv.second;
  return nullptr;
}

Status SafetensorsFile::open(const std::string& path, std::unique_ptr<SafetensorsFile>* out) {
  try {
    std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
#if defined(_WIN32)
    FILE* fp = std::fopen(path.c_str(), "rb");
    if (!fp) return Status::Error("cannot open " + path);
    std::fseek(fp, 0, SEEK_END);
    long long sz = _ftelli64(fp);
    std::fseek(fp, 0, SEEK_SET);
    if (sz < 0) { std::fclose(fp); return Status::Error("cannot read " + path); }
    f->buffer_.resize(size_t(sz));
    size_t got = sz ? std::fread(f->buffer_.data(), 1, size_t(sz), fp) : 0;
    std::fclose(fp);
    if (got != size_t(sz)) return Status::Error("cannot read " + path);
    const uint8_t* data = f->buffer_.data();
    size_t size = f->buffer_.size();
#else
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Status::Error("cannot open " + path + ": " + std::strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      return Status::Error(path + " is not a regular file");
    }
    size_t size = size_t(st.st_size);
    const uint8_t* data = nullptr;
    if (size > 0) {
      void* m = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
      if (m == MAP_FAILED) {
        ::close(fd);
        return Status::Error("cannot map " + path + ": " + std::strerror(errno));
      }
      f->map_ = m;
      f->map_size_ = size;
      data = static_cast<const uint8_t*>(m);
    }
    ::close(fd);
#endif
    Status s = f->parse(data, size);
    if (!s) return Status::Error(path + ": " + s.message);
    *out = std::move(f);
    return Status::Ok();
  } catch (const std::bad_alloc&) {
    return Status::Error("out of memory reading " + path);
  } catch (...) {
    return Status::Error("unexpected error reading " + path);
  }
}

Status SafetensorsFile::from_memory(const void* data, size_t size, std::unique_ptr<SafetensorsFile>* out) {
  try {
    std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
    Status s = f->parse(static_cast<const uint8_t*>(data), size);
    if (!s) return s;
    *out = std::move(f);
    return Status::Ok();
  } catch (const std::bad_alloc&) {
    return Status::Error("out of memory parsing safetensors");
  } catch (...) {
    return Status::Error("unexpected error parsing safetensors");
  }
}

Status SafetensorsFile::parse(const uint8_t* data, size_t size) {
  if (size < 8) return Status::Error("not a safetensors file (shorter than 8 bytes)");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];
  if (n < 2) return Status::Error("safetensors header too short");
  if (n > kMaxHeader) return Status::Error("safetensors header too large (" + std::to_string(n) + " bytes)");
  if (n > size - 8) return Status::Error("safetensors header length exceeds the file size");
  const char* hdr = reinterpret_cast<const char*>(data + 8);
  if (hdr[0] != '{') return Status::Error("safetensors header is not a JSON object");
  json::Limits lim;
  lim.max_bytes = size_t(kMaxHeader);
  lim.max_depth = 8;
  json::Value root;
  Status s = json::parse(hdr, size_t(n), &root, lim);
  if (!s) return Status::Error("safetensors header: " + s.message);
  if (!root.is_object()) return Status::Error("safetensors header is not a JSON object");
  const uint8_t* body = data + 8 + n;
  const uint64_t body_size = uint64_t(size) - 8 - n;

  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& kv : root.object) {
    const std::string& name = kv.first;
    const json::Value& v = kv.second;
    if (name == "__metadata__") {
      if (!v.is_object()) return Status::Error("__metadata__ is not an object");
      for (const auto& m : v.object) {
        if (!m.second.is_string()) return Status::Error("__metadata__ value " + json::quote(m.first) + " is not a string");
        metadata_.emplace_back(m.first, m.second.str);
      }
      continue;
    }
    const std::string qn = json::quote(name);
    if (name.empty()) return Status::Error("tensor with an empty name");
    if (!v.is_object()) return Status::Error("tensor " + qn + ": entry is not an object");
    const json::Value* dt = v.get("dtype");
    const json::Value* shape = v.get("shape");
    const json::Value* offs = v.get("data_offsets");
    if (!dt || !shape || !offs || v.object.size() != 3)
      return Status::Error("tensor " + qn + ": expected exactly dtype, shape and data_offsets");
    if (!dt->is_string()) return Status::Error("tensor " + qn + ": dtype is not a string");
    SafetensorsEntry e;
    e.name = name;
    e.dtype = dt->str;
    e.elem_size = safetensors_dtype_size(e.dtype);
    if (!e.elem_size) return Status::Error("tensor " + qn + ": unknown dtype " + json::quote(e.dtype));
    if (!shape->is_array() || shape->array.size() > size_t(kMaxRank))
      return Status::Error("tensor " + qn + ": shape must be an array of at most 8 dimensions");
    uint64_t numel = 1;
    bool overflow = false;
    for (const auto& d : shape->array) {
      if (!d.is_number() || !d.is_uint || d.uint_value > uint64_t(std::numeric_limits<int64_t>::max()))
        return Status::Error("tensor " + qn + ": shape entries must be non-negative integers");
      e.shape.push_back(int64_t(d.uint_value));
      if (d.uint_value != 0 && numel > std::numeric_limits<uint64_t>::max() / d.uint_value) overflow = true;
      else numel *= d.uint_value;
    }
    if (!offs->is_array() || offs->array.size() != 2 || !offs->array[0].is_uint || !offs->array[1].is_uint)
      return Status::Error("tensor " + qn + ": data_offsets must be two non-negative integers");
    uint64_t b = offs->array[0].uint_value, en = offs->array[1].uint_value;
    if (b > en || en > body_size)
      return Status::Error("tensor " + qn + ": data_offsets [" + std::to_string(b) + ", " + std::to_string(en) +
                           "] outside the data (" + std::to_string(body_size) + " bytes)");
    if (overflow || numel > std::numeric_limits<uint64_t>::max() / e.elem_size || numel * e.elem_size != en - b)
      return Status::Error("tensor " + qn + ": data size " + std::to_string(en - b) +
                           " bytes does not match its dtype and shape");
    e.data = body + b;
    e.nbytes = size_t(en - b);
    ranges.emplace_back(b, en);
    entries_.push_back(std::move(e));
  }
  // The data must be covered exactly: no overlaps, no holes, nothing after the last tensor.
  std::sort(ranges.begin(), ranges.end());
  uint64_t pos = 0;
  for (const auto& r : ranges) {
    if (r.first == r.second) continue;  // empty tensors take no space
    if (r.first < pos) return Status::Error("tensor data regions overlap");
    if (r.first > pos) return Status::Error("tensor data has a hole (unreferenced bytes)");
    pos = r.second;
  }
  if (pos != body_size) return Status::Error("unreferenced bytes after the last tensor");
  return Status::Ok();
}

Status SafetensorsFile::tensor_views(std::vector<TensorView>* out) const {
  out->clear();
  out->reserve(entries_.size());
  for (const auto& e : entries_) {
    TensorView v;
    v.name = e.name;
    if (e.dtype == "F32") v.dtype = DType::F32;
    else if (e.dtype == "F16") v.dtype = DType::F16;
    else if (e.dtype == "BF16") v.dtype = DType::BF16;
    else return Status::Error("tensor " + json::quote(e.name) + ": dtype " + e.dtype + " is not F32, F16 or BF16");
    v.shape = e.shape;
    v.data = e.data;
    v.nbytes = e.nbytes;
    out->push_back(std::move(v));
  }
  return Status::Ok();
}

}  // namespace facegan
