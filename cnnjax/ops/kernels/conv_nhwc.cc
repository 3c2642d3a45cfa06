// NHWC float32 convolutions, stride 1, for XLA:CPU through the FFI.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int kLanes = 16;  // channels per vector
typedef float Vec __attribute__((vector_size(64)));
typedef float VecU __attribute__((vector_size(64), aligned(4)));

inline Vec Load(const float* p) { return *reinterpret_cast<const VecU*>(p); }
inline void Store(float* p, Vec v) { *reinterpret_cast<VecU*>(p) = v; }

struct Shape {
  int64_t n, h, w, ci, co, kh, kw, pt, pl, ho, wo;
  int64_t hp() const { return ho + kh - 1; }
  int64_t wp() const { return wo + kw - 1; }
};

// Copies image `x` ([h, w, ci]) into `xp` ([hp, wp, ci]) with zero borders.
void Pad(const Shape& s, const float* x, float* xp) {
  std::memset(xp, 0, sizeof(float) * s.hp() * s.wp() * s.ci);
  for (int64_t i = 0; i < s.h; ++i) {
    int64_t r = i + s.pt;
    if (r < 0 || r >= s.hp()) continue;
    int64_t j0 = std::max<int64_t>(0, -s.pl), j1 = std::min<int64_t>(s.w, s.wp() - s.pl);
    if (j1 > j0)
      std::memcpy(xp + (r * s.wp() + j0 + s.pl) * s.ci, x + (i * s.w + j0) * s.ci,
                  sizeof(float) * (j1 - j0) * s.ci);
  }
}

// Runs body(t) for t in [0, tasks) on the calling thread and on XLA's intra-op pool; returns when all have run.
// Each participant claims tasks from a shared counter, so a helper that starts late finds none left and the
// caller never waits for a task that has not begun.
template <typename Body>
void ParallelFor(ffi::ThreadPool& pool, int64_t tasks, const Body& body) {
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

// y[j, co0:co0+16] for J output columns j0.. of output row i, from padded image xp and the packed kernel
// block wb ([kh, kw, ci, 16], the 16 output channels from co0).
template <int J>
inline void ConvTile(const Shape& s, const float* xp, const float* wb, float* y, int64_t i, int64_t j0,
                     int64_t co0) {
  Vec acc[J];
  for (int p = 0; p < J; ++p) acc[p] = Vec{};
  for (int64_t a = 0; a < s.kh; ++a) {
    for (int64_t b = 0; b < s.kw; ++b) {
      const float* xr = xp + ((i + a) * s.wp() + j0 + b) * s.ci;
      const float* wr = wb + (a * s.kw + b) * s.ci * kLanes;
      for (int64_t c = 0; c < s.ci; ++c) {
        Vec wv = Load(wr + c * kLanes);
#pragma GCC unroll 16
        for (int p = 0; p < J; ++p) acc[p] += xr[p * s.ci + c] * wv;
      }
    }
  }
  for (int p = 0; p < J; ++p) Store(y + ((i * s.wo) + j0 + p) * s.co + co0, acc[p]);
}

void ConvImage(const Shape& s, const float* xp, const float* packed, float* y) {
  for (int64_t i = 0; i < s.ho; ++i)
    for (int64_t co0 = 0; co0 < s.co; co0 += kLanes) {
      const float* wb = packed + co0 * s.kh * s.kw * s.ci;
      int64_t j = 0;
      for (; j + 16 <= s.wo; j += 16) ConvTile<16>(s, xp, wb, y, i, j, co0);
      for (; j + 8 <= s.wo; j += 8) ConvTile<8>(s, xp, wb, y, i, j, co0);
      for (; j + 4 <= s.wo; j += 4) ConvTile<4>(s, xp, wb, y, i, j, co0);
      for (; j < s.wo; ++j) ConvTile<1>(s, xp, wb, y, i, j, co0);
    }
}

// The HWIO kernel w as blocks of 16 output channels, each [kh, kw, ci, 16] and contiguous.
std::vector<float> PackKernel(const Shape& s, const float* w) {
  std::vector<float> packed(s.kh * s.kw * s.ci * s.co);
  int64_t taps = s.kh * s.kw * s.ci;
  for (int64_t co0 = 0; co0 < s.co; co0 += kLanes)
    for (int64_t t = 0; t < taps; ++t)
      std::memcpy(&packed[co0 * taps + t * kLanes], w + t * s.co + co0, sizeof(float) * kLanes);
  return packed;
}

// dw[a, b, ci0:ci0+16, co0:co0+16] += sum over output rows [i0, i1) of xp[i+a, j+b, ci] dy[i, j, co].
inline void WeightGradBlock(const Shape& s, const float* xp, const float* dy, float* dw, int64_t i0, int64_t i1,
                            int64_t a, int64_t b, int64_t ci0, int64_t co0) {
  Vec acc[kLanes];
  for (int c = 0; c < kLanes; ++c) acc[c] = Vec{};
  for (int64_t i = i0; i < i1; ++i) {
    const float* xr = xp + ((i + a) * s.wp() + b) * s.ci + ci0;
    const float* dr = dy + i * s.wo * s.co + co0;
    for (int64_t j = 0; j < s.wo; ++j) {
      Vec d = Load(dr + j * s.co);
#pragma GCC unroll 16
      for (int c = 0; c < kLanes; ++c) acc[c] += xr[j * s.ci + c] * d;
    }
  }
  float* out = dw + ((a * s.kw + b) * s.ci + ci0) * s.co + co0;
  for (int c = 0; c < kLanes; ++c) Store(out + c * s.co, Load(out + c * s.co) + acc[c]);
}

// Adds one image's weight gradient to dw, a band of output rows at a time (a band's input and output
// gradient stay in the core's L2 cache while every kernel tap and channel block reads them).
void WeightGradImage(const Shape& s, const float* xp, const float* dy, float* dw) {
  constexpr int64_t kBandBytes = 256 << 10;
  int64_t rows = std::max<int64_t>(1, kBandBytes / (sizeof(float) * s.wp() * (s.ci + s.co)) - s.kh + 1);
  for (int64_t i0 = 0; i0 < s.ho; i0 += rows)
    for (int64_t a = 0; a < s.kh; ++a)
      for (int64_t b = 0; b < s.kw; ++b)
        for (int64_t ci0 = 0; ci0 < s.ci; ci0 += kLanes)
          for (int64_t co0 = 0; co0 < s.co; co0 += kLanes)
            WeightGradBlock(s, xp, dy, dw, i0, std::min(i0 + rows, s.ho), a, b, ci0, co0);
}

Shape MakeShape(ffi::Buffer<ffi::F32>& x, int64_t co, int64_t kh, int64_t kw, int64_t pt, int64_t pl, int64_t ho,
                int64_t wo) {
  auto d = x.dimensions();
  return Shape{d[0], d[1], d[2], d[3], co, kh, kw, pt, pl, ho, wo};
}

ffi::Error Check(const Shape& s, bool input_blocks) {
  if (s.co % kLanes != 0 || (input_blocks && s.ci % kLanes != 0))
    return ffi::Error::InvalidArgument("cnnjax conv_nhwc: channel counts must be multiples of 16");
  return ffi::Error::Success();
}

// y = conv(x, w): x [n, h, w, ci], w [kh, kw, ci, co], y [n, ho, wo, co]; stride 1, input padded by
// (pad_top, pad_left) before and as much as y's size needs after.
ffi::Error ConvImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> w,
                    ffi::ResultBuffer<ffi::F32> y, int64_t pt, int64_t pl) {
  auto wd = w.dimensions(), yd = y->dimensions();
  Shape s = MakeShape(x, wd[3], wd[0], wd[1], pt, pl, yd[1], yd[2]);
  if (ffi::Error e = Check(s, false); e.failure()) return e;
  const float* xs = x.typed_data();
  std::vector<float> packed = PackKernel(s, w.typed_data());
  float* ys = y->typed_data();
  ParallelFor(pool, s.n, [&](int64_t n) {
    thread_local std::vector<float> xp;
    xp.resize(s.hp() * s.wp() * s.ci);
    Pad(s, xs + n * s.h * s.w * s.ci, xp.data());
    ConvImage(s, xp.data(), packed.data(), ys + n * s.ho * s.wo * s.co);
  });
  return ffi::Error::Success();
}

