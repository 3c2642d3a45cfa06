// 2D convolution of NHWC float32 arrays (stride 1 or more), and its weight gradient, as XLA:CPU FFI handlers.
//
// The input is first copied into zero-padded scratch buffers, so the inner loops have no bounds checks, and the
// kernel into the order the inner loop reads it (PackGroup). Where the activations are the larger operand, the
// work is split into bands of output rows, each padded by the task that runs it and sized to stay in a core's L2
// cache, and the kernel is packed once; where the kernel is (deep layers, small images), each task packs a group of
// output channels into its own cache and runs it over all rows of the once-padded input (weight-stationary).
// Channels go kLanes to a vector register and tasks are spread over XLA's intra-op thread pool (both in common.h).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using cnnjax::kLanes, cnnjax::Load, cnnjax::ParallelFor, cnnjax::Store, cnnjax::Vec;

constexpr int64_t kBandBytes = 256 << 10;      // padded input of a band
constexpr int64_t kStationaryBytes = 1 << 20;  // kernels from which weight-stationary may pay (Shape)
constexpr int64_t kGroup = 2 * kLanes;         // output channels per tile (kLanes for a last odd block)
constexpr int64_t kChunk = 32;                 // input channels per pass over a band
constexpr int64_t kWidePixel = 128;            // input channels from which a band's pixels are spaced apart
// Output columns per tile of two vectors of channels (one where a row is at most 16 wide) and of one vector: as
// many accumulators as the registers hold beside the kernel's vectors and the broadcast input.
#if defined(__AVX512F__)
constexpr int kWideTile = 12, kNarrowTile = 8, kSingleTile = 16;
#else
constexpr int kWideTile = 6, kNarrowTile = 4, kSingleTile = 12;
#endif

// x [n, h, w, ci] * kernel [kh, kw, ci, co] -> [n, ho, wo, co] with stride st, x padded by (pt, pl) before.
struct Shape {
  int64_t n, h, w, ci, co, kh, kw, pt, pl, ho, wo, st;
  int64_t wp() const { return (wo - 1) * st + kw; }
  // Floats per pixel in a padded band: wide pixels get a spare vector, so that neighbours do not share L1 sets.
  int64_t xs() const { return ci >= kWidePixel ? ci + kLanes : ci; }
  int64_t band_rows() const {  // output rows
    return std::max<int64_t>(1, (kBandBytes / (int64_t(sizeof(float)) * wp() * xs()) - kh) / st + 1);
  }
  int64_t bands() const { return (ho + band_rows() - 1) / band_rows(); }
  int64_t groups() const { return (co + kGroup - 1) / kGroup; }  // of output channels, see GroupWidth
  int64_t padded_rows(int64_t rows) const { return (rows - 1) * st + kh; }  // input rows that output rows read
  int64_t image_floats() const { return padded_rows(ho) * wp() * xs(); }  // a padded image
  // Whether to keep the kernel in place (ConvGroups): where it outgrows a core's L2 cache, every band streams it
  // again from memory; that pays where the bands would read more of it than the groups would of the image.
  bool weight_stationary() const {
    int64_t kernel = kh * kw * ci * co;
    return int64_t(sizeof(float)) * kernel > kStationaryBytes && bands() * kernel > groups() * image_floats();
  }
};

// One band: output rows [i0, i1) of image `image`, and the padded input rows it reads.
struct Band {
  int64_t image, i0, i1;
  Band(int64_t image, int64_t i0, int64_t i1) : image(image), i0(i0), i1(i1) {}
  Band(const Shape& s, int64_t item)
      : Band(item / s.bands(), item % s.bands() * s.band_rows(),
             std::min(s.ho, item % s.bands() * s.band_rows() + s.band_rows())) {}
  int64_t padded_rows(const Shape& s) const { return s.padded_rows(i1 - i0); }
};

// Fills xp ([padded_rows, wp, xs]) with the band's padded input rows of image x ([h, w, ci]).
void PadBand(const Shape& s, const Band& band, const float* x, float* xp) {
  std::memset(xp, 0, sizeof(float) * band.padded_rows(s) * s.wp() * s.xs());
  int64_t j0 = std::max<int64_t>(0, -s.pl), j1 = std::min<int64_t>(s.w, s.wp() - s.pl);
  int64_t run = s.xs() == s.ci ? j1 - j0 : 1;  // pixels per copy
  for (int64_t r = 0; r < band.padded_rows(s); ++r) {
    int64_t i = band.i0 * s.st + r - s.pt;
    for (int64_t j = j0; i >= 0 && i < s.h && j < j1; j += run)
      std::memcpy(xp + (r * s.wp() + j + s.pl) * s.xs(), x + (i * s.w + j) * s.ci, sizeof(float) * run * s.ci);
  }
}

