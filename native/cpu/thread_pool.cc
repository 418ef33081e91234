#include "thread_pool.h"

#include <chrono>
#include <exception>

namespace facegan {
namespace cpu {

ThreadPool::ThreadPool(int num_threads) : nthreads_(num_threads < 1 ? 1 : num_threads) {
  threads_.reserve(size_t(nthreads_ - 1));
  for (int i = 1; i < nthreads_; ++i) threads_.emplace_back(&ThreadPool::worker, this, i);
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
    generation_.fetch_add(1);
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::fail(const char* what) {
  std::lock_guard<std::mutex> lock(error_mu_);
  if (!failed_.load()) error_ = what != nullptr ? what : "unknown exception";
  failed_.store(true);
}

void ThreadPool::work(int index) {
  for (;;) {
    int t = next_.fetch_add(1, std::memory_order_relaxed);
    if (t >= ntasks_) break;
    try {
      (*fn_)(t, index);
    } catch (const std::exception& e) {
      fail(e.what());
    } catch (...) {
      fail(nullptr);
    }
  }
}

void ThreadPool::worker(int index) {
  uint64_t seen = 0;
  for (;;) {
    // Spin a little for the next job, then sleep.
    uint64_t g = generation_.load(std::memory_order_acquire);
    if (g == seen) {
      auto t0 = std::chrono::steady_clock::now();
      int spins = 0;
      while ((g = generation_.load(std::memory_order_acquire)) == seen) {
        if (++spins % 64 == 0 && std::chrono::steady_clock::now() - t0 > std::chrono::microseconds(200)) break;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
      }
      if (g == seen) {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return generation_.load() != seen; });
        g = generation_.load();
      }
    }
    seen = g;
    if (stop_.load()) return;
    work(index);
    active_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

bool ThreadPool::run(int ntasks, const std::function<void(int, int)>& fn) {
  failed_.store(false);
  error_.clear();
  if (ntasks <= 0) return true;
  if (nthreads_ == 1 || ntasks == 1) {
    for (int t = 0; t < ntasks; ++t) {
      try {
        fn(t, 0);
      } catch (const std::exception& e) {
        fail(e.what());
      } catch (...) {
        fail(nullptr);
      }
    }
    return !failed_.load();
  }
  fn_ = &fn;
  ntasks_ = ntasks;
  next_.store(0);
  active_.store(nthreads_ - 1);
  {
    std::lock_guard<std::mutex> lock(mu_);
    generation_.fetch_add(1, std::memory_order_acq_rel);
  }
  cv_.notify_all();
  work(0);
  for (int spins = 0; active_.load(std::memory_order_acquire) != 0; ++spins) {
    if (spins > 4096) {
      std::this_thread::yield();
      continue;
    }
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  fn_ = nullptr;
  return !failed_.load();
}

}  // namespace cpu
}  // namespace facegan
