// bench/placement.hpp - where the two processes of a benchmark run: unpinned, both on CPU 0, or
// parent on CPU 0 and child on CPU 1 (the placements of ../shared/baseline).
#pragma once

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#if defined(__linux__) && __has_include(<sched.h>)
#include <sched.h>
#define MP_BENCH_HAVE_AFFINITY 1
#else
#define MP_BENCH_HAVE_AFFINITY 0
#endif

namespace mp_bench {

struct Placement {
  const char* name;
  int parent;  // CPU, or -1: any
  int child;
};
inline constexpr Placement kPlacements[] = {{"unpinned", -1, -1}, {"same_cpu", 0, 0}, {"cross_cpu", 0, 1}};

#if MP_BENCH_HAVE_AFFINITY
inline bool cpu_allowed(int cpu) {
  if (cpu < 0) return true;
  cpu_set_t s;
  CPU_ZERO(&s);
  if (::sched_getaffinity(0, sizeof s, &s) != 0) return false;
  return CPU_ISSET(cpu, &s);
}

// Pins the calling process to `cpu` (nothing for -1).
inline void pin_to(int cpu) {
  if (cpu < 0) return;
  cpu_set_t s;
  CPU_ZERO(&s);
  CPU_SET(cpu, &s);
  if (::sched_setaffinity(0, sizeof s, &s) != 0) {
    throw std::runtime_error(std::string("sched_setaffinity: ") + std::strerror(errno));
  }
}

// The parent's placement for the lifetime of one benchmark run; the former affinity comes back.
class ParentPin {
 public:
  explicit ParentPin(int cpu) {
    CPU_ZERO(&saved_);
    have_ = ::sched_getaffinity(0, sizeof saved_, &saved_) == 0;
    pin_to(cpu);
  }
  ~ParentPin() {
    if (have_) ::sched_setaffinity(0, sizeof saved_, &saved_);
  }
  ParentPin(const ParentPin&) = delete;
  ParentPin& operator=(const ParentPin&) = delete;

 private:
  cpu_set_t saved_;
  bool have_ = false;
};
#endif

}  // namespace mp_bench
