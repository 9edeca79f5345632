// Native fp32 kernels for the TF.js CPU backend: matrix products through the system BLAS
// (cblas_sgemm), convolutions as im2col + GEMM (Chellapilla et al. 2006, "High performance
// convolutional neural networks for document processing"), and the scatter/gather kernels
// whose JavaScript versions dominate a training step's profile. Every function works in place
// on typed arrays the caller allocates (the backend's own values and a fresh zeroed output),
// so no data is copied across the JavaScript/C++ boundary.
//
// Layouts follow TF.js: images NHWC, filters [KH, KW, Cin, Cout], row-major everywhere.
#include "common.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace {

using namespace captioner;

// The geometry of one 2-D convolution (TF.js computeConv2DInfo, NHWC).
struct Conv {
  int64_t n, h, w, c, oh, ow, o, kh, kw, sh, sw, pt, pl, dh, dw;
  int64_t k() const { return kh * kw * c; }
  bool pointwise() const { return kh == 1 && kw == 1 && sh == 1 && sw == 1 && pt == 0 && pl == 0 && oh == h && ow == w; }
};

Conv readConv(const Napi::Object& g) {
  auto at = [&](const char* key) { return num(g.Get(key)); };
  return Conv{at("batch"), at("inHeight"), at("inWidth"), at("inChannels"), at("outHeight"), at("outWidth"),
              at("outChannels"), at("filterHeight"), at("filterWidth"), at("strideHeight"), at("strideWidth"),
              at("padTop"), at("padLeft"), at("dilationHeight"), at("dilationWidth")};
}

// Rows of the column matrix per tile: about 512 KB of it (the L2 cache of a core here), so that
// a tile is packed and multiplied from cache; 2-4 MB tiles measured slower.
constexpr int64_t kTileFloats = int64_t{1} << 17;

// The tiling of the column matrix [rows = n·oh·ow, K] into `count` tiles of `rows` rows each
// (the last may be shorter), each worth running on a thread of its own: at least a tile per
// thread when there is enough work for that.
struct Tiling {
  int64_t rows, count;
};

Tiling tiling(const Conv& g) {
  const int64_t K = g.k(), total = g.n * g.oh * g.ow;
  int64_t rows = std::max<int64_t>(16, kTileFloats / K);
  if (total * K * g.o >= kSmallProduct / 4) rows = std::min(rows, std::max<int64_t>(16, (total + gThreads - 1) / gThreads));
  rows = std::min(rows, total);
  return Tiling{rows, (total + rows - 1) / rows};
}

// col [rows r0 … r1 of the column matrix: (image, oy, ox), K = (ky, kx, c)] from x (NHWC).
void im2colRows(const Conv& g, const float* x, float* col, int64_t r0, int64_t r1) {
  const int64_t K = g.k(), rowsPerImage = g.oh * g.ow;
  for (int64_t r = r0; r < r1; r++) {
    int64_t img = r / rowsPerImage, pix = r % rowsPerImage;
    int64_t oy = pix / g.ow, ox = pix % g.ow;
    float* dst = col + (r - r0) * K;
    const float* src = x + img * g.h * g.w * g.c;
    for (int64_t ky = 0; ky < g.kh; ky++) {
      int64_t iy = oy * g.sh - g.pt + ky * g.dh;
      if (iy < 0 || iy >= g.h) {
        std::memset(dst, 0, g.kw * g.c * sizeof(float));
        dst += g.kw * g.c;
        continue;
      }
      const float* srcRow = src + iy * g.w * g.c;
      const int64_t ix0 = ox * g.sw - g.pl;
      if (g.dw == 1 && ix0 >= 0 && ix0 + g.kw <= g.w) {
        // The taps of this filter row are neighbouring pixels: one copy (the first block's 3
        // channels made a copy of 12 bytes per tap).
        std::memcpy(dst, srcRow + ix0 * g.c, g.kw * g.c * sizeof(float));
        dst += g.kw * g.c;
        continue;
      }
      for (int64_t kx = 0; kx < g.kw; kx++, dst += g.c) {
        int64_t ix = ix0 + kx * g.dw;
        if (ix < 0 || ix >= g.w) std::memset(dst, 0, g.c * sizeof(float));
        else std::memcpy(dst, srcRow + ix * g.c, g.c * sizeof(float));
      }
    }
  }
}

// dx += col2im(col) for rows r0 … r1 of the column matrix (col holds those rows only).
void col2imRows(const Conv& g, const float* col, float* dx, int64_t r0, int64_t r1) {
  const int64_t K = g.k(), rowsPerImage = g.oh * g.ow;
  for (int64_t r = r0; r < r1; r++) {
    int64_t img = r / rowsPerImage, pix = r % rowsPerImage;
    int64_t oy = pix / g.ow, ox = pix % g.ow;
    const float* src = col + (r - r0) * K;
    float* dst = dx + img * g.h * g.w * g.c;
    for (int64_t ky = 0; ky < g.kh; ky++) {
      int64_t iy = oy * g.sh - g.pt + ky * g.dh;
      if (iy < 0 || iy >= g.h) {
        src += g.kw * g.c;
        continue;
      }
      for (int64_t kx = 0; kx < g.kw; kx++, src += g.c) {
        int64_t ix = ox * g.sw - g.pl + kx * g.dw;
        if (ix < 0 || ix >= g.w) continue;
        float* d = dst + (iy * g.w + ix) * g.c;
        for (int64_t ch = 0; ch < g.c; ch++) d[ch] += src[ch];
      }
    }
  }
}

