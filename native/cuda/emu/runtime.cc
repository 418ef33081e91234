// fg_emu runtime: fibers, the block scheduler, barriers and warp collectives, block-scope memory,
// the CUDA runtime API subset (memory, copies, streams, events, stream capture and graphs, device
// attributes, errors) and the checkers. See fg_emu.h for the model.
//
// Memory model of the emulated device (chosen to make ordering bugs loud, within what CUDA allows):
//  - cudaMalloc memory starts filled with 0xFF bytes (NaN as float, half and bfloat16);
//  - a synchronous cudaMemcpy from pageable host memory to the device may, per the CUDA docs,
//    return before the DMA completes; here its data lands only when the legacy default stream is
//    next synchronised with other work (an op on the legacy stream or a blocking stream, a device
//    or legacy-stream synchronisation, cudaFree). Kernels on a non-blocking stream do not wait for
//    it and read the NaN fill instead;
//  - copies between the device and pinned host memory (cudaMallocHost) are truly asynchronous:
//    they run at the next operation on their stream or at its synchronisation, not at the call;
//  - a fault inside a kernel (trap, deadlock, shared-memory bounds) is reported at the next
//    synchronising call, not at the launch, and is sticky until cudaDeviceReset, as on a GPU.
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "cuda_bf16.h"
#include "cuda_fp16.h"
#include "cuda_runtime.h"
#include "emu_control.h"
#include "emu_internal.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define FG_EMU_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__) || defined(FACEGAN_EMU_TSAN)
extern "C" {
void* __tsan_get_current_fiber(void);
void* __tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void* fiber);
void __tsan_switch_to_fiber(void* fiber, unsigned flags);
void __tsan_set_fiber_name(void* fiber, const char* name);
void __tsan_acquire(void* addr);
void __tsan_release(void* addr);
}
#define FG_EMU_TSAN 1
#endif

// ---------------------------------------------------------------------------------------------
// Context switch. x86-64 System V: save the callee-saved registers, MXCSR and the x87 control word
// on the old stack, swap stack pointers, restore. A fresh stack is laid out so that the first
// switch "returns" into fg_emu_fiber_trampoline with a 16-byte aligned stack.
#if defined(__x86_64__)
extern "C" void fg_emu_switch(void** save_sp, void* load_sp);
extern "C" void fg_emu_fiber_trampoline();
extern "C" void fg_emu_fiber_main();
asm(R"(
.text
.globl fg_emu_switch
.type fg_emu_switch,@function
fg_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size fg_emu_switch,.-fg_emu_switch
.globl fg_emu_fiber_trampoline
.type fg_emu_fiber_trampoline,@function
fg_emu_fiber_trampoline:
  call fg_emu_fiber_main
  ud2
.size fg_emu_fiber_trampoline,.-fg_emu_fiber_trampoline
.section .note.GNU-stack,"",@progbits
.text
)");
#else
#include <ucontext.h>
extern "C" void fg_emu_fiber_main();
#endif