// dw = d(sum(conv(x, w) * dy)) / dw, with ConvImpl's shapes and padding.
ffi::Error WeightGradImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> dy,
                          ffi::ResultBuffer<ffi::F32> dw, int64_t pt, int64_t pl) {
  auto wd = dw->dimensions(), yd = dy.dimensions();
  Shape s = MakeShape(x, wd[3], wd[0], wd[1], pt, pl, yd[1], yd[2]);
  if (ffi::Error e = Check(s, true); e.failure()) return e;
  const float* xs = x.typed_data();
  const float* dys = dy.typed_data();
  int64_t size = s.kh * s.kw * s.ci * s.co;
  int64_t tasks = std::min<int64_t>(std::max<int64_t>(pool.num_threads(), 1), s.n);
  std::vector<std::vector<float>> parts(tasks, std::vector<float>(size, 0.f));  // one sum per task
  ParallelFor(pool, tasks, [&](int64_t t) {
    std::vector<float> xp(s.hp() * s.wp() * s.ci);
    for (int64_t n = s.n * t / tasks; n < s.n * (t + 1) / tasks; ++n) {
      Pad(s, xs + n * s.h * s.w * s.ci, xp.data());
      WeightGradImage(s, xp.data(), dys + n * s.ho * s.wo * s.co, parts[t].data());
    }
  });
  float* out = dw->typed_data();
  std::memcpy(out, parts[0].data(), sizeof(float) * size);
  for (int64_t t = 1; t < tasks; ++t)
    for (int64_t k = 0; k < size; ++k) out[k] += parts[t][k];
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(CnnjaxConvNhwc, ConvImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("pad_top")
                                  .Attr<int64_t>("pad_left"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(CnnjaxConvNhwcWeightGrad, WeightGradImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("pad_top")
                                  .Attr<int64_t>("pad_left"));