// Activations of TF.js's fused kernels (tfjs-core fused_util): linear, relu, relu6,
// leakyrelu(alpha), sigmoid; on rows r0 … r1 of y [rows, cols], after the bias.
void biasActivationRows(float* y, int64_t r0, int64_t r1, int64_t cols, const float* bias, int64_t biasSize,
                        ops::Activation act, float alpha) {
  for (int64_t r = r0; r < r1; r++) {
    float* row = y + r * cols;
    if (bias) {
      if (biasSize == 1) for (int64_t j = 0; j < cols; j++) row[j] += bias[0];
      else for (int64_t j = 0; j < cols; j++) row[j] += bias[j];
    }
    switch (act) {
      case ops::Activation::linear: break;
      case ops::Activation::relu: for (int64_t j = 0; j < cols; j++) row[j] = row[j] < 0 ? 0 : row[j]; break;
      case ops::Activation::relu6:
        for (int64_t j = 0; j < cols; j++) row[j] = std::min(6.0f, std::max(0.0f, row[j]));
        break;
      case ops::Activation::leakyrelu:
        for (int64_t j = 0; j < cols; j++) row[j] = row[j] < 0 ? alpha * row[j] : row[j];
        break;
      case ops::Activation::sigmoid:
        for (int64_t j = 0; j < cols; j++) row[j] = 1.0f / (1.0f + std::exp(-row[j]));
        break;
    }
  }
}

void biasActivation(float* y, int64_t rows, int64_t cols, const float* bias, int64_t biasSize, ops::Activation act,
                    float alpha) {
  parallelFor(rows, 4096, [&](int64_t r0, int64_t r1) { biasActivationRows(y, r0, r1, cols, bias, biasSize, act, alpha); });
}

// batchMatMul(a, b, out, batch, batchA, batchB, m, n, k, transA, transB[, bias, biasSize, act, alpha])
// out[i] = op(a[i % batchA]) · op(b[i % batchB]), each [m, n]; then bias and activation.
Napi::Value BatchMatMul(const Napi::CallbackInfo& info) {
  const bool fused = info.Length() > 11;
  ops::Activation act = ops::Activation::linear;
  if (fused && !readOp(info[13], ops::kActivationSize, "activation", &act)) return info.Env().Undefined();
  const float* a = f32(info[0]);
  const float* b = f32(info[1]);
  float* out = f32(info[2]);
  int64_t batch = num(info[3]), batchA = num(info[4]), batchB = num(info[5]);
  int64_t m = num(info[6]), n = num(info[7]), k = num(info[8]);
  bool ta = info[9].As<Napi::Boolean>(), tb = info[10].As<Napi::Boolean>();
  int64_t lda = ta ? m : k, ldb = tb ? k : n;
  if (m <= kFewRows && !ta && !tb) {
    // A few rows times a matrix (decoding one caption, or a small beam): b read once (rows.cc).
    for (int64_t i = 0; i < batch; i++)
      fewRowsTimesMatrix(m, n, k, a + (i % batchA) * m * k, k, b + (i % batchB) * k * n, n, 0.0f, out + i * m * n, n);
  } else if (m <= 4 && (m == 1 || !ta)) {
    // A few rows against a transposed matrix: matrix-vector products, which stream B instead of
    // packing it as a GEMM does.
    for (int64_t i = 0; i < batch; i++) {
      const float* bm = b + (i % batchB) * k * n;
      for (int64_t row = 0; row < m; row++) {
        const float* av = a + (i % batchA) * m * k + row * k;
        float* ov = out + (i * m + row) * n;
        if (tb) cblas_sgemv(CblasRowMajor, CblasNoTrans, n, k, 1.0f, bm, k, av, 1, 0.0f, ov, 1);
        else cblas_sgemv(CblasRowMajor, CblasTrans, k, n, 1.0f, bm, n, av, 1, 0.0f, ov, 1);
      }
    }
  } else if (batchB == 1 && !ta) {
    // One B for every batch: stack the A matrices into one [batch·m, k] product.
    int64_t rows = batchA == 1 ? m : batch * m;
    gemm(false, tb, rows, n, k, 1.0f, a, lda, b, ldb, 0.0f, out, n);
    if (batchA == 1)
      for (int64_t i = 1; i < batch; i++) std::memcpy(out + i * m * n, out, m * n * sizeof(float));
  } else if (batch > 1 && m * n * k < kSmallProduct) {
    // Many small products: one per task, each on one thread.
    parallelTasks(batch, [&](int64_t i, int) {
      cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, 1.0f,
                  a + (i % batchA) * m * k, lda, b + (i % batchB) * k * n, ldb, 0.0f, out + i * m * n, n);
    });
  } else {
    for (int64_t i = 0; i < batch; i++)
      gemm(ta, tb, m, n, k, 1.0f, a + (i % batchA) * m * k, lda, b + (i % batchB) * k * n, ldb, 0.0f, out + i * m * n, n);
  }
  if (fused) {
    const float* bias = info[11].IsNull() ? nullptr : f32(info[11]);
    biasActivation(out, batch * m, n, bias, num(info[12]), act,
                   static_cast<float>(info[14].As<Napi::Number>().DoubleValue()));
  }
  return info.Env().Undefined();
}

// conv2d(x, filter, out, geometry[, bias, biasSize, act, alpha]): y = im2col(x) · W, then the
// bias and activation. The column matrix is made a tile at a time by the thread that multiplies
// it, so each tile goes from its making to its product and its bias and activation in cache,
// and the threads never wait for each other.
Napi::Value Conv2D(const Napi::CallbackInfo& info) {
  const bool fused = info.Length() > 4;
  ops::Activation act = ops::Activation::linear;
  if (fused && !readOp(info[6], ops::kActivationSize, "activation", &act)) return info.Env().Undefined();
  const float* x = f32(info[0]);
  const float* w = f32(info[1]);
  float* y = f32(info[2]);
  Conv g = readConv(info[3].As<Napi::Object>());
  const float* bias = fused && !info[4].IsNull() ? f32(info[4]) : nullptr;
  const int64_t biasSize = fused ? num(info[5]) : 0;
  const float alpha = fused ? static_cast<float>(info[7].As<Napi::Number>().DoubleValue()) : 0.0f;
  const int64_t K = g.k();
  const Tiling tiles = tiling(g);
  const int64_t total = g.n * g.oh * g.ow;
  parallelTasks(tiles.count, [&](int64_t t, int) {
    int64_t r0 = t * tiles.rows, r1 = std::min(total, r0 + tiles.rows);
    const float* a = x + r0 * K;  // a pointwise convolution's column matrix is x itself
    if (!g.pointwise()) {
      float* col = taskScratch(0, tiles.rows * K);
      im2colRows(g, x, col, r0, r1);
      a = col;
    }
    tileProduct(false, r1 - r0, g.o, K, a, K, w, g.o, 0.0f, y + r0 * g.o, g.o);
    if (fused) biasActivationRows(y, r0, r1, g.o, bias, biasSize, act, alpha);
  });
  return info.Env().Undefined();
}