namespace fg_emu {

thread_local ThreadCtx* tls_thread = nullptr;

namespace {

// ---------------------------------------------------------------------------------------------
// Configuration, statistics, errors.

Config g_config;
bool g_config_loaded = false;
Stats g_stats;
std::recursive_mutex g_mu;  // the emulated device is used by one host thread at a time

void load_config() {
  g_config = Config();
  if (const char* v = getenv("FACEGAN_EMU_MEMORY")) g_config.device_memory = (size_t)strtoull(v, nullptr, 10);
  if (const char* v = getenv("FACEGAN_EMU_FAIL_MALLOC")) g_config.fail_malloc_at = atoi(v);
  if (const char* v = getenv("FACEGAN_EMU_SCHEDULE")) {
    g_config.schedule = !strcmp(v, "threads") ? 1 : !strcmp(v, "threads-reverse") ? 2 : !strcmp(v, "shuffle") ? 3
                        : !strcmp(v, "warps-reverse") ? 4 : 0;
  }
  if (const char* v = getenv("FACEGAN_EMU_RACECHECK")) g_config.race_check = strcmp(v, "0") != 0;
  if (const char* v = getenv("FACEGAN_EMU_DEVICES")) g_config.devices = atoi(v);
  if (const char* v = getenv("FACEGAN_EMU_CC")) g_config.cc = atoi(v);
  if (const char* v = getenv("FACEGAN_EMU_FAULT_KERNEL")) g_config.fault_kernel = v;
  g_config_loaded = true;
}

Config& cfg() {
  if (!g_config_loaded) load_config();
  return g_config;
}

cudaError_t g_last_error = cudaSuccess;  // non-sticky (cudaGetLastError clears it)
cudaError_t g_pending_fault = cudaSuccess;  // raised by a kernel, reported at the next sync
cudaError_t g_sticky = cudaSuccess;         // after it was reported
std::string g_fault_msg;

cudaError_t set_error(cudaError_t e) {
  if (e != cudaSuccess && g_last_error == cudaSuccess) g_last_error = e;
  return e;
}

// A kernel fault: remembered with its description and reported at the next synchronising call
// (the first fault wins, as on a GPU).
void raise_fault(cudaError_t code, std::string msg) {
  g_fault_msg = std::move(msg);
  fprintf(stderr, "fg_emu: %s\n", g_fault_msg.c_str());
  if (g_pending_fault == cudaSuccess && g_sticky == cudaSuccess) g_pending_fault = code;
}

// A synchronising call: reports a pending kernel fault, which then sticks.
cudaError_t sync_point() {
  if (g_pending_fault != cudaSuccess) {
    g_sticky = g_pending_fault;
    g_pending_fault = cudaSuccess;
  }
  return g_sticky;
}

// ---------------------------------------------------------------------------------------------
// Device memory.

struct Alloc {
  size_t bytes;
};
std::map<uintptr_t, Alloc> g_allocs;  // device allocations by start address

// Allocations are made in whole 256-byte units (cudaMalloc's alignment).
size_t rounded(size_t bytes) { return (bytes + 255) / 256 * 256; }

size_t bytes_in_use() {
  size_t used = 0;
  for (auto& kv : g_allocs) used += kv.second.bytes;
  return used;
}
struct HostAlloc {
  size_t bytes;
};
std::map<uintptr_t, HostAlloc> g_pinned;

bool is_pinned(const void* p, size_t bytes) {
  const uintptr_t a = (uintptr_t)p;
  auto it = g_pinned.upper_bound(a);
  if (it == g_pinned.begin()) return false;
  --it;
  return a >= it->first && a + bytes <= it->first + it->second.bytes;
}

// ---------------------------------------------------------------------------------------------
// Streams, deferred copies, capture.

struct Node {
  enum Kind { Kernel, Copy, Set } kind = Kernel;
  std::string name;
  void (*key)() = nullptr;
  LaunchCfg lc;
  std::function<void()> body;
  void* dst = nullptr;
  const void* src = nullptr;
  size_t bytes = 0;
  int value = 0;
};

struct Graph {
  std::vector<Node> nodes;
};

struct Stream {
  unsigned flags = 0;
  bool capturing = false;
  bool invalidated = false;
  cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
  Graph* graph = nullptr;
  // Pinned copies enqueued and not yet run (truly asynchronous).
  std::vector<std::function<void()>> deferred;
};

Stream g_legacy;  // stream 0 / cudaStreamLegacy
std::set<Stream*> g_streams;
int g_active_captures = 0;  // global / thread-local mode captures in progress

struct PendingLegacyCopy {
  void* dst;
  std::vector<uint8_t> data;
};
std::vector<PendingLegacyCopy> g_legacy_pending;

Stream* get_stream(cudaStream_t s) {
  if (s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread) return &g_legacy;
  Stream* st = reinterpret_cast<Stream*>(s);
  return g_streams.count(st) ? st : nullptr;
}

bool syncs_with_legacy(const Stream* st) { return st == &g_legacy || (st->flags & cudaStreamNonBlocking) == 0; }

void flush_legacy() {
  for (PendingLegacyCopy& c : g_legacy_pending) memcpy(c.dst, c.data.data(), c.data.size());
  g_legacy_pending.clear();
}

void flush_stream(Stream* st) {
  std::vector<std::function<void()>> q;
  q.swap(st->deferred);
  for (auto& f : q) f();
}

// Everything an operation enqueued on `st` is ordered after.
void before_op(Stream* st) {
  if (syncs_with_legacy(st)) {
    flush_legacy();
    for (Stream* o : g_streams)
      if (syncs_with_legacy(o)) flush_stream(o);
    flush_stream(&g_legacy);
  }
  flush_stream(st);
}

void flush_all() {
  flush_legacy();
  flush_stream(&g_legacy);
  for (Stream* o : g_streams) flush_stream(o);
}

// A call CUDA prohibits while a global / thread-local capture is in progress: invalidates it.
bool unsafe_during_capture() {
  if (g_active_captures == 0) return false;
  for (Stream* s : g_streams)
    if (s->capturing && s->mode != cudaStreamCaptureModeRelaxed) s->invalidated = true;
  set_error(cudaErrorStreamCaptureUnsupported);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Fibers and the block scheduler.

enum class FState { Runnable, AtBarrier, AtWarp, AtMbarrier, Done };

struct Fiber {
  void* sp = nullptr;
  char* stack = nullptr;
  size_t stack_bytes = 0;
  ThreadCtx ctx;
  FState state = FState::Done;
  const void* barrier_site = nullptr;
  unsigned mbar_addr = 0;  // AtMbarrier: the mbarrier (shared-window address) and the phase parity
  int mbar_parity = 0;     // waited for
#if !defined(__x86_64__)
  ucontext_t uc;
#endif
#ifdef FG_EMU_ASAN
  void* fake_stack = nullptr;
#endif
#ifdef FG_EMU_TSAN
  void* tsan = nullptr;
#endif
};

struct Region {
  void* p;
  size_t bytes;
  const char* name;
};

// The race checker's record of one byte of shared memory: the barrier epoch (count of block
// barriers passed) and warp of its last write, and of its ldmatrix reads in the epoch `repoch`
// (`reader` the first warp, `many` when another warp read it too).
struct ShadowByte {
  int32_t wepoch = -1, repoch = -1;
  uint8_t writer = 0, reader = 0, many = 0;
};

#if defined(FG_EMU_ASAN) || defined(FG_EMU_TSAN)
constexpr size_t kStackBytes = 512 * 1024;
#else
constexpr size_t kStackBytes = 128 * 1024;
#endif

struct Worker {
  void* sched_sp = nullptr;
#if !defined(__x86_64__)
  ucontext_t sched_uc;
#endif
#ifdef FG_EMU_ASAN
  const void* sched_stack_bottom = nullptr;
  size_t sched_stack_size = 0;
  void* sched_fake = nullptr;
#endif
#ifdef FG_EMU_TSAN
  void* sched_tsan = nullptr;
#endif
  std::vector<std::unique_ptr<Fiber>> fibers;
  Fiber* cur = nullptr;
  // The launch and block being run.
  const char* kernel = nullptr;
  void (*key)() = nullptr;
  const std::function<void()>* body = nullptr;
  int nthreads = 0;
  dim3 bidx;
  std::vector<Region> regions;  // this block's shared memory (index 0: dynamic)
  size_t static_bytes = 0, smem_limit = 0;
  bool smem_optin = false;
  std::vector<uint8_t> dyn;
  size_t dyn_bytes = 0;
  std::vector<LaneSlot> lanes;  // one per thread
  std::vector<unsigned> warp_arrived;
  std::vector<int> wg_arrived;  // threads of each warpgroup (128) waiting in a warpgroup collective
  std::vector<int> wg_first;    // the first of them (its slot names the collective)
  bool failed = false;
  int barrier_gen = 0;
  // The shared-memory race checker (by-warps schedules): on from a block's first ldmatrix to its
  // end, unless the block uses mbarriers (their phases order warps without a barrier).
  bool shadow_on = false, shadow_off = false, shadow_pending = false;
  std::vector<std::vector<uint8_t>> snap;        // per region: the contents writes were last attributed at
  std::vector<std::vector<ShadowByte>> shadow;   // per region, per byte
  char sync_objs[4];  // addresses for ThreadSanitizer's happens-before annotations
  std::vector<char> warp_sync;
};

Worker g_worker;
[[maybe_unused]] char g_launch_begin_sync, g_launch_end_sync;

std::string dim_str(dim3 d) {
  return "(" + std::to_string(d.x) + "," + std::to_string(d.y) + "," + std::to_string(d.z) + ")";
}

void switch_to_fiber(Worker& w, Fiber* f) {
  w.cur = f;
  tls_thread = &f->ctx;
#ifdef FG_EMU_ASAN
  __sanitizer_start_switch_fiber(&w.sched_fake, f->stack, f->stack_bytes);
#endif
#ifdef FG_EMU_TSAN
  __tsan_switch_to_fiber(f->tsan, 1 /* no synchronisation: barriers annotate their own */);
#endif
#if defined(__x86_64__)
  fg_emu_switch(&w.sched_sp, f->sp);
#else
  swapcontext(&w.sched_uc, &f->uc);
#endif
#ifdef FG_EMU_ASAN
  __sanitizer_finish_switch_fiber(w.sched_fake, nullptr, nullptr);
#endif
  tls_thread = nullptr;
  w.cur = nullptr;
}

// From a fiber back to the scheduler. `done`: the fiber will never run again on this stack.
void switch_to_scheduler(Worker& w, bool done) {
  Fiber* f = w.cur;
#ifdef FG_EMU_ASAN
  __sanitizer_start_switch_fiber(done ? nullptr : &f->fake_stack, w.sched_stack_bottom, w.sched_stack_size);
#else
  (void)done;
#endif
#ifdef FG_EMU_TSAN
  __tsan_switch_to_fiber(w.sched_tsan, 1);
#endif
#if defined(__x86_64__)
  fg_emu_switch(&f->sp, w.sched_sp);
#else
  swapcontext(&f->uc, &w.sched_uc);
#endif
#ifdef FG_EMU_ASAN
  __sanitizer_finish_switch_fiber(f->fake_stack, &w.sched_stack_bottom, &w.sched_stack_size);
#endif
}

[[noreturn]] void fiber_fail(Worker& w, cudaError_t code, const std::string& what) {
  if (!w.failed) {
    w.failed = true;
    std::string where = std::string("kernel ") + w.kernel + ", block " + dim_str(w.bidx);
    if (w.cur) where += ", thread " + dim_str(dim3(w.cur->ctx.tid.x, w.cur->ctx.tid.y, w.cur->ctx.tid.z));
    raise_fault(code, where + ": " + what);
  }
  w.cur->state = FState::Done;
  switch_to_scheduler(w, true);
  __builtin_trap();  // never resumed
}

}  // namespace
}  // namespace fg_emu

extern "C" void fg_emu_fiber_main() {
  using namespace fg_emu;
  Worker& w = g_worker;
#ifdef FG_EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &w.sched_stack_bottom, &w.sched_stack_size);
#endif
#ifdef FG_EMU_TSAN
  __tsan_acquire(&g_launch_begin_sync);
#endif
  (*w.body)();
#ifdef FG_EMU_TSAN
  __tsan_release(&g_launch_end_sync);
#endif
  w.cur->state = FState::Done;
  switch_to_scheduler(w, true);
  __builtin_trap();
}

namespace fg_emu {
namespace {

void init_fiber(Fiber* f) {
  if (!f->stack) {
    const size_t guard = 4096;
    void* m = mmap(nullptr, kStackBytes + guard, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
      fprintf(stderr, "fg_emu: out of memory for fiber stacks\n");
      abort();
    }
    mprotect(m, guard, PROT_NONE);  // a stack overflow faults instead of corrupting memory
    f->stack = static_cast<char*>(m) + guard;
    f->stack_bytes = kStackBytes;
#ifdef FG_EMU_TSAN
    f->tsan = __tsan_create_fiber(0);
#endif
  }
#if defined(__x86_64__)
  // Top of stack, 16-byte aligned: [trampoline return address] then 6 registers + 8 bytes of
  // MXCSR / FPU control word below it, as fg_emu_switch pops them.
  uintptr_t top = ((uintptr_t)(f->stack + f->stack_bytes)) & ~(uintptr_t)15;
  uint64_t* sp = reinterpret_cast<uint64_t*>(top);
  // After `ret` into the trampoline the stack pointer is `top` (16-byte aligned), so its `call`
  // enters fg_emu_fiber_main with the ABI's alignment (rsp % 16 == 8).
  *--sp = (uint64_t)(uintptr_t)&fg_emu_fiber_trampoline;
  for (int i = 0; i < 6; ++i) *--sp = 0;
  uint32_t csr[2];
  asm volatile("stmxcsr %0" : "=m"(csr[0]));
  uint16_t cw;
  asm volatile("fnstcw %0" : "=m"(cw));
  csr[1] = cw;
  --sp;
  memcpy(sp, csr, 8);
  f->sp = sp;
#else
  getcontext(&f->uc);
  f->uc.uc_stack.ss_sp = f->stack;
  f->uc.uc_stack.ss_size = f->stack_bytes;
  f->uc.uc_link = nullptr;
  makecontext(&f->uc, (void (*)())fg_emu_fiber_main, 0);
#endif
}

std::mt19937 g_shuffle_rng(1234);

// Fills block-scope memory with 0xFF (NaN) without the C library's memset, which sanitizers
// intercept: the fill belongs to the block's start, not to whichever thread first declared it.
void poison_fill(void* p, size_t bytes) {
  volatile unsigned char* b = static_cast<volatile unsigned char*>(p);
  for (size_t i = 0; i < bytes; ++i) b[i] = 0xff;
}

// ---- The shared-memory race checker. In a by-warps schedule only one warp runs at a time, so the
// bytes of shared memory that changed during a warp's turn are that warp's writes: they are found
// by comparing with a snapshot at the end of each turn (a rewrite of the same value is not seen).
// ldmatrix reads are recorded by the PTX emulation (shadow_read). A write and a read of the same
// byte by two warps in one barrier epoch (no __syncthreads between them), in either order, is a
// race on a GPU: the kernel faults, naming both warps and the shared array. Plain loads are not
// seen (no instrumentation); the by-warps order still makes such races give wrong values. It runs
// in kernels that use ldmatrix: from the end of the turn of the first warp that used one (in the
// first block that did), then from the start of each block of that kernel; a block that
// initialises an mbarrier stops it.
std::string race_where(const Worker& w, size_t region, size_t off) {
  const Region& r = w.regions[region];
  return std::string("byte ") + std::to_string(off) + " of shared array `" + r.name + "` (" + std::to_string(r.bytes) +
         " bytes) after the block's " + std::to_string(w.barrier_gen) + " __syncthreads";
}

// (The checker reads shared memory without the C library, which ThreadSanitizer intercepts: the
// scheduler's reads would be reported as racing with the threads' writes.)
void shadow_add_region(Worker& w, const Region& r) {
  const volatile uint8_t* p = static_cast<const volatile uint8_t*>(r.p);
  w.snap.emplace_back(r.bytes);
  for (size_t i = 0; i < r.bytes; ++i) w.snap.back()[i] = p[i];
  w.shadow.emplace_back(r.bytes);
}

std::set<void (*)()> g_ldmatrix_kernels;  // kernels seen using ldmatrix: checked from their blocks' start

void shadow_start(Worker& w) {
  w.shadow_on = true;
  w.snap.clear();
  w.shadow.clear();
  for (const Region& r : w.regions) shadow_add_region(w, r);
}

// End of warp `warp`'s turn: its writes (what changed since the last snapshot) against the
// epoch's reads by other warps. Returns false (a fault raised) on a race.
bool shadow_attribute(Worker& w, int warp) {
  const int epoch = w.barrier_gen;
  for (size_t ri = 0; ri < w.regions.size(); ++ri) {
    const uint8_t* cur = static_cast<const uint8_t*>(w.regions[ri].p);
    uint8_t* old = w.snap[ri].data();
    const size_t n = w.regions[ri].bytes;
    for (size_t c = 0; c < n; c += 8) {
      const size_t len = std::min<size_t>(8, n - c);
      if (len == 8) {
        uint64_t a, b;
        __builtin_memcpy(&a, cur + c, 8);  // (inlined loads, not a library call)
        __builtin_memcpy(&b, old + c, 8);
        if (a == b) continue;
      }
      for (size_t i = c; i < c + len; ++i) {
        if (cur[i] == old[i]) continue;
        old[i] = cur[i];
        ShadowByte& b = w.shadow[ri][i];
        if (b.repoch == epoch && (b.reader != warp || b.many)) {
          const int other = b.reader != warp ? b.reader : -1;
          w.cur = nullptr;
          w.failed = true;
          raise_fault(cudaErrorLaunchFailure,
                      std::string("kernel ") + w.kernel + ", block " + dim_str(w.bidx) + ": shared-memory race: warp " +
                          std::to_string(warp) + " writes " + race_where(w, ri, i) + ", which " +
                          (other >= 0 ? "warp " + std::to_string(other) : std::string("another warp")) +
                          " read (ldmatrix) in the same epoch: a __syncthreads is missing between the read and the write");
          return false;
        }
        b.writer = (uint8_t)warp;
        b.wepoch = epoch;
      }
    }
  }
  return true;
}

// Runs one block to completion (or to its first fault). Returns false on a fault.
bool run_block(Worker& w, const LaunchCfg& lc, dim3 bidx) {
  const int nt = (int)(lc.block.x * lc.block.y * lc.block.z);
  w.nthreads = nt;
  w.bidx = bidx;
  w.failed = false;
  w.barrier_gen = 0;
  // Block-scope memory: the dynamic buffer is region 0; static arrays register as they are met.
  w.regions.clear();
  w.dyn_bytes = lc.smem;
  if (w.dyn.size() < lc.smem + 16) w.dyn.resize(lc.smem + 16);
  poison_fill(w.dyn.data(), lc.smem);
  w.regions.push_back(Region{w.dyn.data(), lc.smem, "extern __shared__"});
  w.shadow_on = w.shadow_off = w.shadow_pending = false;
  if ((cfg().schedule == 0 || cfg().schedule == 4) && cfg().race_check && g_ldmatrix_kernels.count(w.key)) shadow_start(w);
  w.static_bytes = 0;
  while ((int)w.fibers.size() < nt) w.fibers.emplace_back(new Fiber());
  w.lanes.resize(nt);
  w.warp_arrived.assign((nt + 31) / 32, 0u);
  w.wg_arrived.assign((nt + 127) / 128, 0);
  w.wg_first.assign((nt + 127) / 128, 0);
  w.warp_sync.resize((size_t)(nt + 31) / 32);
  ptx_block_start();
  for (int t = 0; t < nt; ++t) {
    Fiber* f = w.fibers[t].get();
    init_fiber(f);
    f->state = FState::Runnable;
    f->ctx.tid = uint3{(unsigned)(t % lc.block.x), (unsigned)((t / lc.block.x) % lc.block.y),
                       (unsigned)(t / (lc.block.x * lc.block.y))};
    f->ctx.bid = uint3{bidx.x, bidx.y, bidx.z};
    f->ctx.bdim = lc.block;
    f->ctx.gdim = lc.grid;
    f->ctx.linear = t;
  }
#ifdef FG_EMU_TSAN
  // Everything the scheduler set up for this block (its shared buffers) happens before its threads.
  __tsan_release(&g_launch_begin_sync);
#endif
  // The schedule (Config::schedule): by warps, each warp runs until none of its threads can move
  // (all at a barrier, waiting for another warp, or exited) before the next warp starts, so that
  // between two barriers one warp's shared-memory writes land before (or, reversed, after) every
  // access of the warps after it: a barrier missing between a read and a write of other warps
  // gives wrong values. By threads, every thread runs to its next barrier or collective in turn
  // (warps advance in lockstep, which hides such races).
  const int sched = cfg().schedule;
  const bool by_warps = sched == 0 || sched == 4;
  const int nw = (nt + 31) / 32;
  std::vector<int> order(by_warps ? nw : nt);
  for (int i = 0; i < (int)order.size(); ++i)
    order[i] = sched == 2 || sched == 4 ? (int)order.size() - 1 - i : i;
  // A thread waiting on an mbarrier phase resumes once that phase has completed.
  auto wake = [&](int t0, int t1) {
    for (int t = t0; t < t1; ++t) {
      Fiber* f = w.fibers[t].get();
      if (f->state != FState::AtMbarrier) continue;
      if (mbar_phase_done(f->mbar_addr, f->mbar_parity) || ptx_copies_pending(f->mbar_addr)) f->state = FState::Runnable;
    }
  };
  for (;;) {
    if (sched == 3) std::shuffle(order.begin(), order.end(), g_shuffle_rng);
    wake(0, nt);
    bool ran = false;
    for (int i : order) {
      const int t0 = by_warps ? i * 32 : i, t1 = by_warps ? std::min(nt, t0 + 32) : i + 1;
      for (bool moved = true; moved;) {
        moved = false;
        for (int t = t0; t < t1; ++t) {
          Fiber* f = w.fibers[t].get();
          if (f->state != FState::Runnable) continue;
          switch_to_fiber(w, f);
          moved = ran = true;
          if (w.failed) return false;
        }
        if (!by_warps) break;
        wake(t0, t1);
      }
      if (by_warps && w.shadow_on && !shadow_attribute(w, i)) return false;
      if (w.shadow_pending && !w.shadow_off) shadow_start(w);
      w.shadow_pending = false;
    }
    int done = 0, at_bar = 0, at_warp = 0, at_mbar = 0;
    for (int t = 0; t < nt; ++t) {
      const FState s = w.fibers[t]->state;
      done += s == FState::Done;
      at_bar += s == FState::AtBarrier;
      at_warp += s == FState::AtWarp;
      at_mbar += s == FState::AtMbarrier;
    }
    if (done == nt) {
      const std::string left = ptx_block_end();
      if (!left.empty()) {
        w.cur = nullptr;
        w.failed = true;
        raise_fault(cudaErrorLaunchFailure, std::string("kernel ") + w.kernel + ", block " + dim_str(bidx) + ": " + left);
        return false;
      }
#ifdef FG_EMU_TSAN
      // The block's shared memory is reused by the next block: its threads' accesses come first.
      __tsan_acquire(&g_launch_end_sync);
#endif
      return true;
    }
    if (at_bar > 0 && at_bar + done == nt) {
      if (done > 0) {
        w.cur = nullptr;
        w.failed = true;
        raise_fault(cudaErrorLaunchFailure, std::string("kernel ") + w.kernel + ", block " + dim_str(bidx) +
                                                ": __syncthreads reached by " + std::to_string(at_bar) + " of " +
                                                std::to_string(nt) + " threads (" + std::to_string(done) +
                                                " exited before it): a barrier every thread must reach");
        return false;
      }
      for (int t = 0; t < nt; ++t) w.fibers[t]->state = FState::Runnable;
      ++w.barrier_gen;
      continue;
    }
    if (!ran) {
      // Nobody can move: a deadlock (a barrier or warp collective some threads never reach).
      std::string detail;
      for (int t = 0; t < nt && detail.size() < 400; ++t) {
        const FState s = w.fibers[t]->state;
        if (s == FState::AtWarp) {
          const unsigned missing = w.lanes[t].mask & ~w.warp_arrived[t / 32];
          detail += " thread " + std::to_string(t) + " waits in a warp collective for lanes mask 0x" +
                    [&] { char b[16]; snprintf(b, sizeof b, "%08x", missing); return std::string(b); }() + ";";
          t = (t / 32) * 32 + 31;
        }
      }
      w.failed = true;
      raise_fault(cudaErrorLaunchFailure, std::string("kernel ") + w.kernel + ", block " + dim_str(bidx) + ": deadlock (" +
                                              std::to_string(at_bar) + " threads at __syncthreads, " +
                                              std::to_string(at_warp) + " in warp collectives, " +
                                              std::to_string(at_mbar) + " waiting on mbarrier phases, " +
                                              std::to_string(done) + " exited)." + detail);
      return false;
    }
  }
}

std::map<void (*)(), int> g_max_dyn_smem;  // cudaFuncAttributeMaxDynamicSharedMemorySize

constexpr size_t kDefaultSmem = 48 * 1024;
size_t optin_smem() { return cfg().cc >= 90 ? 232448 : cfg().cc >= 80 ? 166912 : 65536; }

// Launch-time validation, as the driver does it: an invalid configuration fails the launch
// (reported by cudaGetLastError), nothing runs.
cudaError_t validate_launch(void (*key)(), const LaunchCfg& lc) {
  const uint64_t nt = (uint64_t)lc.block.x * lc.block.y * lc.block.z;
  if (nt == 0 || nt > 1024 || lc.block.z > 64) return cudaErrorInvalidConfiguration;
  if (lc.grid.x == 0 || lc.grid.y == 0 || lc.grid.z == 0 || lc.grid.x > 0x7fffffffu || lc.grid.y > 65535 ||
      lc.grid.z > 65535)
    return cudaErrorInvalidConfiguration;
  auto it = g_max_dyn_smem.find(key);
  const size_t limit = it == g_max_dyn_smem.end() ? kDefaultSmem : (size_t)it->second;
  if (lc.smem > limit) return cudaErrorInvalidValue;
  return cudaSuccess;
}

void execute_kernel(const char* name, void (*key)(), const LaunchCfg& lc, const std::function<void()>& body) {
  Worker& w = g_worker;
  if (g_sticky != cudaSuccess || g_pending_fault != cudaSuccess) return;  // the context is dead
#ifdef FG_EMU_TSAN
  if (!w.sched_tsan) w.sched_tsan = __tsan_get_current_fiber();
#endif
  w.kernel = name;
  w.key = key;
  w.body = &body;
  auto it = g_max_dyn_smem.find(key);
  w.smem_optin = it != g_max_dyn_smem.end();
  w.smem_limit = w.smem_optin ? (size_t)it->second : kDefaultSmem;
  ++g_stats.launches;
  if (!cfg().fault_kernel.empty() && cfg().fault_kernel == name) {
    w.failed = true;
    w.bidx = dim3(0, 0, 0);
    raise_fault(cudaErrorIllegalAddress,
                std::string("kernel ") + name + ", block (0,0,0): injected fault (FACEGAN_EMU_FAULT_KERNEL)");
    return;
  }
  for (unsigned z = 0; z < lc.grid.z; ++z)
    for (unsigned y = 0; y < lc.grid.y; ++y)
      for (unsigned x = 0; x < lc.grid.x; ++x) {
        ++g_stats.blocks;
        if (!run_block(w, lc, dim3(x, y, z))) return;
      }
#ifdef FG_EMU_TSAN
  __tsan_acquire(&g_launch_end_sync);
#endif
}

void run_node(const Node& n) {
  switch (n.kind) {
    case Node::Kernel: execute_kernel(n.name.c_str(), n.key, n.lc, n.body); break;
    case Node::Copy: memcpy(n.dst, n.src, n.bytes); break;
    case Node::Set: memset(n.dst, n.value, n.bytes); break;
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Device-side entry points (fg_emu.h).

void launch(const char* kernel, void (*key)(), const LaunchCfg& lc, std::function<void()> body) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  Stream* st = get_stream(lc.stream);
  if (!st) {
    set_error(cudaErrorInvalidResourceHandle);
    return;
  }
  const cudaError_t v = validate_launch(key, lc);
  if (v != cudaSuccess) {
    set_error(v);
    return;
  }
  if (st->capturing) {
    Node n;
    n.kind = Node::Kernel;
    n.name = kernel;
    n.key = key;
    n.lc = lc;
    n.body = std::move(body);
    st->graph->nodes.push_back(std::move(n));
    return;
  }
  before_op(st);
  execute_kernel(kernel, key, lc, body);
}

void shared_static(void* p, size_t bytes, const char* name) {
  Worker& w = g_worker;
  for (const Region& r : w.regions)
    if (r.p == p) return;
  w.regions.push_back(Region{p, bytes, name});
  w.static_bytes += bytes;
  poison_fill(p, bytes);  // uninitialised shared memory reads as NaN
  if (w.shadow_on) shadow_add_region(w, w.regions.back());
  if (w.static_bytes > kDefaultSmem)
    fiber_fail(w, cudaErrorInvalidValue,
               "static shared memory (" + std::to_string(w.static_bytes) + " bytes) exceeds 48 KB");
  // Without the opt-in attribute static + dynamic must fit in 48 KB; with it, dynamic is bounded
  // by the attribute (checked at launch) and static + attribute by the device's opt-in maximum.
  if (!w.smem_optin && w.static_bytes + w.dyn_bytes > kDefaultSmem)
    fiber_fail(w, cudaErrorInvalidValue,
               "static (" + std::to_string(w.static_bytes) + " bytes) + dynamic (" + std::to_string(w.dyn_bytes) +
                   " bytes) shared memory exceeds 48 KB; more needs cudaFuncSetAttribute(MaxDynamicSharedMemorySize)");
  if (w.smem_optin && w.static_bytes + w.smem_limit > optin_smem())
    fiber_fail(w, cudaErrorInvalidValue,
               "static shared memory + the MaxDynamicSharedMemorySize attribute exceed the device's opt-in maximum");
}

void poison(void* p, size_t bytes) {
#ifdef FG_EMU_ASAN
  ASAN_POISON_MEMORY_REGION(p, bytes);
#else
  (void)p;
  (void)bytes;
#endif
}

void* shared_dynamic_ptr() { return g_worker.dyn.data(); }

unsigned cvta_shared(const void* p) {
  Worker& w = g_worker;
  const uintptr_t a = (uintptr_t)p;
  for (size_t i = 0; i < w.regions.size(); ++i) {
    const uintptr_t b = (uintptr_t)w.regions[i].p;
    if (a >= b && a <= b + w.regions[i].bytes) return (unsigned)((i + 1) << 24) | (unsigned)(a - b);
  }
  fiber_fail(w, cudaErrorIllegalAddress, "__cvta_generic_to_shared of a pointer outside shared memory");
}

void* shared_window_ptr(unsigned addr, size_t bytes) {
  Worker& w = g_worker;
  const size_t idx = (addr >> 24);
  const size_t off = addr & 0xffffffu;
  if (idx == 0 || idx > w.regions.size() || off + bytes > w.regions[idx - 1].bytes) {
    char buf[64];
    snprintf(buf, sizeof buf, "0x%08x", addr);
    fiber_fail(w, cudaErrorIllegalAddress,
               std::string("shared memory access out of bounds (address ") + buf + ", " + std::to_string(bytes) + " bytes)");
  }
  if (off % std::min<size_t>(bytes, 16) != 0)
    fiber_fail(w, cudaErrorIllegalAddress, "misaligned shared memory access (" + std::to_string(bytes) + " bytes)");
  return static_cast<char*>(w.regions[idx - 1].p) + off;
}

void shadow_read(unsigned addr, size_t bytes) {
  Worker& w = g_worker;
  if (w.shadow_off || !cfg().race_check || (cfg().schedule != 0 && cfg().schedule != 4)) return;
  if (!w.shadow_on) {  // the checker starts at the end of this warp's turn (outside the threads)
    g_ldmatrix_kernels.insert(w.key);
    w.shadow_pending = true;
    return;
  }
  const size_t ri = (addr >> 24) - 1, off = addr & 0xffffffu;  // (bounds checked by the caller)
  const int warp = w.cur->ctx.linear / 32, epoch = w.barrier_gen;
  for (size_t i = off; i < off + bytes; ++i) {
    ShadowByte& b = w.shadow[ri][i];
    if (b.wepoch == epoch && b.writer != warp)
      fiber_fail(w, cudaErrorLaunchFailure,
                 "shared-memory race: warp " + std::to_string(warp) + " reads (ldmatrix) " + race_where(w, ri, i) +
                     ", which warp " + std::to_string(b.writer) +
                     " wrote in the same epoch: a __syncthreads is missing between the write and the read");
    if (b.repoch != epoch) {
      b.repoch = epoch;
      b.reader = (uint8_t)warp;
      b.many = 0;
    } else if (b.reader != warp) {
      b.many = 1;
    }
  }
}

void syncthreads() {
  Worker& w = g_worker;
  Fiber* f = w.cur;
#ifdef FG_EMU_TSAN
  __tsan_release(&w.sync_objs[w.barrier_gen & 1]);
#endif
  const int gen = w.barrier_gen;
  f->state = FState::AtBarrier;
  switch_to_scheduler(w, false);
#ifdef FG_EMU_TSAN
  __tsan_acquire(&w.sync_objs[gen & 1]);
#else
  (void)gen;
#endif
}

namespace {
const int kKindShfl = 1, kKindSyncwarp = 2;
}

LaneSlot* lane_slot() { return &g_worker.lanes[g_worker.cur->ctx.linear]; }

void collective(int kind, unsigned mask, const void* tag, void (*compute)(LaneSlot* const* lanes, unsigned mask, const void* tag)) {
  Worker& w = g_worker;
  Fiber* f = w.cur;
  const int t = f->ctx.linear, warp = t / 32, lane = t % 32;
  const int warp_lanes = std::min(32, w.nthreads - warp * 32);
  const unsigned valid = warp_lanes == 32 ? 0xffffffffu : ((1u << warp_lanes) - 1u);
  if (!(mask >> lane & 1u)) fiber_fail(w, cudaErrorIllegalInstruction, "warp collective whose mask omits the calling lane");
  if (mask & ~valid) fiber_fail(w, cudaErrorIllegalInstruction, "warp collective mask names lanes that do not exist");
  LaneSlot& me = w.lanes[t];
  me.kind = kind;
  me.mask = mask;
  me.tag = tag;
  unsigned& arrived = w.warp_arrived[warp];
  arrived |= 1u << lane;
  // Lanes already waiting must be in the same collective with the same mask: compare with one
  // waiting lane of this group (they were all checked the same way when they arrived).
  const unsigned others = arrived & ~(1u << lane) & mask;
  if (others) {
    const LaneSlot& o = w.lanes[warp * 32 + __builtin_ctz(others)];
    if (o.kind != kind || o.mask != mask || o.tag != tag)
      fiber_fail(w, cudaErrorIllegalInstruction,
                 "lanes of one warp meet in different warp collectives (or with different masks)");
  }
  if (arrived & ~mask & ~(1u << lane)) {
    // Lanes outside this mask waiting elsewhere must not expect this lane.
    for (int l = 0; l < 32; ++l)
      if ((arrived >> l & 1u) && !(mask >> l & 1u) && (w.lanes[warp * 32 + l].mask >> lane & 1u))
        fiber_fail(w, cudaErrorIllegalInstruction,
                   "lanes of one warp meet in different warp collectives (or with different masks)");
  }
#ifdef FG_EMU_TSAN
  __tsan_release(&w.warp_sync[(size_t)warp]);
#endif
  if ((arrived & mask) == mask) {
    LaneSlot* lanes[32];
    for (int l = 0; l < 32; ++l) lanes[l] = (mask >> l & 1u) ? &w.lanes[warp * 32 + l] : nullptr;
    compute(lanes, mask, tag);
    arrived &= ~mask;
    for (int l = 0; l < 32; ++l)
      if ((mask >> l & 1u) && l != lane) w.fibers[warp * 32 + l]->state = FState::Runnable;
  } else {
    // A lane of the mask that has exited can never arrive.
    for (int l = 0; l < 32; ++l)
      if ((mask >> l & 1u) && w.fibers[warp * 32 + l]->state == FState::Done)
        fiber_fail(w, cudaErrorIllegalInstruction,
                   "warp collective waits for lane " + std::to_string(l) + ", which has exited");
    f->state = FState::AtWarp;
    switch_to_scheduler(w, false);
  }
#ifdef FG_EMU_TSAN
  __tsan_acquire(&w.warp_sync[(size_t)warp]);
#endif
}

namespace {
void compute_shfl(LaneSlot* const* lanes, unsigned, const void*) {
  for (int l = 0; l < 32; ++l) {
    if (!lanes[l]) continue;
    const ShflKind k = (ShflKind)lanes[l]->in[0];
    const int arg = (int)lanes[l]->in[2];
    const int width = (int)lanes[l]->in[3];
    const int base = l & ~(width - 1);
    int src = l;
    switch (k) {
      case ShflKind::Idx: src = base + (arg & (width - 1)); break;
      case ShflKind::Up: src = (l - base) >= arg ? l - arg : l; break;
      case ShflKind::Down: src = (l - base) + arg < width ? l + arg : l; break;
      case ShflKind::Xor: src = l ^ arg; if (src >= base + width) src = l; break;
    }
    // Reading from a lane outside the mask is undefined on the GPU; here it is an error.
    lanes[l]->out[0] = lanes[src] ? lanes[src]->in[1] : 0xdeadbeefdeadbeefull;
    lanes[l]->out[1] = lanes[src] ? 1 : 0;
  }
}
void compute_nothing(LaneSlot* const*, unsigned, const void*) {}
}  // namespace

uint64_t shfl(ShflKind kind, unsigned mask, uint64_t value, int arg, int width) {
  if (width <= 0 || width > 32 || (width & (width - 1)))
    fiber_fail(g_worker, cudaErrorIllegalInstruction, "shuffle width must be a power of two <= 32");
  LaneSlot* me = lane_slot();
  me->in[0] = (uint64_t)kind;
  me->in[1] = value;
  me->in[2] = (uint64_t)(int64_t)arg;
  me->in[3] = (uint64_t)width;
  collective(kKindShfl, mask, nullptr, compute_shfl);
  me = lane_slot();
  if (!me->out[1]) fiber_fail(g_worker, cudaErrorIllegalInstruction, "shuffle reads a lane outside its mask");
  return me->out[0];
}

void syncwarp(unsigned mask) { collective(kKindSyncwarp, mask, nullptr, compute_nothing); }

// ---- Warpgroup collectives (wgmma): the 128 threads of warpgroup t / 128 meet; the last to arrive
// runs `compute` for all of them (every wgmma instruction is .sync.aligned: all threads of the
// warpgroup execute the same instruction).
void warpgroup_collective(int kind, const void* tag, void (*compute)(LaneSlot* const* lanes, const void* tag)) {
  Worker& w = g_worker;
  Fiber* f = w.cur;
  const int t = f->ctx.linear, wg = t / 128, first = wg * 128;
  if (first + 128 > w.nthreads)
    fiber_fail(w, cudaErrorIllegalInstruction, "warpgroup instruction in a block whose last warpgroup is incomplete (" +
                                                  std::to_string(w.nthreads) + " threads)");
  LaneSlot& me = w.lanes[t];
  me.kind = kind;
  me.mask = 0xffffffffu;
  me.tag = tag;
  int& arrived = w.wg_arrived[wg];
  // The threads already waiting were checked against each other when they arrived: compare with
  // the first of them.
  if (arrived > 0) {
    const LaneSlot& o = w.lanes[w.wg_first[wg]];
    if (o.kind != kind || o.tag != tag)
      fiber_fail(w, cudaErrorIllegalInstruction, "threads of one warpgroup meet in different warpgroup instructions");
  } else {
    w.wg_first[wg] = t;
  }
  if (++arrived == 128) {
    LaneSlot* lanes[128];
    for (int l = 0; l < 128; ++l) lanes[l] = &w.lanes[first + l];
    arrived = 0;
    compute(lanes, tag);
    for (int l = first; l < first + 128; ++l)
      if (l != t) w.fibers[l]->state = FState::Runnable;
  } else {
    if (arrived == 1)  // (a thread exiting later leaves the others waiting: reported as a deadlock)
      for (int l = first; l < first + 128; ++l)
        if (w.fibers[l]->state == FState::Done)
          fiber_fail(w, cudaErrorIllegalInstruction,
                     "warpgroup instruction waits for thread " + std::to_string(l) + ", which has exited");
    f->state = FState::AtWarp;
    switch_to_scheduler(w, false);
  }
}

// ---- mbarrier objects (PTX ISA "Parallel Synchronization and Communication Instructions:
// mbarrier"): an opaque 8-byte shared-memory object holding the current phase, the pending
// arrival count of that phase, its expected arrival count and its transaction count. A phase
// completes when both the pending arrivals and the pending transactions reach zero; the next
// phase then starts with the expected count. Packed here as: bits 0-19 expected, 20-39 pending,
// 40 the phase parity, 41-62 the transaction count (22-bit two's complement).
namespace {
struct Mbar {
  uint32_t expected, pending;
  int phase;
  int64_t tx;
};
uint64_t* mbar_word(unsigned addr) {
  if (addr & 7u) fiber_fail(g_worker, cudaErrorIllegalAddress, "mbarrier object not 8-byte aligned");
  return static_cast<uint64_t*>(shared_window_ptr(addr, 8));
}
Mbar mbar_decode(uint64_t v) {
  Mbar m;
  m.expected = (uint32_t)(v & 0xfffffu);
  m.pending = (uint32_t)((v >> 20) & 0xfffffu);
  m.phase = (int)((v >> 40) & 1u);
  int64_t tx = (int64_t)((v >> 41) & 0x3fffffu);
  if (tx & 0x200000) tx -= 0x400000;
  m.tx = tx;
  return m;
}
Mbar mbar_load(unsigned addr) {
  const uint64_t v = *mbar_word(addr);
  if (v == ~0ull || (v & 0xfffffu) == 0)
    fiber_fail(g_worker, cudaErrorIllegalInstruction, "mbarrier used before mbarrier.init");
  return mbar_decode(v);
}
void mbar_store(unsigned addr, Mbar m) {
  if (m.pending == 0 && m.tx == 0) {  // the phase completes
    m.phase ^= 1;
    m.pending = m.expected;
  }
  *mbar_word(addr) = (uint64_t)m.expected | ((uint64_t)m.pending << 20) | ((uint64_t)m.phase << 40) |
                     ((uint64_t)(m.tx & 0x3fffff) << 41);
}
}  // namespace

void mbar_word_check(unsigned addr) { mbar_word(addr); }

void mbar_init(unsigned addr, uint32_t count) {
  g_worker.shadow_off = true;  // mbarrier phases order warps: the race checker stands down
  g_worker.shadow_on = false;
  if (count == 0 || count > 0xfffffu) fiber_fail(g_worker, cudaErrorIllegalInstruction, "mbarrier.init count out of range");
  *mbar_word(addr) = (uint64_t)count | ((uint64_t)count << 20);
}
void mbar_arrive(unsigned addr, uint32_t count, int64_t expect_tx) {
  Mbar m = mbar_load(addr);
  if (count > m.pending)
    fiber_fail(g_worker, cudaErrorIllegalInstruction, "mbarrier: more arrivals than the phase expects");
  m.tx += expect_tx;
  if (m.tx > 0xfffff) fiber_fail(g_worker, cudaErrorIllegalInstruction, "mbarrier transaction count overflows (2^20 - 1)");
  m.pending -= count;
  mbar_store(addr, m);
}
void mbar_complete_tx(unsigned addr, int64_t bytes) {
  Mbar m = mbar_load(addr);
  m.tx -= bytes;
  if (m.tx < -0xfffff) fiber_fail(g_worker, cudaErrorIllegalInstruction, "mbarrier transaction count underflows");
  mbar_store(addr, m);
}
bool mbar_phase_done(unsigned addr, int parity) {
  // The phase with this parity has completed when the current phase has the other parity
  // (parity names the current or the immediately preceding phase). Also called by the scheduler
  // (no running thread): reads the object without faulting.
  Worker& w = g_worker;
  const size_t idx = addr >> 24, off = addr & 0xffffffu;
  if (idx == 0 || idx > w.regions.size() || off + 8 > w.regions[idx - 1].bytes || (off & 7u)) return false;
  uint64_t v;
  memcpy(&v, static_cast<char*>(w.regions[idx - 1].p) + off, 8);
  return mbar_decode(v).phase != (parity & 1);
}
void mbar_sleep(unsigned addr, int parity) {
  Worker& w = g_worker;
  mbar_load(addr);  // faults on an uninitialised object
  w.cur->mbar_addr = addr;
  w.cur->mbar_parity = parity;
  w.cur->state = FState::AtMbarrier;
  switch_to_scheduler(w, false);
}

void trap(const char* why) { fiber_fail(g_worker, cudaErrorIllegalInstruction, why); }

[[noreturn]] void fail_kernel(const std::string& why) { fiber_fail(g_worker, cudaErrorIllegalInstruction, why); }

// ---------------------------------------------------------------------------------------------
// Control (emu_control.h).

Config& config() { return cfg(); }
Stats stats() {
  Stats s = g_stats;
  s.bytes_in_use = bytes_in_use();
  return s;
}
std::string fault_message() { return g_fault_msg; }

void reset() {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  for (auto& kv : g_allocs) {
#ifdef FG_EMU_ASAN
    ASAN_UNPOISON_MEMORY_REGION(reinterpret_cast<void*>(kv.first), rounded(kv.second.bytes));
#endif
    free(reinterpret_cast<void*>(kv.first));
  }
  g_allocs.clear();
  for (Stream* s : g_streams) delete s;
  g_streams.clear();
  g_legacy = Stream();
  g_legacy_pending.clear();
  g_active_captures = 0;
  g_last_error = g_pending_fault = g_sticky = cudaSuccess;
  g_fault_msg.clear();
  g_max_dyn_smem.clear();
  load_config();
}

uint16_t float_to_half_bits(float f) { return __float2half_rn(f).__x; }
float half_bits_to_float(uint16_t h) {
  __half x;
  x.__x = h;
  return __half2float(x);
}
uint16_t float_to_bf16_bits(float f) { return __float2bfloat16_rn(f).__x; }

}  // namespace fg_emu

// ---------------------------------------------------------------------------------------------
// The runtime API.

using namespace fg_emu;

#define FG_EMU_ENTER()                                  \
  std::lock_guard<std::recursive_mutex> lock_(g_mu); \
  if (g_sticky != cudaSuccess) return set_error(g_sticky)

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInitializationError: return "cudaErrorInitializationError";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorIllegalInstruction: return "cudaErrorIllegalInstruction";
    case cudaErrorAssert: return "cudaErrorAssert";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureUnmatched: return "cudaErrorStreamCaptureUnmatched";
    case cudaErrorStreamCaptureWrongThread: return "cudaErrorStreamCaptureWrongThread";
    default: return "cudaErrorUnknown";
  }
}

const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorIllegalInstruction: return "an illegal instruction was encountered";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    default: return "emulated CUDA error";
  }
}

