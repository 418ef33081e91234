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

// Waits for the 128 threads of the caller's warpgroup to reach the same warpgroup instruction
// (kind, tag); the last to arrive runs `compute` for all of them (lanes[0..127]).
void warpgroup_collective(int kind, const void* tag, void (*compute)(LaneSlot* const* lanes, const void* tag));

// mbarrier objects in shared memory (addresses are shared-window addresses, runtime.cc).
void mbar_init(unsigned addr, uint32_t count);
void mbar_arrive(unsigned addr, uint32_t count, int64_t expect_tx);  // arrive (with expect-tx bytes)
void mbar_complete_tx(unsigned addr, int64_t bytes);                // an async copy's completion
bool mbar_phase_done(unsigned addr, int parity);
// Suspends the thread until that phase has completed or TMA copies completing on this mbarrier
// are in flight (the thread then lands them itself, see ptx.cc).
void mbar_sleep(unsigned addr, int parity);

// Per-block state of the PTX emulation (ptx.cc): cleared when a block starts; at its end, a
// non-empty string names what was left unfinished (wgmma groups never waited for), a fault.
void ptx_block_start();
std::string ptx_block_end();
// TMA copies in flight that complete on this mbarrier (ptx.cc): any? / land them (a thread).
bool ptx_copies_pending(unsigned mbar);
void ptx_land_copies(unsigned mbar);
// The shared-memory race checker (runtime.cc): the calling thread's warp reads [addr, addr + bytes)
// of shared memory (an ldmatrix row; addr already bounds-checked). Faults on a write to those
// bytes by another warp since the last __syncthreads.
void shadow_read(unsigned addr, size_t bytes);
// Faults unless an mbarrier object can live at this shared address.
void mbar_word_check(unsigned addr);

// The stand-in for cuTensorMapEncodeTiled (cudaGetDriverEntryPointByVersion returns it): writes
// the emulator's own encoding into the 128-byte CUtensorMap; the TMA copies read it.
void* tensor_map_encoder();

}  // namespace fg_emu