// y[i, j0 + p, kLanes v + lane] for p < J, v < V (y at the tile's first output channel): output row i (row r of the
// band, reading xp's rows from r * st), summed over input channels [c0, c0 + cn) with the packed kernel chunk wc
// ([kh, kw, cn, kLanes V]); the first chunk of channels starts the sum, later ones add to y.
template <int J, int V>
inline void ConvTile(const Shape& s, const float* xp, const float* wc, float* y, int64_t r, int64_t j0, int64_t c0,
                     int64_t cn) {
  Vec acc[V][J];
  for (int v = 0; v < V; ++v)
    for (int p = 0; p < J; ++p) acc[v][p] = c0 == 0 ? Vec{} : Load(y + (j0 + p) * s.co + v * kLanes);
  for (int64_t a = 0; a < s.kh; ++a) {
    for (int64_t b = 0; b < s.kw; ++b) {
      const float* xr = xp + ((r * s.st + a) * s.wp() + j0 * s.st + b) * s.xs() + c0;
      const float* wr = wc + (a * s.kw + b) * cn * V * kLanes;
      for (int64_t c = 0; c < cn; ++c) {
        Vec wv[V];
        for (int v = 0; v < V; ++v) wv[v] = Load(wr + (c * V + v) * kLanes);
#pragma GCC unroll 16
        for (int p = 0; p < J; ++p) {
          float xv = xr[p * s.st * s.xs() + c];
          for (int v = 0; v < V; ++v) acc[v][p] += xv * wv[v];
        }
      }
    }
  }
  for (int v = 0; v < V; ++v)
    for (int p = 0; p < J; ++p) Store(y + (j0 + p) * s.co + v * kLanes, acc[v][p]);
}

// One output row's V vectors of channels: tiles of J columns, then of 8 (where J > 8), 4, 2 and 1.
template <int J, int V>
void ConvRow(const Shape& s, const float* xp, const float* wc, float* y, int64_t r, int64_t c0, int64_t cn) {
  int64_t j = 0;
  for (; j + J <= s.wo; j += J) ConvTile<J, V>(s, xp, wc, y, r, j, c0, cn);
  if constexpr (J > 8)
    for (; j + 8 <= s.wo; j += 8) ConvTile<8, V>(s, xp, wc, y, r, j, c0, cn);
  for (; j + 4 <= s.wo; j += 4) ConvTile<4, V>(s, xp, wc, y, r, j, c0, cn);
  for (; j + 2 <= s.wo; j += 2) ConvTile<2, V>(s, xp, wc, y, r, j, c0, cn);
  for (; j < s.wo; ++j) ConvTile<1, V>(s, xp, wc, y, r, j, c0, cn);
}

// Output channels co0.. in groups of kGroup (kLanes for a last odd block): each group's kernel is packed chunk by chunk.
int64_t GroupWidth(const Shape& s, int64_t co0) { return std::min<int64_t>(kGroup, s.co - co0); }

// Output channels [co0, co0 + GroupWidth) of the band's rows, in chunks of kChunk input channels, with the group's
// packed kernel wg (PackGroup). A chunk's kernel (contiguous, so it spreads over L1's sets) stays in L1 while it
// is used for all the band's rows; xp holds the band's padded input rows.
void ConvGroup(const Shape& s, const Band& band, const float* xp, const float* wg, float* y, int64_t co0) {
  const int64_t width = GroupWidth(s, co0);
  for (int64_t c0 = 0; c0 < s.ci; c0 += kChunk) {
    int64_t cn = std::min(kChunk, s.ci - c0);
    const float* wc = wg + c0 * s.kh * s.kw * width;
    for (int64_t i = band.i0; i < band.i1; ++i) {
      float* row = y + ((band.image * s.ho + i) * s.wo) * s.co + co0;
      if (width == kLanes) ConvRow<kSingleTile, 1>(s, xp, wc, row, i - band.i0, c0, cn);
      else if (s.wo <= 16) ConvRow<kNarrowTile, 2>(s, xp, wc, row, i - band.i0, c0, cn);
      else ConvRow<kWideTile, 2>(s, xp, wc, row, i - band.i0, c0, cn);
    }
  }
}

// Floats of a group's packed kernel, and where ConvGroup reads input channel c, tap (a * kw + b) in it: per chunk
// of kChunk input channels, [kh, kw, chunk, width].
int64_t GroupSize(const Shape& s) { return s.kh * s.kw * s.ci * kGroup; }
int64_t PackedAt(const Shape& s, int64_t width, int64_t c, int64_t tap) {
  int64_t c0 = c / kChunk * kChunk, cn = std::min(kChunk, s.ci - c0);
  return (c0 * s.kh * s.kw + tap * cn + c - c0) * width;
}