// conv2dBackpropInput(dy, filter, dx, geometry): dx = col2im(dy · Wᵀ); dx arrives zeroed. Each
// task takes whole images (col2im adds into neighbouring pixels, which must be one thread's) and
// goes through them a tile of rows at a time.
Napi::Value Conv2DBackpropInput(const Napi::CallbackInfo& info) {
  const float* dy = f32(info[0]);
  const float* w = f32(info[1]);
  float* dx = f32(info[2]);
  Conv g = readConv(info[3].As<Napi::Object>());
  const int64_t K = g.k(), rowsPerImage = g.oh * g.ow;
  if (g.pointwise()) {
    gemm(false, true, g.n * rowsPerImage, K, g.o, 1.0f, dy, g.o, w, g.o, 0.0f, dx, K);
    return info.Env().Undefined();
  }
  const Tiling tiles = tiling(g);
  const int64_t imagesPerTask = std::max<int64_t>(1, tiles.rows / rowsPerImage);
  // The filter transposed, [O, K], so that each tile's product walks it by rows (tileProduct).
  std::vector<float> wt(K * g.o);
  transposeInto(K, g.o, w, g.o, wt.data());
  parallelTasks((g.n + imagesPerTask - 1) / imagesPerTask, [&](int64_t t, int) {
    const int64_t end = std::min(g.n, (t + 1) * imagesPerTask) * rowsPerImage;
    float* col = taskScratch(0, tiles.rows * K);
    for (int64_t r0 = t * imagesPerTask * rowsPerImage; r0 < end; r0 += tiles.rows) {
      int64_t r1 = std::min(end, r0 + tiles.rows);
      tileProduct(false, r1 - r0, K, g.o, dy + r0 * g.o, g.o, wt.data(), K, 0.0f, col, K);
      col2imRows(g, col, dx, r0, r1);
    }
  });
  return info.Env().Undefined();
}

// conv2dBackpropFilter(x, dy, dw, geometry): dW = im2col(x)ᵀ · dy. Thread j sums the tiles of
// its share (the same tiles on every run) into a partial dW of its own; the partials are then
// added in order, so the result depends on the thread count only.
Napi::Value Conv2DBackpropFilter(const Napi::CallbackInfo& info) {
  const float* x = f32(info[0]);
  const float* dy = f32(info[1]);
  float* dw = f32(info[2]);
  Conv g = readConv(info[3].As<Napi::Object>());
  const int64_t K = g.k(), total = g.n * g.oh * g.ow, size = K * g.o;
  if (g.pointwise()) {
    gemm(true, false, K, g.o, total, 1.0f, x, K, dy, g.o, 0.0f, dw, g.o);
    return info.Env().Undefined();
  }
  const Tiling tiles = tiling(g);
  const int64_t parts = std::min<int64_t>(gThreads, tiles.count);
  const int64_t perPart = (tiles.count + parts - 1) / parts;
  std::vector<float> partials((parts - 1) * size);
  parallelTasks(parts, [&](int64_t p, int) {
    float* acc = p == 0 ? dw : partials.data() + (p - 1) * size;
    float* col = taskScratch(0, tiles.rows * K);
    for (int64_t t = p * perPart; t < std::min(tiles.count, (p + 1) * perPart); t++) {
      int64_t r0 = t * tiles.rows, r1 = std::min(total, r0 + tiles.rows);
      im2colRows(g, x, col, r0, r1);
      tileProduct(true, K, g.o, r1 - r0, col, K, dy + r0 * g.o, g.o, t == p * perPart ? 0.0f : 1.0f, acc, g.o);
    }
  });
  for (int64_t p = 1; p < parts; p++) {
    const float* part = partials.data() + (p - 1) * size;
    for (int64_t i = 0; i < size; i++) dw[i] += part[i];
  }
  return info.Env().Undefined();
}

// unsortedSegmentSum(x, ids, out, inner, numSegments): out[ids[i]] += x[i] (rows of `inner`);
// ids outside [0, numSegments) are dropped, as in the JavaScript kernel.
Napi::Value UnsortedSegmentSum(const Napi::CallbackInfo& info) {
  const float* x = f32(info[0]);
  auto idsArray = info[1].As<Napi::Int32Array>();
  const int32_t* ids = idsArray.Data();
  float* out = f32(info[2]);
  int64_t inner = num(info[3]), segments = num(info[4]);
  int64_t rows = static_cast<int64_t>(idsArray.ElementLength());
  // Split the output columns across threads so that no two threads write the same element.
  parallelFor(inner, rows * inner > (1 << 16) ? 64 : inner, [&](int64_t c0, int64_t c1) {
    for (int64_t r = 0; r < rows; r++) {
      int64_t s = ids[r];
      if (s < 0 || s >= segments) continue;
      const float* src = x + r * inner;
      float* dst = out + s * inner;
      for (int64_t c = c0; c < c1; c++) dst[c] += src[c];
    }
  });
  return info.Env().Undefined();
}

