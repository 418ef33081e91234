// Registers this emulator library's backend (compiled once per emulated architecture: the names
// are set by CMake, see facegan_emu_library).
#include "emu_backend.h"

namespace facegan {

void register_cuda_emu_backend() {
  register_backend({FG_EMU_BACKEND_NAME, &cuda_backend_available, &create_cuda_backend, true});
}

}  // namespace facegan
