// The Hopper (sm_90a) modulated conv: wgmma + TMA + an mbarrier pipeline (modconv_sm90.cu). The
// backend calls it for the layers it fits, on a compute capability 9.0 device, in place of
// launch_modconv; the arguments and the packed weights are launch_modconv's (the mma tiles').
#pragma once

#include "kernels.h"

namespace facegan {
namespace cuda {

struct Sm90Cfg {
  static constexpr int THREADS = 256;            // two warpgroups, 64 rows each
  static constexpr int TILE_H = 8, TILE_W = 16;  // the block's 128 rows: 8 x 16 input-grid pixels
  static constexpr int BK = 64;                  // k per stage (one 128-byte row of 16-bit elements)
  static constexpr int STAGES = 4;
  static constexpr unsigned A_BYTES = 128 * BK * 2;
  // Columns per block BN: 128, or 64 for layers of at most 64 columns.
  static constexpr unsigned b_bytes(int bn) { return (unsigned)bn * BK * 2; }
  // The stages, 1024 bytes to align them, one 8-byte mbarrier per stage.
  static constexpr int smem_bytes(int bn) { return STAGES * (int)(A_BYTES + b_bytes(bn)) + 1024 + 8 * STAGES; }
};
// The block's column count for a layer of N columns.
inline int sm90_bn(int N) { return N <= 64 ? 64 : 128; }

// The layer fits the kernel: a plain 3x3 conv (up 1; not the up-convs' phases), 16-bit,
// Cin % 64 == 0, more than 32 columns (Npad a multiple of 32, Kpad == K: the tensor-core packing),
// a per-sample contiguous input, an input grid of at least 8 x 16, no nearest-x2 input, input and
// weights 16-byte aligned (TMA).
bool modconv_sm90_fits(const ConvArgs& a, ActType t);
// The device has compute capability 9.0 and the sm_90a kernel was built for it.
bool modconv_sm90_available(int device);
Status launch_modconv_sm90(const ConvArgs& a, ActType t, cudaStream_t stream);

}  // namespace cuda
}  // namespace facegan