// Max-pooling windows (NHWC): the first strictly largest value of a window wins (NaN never
// does), as in TF.js's maxPoolPositions; an empty or all −∞ window has no winner.
struct Pool {
  int64_t n, h, w, c, oh, ow, fh, fw, sh, sw, pt, pl;
};

Pool readPool(const Napi::Object& g) {
  auto at = [&](const char* key) { return num(g.Get(key)); };
  return Pool{at("batch"), at("inHeight"), at("inWidth"), at("inChannels"), at("outHeight"), at("outWidth"),
              at("filterHeight"), at("filterWidth"), at("strideHeight"), at("strideWidth"), at("padTop"), at("padLeft")};
}

template <class F>
void forEachPoolWindow(const Pool& g, const float* x, bool parallel, F f) {
  parallelFor(g.n * g.oh, parallel ? 8 : g.n * g.oh, [&](int64_t r0, int64_t r1) {
    std::vector<float> best(g.c);
    std::vector<int64_t> where(g.c);
    for (int64_t r = r0; r < r1; r++) {
      int64_t img = r / g.oh, oy = r % g.oh;
      const float* base = x + img * g.h * g.w * g.c;
      for (int64_t ox = 0; ox < g.ow; ox++) {
        std::fill(best.begin(), best.end(), -INFINITY);
        std::fill(where.begin(), where.end(), -1);
        for (int64_t ky = 0; ky < g.fh; ky++) {
          int64_t iy = oy * g.sh - g.pt + ky;
          if (iy < 0 || iy >= g.h) continue;
          for (int64_t kx = 0; kx < g.fw; kx++) {
            int64_t ix = ox * g.sw - g.pl + kx;
            if (ix < 0 || ix >= g.w) continue;
            int64_t off = (iy * g.w + ix) * g.c;
            const float* px = base + off;
            for (int64_t ch = 0; ch < g.c; ch++) {
              if (px[ch] > best[ch]) {
                best[ch] = px[ch];
                where[ch] = img * g.h * g.w * g.c + off + ch;
              }
            }
          }
        }
        f((r * g.ow + ox) * g.c, best.data(), where.data());
      }
    }
  });
}

// maxPool(x, out, geometry)
Napi::Value MaxPool(const Napi::CallbackInfo& info) {
  const float* x = f32(info[0]);
  float* y = f32(info[1]);
  Pool g = readPool(info[2].As<Napi::Object>());
  parallelFor(g.n * g.oh, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, g.ow * g.c)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      int64_t img = r / g.oh, oy = r % g.oh;
      const float* base = x + img * g.h * g.w * g.c;
      const int64_t y0 = std::max<int64_t>(0, oy * g.sh - g.pt), y1 = std::min(g.h, oy * g.sh - g.pt + g.fh);
      for (int64_t ox = 0; ox < g.ow; ox++) {
        const int64_t x0 = std::max<int64_t>(0, ox * g.sw - g.pl), x1 = std::min(g.w, ox * g.sw - g.pl + g.fw);
        float* out = y + (r * g.ow + ox) * g.c;
        std::fill(out, out + g.c, -INFINITY);
        for (int64_t iy = y0; iy < y1; iy++)
          for (int64_t ix = x0; ix < x1; ix++) {
            const float* px = base + (iy * g.w + ix) * g.c;
            for (int64_t ch = 0; ch < g.c; ch++) out[ch] = px[ch] > out[ch] ? px[ch] : out[ch];
          }
      }
    }
  });
  return info.Env().Undefined();
}

// maxPoolGrad(dy, x, dx, geometry): each window's dy goes to its argmax in x. Windows that
// overlap vertically (stride < filter) can share an argmax across output rows, so those run
// on one thread.
Napi::Value MaxPoolGrad(const Napi::CallbackInfo& info) {
  const float* dy = f32(info[0]);
  const float* x = f32(info[1]);
  float* dx = f32(info[2]);
  Pool g = readPool(info[3].As<Napi::Object>());
  forEachPoolWindow(g, x, g.sh >= g.fh, [&](int64_t outOff, const float*, const int64_t* where) {
    for (int64_t ch = 0; ch < g.c; ch++)
      if (where[ch] >= 0) dx[where[ch]] += dy[outOff + ch];
  });
  return info.Env().Undefined();
}

// The encoder's block, maxPool(relu(conv(x) + bias)), for pooling windows that do not overlap
// (stride ≥ filter): the pooling windows' rows of the convolution are computed a tile at a time
// (im2col, product, bias and ReLU) into a scratch buffer and pooled there, while in cache, so
// that relu(conv + bias) [N, OH, OW, O] is never written out nor read back. Besides the pooled
// maximum, each window records which of its positions won (ky · fw + kx, the first strictly
// largest, NaN never, as MaxPool and MaxPoolGrad choose), or −1 when the maximum is not positive
// (ReLU passes no gradient there, as its Step·Multiply gives it): all the backward pass needs.

// Rows of the pooled output (image, pooled row) per tile: about kTileFloats of column matrix,
// and at least a tile per thread when there is enough work for that.
int64_t poolRowsPerTile(const Conv& g, const Pool& p) {
  const int64_t colPerPoolRow = std::max<int64_t>(1, p.fh * g.ow * g.k());
  const int64_t total = p.n * p.oh;
  int64_t rows = std::max<int64_t>(1, kTileFloats / colPerPoolRow);
  if (g.n * g.oh * g.ow * g.k() * g.o >= kSmallProduct / 4)
    rows = std::min(rows, std::max<int64_t>(1, (total + gThreads - 1) / gThreads));
  return std::min(rows, std::max<int64_t>(1, total));
}

// The rows [y0, y1) of the convolution's output that pooled row `py` reads.
inline void poolRowSpan(const Pool& p, int64_t py, int64_t* y0, int64_t* y1) {
  *y0 = std::max<int64_t>(0, py * p.sh - p.pt);
  *y1 = std::min(p.h, py * p.sh - p.pt + p.fh);
}

