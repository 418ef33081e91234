// The emulated CUDA backend: the CUDA backend's own sources (native/cuda) built against the CPU
// emulator (fg_emu). For the C++ tools only (facegan-unit, facegan-check, facegan-bench), never
// the addon. Plain C++: includes no CUDA or emulator header.
#pragma once

#include <memory>
#include <string>

#include "backend.h"

namespace facegan {

// Add "cuda-emu" (the sm_80+ device code paths) and "cuda-emu-sm75" (sm_75's: fp16 as two
// m16n8k8 mma, no bf16) to the registry, hidden: created by name only, never chosen by "auto".
void register_cuda_emu_backend();
void register_cuda_emu_sm75_backend();
// "cuda-emu-sm90a": Hopper's sm_90a paths (the wgmma / TMA conv, modconv_sm90.cu); the emulated
// device reports compute capability 9.0 once this backend is created.
void register_cuda_emu_sm90a_backend();

// The emulated backends' entry points (backend_cuda.cu's cuda_backend_available /
// create_cuda_backend, renamed by the emulator build).
bool cuda_emu_backend_available(std::string* why_not);
std::unique_ptr<Backend> create_cuda_emu_backend();
bool cuda_emu_sm75_backend_available(std::string* why_not);
std::unique_ptr<Backend> create_cuda_emu_sm75_backend();
bool cuda_emu_sm90a_backend_available(std::string* why_not);
std::unique_ptr<Backend> create_cuda_emu_sm90a_backend();

}  // namespace facegan
