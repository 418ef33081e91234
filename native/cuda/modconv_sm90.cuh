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
  static constexpr unsigned A_BYTES = 128 * BK * 2;
  // Columns per block BN: 128, or 64 for layers of at most 64 columns.
  static constexpr unsigned b_bytes(int bn) { return (unsigned)bn * BK * 2; }
  // Pipeline stages: 3 of 32 KB for BN 128 (97 KB per block: two blocks per SM), 4 of 24 KB for
  // BN 64 (97 KB as well).
  static constexpr int stages(int bn) { return bn == 128 ? 3 : 4; }
  // wgmma groups a warpgroup leaves pending at the end of a k-tile (wgmma.wait_group N).
  static constexpr int WGMMA_PENDING = 1;
  // How many k-tiles ahead thread 0 issues the TMA loads. The stage it refills at k-tile kt holds
  // k-tile kt + prefetch - stages, whose wgmma must have completed before the block barrier of
  // k-tile kt: every warpgroup waited (at kt - 1) until at most WGMMA_PENDING groups, k-tiles
  // kt - WGMMA_PENDING .. kt - 1, remain; so kt + prefetch - stages <= kt - 1 - WGMMA_PENDING.
  static constexpr int prefetch(int bn) { return stages(bn) - 1 - WGMMA_PENDING; }
  // The stages, 1024 bytes to align them, one 8-byte mbarrier per stage.
  static constexpr int smem_bytes(int bn) { return stages(bn) * (int)(A_BYTES + b_bytes(bn)) + 1024 + 8 * stages(bn); }
};
// The block's column count for a layer of N columns.
inline int sm90_bn(int N) { return N <= 64 ? 64 : 128; }

// The layer fits the kernel: a 3x3 conv (up 1) or an up-conv (up 2, its buffer t given: the four
// phases, then modconv.cu's FIR pass), in the layer's geometry (phase 0), 16-bit, Cin % 64 == 0,
// more than 32 columns (Npad a multiple of 32, Kpad == conv_packed_k: the tensor-core packing, no
// k padding), a per-sample contiguous input, an input grid of at least 8 x 16, no nearest-x2
// input, input and weights 16-byte aligned (TMA).
bool modconv_sm90_fits(const ConvArgs& a, ActType t);
// The device has compute capability 9.0 and the sm_90a kernel was built for it.
bool modconv_sm90_available(int device);
Status launch_modconv_sm90(const ConvArgs& a, ActType t, cudaStream_t stream);

}  // namespace cuda
}  // namespace facegan
