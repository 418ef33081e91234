// A small persistent thread pool: the caller plus (n − 1) std::threads. run() hands out task
// indices dynamically (an atomic counter) and returns when all are done. Workers spin briefly
// between jobs (consecutive layers follow each other closely) and then sleep.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace facegan {
namespace cpu {

class ThreadPool {
 public:
  explicit ThreadPool(int num_threads);  // total threads including the caller; ≥ 1
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return nthreads_; }
  // fn(task, thread_index) for task in [0, ntasks); thread_index in [0, size()). Not reentrant.
  // An exception thrown by fn is caught; run() then returns false (the remaining tasks still run)
  // and error() gives the first such exception's what() (or "unknown exception").
  bool run(int ntasks, const std::function<void(int, int)>& fn);
  // The text of the first exception of the last run() that failed ("" after one that did not).
  // Read it on the thread that called run(), after run() returned.
  const std::string& error() const { return error_; }

 private:
  void worker(int index);
  void work(int index);
  void fail(const char* what);

  int nthreads_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> next_{0};
  std::atomic<int> active_{0};
  std::atomic<bool> failed_{false};
  std::atomic<bool> stop_{false};
  int ntasks_ = 0;
  const std::function<void(int, int)>* fn_ = nullptr;
  std::mutex error_mu_;
  std::string error_;  // the first failure's text (guarded by error_mu_ while a run is going)
};

}  // namespace cpu
}  // namespace facegan
