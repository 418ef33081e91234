// Registers this emulator library's backend (compiled once per emulated architecture: the names
// are set by CMake, see facegan_emu_library).
#include "emu_backend.h"

#ifdef FG_EMU_DEVICE_CC
#include "emu_control.h"
#endif

namespace facegan {

#ifdef FG_EMU_DEVICE_CC
namespace {
// This library's device code paths need a device of this compute capability (cuda-emu-sm90a: 9.0,
// where the backend picks the sm_90a kernels): the emulated device reports it from the moment
// the backend is created (one process-wide setting, as a machine has one GPU; tests that switch
// architectures reset it).
std::unique_ptr<Backend> create_with_device_cc() {
  fg_emu::config().cc = FG_EMU_DEVICE_CC;
  return create_cuda_backend();
}
}  // namespace
#endif

void register_cuda_emu_backend() {
#ifdef FG_EMU_DEVICE_CC
  register_backend({FG_EMU_BACKEND_NAME, &cuda_backend_available, &create_with_device_cc, true});
#else
  register_backend({FG_EMU_BACKEND_NAME, &cuda_backend_available, &create_cuda_backend, true});
#endif
}

}  // namespace facegan