cudaError_t cudaGetLastError() {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  const cudaError_t e = g_last_error != cudaSuccess ? g_last_error : g_sticky;
  g_last_error = cudaSuccess;
  return e;
}

cudaError_t cudaPeekAtLastError() {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  return g_last_error != cudaSuccess ? g_last_error : g_sticky;
}

cudaError_t cudaGetDeviceCount(int* count) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  if (!count) return set_error(cudaErrorInvalidValue);
  *count = 0;
  if (cfg().devices <= 0) return set_error(cudaErrorNoDevice);
  *count = cfg().devices;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int dev) {
  FG_EMU_ENTER();
  if (dev < 0 || dev >= cfg().devices) return set_error(cudaErrorInvalidDevice);
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int* dev) {
  FG_EMU_ENTER();
  *dev = 0;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int dev) {
  FG_EMU_ENTER();
  if (dev < 0 || dev >= cfg().devices || !value) return set_error(cudaErrorInvalidValue);
  switch (attr) {
    case cudaDevAttrComputeCapabilityMajor: *value = cfg().cc / 10; break;
    case cudaDevAttrComputeCapabilityMinor: *value = cfg().cc % 10; break;
    case cudaDevAttrMaxThreadsPerBlock: *value = 1024; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = 48 * 1024; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = (int)optin_smem(); break;
    case cudaDevAttrWarpSize: *value = 32; break;
    case cudaDevAttrMultiProcessorCount: *value = 4; break;
    default: return set_error(cudaErrorInvalidValue);
  }
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() {
  FG_EMU_ENTER();
  if (unsafe_during_capture()) return cudaErrorStreamCaptureUnsupported;
  flush_all();
  return set_error(sync_point());
}

cudaError_t cudaDeviceReset() {
  reset();
  return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int* v) {
  *v = CUDART_VERSION;
  return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int* v) {
  *v = cfg().devices > 0 ? CUDART_VERSION : 0;
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
  FG_EMU_ENTER();
  if (!p) return set_error(cudaErrorInvalidValue);
  *p = nullptr;
  if (unsafe_during_capture()) return cudaErrorStreamCaptureUnsupported;
  if (bytes == 0) return cudaSuccess;
  ++g_stats.mallocs;
  if (cfg().fail_malloc_at > 0 && --cfg().fail_malloc_at == 0) return set_error(cudaErrorMemoryAllocation);
  const size_t used = bytes_in_use();
  if (bytes > cfg().device_memory || used + bytes > cfg().device_memory) return set_error(cudaErrorMemoryAllocation);
  void* m = aligned_alloc(256, rounded(bytes));
  if (!m) return set_error(cudaErrorMemoryAllocation);
  memset(m, 0xff, bytes);  // NaN as float, half and bfloat16
#ifdef FG_EMU_ASAN
  // The allocation is rounded up to 256 bytes: the tail is out of bounds all the same.
  if (rounded(bytes) > bytes) ASAN_POISON_MEMORY_REGION(static_cast<char*>(m) + bytes, rounded(bytes) - bytes);
#endif
  g_allocs[(uintptr_t)m] = Alloc{bytes};
  g_stats.peak_bytes = std::max(g_stats.peak_bytes, used + bytes);
  *p = m;
  return cudaSuccess;
}

cudaError_t cudaFree(void* p) {
  FG_EMU_ENTER();
  if (!p) return cudaSuccess;
  if (unsafe_during_capture()) return cudaErrorStreamCaptureUnsupported;
  flush_all();  // cudaFree synchronises the device
  auto it = g_allocs.find((uintptr_t)p);
  if (it == g_allocs.end()) return set_error(cudaErrorInvalidDevicePointer);
#ifdef FG_EMU_ASAN
  ASAN_UNPOISON_MEMORY_REGION(p, rounded(it->second.bytes));
#endif
  g_allocs.erase(it);
  free(p);
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void** p, size_t bytes) {
  FG_EMU_ENTER();
  *p = aligned_alloc(64, (std::max<size_t>(bytes, 1) + 63) / 64 * 64);
  if (!*p) return set_error(cudaErrorMemoryAllocation);
  g_pinned[(uintptr_t)*p] = HostAlloc{bytes};
  return cudaSuccess;
}

cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned) { return cudaMallocHost(p, bytes); }