// Writes output channels [co0, co0 + GroupWidth) of the kernel to wg as ConvGroup reads them (PackedAt). w is HWIO,
// or with `flip` [kh, kw, co, ci] used flipped in space (the kernel of the input gradient, read from the forward
// kernel).
void PackGroup(const Shape& s, const float* w, bool flip, int64_t co0, float* wg) {
  const int64_t taps = s.kh * s.kw, width = GroupWidth(s, co0);
  for (int64_t tap = 0; tap < taps; ++tap) {
    if (!flip) {
      for (int64_t c = 0; c < s.ci; ++c)
        for (int64_t l0 = 0; l0 < width; l0 += kLanes)
          Store(wg + PackedAt(s, width, c, tap) + l0, Load(w + (tap * s.ci + c) * s.co + co0 + l0));
      continue;
    }
    const float* src = w + ((taps - 1 - tap) * s.co + co0) * s.ci;  // (kh-1-a, kw-1-b): the tap flipped
    for (int64_t c = 0; c < s.ci; ++c) {
      float* out = wg + PackedAt(s, width, c, tap);
      for (int64_t lane = 0; lane < width; ++lane) out[lane] = src[lane * s.ci + c];
    }
  }
}

// A 64-byte aligned array of `size` floats in `buffer`, grown as needed (vector loads that straddle cache lines
// cost two).
float* Aligned(std::vector<float>& buffer, int64_t size) {
  if (buffer.size() < size_t(size + 16)) buffer.resize(size + 16);  // 16 floats: room to move to 64 bytes
  return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(buffer.data()) + 63) & ~uintptr_t(63));
}

// dw[a, b, ci0 + kLanes rows, co0 + kLanes lanes] += sum over the band's pixels of xp[r*st+a, j*st+b, ci] dy[i, j, co].
inline void WeightGradBlock(const Shape& s, const Band& band, const float* xp, const float* dy, float* dw,
                            int64_t a, int64_t b, int64_t ci0, int64_t co0) {
  Vec acc[kLanes];
  for (int c = 0; c < kLanes; ++c) acc[c] = Vec{};
  for (int64_t i = band.i0; i < band.i1; ++i) {
    const float* xr = xp + (((i - band.i0) * s.st + a) * s.wp() + b) * s.xs() + ci0;
    const float* dr = dy + ((band.image * s.ho + i) * s.wo) * s.co + co0;
    for (int64_t j = 0; j < s.wo; ++j) {
      Vec d = Load(dr + j * s.co);
#pragma GCC unroll 16
      for (int c = 0; c < kLanes; ++c) acc[c] += xr[j * s.st * s.xs() + c] * d;
    }
  }
  float* out = dw + ((a * s.kw + b) * s.ci + ci0) * s.co + co0;
  for (int c = 0; c < kLanes; ++c) Store(out + c * s.co, Load(out + c * s.co) + acc[c]);
}

Shape MakeShape(ffi::Buffer<ffi::F32>& x, int64_t co, int64_t kh, int64_t kw, int64_t pt, int64_t pl, int64_t ho,
                int64_t wo, int64_t st) {
  auto d = x.dimensions();
  return Shape{d[0], d[1], d[2], d[3], co, kh, kw, pt, pl, ho, wo, st};
}

ffi::Error Check(const Shape& s) {
  if (s.ci % cnnjax::kChannelBlock != 0 || s.co % cnnjax::kChannelBlock != 0)
    return ffi::Error::InvalidArgument("cnnjax conv_nhwc: channel counts must be multiples of 16");
  return ffi::Error::Success();
}

// Bands: the kernel is packed once for all tasks; a task pads a band and runs it through a share of the groups
// (more than one share where there are too few bands to keep every thread busy).
void ConvBands(ffi::ThreadPool& pool, const Shape& s, const float* x, const float* w, bool flip, float* y) {
  thread_local std::vector<float> buffer;
  float* packed = Aligned(buffer, s.groups() * GroupSize(s));
  ParallelFor(pool, s.groups(), [&](int64_t g) { PackGroup(s, w, flip, g * kGroup, packed + g * GroupSize(s)); });
  int64_t items = s.n * s.bands();
  int64_t shares = std::clamp<int64_t>((4 * pool.num_threads() + items - 1) / items, 1, s.groups());
  ParallelFor(pool, items * shares, [&](int64_t task) {
    Band band(s, task / shares);
    int64_t share = task % shares;
    thread_local std::vector<float> xp;
    xp.resize(band.padded_rows(s) * s.wp() * s.xs());
    PadBand(s, band, x + band.image * s.h * s.w * s.ci, xp.data());
    for (int64_t g = s.groups() * share / shares; g < s.groups() * (share + 1) / shares; ++g)
      ConvGroup(s, band, xp.data(), packed + g * GroupSize(s), y, g * kGroup);
  });
}

