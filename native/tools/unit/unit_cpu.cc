// The CPU engine's pieces that the other files do not reach through a whole network.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <random>
#include <string>
#include <vector>

#include "../../cpu/kernels.h"      // kernel_sets (the instruction sets usable here)
#include "../../cpu/thread_pool.h"  // ThreadPool (its error reporting)
#include "../random_model.h"
#include "facegan.h"
#include "unit.h"

using namespace facegan;
using namespace facegan::cuda;
using namespace facegan::unit;

namespace {

// The CPU engine's thread pool: a task's exception fails run() and its text is kept (error(),
// which the engine puts in its error message); the other tasks still run; the next run() starts
// clean. With one thread and with several.
void test_thread_pool_errors() {
  for (int threads : {1, 4}) {
    const std::string with = std::to_string(threads) + " threads: ";
    facegan::cpu::ThreadPool pool(threads);
    std::atomic<int> ran{0};
    bool ok = pool.run(64, [&](int t, int) {
      ran.fetch_add(1);
      if (t == 17) throw std::runtime_error("task 17: out of scratch");
    });
    CHECK(!ok, with + "run() reports the failure");
    CHECK(pool.error() == "task 17: out of scratch", with + "the exception text is kept (got '" + pool.error() + "')");
    CHECK(ran.load() == 64, with + "the other tasks still ran (" + std::to_string(ran.load()) + " of 64)");
    ok = pool.run(8, [&](int t, int) {
      if (t == 3) throw 42;
    });
    CHECK(!ok && pool.error() == "unknown exception", with + "a non-std exception (got '" + pool.error() + "')");
    ok = pool.run(8, [&](int, int) {});
    CHECK(ok && pool.error().empty(), with + "a clean run clears the error");
  }
}

// The float images of n samples of a random model on the CPU engine (2 threads), with the
// environment as it is now (random_model_images).
std::vector<float> cpu_images(const std::string& config, int n, NoiseMode noise, int threads = 2) {
  LoadOptions lo;
  lo.backend = "cpu";
  lo.num_threads = threads;
  std::string err;
  std::vector<float> img = random_model_images(config, n, lo, noise, &err);
  if (img.empty()) fail(config + ": " + err);
  return img;
}

// The CPU engine runs a ToRGB inside the Winograd conv before it when the tasks allow it
// (StyleGAN2's every block from 16², with the skip upsampling; ProGAN's final one, after the
// in-task pixel norm); FACEGAN_CPU_FUSE_RGB=0 runs it as its own pass. Both must give the same
// bits (the fused form is only a schedule), for every instruction set this machine has
// (kernels.h kernel_sets: here avx512, avx2 and scalar where the CPU has them).
void test_fused_torgb_bits() {
  const char* isa_env = std::getenv("FACEGAN_CPU_ISA");
  const std::string saved_isa = isa_env ? isa_env : "";
  const cpu::KernelSet* sets[8];
  const int nsets = std::min(8, cpu::kernel_sets(sets, 8));
  for (int k = 0; k < nsets; ++k) {
    const char* isa = sets[k]->name;
    setenv("FACEGAN_CPU_ISA", isa, 1);
    for (const char* config : {"wide256", "progan-wide", "tiny"}) {
      const NoiseMode noise = std::string(config) == "progan-wide" ? NoiseMode::None : NoiseMode::Random;
      unsetenv("FACEGAN_CPU_FUSE_RGB");
      const std::vector<float> fused = cpu_images(config, 2, noise);
      setenv("FACEGAN_CPU_FUSE_RGB", "0", 1);
      const std::vector<float> separate = cpu_images(config, 2, noise);
      unsetenv("FACEGAN_CPU_FUSE_RGB");
      CHECK(!fused.empty() && fused.size() == separate.size() &&
                std::memcmp(fused.data(), separate.data(), fused.size() * sizeof(float)) == 0,
            std::string(config) + " (" + isa + "): fused ToRGB differs from the separate pass (max |diff| " +
                std::to_string(max_abs_diff(fused, separate)) + ")");
    }
  }
  if (isa_env) setenv("FACEGAN_CPU_ISA", saved_isa.c_str(), 1);
  else unsetenv("FACEGAN_CPU_ISA");
}

// How a layer's work is cut into tasks follows the thread count (the Winograd convs split tiles,
// then output channels, until the pool has work), never the arithmetic: the images of 1, 2, 3
// and 8 threads must be the same bits. ffhq256 and progan128 have the 512-channel layers whose
// weights take the split by output channels; batch 1 has the fewest tiles to split.
void test_thread_count_bits() {
  for (const char* config : {"ffhq256", "progan128", "tiny"}) {
    const NoiseMode noise = std::string(config) == "progan128" ? NoiseMode::None : NoiseMode::Random;
    for (int n : {1, 2}) {
      std::vector<float> first;
      for (int threads : {1, 2, 3, 8}) {
        LoadOptions lo;
        lo.backend = "cpu";
        lo.num_threads = threads;
        std::string err;
        const std::vector<float> img = random_model_images(config, n, lo, noise, &err);
        if (img.empty()) fail(std::string(config) + ": " + err);
        if (first.empty()) {
          first = img;
          continue;
        }
        CHECK(img.size() == first.size() && std::memcmp(img.data(), first.data(), img.size() * sizeof(float)) == 0,
              std::string(config) + ", batch " + std::to_string(n) + ": " + std::to_string(threads) +
                  " threads differ from 1 thread (max |diff| " + std::to_string(max_abs_diff(img, first)) + ")");
      }
    }
  }
}

// The sub-pixel up-conv (FACEGAN_CPU_SUB_MIN_RES=4: every up-conv; the default runs it from 32²
// input) against the transposed-GEMM form (FACEGAN_CPU_SUB_MIN_RES=0): the same function in
// float32 (max |diff| ≤ 1e-4·max(1, max |image|)), and bit-exact batch invariance of its own (the
// first image of a batch of 3 = that image alone; 1, 2 and 3 threads, which split an image into
// bands of tile rows and / or chunks of output channels differently), for every instruction set
// usable here.
void test_subpixel_upconv() {
  const char* isa_env = std::getenv("FACEGAN_CPU_ISA");
  const std::string saved_isa = isa_env ? isa_env : "";
  const cpu::KernelSet* sets[8];
  const int nsets = std::min(8, cpu::kernel_sets(sets, 8));
  for (int k = 0; k < nsets; ++k) {
    const char* isa = sets[k]->name;
    setenv("FACEGAN_CPU_ISA", isa, 1);
    for (const char* config : {"tiny", "wide256"}) {
      const std::string with = std::string(config) + " (" + isa + "): ";
      setenv("FACEGAN_CPU_SUB_MIN_RES", "0", 1);
      const std::vector<float> plain = cpu_images(config, 3, NoiseMode::Random);
      setenv("FACEGAN_CPU_SUB_MIN_RES", "4", 1);
      const std::vector<float> sub = cpu_images(config, 3, NoiseMode::Random);
      const std::vector<float> one = cpu_images(config, 1, NoiseMode::Random);
      const std::vector<float> one_t1 = cpu_images(config, 1, NoiseMode::Random, 1);
      const std::vector<float> sub_t3 = cpu_images(config, 3, NoiseMode::Random, 3);
      // One image on 2 threads, scheduled both ways the engine may choose (cpu_upconv.cc):
      // cooperative steps, and bands of tile rows / chunks of channels.
      setenv("FACEGAN_SUB_COOP", "1", 1);
      const std::vector<float> one_coop = cpu_images(config, 1, NoiseMode::Random);
      setenv("FACEGAN_SUB_COOP", "0", 1);
      const std::vector<float> one_split = cpu_images(config, 1, NoiseMode::Random);
      unsetenv("FACEGAN_SUB_COOP");
      unsetenv("FACEGAN_CPU_SUB_MIN_RES");
      for (const auto* v : {&one_coop, &one_split})
        CHECK(v->size() == one.size() && std::memcmp(one.data(), v->data(), one.size() * sizeof(float)) == 0,
              with + (v == &one_coop ? "cooperative steps" : "bands / channel chunks") +
                  " on 2 threads differ from the default schedule");
      double ref_max = 0.0;
      const double diff = max_abs_diff(sub, plain, &ref_max);
      CHECK(!plain.empty() && sub.size() == plain.size() && diff <= 1e-4 * std::max(1.0, ref_max),
            with + "sub-pixel vs plain up-conv: max |diff| " + std::to_string(diff) + " (max |image| " +
                std::to_string(ref_max) + ")");
      CHECK(!one.empty() && one.size() * 3 == sub.size() &&
                std::memcmp(one.data(), sub.data(), one.size() * sizeof(float)) == 0,
            with + "image 0 alone differs from image 0 of the batch of 3");
      CHECK(one_t1.size() == one.size() && std::memcmp(one.data(), one_t1.data(), one.size() * sizeof(float)) == 0,
            with + "image 0 alone on 1 thread differs from 2 threads");
      CHECK(sub_t3.size() == sub.size() && std::memcmp(sub.data(), sub_t3.data(), sub.size() * sizeof(float)) == 0,
            with + "a batch of 3 on 3 threads differs from 2 threads");
      CHECK(std::memcmp(sub.data(), plain.data(), plain.size() * sizeof(float)) != 0,
            with + "the sub-pixel form gave the plain form's bits: was it used?");
    }
  }
  if (isa_env) setenv("FACEGAN_CPU_ISA", saved_isa.c_str(), 1);
  else unsetenv("FACEGAN_CPU_ISA");
}

const Register kCases(__FILE__, {
    {"CPU thread pool keeps a worker's exception text", test_thread_pool_errors},
    {"CPU engine: fused ToRGB == the separate pass, bit for bit (every ISA)", test_fused_torgb_bits},
    {"CPU engine: the same bits on 1, 2, 3 and 8 threads (tasks split by tiles and output channels)",
     test_thread_count_bits},
    {"CPU engine: sub-pixel up-conv == the plain one (float32), batch- and thread-invariant (every ISA)",
     test_subpixel_upconv},
});

}  // namespace