cudaError_t cudaFreeHost(void* p) {
  FG_EMU_ENTER();
  if (!p) return cudaSuccess;
  flush_all();
  auto it = g_pinned.find((uintptr_t)p);
  if (it == g_pinned.end()) return set_error(cudaErrorInvalidValue);
  g_pinned.erase(it);
  free(p);
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  FG_EMU_ENTER();
  const size_t used = bytes_in_use();
  *total_bytes = cfg().device_memory;
  *free_bytes = used > cfg().device_memory ? 0 : cfg().device_memory - used;
  return cudaSuccess;
}

namespace {
bool is_device(const void* p, size_t bytes) {
  const uintptr_t a = (uintptr_t)p;
  auto it = g_allocs.upper_bound(a);
  if (it == g_allocs.begin()) return false;
  --it;
  return a >= it->first && a + bytes <= it->first + it->second.bytes;
}

// Checks that each side of a copy is what `kind` says (cudaMemcpyDefault: anything).
cudaError_t check_copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (bytes == 0) return cudaSuccess;
  if (!dst || !src) return cudaErrorInvalidValue;
  const bool dd = is_device(dst, bytes), sd = is_device(src, bytes);
  switch (kind) {
    case cudaMemcpyHostToDevice: return dd && !sd ? cudaSuccess : cudaErrorInvalidValue;
    case cudaMemcpyDeviceToHost: return sd && !dd ? cudaSuccess : cudaErrorInvalidValue;
    case cudaMemcpyDeviceToDevice: return sd && dd ? cudaSuccess : cudaErrorInvalidValue;
    case cudaMemcpyHostToHost: return !sd && !dd ? cudaSuccess : cudaErrorInvalidValue;
    default: return cudaSuccess;
  }
}
}  // namespace

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  FG_EMU_ENTER();
  if (unsafe_during_capture()) return cudaErrorStreamCaptureUnsupported;
  const cudaError_t c = check_copy(dst, src, bytes, kind);
  if (c != cudaSuccess) return set_error(c);
  before_op(&g_legacy);
  if (bytes == 0) return cudaSuccess;
  if (kind == cudaMemcpyHostToDevice && !is_pinned(src, bytes)) {
    // Returns once the data is staged; it reaches the device when the legacy stream next
    // synchronises with other work (see the file comment).
    PendingLegacyCopy pc;
    pc.dst = dst;
    pc.data.assign(static_cast<const uint8_t*>(src), static_cast<const uint8_t*>(src) + bytes);
    g_legacy_pending.push_back(std::move(pc));
    return set_error(sync_point());
  }
  memcpy(dst, src, bytes);
  return set_error(sync_point());
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s) {
  FG_EMU_ENTER();
  Stream* st = get_stream(s);
  if (!st) return set_error(cudaErrorInvalidResourceHandle);
  const cudaError_t c = check_copy(dst, src, bytes, kind);
  if (c != cudaSuccess) return set_error(c);
  if (bytes == 0) return cudaSuccess;
  if (st->capturing) {
    Node n;
    n.kind = Node::Copy;
    n.dst = dst;
    n.src = src;
    n.bytes = bytes;
    st->graph->nodes.push_back(n);
    return cudaSuccess;
  }
  before_op(st);
  const bool pinned_host = (kind == cudaMemcpyHostToDevice && is_pinned(src, bytes)) ||
                           (kind == cudaMemcpyDeviceToHost && is_pinned(dst, bytes));
  if (pinned_host) {
    // Truly asynchronous: runs at the next operation on the stream or its synchronisation.
    st->deferred.push_back([dst, src, bytes] { memcpy(dst, src, bytes); });
    return cudaSuccess;
  }
  // Pageable host memory: staged (host to device) or completed (device to host) before returning.
  memcpy(dst, src, bytes);
  if (kind == cudaMemcpyDeviceToHost) return set_error(sync_point());
  return cudaSuccess;
}