// One position of a pooling window over `n` channels: where v is strictly larger than the
// best so far (never when either is NaN), it becomes the best, at `pos`. Without branches,
// four channels at a time: which value wins is random, and a branch on it mispredicted every
// other time (the compiler kept the branch in a plain loop).
inline void poolPosition(const float* __restrict v, float* __restrict best, int32_t* __restrict at, int32_t pos,
                         int64_t n) {
  int64_t ch = 0;
#if defined(__SSE2__)
  const __m128i where = _mm_set1_epi32(pos);
  for (; ch + 4 <= n; ch += 4) {
    const __m128 x = _mm_loadu_ps(v + ch), b = _mm_loadu_ps(best + ch);
    const __m128 larger = _mm_cmpgt_ps(x, b);
    _mm_storeu_ps(best + ch, _mm_or_ps(_mm_and_ps(larger, x), _mm_andnot_ps(larger, b)));
    const __m128i mask = _mm_castps_si128(larger);
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(at + ch));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(at + ch), _mm_or_si128(_mm_and_si128(mask, where), _mm_andnot_si128(mask, a)));
  }
#endif
  for (; ch < n; ch++) {
    const bool larger = v[ch] > best[ch];
    best[ch] = larger ? v[ch] : best[ch];
    at[ch] = larger ? pos : at[ch];
  }
}

// convReluMaxPool(x, filter, bias, pooled, argmax, conv, pool): pooled [N, PH, PW, O] =
// maxPool(relu(conv(x) + bias)), argmax (int32, pooled's shape) the window position that won, or
// −1 where the maximum is not positive; an empty argmax (no gradient to come) is not written.
// `pool` is the pooling of the convolution's output.
Napi::Value ConvReluMaxPool(const Napi::CallbackInfo& info) {
  const float* x = f32(info[0]);
  const float* w = f32(info[1]);
  const float* bias = f32(info[2]);
  float* pooled = f32(info[3]);
  auto argmaxArray = info[4].As<Napi::Int32Array>();
  int32_t* argmax = argmaxArray.ElementLength() > 0 ? argmaxArray.Data() : nullptr;
  const Conv g = readConv(info[5].As<Napi::Object>());
  const Pool p = readPool(info[6].As<Napi::Object>());
  const int64_t K = g.k(), O = g.o, poolRows = p.n * p.oh;
  const int64_t perTile = poolRowsPerTile(g, p);
  const int64_t tiles = (poolRows + perTile - 1) / perTile;
  parallelTasks(tiles, [&](int64_t t, int) {
    const int64_t q0 = t * perTile, q1 = std::min(poolRows, q0 + perTile);
    float* col = taskScratch(0, perTile * p.fh * g.ow * K);
    float* ys = taskScratch(1, perTile * p.fh * g.ow * O);
    thread_local std::vector<int32_t> winners;  // a window's, when argmax is not kept
    if (!argmax && static_cast<int64_t>(winners.size()) < O) winners.resize(O);
    // The convolution's rows these windows read, one after another: [rows · OW, K] of columns.
    int64_t rows = 0;
    for (int64_t q = q0; q < q1; q++) {
      int64_t y0, y1;
      poolRowSpan(p, q % p.oh, &y0, &y1);
      for (int64_t oy = y0; oy < y1; oy++, rows++) {
        const int64_t r0 = ((q / p.oh) * g.oh + oy) * g.ow;
        im2colRows(g, x, col + rows * g.ow * K, r0, r0 + g.ow);
      }
    }
    if (rows == 0) return;
    tileProduct(false, rows * g.ow, O, K, col, K, w, O, 0.0f, ys, O);
    biasActivationRows(ys, 0, rows * g.ow, O, bias, O, ops::Activation::relu, 0.0f);
    // Pool them: each window's first strictly largest value, and where it was.
    const float* band = ys;
    for (int64_t q = q0; q < q1; q++) {
      const int64_t py = q % p.oh;
      int64_t y0, y1;
      poolRowSpan(p, py, &y0, &y1);
      for (int64_t px = 0; px < p.ow; px++) {
        const int64_t x0 = std::max<int64_t>(0, px * p.sw - p.pl), x1 = std::min(p.w, px * p.sw - p.pl + p.fw);
        float* out = pooled + (q * p.ow + px) * O;
        int32_t* at = argmax ? argmax + (q * p.ow + px) * O : winners.data();
        for (int64_t ch = 0; ch < O; ch++) {
          out[ch] = -INFINITY;
          at[ch] = -1;
        }
        for (int64_t iy = y0; iy < y1; iy++)
          for (int64_t ix = x0; ix < x1; ix++) {
            const int32_t pos = static_cast<int32_t>((iy - (py * p.sh - p.pt)) * p.fw + (ix - (px * p.sw - p.pl)));
            poolPosition(band + ((iy - y0) * g.ow + ix) * O, out, at, pos, O);
          }
        if (argmax)
          for (int64_t ch = 0; ch < O; ch++) at[ch] = out[ch] > 0 ? at[ch] : -1;
      }
      band += (y1 - y0) * g.ow * O;
    }
  });
  return info.Env().Undefined();
}

