// The CPU engine's pieces that the other files do not reach through a whole network.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "../../cpu/thread_pool.h"  // ThreadPool (its error reporting)
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

const Register kCases(__FILE__, {
    {"CPU thread pool keeps a worker's exception text", test_thread_pool_errors},
});

}  // namespace
