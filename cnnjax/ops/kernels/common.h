// What the kernels share: float vectors of a register's width, ParallelFor over XLA's intra-op thread pool, and the
// arguments of their FFI handlers.
#ifndef CNNJAX_OPS_KERNELS_COMMON_H_
#define CNNJAX_OPS_KERNELS_COMMON_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>

#include "xla/ffi/api/ffi.h"

namespace cnnjax {

// Floats per vector: a register's worth, so that a tile's accumulators stay in registers (AVX-512 has 32 registers
// of 16 floats, AVX2 16 of 8; written with GCC vector extensions, so other instruction sets compile too).
#if defined(__AVX512F__)
constexpr int kLanes = 16;
#else
constexpr int kLanes = 8;
#endif
constexpr int kChannelBlock = 16;  // channel counts the kernels take are multiples of this (LANES in build.py)
typedef float Vec __attribute__((vector_size(4 * kLanes)));
typedef float VecU __attribute__((vector_size(4 * kLanes), aligned(4)));

inline Vec Load(const float* p) { return *reinterpret_cast<const VecU*>(p); }
inline void Store(float* p, Vec v) { *reinterpret_cast<VecU*>(p) = v; }

// Runs body(t) for t in [0, tasks) on the calling thread and on XLA's intra-op pool; returns when all have run.
// Each participant claims tasks from a shared counter, so a helper that starts late finds none left and the
// caller never waits for a task that has not begun.
template <typename Body>
void ParallelFor(xla::ffi::ThreadPool& pool, int64_t tasks, const Body& body) {
  struct State {
    std::atomic<int64_t> next{0}, done{0};
  };
  auto state = std::make_shared<State>();
  auto work = [state, tasks, body = &body] {
    for (int64_t t; (t = state->next.fetch_add(1)) < tasks;) {
      (*body)(t);
      state->done.fetch_add(1, std::memory_order_release);
    }
  };
  for (int64_t i = 1; i < std::min<int64_t>(pool.num_threads(), tasks); ++i) pool.Schedule(decltype(work)(work));
  work();
  while (state->done.load(std::memory_order_acquire) < tasks) std::this_thread::yield();
}

// The FFI binding every kernel starts from: XLA's intra-op thread pool, two float32 arrays, one float32 result
// (each kernel adds its attributes).
inline auto BindPoolTwoArraysOneResult() {
  namespace ffi = xla::ffi;
  return ffi::Ffi::Bind()
      .Ctx<ffi::ThreadPool>()
      .Arg<ffi::Buffer<ffi::F32>>()
      .Arg<ffi::Buffer<ffi::F32>>()
      .Ret<ffi::Buffer<ffi::F32>>();
}

}  // namespace cnnjax

#endif  // CNNJAX_OPS_KERNELS_COMMON_H_