// maxPoolArgmaxGrad(dp, argmax, dpre, dbias, pool): the backward pass of the block's pooling,
// ReLU and bias from convReluMaxPool's argmax: each window's gradient dp goes to the position
// that won (nowhere when argmax is −1), dpre [N, H, W, C] being the gradient of the
// pre-activation conv + bias, and dbias[c] = Σ dpre over batch and positions. dpre and dbias
// arrive zeroed; the bias sums run in double, row by row, then in order, so they do not depend on
// the thread count.
Napi::Value MaxPoolArgmaxGrad(const Napi::CallbackInfo& info) {
  const float* dp = f32(info[0]);
  const int32_t* argmax = i32(info[1]);
  float* dpre = f32(info[2]);
  float* dbias = f32(info[3]);
  const Pool g = readPool(info[4].As<Napi::Object>());
  const int64_t C = g.c, positions = g.fh * g.fw;
  std::vector<double> rowSums(g.n * g.oh * C, 0.0);
  parallelFor(g.n * g.oh, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, g.ow * C)), [&](int64_t r0, int64_t r1) {
    std::vector<int64_t> offset(positions);
    for (int64_t r = r0; r < r1; r++) {
      const int64_t img = r / g.oh, oy = r % g.oh;
      double* sums = rowSums.data() + r * C;
      for (int64_t ox = 0; ox < g.ow; ox++) {
        // Each position's pixel offset; one outside the image (never a winner) takes the
        // window's first inside one, so that the loop below writes without branches: a window
        // writes each channel once, its gradient where it won or a zero.
        int64_t first = -1;
        for (int64_t pos = positions - 1; pos >= 0; pos--) {
          const int64_t iy = oy * g.sh - g.pt + pos / g.fw, ix = ox * g.sw - g.pl + pos % g.fw;
          const bool inside = iy >= 0 && iy < g.h && ix >= 0 && ix < g.w;
          offset[pos] = inside ? ((img * g.h + iy) * g.w + ix) * C : -1;
          if (inside) first = offset[pos];
        }
        if (first < 0) continue;
        for (int64_t pos = 0; pos < positions; pos++) offset[pos] = offset[pos] < 0 ? first : offset[pos];
        const float* grad = dp + (r * g.ow + ox) * C;
        const int32_t* at = argmax + (r * g.ow + ox) * C;
        for (int64_t ch = 0; ch < C; ch++) {
          const bool won = at[ch] >= 0;
          const float v = won ? grad[ch] : 0.0f;
          dpre[offset[won ? at[ch] : 0] + ch] = v;
          sums[ch] += v;
        }
      }
    }
  });
  std::vector<double> total(C, 0.0);
  for (int64_t r = 0; r < g.n * g.oh; r++)
    for (int64_t ch = 0; ch < C; ch++) total[ch] += rowSums[r * C + ch];
  for (int64_t ch = 0; ch < C; ch++) dbias[ch] = static_cast<float>(total[ch]);
  return info.Env().Undefined();
}


// binary(op, full, other, out, rows, cols, mode, swapped, mid):
// out = full op other over `rows` x `cols` (flat size rows·cols), the other operand broadcast by
// `mode` (ops::Broadcast): full (same size), scalar, row (one value per column, repeated on every
// row), column (one value per row), middle (out is [rows, mid, cols] and other [rows, cols],
// repeated over mid). op (ops::Binary): Add, Sub, Multiply, RealDiv. With `swapped`, the
// broadcast operand is the left one.
template <ops::Binary Op>
inline float apply(float x, float y) {
  if constexpr (Op == ops::Binary::Add) return x + y;
  else if constexpr (Op == ops::Binary::Sub) return x - y;
  else if constexpr (Op == ops::Binary::Multiply) return x * y;
  else if constexpr (Op == ops::Binary::RealDiv) return x / y;
  else static_assert(Op != Op, "a binary op of native/ops.json has no formula here");
}

template <ops::Binary Op, bool Swapped>
void binaryLoop(const float* full, const float* other, float* out, int64_t rows, int64_t cols, ops::Broadcast mode,
                int64_t mid) {
  using ops::Broadcast;
  auto f = [](float u, float v) { return Swapped ? apply<Op>(v, u) : apply<Op>(u, v); };
  const int64_t total = rows * cols;
  if (mode == Broadcast::middle) {
    parallelFor(rows * mid, std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(1, cols)), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; r++) {
        const float* x = full + r * cols;
        const float* o = other + (r / mid) * cols;
        float* y = out + r * cols;
        for (int64_t j = 0; j < cols; j++) y[j] = f(x[j], o[j]);
      }
    });
    return;
  }
  if (mode == Broadcast::full || mode == Broadcast::scalar) {
    parallelFor(total, 1 << 16, [&](int64_t i0, int64_t i1) {
      if (mode == Broadcast::full) for (int64_t i = i0; i < i1; i++) out[i] = f(full[i], other[i]);
      else { const float v = other[0]; for (int64_t i = i0; i < i1; i++) out[i] = f(full[i], v); }
    });
    return;
  }
  parallelFor(rows, std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(1, cols)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* x = full + r * cols;
      float* y = out + r * cols;
      if (mode == Broadcast::row) for (int64_t j = 0; j < cols; j++) y[j] = f(x[j], other[j]);
      else { const float v = other[r]; for (int64_t j = 0; j < cols; j++) y[j] = f(x[j], v); }
    }
  });
}

template <ops::Binary Op>
void binaryDispatch(bool swapped, const float* full, const float* other, float* out, int64_t rows, int64_t cols,
                    ops::Broadcast mode, int64_t mid) {
  if (swapped) binaryLoop<Op, true>(full, other, out, rows, cols, mode, mid);
  else binaryLoop<Op, false>(full, other, out, rows, cols, mode, mid);
}

Napi::Value Binary(const Napi::CallbackInfo& info) {
  using ops::Binary;
  Binary op;
  ops::Broadcast mode;
  if (!readOp(info[0], ops::kBinarySize, "binary", &op) || !readOp(info[6], ops::kBroadcastSize, "broadcast", &mode))
    return info.Env().Undefined();
  const float* full = f32(info[1]);
  const float* other = f32(info[2]);
  float* out = f32(info[3]);
  int64_t rows = num(info[4]), cols = num(info[5]);
  bool swapped = info[7].As<Napi::Boolean>();
  int64_t mid = num(info[8]);
  switch (op) {
    case Binary::Add: binaryDispatch<Binary::Add>(swapped, full, other, out, rows, cols, mode, mid); break;
    case Binary::Sub: binaryDispatch<Binary::Sub>(swapped, full, other, out, rows, cols, mode, mid); break;
    case Binary::Multiply: binaryDispatch<Binary::Multiply>(swapped, full, other, out, rows, cols, mode, mid); break;
    case Binary::RealDiv: binaryDispatch<Binary::RealDiv>(swapped, full, other, out, rows, cols, mode, mid); break;
  }
  return info.Env().Undefined();
}