cudaError_t cudaMemset(void* dst, int value, size_t bytes) {
  FG_EMU_ENTER();
  if (unsafe_during_capture()) return cudaErrorStreamCaptureUnsupported;
  if (!is_device(dst, bytes)) return set_error(cudaErrorInvalidValue);
  before_op(&g_legacy);
  memset(dst, value, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t s) {
  FG_EMU_ENTER();
  Stream* st = get_stream(s);
  if (!st) return set_error(cudaErrorInvalidResourceHandle);
  if (bytes && !is_device(dst, bytes)) return set_error(cudaErrorInvalidValue);
  if (st->capturing) {
    Node n;
    n.kind = Node::Set;
    n.dst = dst;
    n.value = value;
    n.bytes = bytes;
    st->graph->nodes.push_back(n);
    return cudaSuccess;
  }
  before_op(st);
  memset(dst, value, bytes);
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, cudaStreamDefault); }

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags) {
  FG_EMU_ENTER();
  Stream* st = new Stream();
  st->flags = flags;
  g_streams.insert(st);
  *s = reinterpret_cast<cudaStream_t>(st);
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t s) {
  FG_EMU_ENTER();
  Stream* st = get_stream(s);
  if (!st || st == &g_legacy) return set_error(cudaErrorInvalidResourceHandle);
  flush_stream(st);
  if (st->capturing) --g_active_captures;
  delete st->graph;
  g_streams.erase(st);
  delete st;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  FG_EMU_ENTER();
  Stream* st = get_stream(s);
  if (!st) return set_error(cudaErrorInvalidResourceHandle);
  if (st->capturing) {
    st->invalidated = true;
    return set_error(cudaErrorStreamCaptureUnsupported);
  }
  if (unsafe_during_capture()) return cudaErrorStreamCaptureUnsupported;
  before_op(st);
  flush_stream(st);
  return set_error(sync_point());
}

