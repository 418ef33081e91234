#include "emu_backend.h"

namespace facegan {

void register_cuda_emu_backend() {
  register_backend({"cuda-emu", &cuda_emu_backend_available, &create_cuda_emu_backend, true});
}

}  // namespace facegan
