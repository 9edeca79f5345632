// A few rows times a matrix, c [m, n] = a [m, k] · b [k, n] + beta · c for m ≤ kFewRows: the
// products of a decoding step (one caption, a small beam), whose time is reading b. OpenBLAS
// has two ways to do them, both slower here: one matrix-vector product per row reads b m
// times, and a GEMM packs b first. This kernel reads b once for every row, a strip of columns
// at a time with the rows' sums in registers (AVX2 with FMA, chosen at run time; elsewhere,
// sgemv per row), and splits the columns between the addon's threads when the product is
// large enough to pay for waking them. Each output is one thread's sum over k in order, so the
// result does not depend on the thread count.
#include "common.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace captioner {
namespace {

// Products of at least this many multiply-adds (about 100 µs on one core) are split between
// threads. A decoding step's products (a beam of 3: 3 · 512 · 2048 multiply-adds, about 80 µs)
// stay on the calling thread, so that a step's latency does not depend on a helper waking in
// time (on a loaded machine, splitting them measured no faster and used more CPU).
constexpr int64_t kFewRowsParallel = int64_t{1} << 22;

// Columns per task when split: whole 32-column strips, so that every strip runs full width.
constexpr int64_t kStrip = 32;

void fewRowsBlas(int64_t m, int64_t n0, int64_t n1, int64_t k, const float* a, int64_t lda, const float* b,
                 int64_t ldb, float beta, float* c, int64_t ldc) {
  for (int64_t r = 0; r < m; r++)
    cblas_sgemv(CblasRowMajor, CblasTrans, k, n1 - n0, 1.0f, b + n0, ldb, a + r * lda, 1, beta, c + r * ldc + n0, 1);
}

#if defined(__x86_64__)
// c[r, n0:n1] += Σ_{p < P} a[r, p] · b[p, n0:n1] for rows r < R: P rows of b at a time, walking
// along them (contiguous memory), the R·P factors of a in registers.
template <int R, int P>
__attribute__((target("avx2,fma"))) inline void accumulate(int64_t n0, int64_t n1, const float* a, int64_t lda,
                                                            const float* b, int64_t ldb, float* c, int64_t ldc) {
  __m256 f[R][P];
  for (int r = 0; r < R; r++)
    for (int p = 0; p < P; p++) f[r][p] = _mm256_set1_ps(a[r * lda + p]);
  int64_t j = n0;
  for (; j + 8 <= n1; j += 8) {
    __m256 acc[R];
    for (int r = 0; r < R; r++) acc[r] = _mm256_loadu_ps(c + r * ldc + j);
    for (int p = 0; p < P; p++) {
      const __m256 bv = _mm256_loadu_ps(b + p * ldb + j);
      for (int r = 0; r < R; r++) acc[r] = _mm256_fmadd_ps(f[r][p], bv, acc[r]);
    }
    for (int r = 0; r < R; r++) _mm256_storeu_ps(c + r * ldc + j, acc[r]);
  }
  for (; j < n1; j++)
    for (int r = 0; r < R; r++) {
      float sum = c[r * ldc + j];
      for (int p = 0; p < P; p++) sum = std::fma(a[r * lda + p], b[p * ldb + j], sum);
      c[r * ldc + j] = sum;
    }
}

// Columns of c per pass over b: R rows of them stay in the L1 cache (16 KB for 4 rows).
constexpr int64_t kColumnBlock = 1024;

// c[0:R, n0:n1] += a[0:R, :] · b[:, n0:n1], b walked a block of columns at a time, four rows
// (two for four rows of a, so that everything fits the 16 registers) at a time.
template <int R>
__attribute__((target("avx2,fma"))) void rowsAvx2(int64_t n0, int64_t n1, int64_t k, const float* a, int64_t lda,
                                                  const float* b, int64_t ldb, float* c, int64_t ldc) {
  constexpr int P = R == 4 ? 2 : 4;
  for (int64_t j0 = n0; j0 < n1; j0 += kColumnBlock) {
    const int64_t j1 = std::min(n1, j0 + kColumnBlock);
    int64_t p = 0;
    for (; p + P <= k; p += P) accumulate<R, P>(j0, j1, a + p, lda, b + p * ldb, ldb, c, ldc);
    for (; p < k; p++) accumulate<R, 1>(j0, j1, a + p, lda, b + p * ldb, ldb, c, ldc);
  }
}

// Asked once, on first use (__builtin_cpu_init first: the answer must not depend on the order
// in which the shared object's initialisers run).
bool hasAvx2() {
  static const bool yes = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return yes;
}
#endif

// Columns [n0, n1) of every row: rows four (or three) at a time, each group reading b once.
void fewRowsColumns(int64_t m, int64_t n0, int64_t n1, int64_t k, const float* a, int64_t lda, const float* b,
                    int64_t ldb, float beta, float* c, int64_t ldc) {
#if defined(__x86_64__)
  if (hasAvx2()) {
    // c = beta · c first, then every product added to it in the order of k.
    for (int64_t r = 0; r < m; r++) {
      float* row = c + r * ldc;
      if (beta == 0.0f) std::fill(row + n0, row + n1, 0.0f);
      else if (beta != 1.0f)
        for (int64_t j = n0; j < n1; j++) row[j] *= beta;
    }
    for (int64_t r = 0; r < m;) {
      const int64_t left = m - r;
      const int64_t take = left == 4 || left > 5 ? 4 : std::min<int64_t>(left, 3);
      const float* ar = a + r * lda;
      float* cr = c + r * ldc;
      switch (take) {
        case 1: rowsAvx2<1>(n0, n1, k, ar, lda, b, ldb, cr, ldc); break;
        case 2: rowsAvx2<2>(n0, n1, k, ar, lda, b, ldb, cr, ldc); break;
        case 3: rowsAvx2<3>(n0, n1, k, ar, lda, b, ldb, cr, ldc); break;
        default: rowsAvx2<4>(n0, n1, k, ar, lda, b, ldb, cr, ldc); break;
      }
      r += take;
    }
    return;
  }
#endif
  fewRowsBlas(m, n0, n1, k, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace

void fewRowsTimesMatrix(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                        float beta, float* c, int64_t ldc) {
  const int64_t strips = (n + kStrip - 1) / kStrip;
  const int64_t threads = m * n * k >= kFewRowsParallel ? std::min<int64_t>(gThreads, strips) : 1;
  if (threads <= 1) {
    fewRowsColumns(m, 0, n, k, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  // One equal share of the strips per thread: a helper that wakes late finds its share taken.
  const int64_t share = (strips + threads - 1) / threads * kStrip;
  parallelTasks(threads, [&](int64_t t, int) {
    const int64_t n0 = t * share, n1 = std::min(n, n0 + share);
    if (n0 < n1) fewRowsColumns(m, n0, n1, k, a, lda, b, ldb, beta, c, ldc);
  });
}

}  // namespace captioner