cudaError_t cudaStreamQuery(cudaStream_t s) { return cudaStreamSynchronize(s); }

cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode) {
  FG_EMU_ENTER();
  Stream* st = get_stream(s);
  if (!st) return set_error(cudaErrorInvalidResourceHandle);
  if (st == &g_legacy || st->capturing) return set_error(cudaErrorStreamCaptureUnsupported);
  flush_stream(st);
  st->capturing = true;
  st->invalidated = false;
  st->mode = mode;
  st->graph = new Graph();
  if (mode != cudaStreamCaptureModeRelaxed) ++g_active_captures;
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* graph) {
  FG_EMU_ENTER();
  Stream* st = get_stream(s);
  if (!st) return set_error(cudaErrorInvalidResourceHandle);
  if (!st->capturing) return set_error(cudaErrorStreamCaptureUnmatched);
  st->capturing = false;
  if (st->mode != cudaStreamCaptureModeRelaxed) --g_active_captures;
  Graph* g = st->graph;
  st->graph = nullptr;
  if (st->invalidated) {
    delete g;
    *graph = nullptr;
    return set_error(cudaErrorStreamCaptureInvalidated);
  }
  *graph = reinterpret_cast<cudaGraph_t>(g);
  return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus* status) {
  FG_EMU_ENTER();
  Stream* st = get_stream(s);
  if (!st) return set_error(cudaErrorInvalidResourceHandle);
  *status = !st->capturing ? cudaStreamCaptureStatusNone
            : st->invalidated ? cudaStreamCaptureStatusInvalidated
                              : cudaStreamCaptureStatusActive;
  return cudaSuccess;
}

