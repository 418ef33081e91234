// fg_emu internals shared by runtime.cc and ptx.cc.
#pragma once

#include <cstdint>
#include <string>

namespace fg_emu {

constexpr int kMaxCollectiveWords = 20;
// One lane's part of a warp collective: its inputs, then the outputs the warp computed for it.
struct LaneSlot {
  int kind = 0;
  unsigned mask = 0;
  const void* tag = nullptr;
  uint64_t in[kMaxCollectiveWords];
  uint64_t out[kMaxCollectiveWords];
};

// This lane's slot (valid until its next collective).
LaneSlot* lane_slot();
// Waits for the lanes of `mask` to reach the same collective (kind, tag); the last to arrive
// runs `compute` for all of them (lanes[l] null for lanes outside the mask).
void collective(int kind, unsigned mask, const void* tag,
                void (*compute)(LaneSlot* const* lanes, unsigned mask, const void* tag));
// Fails the running kernel (a fault reported at the next synchronisation).
[[noreturn]] void fail_kernel(const std::string& why);

}  // namespace fg_emu
