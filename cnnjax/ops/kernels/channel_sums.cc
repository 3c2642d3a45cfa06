// Per-channel sums of a float32 array a [..., c] and of its product with b (same shape): [sum a, sum a*b] over
// all axes but the last, one pass over both, as an XLA:CPU FFI handler. BatchNorm's batch statistics are
// (x, x) -> [sum x, sum x^2], and their gradient (dy, x) -> [sum dy, sum dy*x]; XLA reads its input once per sum.
//
// Rows go in blocks of kBlockRows, summed in float32 vectors and then added up in double; the blocks are spread
// over XLA's intra-op thread pool, each thread summing its own share.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "common.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using cnnjax::kLanes, cnnjax::Load, cnnjax::ParallelFor, cnnjax::Vec;

constexpr int64_t kBlockRows = 64;  // rows summed in float32 before they are added in double
constexpr int kStreams = 4;         // rows in flight, each into accumulators of its own

// Adds the sums of rows [r0, r1) of channels [c0, c0 + kLanes) into sa and sab (double, indexed from c0).
void SumBlock(const float* a, const float* b, int64_t c, int64_t r0, int64_t r1, int64_t c0, double* sa,
              double* sab) {
  Vec acc_a[kStreams] = {}, acc_ab[kStreams] = {};
  int64_t r = r0;
  for (; r + kStreams <= r1; r += kStreams) {
    for (int k = 0; k < kStreams; ++k) {
      Vec va = Load(a + (r + k) * c + c0);
      acc_a[k] += va;
      acc_ab[k] += va * Load(b + (r + k) * c + c0);
    }
  }
  for (; r < r1; ++r) {
    Vec va = Load(a + r * c + c0);
    acc_a[0] += va;
    acc_ab[0] += va * Load(b + r * c + c0);
  }
  for (int k = 1; k < kStreams; ++k) acc_a[0] += acc_a[k], acc_ab[0] += acc_ab[k];
  for (int lane = 0; lane < kLanes; ++lane) sa[lane] += acc_a[0][lane], sab[lane] += acc_ab[0][lane];
}

ffi::Error ChannelSumsImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> a, ffi::Buffer<ffi::F32> b,
                           ffi::ResultBuffer<ffi::F32> sums) {
  auto d = a.dimensions(), e = b.dimensions();
  if (d.size() == 0 || !std::equal(d.begin(), d.end(), e.begin(), e.end()))
    return ffi::Error::InvalidArgument("channel sums take two arrays of one shape [..., c]");
  int64_t c = d.back(), m = c == 0 ? 0 : a.element_count() / c;
  if (c % cnnjax::kChannelBlock != 0) return ffi::Error::InvalidArgument("channel sums need channels in multiples of 16");
  int64_t blocks = (m + kBlockRows - 1) / kBlockRows;
  int64_t tasks = std::clamp<int64_t>(4 * pool.num_threads(), 1, std::max<int64_t>(blocks, 1));
  std::vector<double> partial(tasks * 2 * c, 0.0);  // [task][sum a | sum ab][channel]
  ParallelFor(pool, tasks, [&](int64_t t) {
    double* sa = partial.data() + t * 2 * c;
    for (int64_t block = blocks * t / tasks; block < blocks * (t + 1) / tasks; ++block) {
      int64_t r0 = block * kBlockRows, r1 = std::min(m, r0 + kBlockRows);
      for (int64_t c0 = 0; c0 < c; c0 += kLanes)
        SumBlock(a.typed_data(), b.typed_data(), c, r0, r1, c0, sa + c0, sa + c + c0);
    }
  });
  for (int64_t k = 0; k < 2 * c; ++k) {
    double total = 0.0;
    for (int64_t t = 0; t < tasks; ++t) total += partial[t * 2 * c + k];
    sums->typed_data()[k] = static_cast<float>(total);
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(CnnjaxChannelSums, ChannelSumsImpl, cnnjax::BindPoolTwoArraysOneResult());