// unary(op, x, out, alpha), op (ops::Unary): Relu (max(x, 0)), Step (x > 0 ? 1 : alpha; NaN
// stays NaN, as in TF.js), Tanh, Sigmoid 1/(1+e^−x), Exp, Sqrt, Square, Neg, Log.
template <ops::Unary Op>
inline float unaryOp(float v, float alpha) {
  using ops::Unary;
  if constexpr (Op == Unary::Relu) return std::isnan(v) ? v : (v < 0 ? 0.0f : v);
  else if constexpr (Op == Unary::Step) return std::isnan(v) ? v : (v > 0 ? 1.0f : alpha);
  else if constexpr (Op == Unary::Tanh) return tanhOf(v);
  else if constexpr (Op == Unary::Sigmoid) return 1.0f / (1.0f + std::exp(-v));
  else if constexpr (Op == Unary::Exp) return std::exp(v);
  else if constexpr (Op == Unary::Sqrt) return std::sqrt(v);
  else if constexpr (Op == Unary::Square) return v * v;
  else if constexpr (Op == Unary::Neg) return -v;
  else if constexpr (Op == Unary::Log) return std::log(v);
  else static_assert(Op != Op, "a unary op of native/ops.json has no formula here");
}

template <ops::Unary Op>
void unaryLoop(const float* x, float* y, int64_t n, float alpha) {
  parallelFor(n, 1 << 15, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) y[i] = unaryOp<Op>(x[i], alpha);
  });
}

Napi::Value Unary(const Napi::CallbackInfo& info) {
  using ops::Unary;
  Unary op;
  if (!readOp(info[0], ops::kUnarySize, "unary", &op)) return info.Env().Undefined();
  auto xs = info[1].As<Napi::Float32Array>();
  const float* x = xs.Data();
  float* y = f32(info[2]);
  const float alpha = static_cast<float>(info[3].As<Napi::Number>().DoubleValue());
  int64_t n = static_cast<int64_t>(xs.ElementLength());
  switch (op) {
    case Unary::Relu: unaryLoop<Unary::Relu>(x, y, n, alpha); break;
    case Unary::Step: unaryLoop<Unary::Step>(x, y, n, alpha); break;
    case Unary::Tanh: unaryLoop<Unary::Tanh>(x, y, n, alpha); break;
    case Unary::Sigmoid: unaryLoop<Unary::Sigmoid>(x, y, n, alpha); break;
    case Unary::Exp: unaryLoop<Unary::Exp>(x, y, n, alpha); break;
    case Unary::Sqrt: unaryLoop<Unary::Sqrt>(x, y, n, alpha); break;
    case Unary::Square: unaryLoop<Unary::Square>(x, y, n, alpha); break;
    case Unary::Neg: unaryLoop<Unary::Neg>(x, y, n, alpha); break;
    case Unary::Log: unaryLoop<Unary::Log>(x, y, n, alpha); break;
  }
  return info.Env().Undefined();
}

// sum(x, out, outer, reduce, inner): out[o, i] = Σ_r x[o, r, i], accumulated in double as the
// JavaScript kernel does.
Napi::Value Sum(const Napi::CallbackInfo& info) {
  const float* x = f32(info[0]);
  float* out = f32(info[1]);
  int64_t outer = num(info[2]), red = num(info[3]), inner = num(info[4]);
  auto reduceRange = [&](int64_t o, int64_t r0, int64_t r1, double* acc) {
    const float* base = x + o * red * inner;
    if (inner == 1) {
      double s = 0;
      for (int64_t r = r0; r < r1; r++) s += base[r];
      acc[0] += s;
      return;
    }
    for (int64_t r = r0; r < r1; r++) {
      const float* row = base + r * inner;
      for (int64_t i = 0; i < inner; i++) acc[i] += row[i];
    }
  };
  if (outer >= 2 * gThreads || red * inner < (1 << 16)) {
    parallelFor(outer, std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(1, red * inner)), [&](int64_t o0, int64_t o1) {
      std::vector<double> acc(inner);
      for (int64_t o = o0; o < o1; o++) {
        std::fill(acc.begin(), acc.end(), 0.0);
        reduceRange(o, 0, red, acc.data());
        for (int64_t i = 0; i < inner; i++) out[o * inner + i] = static_cast<float>(acc[i]);
      }
    });
    return info.Env().Undefined();
  }
  // Few outputs, long reductions: each thread sums part of the reduced axis.
  int threads = gThreads;
  std::vector<std::vector<double>> partial(threads, std::vector<double>(outer * inner, 0.0));
  int64_t chunk = (red + threads - 1) / threads;
  parallelFor(threads, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++)
      for (int64_t o = 0; o < outer; o++)
        reduceRange(o, std::min(red, t * chunk), std::min(red, (t + 1) * chunk), partial[t].data() + o * inner);
  });
  for (int64_t j = 0; j < outer * inner; j++) {
    double s = 0;
    for (int t = 0; t < threads; t++) s += partial[t][j];
    out[j] = static_cast<float>(s);
  }
  return info.Env().Undefined();
}