// Weight-stationary: the images are padded once for all tasks; a task packs a group into its own cache and runs
// it over a part of all images' output rows (more than one part where there are too few groups).
void ConvGroups(ffi::ThreadPool& pool, const Shape& s, const float* x, const float* w, bool flip, float* y) {
  const int64_t image = s.image_floats(), rows = s.n * s.ho;
  thread_local std::vector<float> buffer;
  float* xp = Aligned(buffer, s.n * image);
  ParallelFor(pool, s.n, [&](int64_t m) { PadBand(s, Band(m, 0, s.ho), x + m * s.h * s.w * s.ci, xp + m * image); });
  int64_t parts = std::clamp<int64_t>((4 * pool.num_threads() + s.groups() - 1) / s.groups(), 1, rows);
  ParallelFor(pool, s.groups() * parts, [&](int64_t task) {
    int64_t g = task / parts, part = task % parts;
    thread_local std::vector<float> group_buffer;
    float* wg = Aligned(group_buffer, GroupSize(s));
    PackGroup(s, w, flip, g * kGroup, wg);
    for (int64_t r = rows * part / parts, end = rows * (part + 1) / parts; r < end;) {  // r: image * ho + row
      Band band(r / s.ho, r % s.ho, std::min(s.ho, end - r / s.ho * s.ho));
      ConvGroup(s, band, xp + band.image * image + band.i0 * s.st * s.wp() * s.xs(), wg, y, g * kGroup);
      r = band.image * s.ho + band.i1;
    }
  });
}

// y = conv(x, w): x [n, h, w, ci], w [kh, kw, ci, co] (or with `flip`, see PackGroup), y [n, ho, wo, co];
// stride `stride`, input padded by (pad_top, pad_left) before and as much as y's size needs after.
ffi::Error ConvImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> w,
                    ffi::ResultBuffer<ffi::F32> y, int64_t pt, int64_t pl, int64_t st, bool flip) {
  auto wd = w.dimensions(), yd = y->dimensions();
  Shape s = MakeShape(x, yd[3], wd[0], wd[1], pt, pl, yd[1], yd[2], st);
  if (ffi::Error e = Check(s); e.failure()) return e;
  auto schedule = s.weight_stationary() ? ConvGroups : ConvBands;
  schedule(pool, s, x.typed_data(), w.typed_data(), flip, y->typed_data());
  return ffi::Error::Success();
}

// dw = d(sum(conv(x, w) * dy)) / dw, with ConvImpl's shapes and padding. Each task sums a share of the bands
// into a buffer of its own; the buffers are added at the end.
ffi::Error WeightGradImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> dy,
                          ffi::ResultBuffer<ffi::F32> dw, int64_t pt, int64_t pl, int64_t st) {
  auto wd = dw->dimensions(), yd = dy.dimensions();
  Shape s = MakeShape(x, wd[3], wd[0], wd[1], pt, pl, yd[1], yd[2], st);
  if (ffi::Error e = Check(s); e.failure()) return e;
  int64_t size = s.kh * s.kw * s.ci * s.co, items = s.n * s.bands();
  int64_t tasks = std::min<int64_t>(std::max<int64_t>(pool.num_threads(), 1), items);
  std::vector<std::vector<float>> sums(tasks, std::vector<float>(size, 0.f));
  ParallelFor(pool, tasks, [&](int64_t t) {
    std::vector<float> xp;
    for (int64_t item = items * t / tasks; item < items * (t + 1) / tasks; ++item) {
      Band band(s, item);
      xp.resize(band.padded_rows(s) * s.wp() * s.xs());
      PadBand(s, band, x.typed_data() + band.image * s.h * s.w * s.ci, xp.data());
      for (int64_t a = 0; a < s.kh; ++a)
        for (int64_t b = 0; b < s.kw; ++b)
          for (int64_t ci0 = 0; ci0 < s.ci; ci0 += kLanes)
            for (int64_t co0 = 0; co0 < s.co; co0 += kLanes)
              WeightGradBlock(s, band, xp.data(), dy.typed_data(), sums[t].data(), a, b, ci0, co0);
    }
  });
  float* out = dw->typed_data();
  std::memcpy(out, sums[0].data(), sizeof(float) * size);
  for (int64_t t = 1; t < tasks; ++t)
    for (int64_t k = 0; k < size; ++k) out[k] += sums[t][k];
  return ffi::Error::Success();
}

}  // namespace

// What both handlers take: common.h's binding, the padding before and the stride.
static auto Binding() {
  return cnnjax::BindPoolTwoArraysOneResult().Attr<int64_t>("pad_top").Attr<int64_t>("pad_left").Attr<int64_t>(
      "stride");
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(CnnjaxConvNhwc, ConvImpl, Binding().Attr<bool>("flip"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(CnnjaxConvNhwcWeightGrad, WeightGradImpl, Binding());