struct CUevent_st {
  bool recorded = false;
  std::chrono::steady_clock::time_point t;
};

cudaError_t cudaEventCreate(cudaEvent_t* e) { return cudaEventCreateWithFlags(e, 0); }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) {
  FG_EMU_ENTER();
  *e = new CUevent_st();
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  FG_EMU_ENTER();
  delete e;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  FG_EMU_ENTER();
  Stream* st = get_stream(s);
  if (!st || !e) return set_error(cudaErrorInvalidResourceHandle);
  if (st->capturing) return set_error(cudaErrorStreamCaptureUnsupported);
  before_op(st);
  flush_stream(st);
  e->recorded = true;
  e->t = std::chrono::steady_clock::now();
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  FG_EMU_ENTER();
  if (!e) return set_error(cudaErrorInvalidResourceHandle);
  return set_error(sync_point());
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  FG_EMU_ENTER();
  if (!a || !b || !a->recorded || !b->recorded) return set_error(cudaErrorInvalidResourceHandle);
  *ms = std::chrono::duration<float, std::milli>(b->t - a->t).count();
  return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned) {
  FG_EMU_ENTER();
  if (!get_stream(s) || !e) return set_error(cudaErrorInvalidResourceHandle);
  return cudaSuccess;
}

struct CUgraphExec_st {
  Graph g;
};

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  FG_EMU_ENTER();
  if (!graph || !exec) return set_error(cudaErrorInvalidValue);
  CUgraphExec_st* x = new CUgraphExec_st();
  x->g = *reinterpret_cast<Graph*>(graph);
  *exec = x;
  return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  FG_EMU_ENTER();
  delete reinterpret_cast<Graph*>(graph);
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  FG_EMU_ENTER();
  delete exec;
  return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s) {
  FG_EMU_ENTER();
  Stream* st = get_stream(s);
  if (!st || !exec) return set_error(cudaErrorInvalidResourceHandle);
  if (st->capturing) return set_error(cudaErrorStreamCaptureUnsupported);
  before_op(st);
  ++g_stats.graph_launches;
  for (const Node& n : exec->g.nodes) run_node(n);
  return cudaSuccess;
}

