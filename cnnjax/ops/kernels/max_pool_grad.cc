// Gradient of max pooling over non-overlapping windows of NHWC float32 arrays, as an XLA:CPU FFI handler:
// dx [n, h, w, c] from the pooled input x [n, h, w, c] and the output gradient dy [n, h / kh, w / kw, c]. Each
// window's gradient goes to the element its maximum was taken from, found again from x as the forward fold
// takes it: in row-major window order, a later element wins if it is greater or NaN (ties go to the first).
// Rows and columns past the last whole window get zeros. XLA's own gradient is a scatter per window element.
//
// Pooled rows are spread over XLA's intra-op thread pool (common.h).
#include <algorithm>
#include <cstdint>
#include <vector>

#include "common.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using cnnjax::ParallelFor;

struct Shape {
  int64_t n, h, w, c, kh, kw, ho, wo;
  int64_t span() const { return wo * kw * c; }  // floats of an image row that windows cover
};

// One thread's buffers over a row span, indexed by u = (j * kw + b) * c + ch (window j, column b, channel ch).
struct Scratch {
  std::vector<float> m, g;                   // running maxima (at b = 0); dy[j, ch] at every u
  std::vector<int32_t> k, chosen, b, pooled;  // running window element a * kw + b (at b = 0); k - b; b; j * c + ch
  explicit Scratch(const Shape& s) : m(s.span()), g(s.span()), k(s.span()), chosen(s.span()), b(s.span()),
                                     pooled(s.span()) {
    for (int64_t u = 0; u < s.span(); ++u) b[u] = u / s.c % s.kw, pooled[u] = u / (s.kw * s.c) * s.c + u % s.c;
  }
};

// dx rows [i * kh, (i + 1) * kh) of one image from its x rows and dy row i (rows of w * c floats). Every loop
// runs over a contiguous span of u, so that it vectorises whatever the channel count: the fold over window
// elements keeps its result at b = 0, where element (a, b) of window j sits b * c further on in row a.
void PoolRow(const Shape& s, const float* x, const float* dy, float* dx, Scratch& t) {
  const int64_t row = s.w * s.c, span = s.span(), heads = span - (s.kw - 1) * s.c;  // heads: the u at b = 0
  float* __restrict m = t.m.data();
  int32_t* __restrict k = t.k.data();
  std::copy_n(x, heads, m);
  std::fill_n(k, heads, 0);
  for (int32_t e = 1; e < s.kh * s.kw; ++e) {
    const float* __restrict p = x + e / s.kw * row + e % s.kw * s.c;
    for (int64_t u = 0; u < heads; ++u) {
      bool take = p[u] > m[u] || p[u] != p[u];
      m[u] = take ? p[u] : m[u];
      k[u] = take ? e : k[u];
    }
  }
  float* __restrict g = t.g.data();
  int32_t* __restrict chosen = t.chosen.data();  // window row a chosen at u iff chosen[u] == a * kw
  const int32_t *__restrict b = t.b.data(), *__restrict pooled = t.pooled.data();
  for (int64_t u = 0; u < span; ++u) g[u] = dy[pooled[u]], chosen[u] = k[u - b[u] * s.c] - b[u];
  for (int64_t a = 0; a < s.kh; ++a) {
    float* __restrict d = dx + a * row;
    const int32_t mine = a * s.kw;
    for (int64_t u = 0; u < span; ++u) d[u] = chosen[u] == mine ? g[u] : 0.0f;
    std::fill(d + span, d + row, 0.0f);  // columns past the last window
  }
}

ffi::Error MaxPoolGradImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> dy,
                           ffi::ResultBuffer<ffi::F32> dx, int64_t kh, int64_t kw) {
  auto d = x.dimensions(), g = dy.dimensions();
  if (d.size() != 4 || g.size() != 4 || kh < 1 || kw < 1)
    return ffi::Error::InvalidArgument("max pool gradient takes x [n, h, w, c], dy [n, ho, wo, c], a window");
  Shape s{d[0], d[1], d[2], d[3], kh, kw, d[1] / kh, d[2] / kw};
  if (g[0] != s.n || g[1] != s.ho || g[2] != s.wo || g[3] != s.c)
    return ffi::Error::InvalidArgument("max pool gradient: dy is not the pooled shape of x");
  const int64_t rows = s.n * s.ho, row = s.w * s.c;  // pooled rows; floats per image row
  const int64_t tasks = std::clamp<int64_t>(4 * pool.num_threads(), 1, std::max<int64_t>(rows, 1));
  const float* xs = x.typed_data();
  const float* gs = dy.typed_data();
  float* out = dx->typed_data();
  ParallelFor(pool, tasks, [&](int64_t t) {
    Scratch scratch(s);
    for (int64_t r = rows * t / tasks; r < rows * (t + 1) / tasks; ++r) {
      int64_t image = r / s.ho, i = r % s.ho, first = (image * s.h + i * s.kh) * row;
      PoolRow(s, xs + first, gs + r * s.wo * s.c, out + first, scratch);
      if (i == s.ho - 1)  // rows past the last window
        std::fill(out + first + s.kh * row, out + (image + 1) * s.h * row, 0.0f);
    }
  });
  if (rows == 0) std::fill_n(out, dx->element_count(), 0.0f);
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(CnnjaxMaxPoolGrad, MaxPoolGradImpl,
                              cnnjax::BindPoolTwoArraysOneResult().Attr<int64_t>("window_h").Attr<int64_t>("window_w"));
