// A size-class cache of freed buffers, so that a buffer freed by one op is handed to the
// next op that asks for one of the same class instead of being returned to the OS and
// faulted in afresh (a fresh large buffer costs 3-5x a reused one in page faults).
#include <sys/mman.h>

#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "perf_kernels.h"

namespace needle_cpp {
namespace {

constexpr size_t kHuge = size_t(2) << 20;

size_t initial_limit() {
  if (const char* env = std::getenv("NEEDLE_CPP_CACHE_MB")) {
    char* end = nullptr;
    const long long v = std::strtoll(env, &end, 10);
    if (end != env && *end == '\0' && v >= 0) return (size_t)v << 20;
  }
  return size_t(1024) << 20;
}

struct Cache {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free_lists;  // held bytes -> buffers
  size_t cached = 0, buffers = 0, limit = initial_limit(), hits = 0, misses = 0;

  void trim_to(size_t target) {  // called with mu held
    for (auto& [bytes, list] : free_lists) {
      while (cached > target && !list.empty()) {
        std::free(list.back());
        list.pop_back();
        cached -= bytes;
        --buffers;
      }
    }
  }
};

// Never destroyed: buffers may still be freed while the interpreter shuts down.
Cache& cache() {
  static Cache* c = new Cache;
  return *c;
}

/// The size class of a request: multiples of 64 bytes up to 4 KiB, then 8 classes per
/// power of two; from 4 MiB on, whole 2 MiB pages.
size_t size_class(size_t bytes) {
  size_t r;
  if (bytes <= 4096) {
    r = (bytes + 63) / 64 * 64;
  } else {
    const int log2 = 63 - __builtin_clzll((unsigned long long)bytes);
    const size_t step = size_t(1) << (log2 - 3);
    r = (bytes + step - 1) / step * step;
  }
  if (r >= 2 * kHuge) r = (r + kHuge - 1) / kHuge * kHuge;
  return r;
}

}  // namespace

void* cache_acquire(size_t bytes, size_t* held) {
  if (bytes > (SIZE_MAX >> 2)) throw std::bad_alloc();
  const size_t cls = size_class(bytes);
  *held = cls;
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.free_lists.find(cls);
    if (it != c.free_lists.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      c.cached -= cls;
      --c.buffers;
      ++c.hits;
      return p;
    }
    ++c.misses;
  }
  // Large buffers: 2 MiB aligned and marked for transparent huge pages (as NumPy does),
  // which spares the TLB misses of streaming through hundreds of MiB.
  const size_t align = cls >= 2 * kHuge ? kHuge : 64;
  void* p = std::aligned_alloc(align, cls);
  if (!p) {  // maybe the cache holds the memory: give it back and retry once
    cache_empty();
    p = std::aligned_alloc(align, cls);
    if (!p) throw std::bad_alloc();
  }
  if (align == kHuge) madvise(p, cls, MADV_HUGEPAGE);  // a hint: failure is harmless
  return p;
}

void cache_release(void* ptr, size_t held) {
  if (!ptr) return;
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    if (c.cached + held <= c.limit) {
      try {  // runs in destructors: a failed push frees the buffer instead
        c.free_lists[held].push_back(ptr);
        c.cached += held;
        ++c.buffers;
        return;
      } catch (...) {
      }
    }
  }
  std::free(ptr);
}

CacheStats cache_stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return {c.cached, c.buffers, c.limit, c.hits, c.misses};
}

void cache_empty() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.trim_to(0);
  c.free_lists.clear();
}

void cache_set_limit(size_t bytes) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.limit = bytes;
  c.trim_to(bytes);
}

}  // namespace needle_cpp
