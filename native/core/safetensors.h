// Reading safetensors files (the tools' path; the Node binding gets tensors from JS).
// The file is untrusted: the header is parsed with bounds, every entry is checked (dtype,
// shape, offsets inside the data, sizes consistent, no overlaps or holes) before any view
// is handed out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "facegan.h"

namespace facegan {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;  // "F32", "F16", "BF16", "F64", "U8", "I64", ... as in the header
  size_t elem_size = 0;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // not necessarily aligned
  size_t nbytes = 0;
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

class SafetensorsFile {
 public:
  // Maps (or reads) the file and validates it.
  static Status open(const std::string& path, std::unique_ptr<SafetensorsFile>* out);
  // Validates a buffer the caller keeps alive for the lifetime of the result.
  static Status from_memory(const void* data, size_t size, std::unique_ptr<SafetensorsFile>* out);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  const SafetensorsEntry* find(const std::string& name) const;
  const std::vector<std::pair<std::string, std::string>>& metadata() const { return metadata_; }
  // The metadata value for `key`, or nullptr.
  const std::string* metadata_value(const std::string& key) const;

  // Views of every tensor for Generator::create; fails (naming the tensor) when a tensor's
  // dtype is not F32 / F16 / BF16.
  Status tensor_views(std::vector<TensorView>* out) const;

 private:
  SafetensorsFile() = default;
  Status parse(const uint8_t* data, size_t size);

  std::vector<SafetensorsEntry> entries_;
  std::vector<std::pair<std::string, std::string>> metadata_;
  // Backing storage: an mmap (map_/map_size_) or a heap copy (buffer_), or none (from_memory).
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::vector<uint8_t> buffer_;
};

// Element size of a safetensors dtype string, 0 when unknown.
size_t safetensors_dtype_size(const std::string& dtype);

// IEEE half / bfloat16 → float.
float half_to_float(uint16_t h);
float bf16_to_float(uint16_t h);

}  // namespace facegan