// topK(x, values, indices, V, k) → whether it ran: the k largest of each row of V values, largest
// first, ties by smaller index first (the CPU backend's TopK with `sorted`). A row holding NaN,
// which that kernel orders by its own partition's accidents, returns false (and JavaScript runs).
Napi::Value TopK(const Napi::CallbackInfo& info) {
  auto xArray = info[0].As<Napi::Float32Array>();
  const float* x = xArray.Data();
  float* values = f32(info[1]);
  int32_t* indices = i32(info[2]);
  const int64_t V = num(info[3]), k = num(info[4]);
  const int64_t R = static_cast<int64_t>(xArray.ElementLength()) / V;
  for (int64_t i = 0; i < R * V; i++)
    if (std::isnan(x[i])) return Napi::Boolean::New(info.Env(), false);
  parallelFor(R, std::max<int64_t>(1, (1 << 14) / V), [&](int64_t r0, int64_t r1) {
    std::vector<int32_t> order(V);
    for (int64_t r = r0; r < r1; r++) {
      const float* z = x + r * V;
      for (int64_t j = 0; j < V; j++) order[j] = static_cast<int32_t>(j);
      std::partial_sort(order.begin(), order.begin() + k, order.end(),
                        [z](int32_t a, int32_t b) { return z[a] > z[b] || (z[a] == z[b] && a < b); });
      for (int64_t i = 0; i < k; i++) {
        values[r * k + i] = z[order[i]];
        indices[r * k + i] = order[i];
      }
    }
  });
  return Napi::Boolean::New(info.Env(), true);
}

// argMax(x, out, V): the index of each row's largest value, the first of equal ones; a NaN is
// never larger, as in the CPU backend's ArgMax (which starts from the row's first value).
Napi::Value ArgMax(const Napi::CallbackInfo& info) {
  auto xArray = info[0].As<Napi::Float32Array>();
  const float* x = xArray.Data();
  int32_t* out = i32(info[1]);
  const int64_t V = num(info[2]);
  const int64_t R = static_cast<int64_t>(xArray.ElementLength()) / V;
  parallelFor(R, std::max<int64_t>(1, (1 << 16) / V), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const float* z = x + r * V;
      float best = z[0];
      int32_t at = 0;
      for (int64_t j = 1; j < V; j++)
        if (z[j] > best) {
          best = z[j];
          at = static_cast<int32_t>(j);
        }
      out[r] = at;
    }
  });
  return info.Env().Undefined();
}

// transpose2d(x, out, batch, rows, cols): out[b] = x[b]ᵀ, in cache-sized tiles.
Napi::Value Transpose2D(const Napi::CallbackInfo& info) {
  const float* x = f32(info[0]);
  float* y = f32(info[1]);
  int64_t batch = num(info[2]), rows = num(info[3]), cols = num(info[4]);
  constexpr int64_t T = 32;
  int64_t tilesR = (rows + T - 1) / T;
  parallelFor(batch * tilesR, std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(1, T * cols)), [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; t++) {
      int64_t b = t / tilesR, r0 = (t % tilesR) * T, r1 = std::min(rows, r0 + T);
      const float* xb = x + b * rows * cols;
      float* yb = y + b * rows * cols;
      for (int64_t c0 = 0; c0 < cols; c0 += T) {
        int64_t c1 = std::min(cols, c0 + T);
        for (int64_t r = r0; r < r1; r++)
          for (int64_t c = c0; c < c1; c++) yb[c * rows + r] = xb[r * cols + c];
      }
    }
  });
  return info.Env().Undefined();
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  gThreads = static_cast<int>(std::max<int64_t>(1, num(info[0])));
  return info.Env().Undefined();
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("threads", gThreads);
#ifdef CAPTIONER_OPENBLAS
  out.Set("blas", std::string(openblas_get_config()));
  out.Set("core", std::string(openblas_get_corename()));
  out.Set("blasThreads", openblas_get_num_threads());
#else
  out.Set("blas", "CBLAS");
#endif
  return out;
}

// opTable(): the operation codes this addon was compiled with (native/ops.json), by group:
// { binary: ["Add", …], unary: […], … }, an op's code being its index.
Napi::Value OpTable(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object table = Napi::Object::New(env);
  for (const ops::Group& group : ops::kGroups) {
    Napi::Array names = Napi::Array::New(env, group.size);
    for (int i = 0; i < group.size; i++) names.Set(i, group.names[i]);
    table.Set(group.name, names);
  }
  return table;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
#ifdef CAPTIONER_OPENBLAS
  // OpenBLAS runs inside the addon's own threads, one call per thread (common.h, ThreadPool).
  openblas_set_num_threads(1);
#endif
  exports.Set("batchMatMul", Napi::Function::New(env, BatchMatMul));
  exports.Set("conv2d", Napi::Function::New(env, Conv2D));
  exports.Set("conv2dBackpropInput", Napi::Function::New(env, Conv2DBackpropInput));
  exports.Set("conv2dBackpropFilter", Napi::Function::New(env, Conv2DBackpropFilter));
  exports.Set("unsortedSegmentSum", Napi::Function::New(env, UnsortedSegmentSum));
  exports.Set("maxPool", Napi::Function::New(env, MaxPool));
  exports.Set("maxPoolGrad", Napi::Function::New(env, MaxPoolGrad));
  exports.Set("convReluMaxPool", Napi::Function::New(env, ConvReluMaxPool));
  exports.Set("maxPoolArgmaxGrad", Napi::Function::New(env, MaxPoolArgmaxGrad));
  exports.Set("binary", Napi::Function::New(env, Binary));
  exports.Set("unary", Napi::Function::New(env, Unary));
  exports.Set("sum", Napi::Function::New(env, Sum));
  exports.Set("transpose2d", Napi::Function::New(env, Transpose2D));
  exports.Set("topK", Napi::Function::New(env, TopK));
  exports.Set("argMax", Napi::Function::New(env, ArgMax));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  exports.Set("info", Napi::Function::New(env, Info));
  exports.Set("opTable", Napi::Function::New(env, OpTable));
  InitOptimizer(env, exports);
  InitRecurrent(env, exports);
  InitLoss(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(captioner_native, Init)
