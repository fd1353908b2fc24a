#pragma once

// ThreadSanitizer cannot see libgomp's fork and join (Debian's libgomp is not instrumented), so it
// would report every buffer a parallel region's threads touch against the calling thread's
// accesses before and after the region. Under TSan, OmpForkJoin states the ordering OpenMP
// guarantees; in every other build it is empty and compiles away.
#if defined(__SANITIZE_THREAD__)
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
#endif

namespace bertd::runtime {

// One per parallel region, on the calling thread, in a scope that ends with the region:
//   { OmpForkJoin fork_join;
//     #pragma omp parallel for
//     for (...) { OmpForkJoin::Worker worker(fork_join); ... } }
// Two tokens, so workers are ordered after the fork and before the join but never after each
// other: races between two workers of one region are still reported.
class OmpForkJoin {
 public:
  OmpForkJoin() { Release(&fork_); }
  ~OmpForkJoin() { Acquire(&join_); }
  OmpForkJoin(const OmpForkJoin&) = delete;
  OmpForkJoin& operator=(const OmpForkJoin&) = delete;

  class Worker {
   public:
    explicit Worker(OmpForkJoin& region) : region_(region) { Acquire(&region_.fork_); }
    ~Worker() { Release(&region_.join_); }
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

   private:
    OmpForkJoin& region_;
  };

 private:
#if defined(__SANITIZE_THREAD__)
  static void Acquire(char* token) { __tsan_acquire(token); }
  static void Release(char* token) { __tsan_release(token); }
#else
  static void Acquire(char*) {}
  static void Release(char*) {}
#endif
  char fork_ = 0;
  char join_ = 0;
};

}  // namespace bertd::runtime
