// Run-time choice of the instruction-set table, thread counts and scratch buffers.
#include <omp.h>
#include <sys/mman.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "array.h"
#include "isa.h"

namespace needle_cpp {
namespace {

int best_level() {
  __builtin_cpu_init();
  // __builtin_cpu_supports also checks that the OS saves the wider registers.
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
    return 2;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
  return 0;
}

const KernelTable* table_for(int level) {
  return level == 2 ? &table_avx512() : level == 1 ? &table_avx2() : &table_scalar();
}

int level_from_name(const std::string& name) {
  if (name == "avx512") return 2;
  if (name == "avx2") return 1;
  if (name == "scalar") return 0;
  return -1;
}

int initial_level() {
  int level = best_level();
  // NEEDLE_CPP_SIMD lowers the level (for tests and comparisons); it never raises it.
  if (const char* env = std::getenv("NEEDLE_CPP_SIMD")) {
    int wanted = level_from_name(env);
    if (wanted >= 0 && wanted < level) level = wanted;
  }
  return level;
}

std::atomic<const KernelTable*> g_active{table_for(initial_level())};

}  // namespace

const KernelTable& active() { return *g_active.load(std::memory_order_relaxed); }

std::string simd_level() { return active().name; }

void set_simd_level(const std::string& name) {
  int wanted = level_from_name(name);
  if (wanted < 0)
    throw std::invalid_argument("set_simd_level: unknown level '" + name +
                                "'; expected 'avx512', 'avx2' or 'scalar'");
  if (wanted > best_level())
    throw std::invalid_argument("set_simd_level: this CPU does not support '" + name + "'");
  g_active.store(table_for(wanted));
}

std::string best_simd_level() { return table_for(best_level())->name; }

void* scratch(int slot, size_t bytes) {
  struct Buf {
    void* ptr = nullptr;
    size_t bytes = 0;
    ~Buf() { std::free(ptr); }
  };
  thread_local Buf bufs[4];
  Buf& b = bufs[slot];
  if (b.bytes < bytes) {
    std::free(b.ptr);
    b.ptr = nullptr;
    b.bytes = 0;
    // Packed gemm panels are walked over and over: huge pages keep them out of the TLB.
    constexpr size_t kHuge = size_t(2) << 20;
    const size_t align = bytes >= kHuge / 8 ? kHuge : 64;
    const size_t rounded = (bytes + align - 1) / align * align;
    b.ptr = std::aligned_alloc(align, rounded);
    if (!b.ptr) throw std::bad_alloc();
    if (align == kHuge) madvise(b.ptr, rounded, MADV_HUGEPAGE);
    b.bytes = rounded;
  }
  return b.ptr;
}

int threads_for(int64_t work) {
  // Below this many elements (512 KiB of float32) a parallel region costs more than it
  // saves, and far more when another process holds a core (see needle_cpp.SPIN_COUNT).
  constexpr int64_t kParallelThreshold = 1 << 17;
  if (work < kParallelThreshold) return 1;
  int n = omp_get_max_threads();
  int64_t useful = work / kParallelThreshold;
  return (int)(useful < n ? useful : n);
}

}  // namespace needle_cpp
