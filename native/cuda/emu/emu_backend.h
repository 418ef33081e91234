// The emulated CUDA backend: the CUDA backend's own sources (native/cuda) built against the CPU
// emulator (fg_emu). For the C++ tools only (facegan-unit, facegan-check, facegan-bench), never
// the addon. Plain C++: includes no CUDA or emulator header.
#pragma once

#include <memory>
#include <string>

#include "backend.h"

namespace facegan {

// Adds "cuda-emu" (hidden: created by name only, never chosen by "auto") to the registry.
void register_cuda_emu_backend();

// The emulated backend's entry points (backend_cuda.cu's cuda_backend_available /
// create_cuda_backend, renamed by the emulator build).
bool cuda_emu_backend_available(std::string* why_not);
std::unique_ptr<Backend> create_cuda_emu_backend();

}  // namespace facegan