cudaError_t fg_emu_func_set_attribute(void (*key)(), cudaFuncAttribute attr, int value) {
  FG_EMU_ENTER();
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || (size_t)value > optin_smem()) return set_error(cudaErrorInvalidValue);
    g_max_dyn_smem[key] = value;
  }
  return cudaSuccess;
}

// The driver entry point the CUDA backend asks for: only cuTensorMapEncodeTiled, answered by the
// emulator's encoder (the TMA emulation in ptx.cc reads what it writes).
cudaError_t cudaGetDriverEntryPointByVersion(const char* symbol, void** fn, unsigned int version,
                                             unsigned long long flags, cudaDriverEntryPointQueryResult* status) {
  FG_EMU_ENTER();
  (void)flags;
  if (!symbol || !fn) return set_error(cudaErrorInvalidValue);
  *fn = nullptr;
  if (std::strcmp(symbol, "cuTensorMapEncodeTiled") != 0) {
    if (status) *status = cudaDriverEntryPointSymbolNotFound;
    return cudaSuccess;
  }
  if (version < 12000) {
    if (status) *status = cudaDriverEntryPointVersionNotSufficent;
    return cudaSuccess;
  }
  *fn = tensor_map_encoder();
  if (status) *status = cudaDriverEntryPointSuccess;
  return cudaSuccess;
}
