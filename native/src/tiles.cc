// A convolution tile's product, c [m, n] (+)= op(a) · b [k, n] (row-major, row strides lda, ldb,
// ldc; op(a) = a [m, k] or, transposed, aᵀ for a [k, m]), with AVX-512 where the CPU has it: the
// convolutions' im2col tiles times the filter, the gradient times the filter's transpose, the
// tiles' transpose times the gradient, and the other products of `gemm` (common.h) whose b is
// not transposed. OpenBLAS runs the kernels of the core it is set to, and
// this machine sets it to Haswell (OPENBLAS_CORETYPE, AVX2); this product runs 16 columns to
// a register instead of 8 (a row's last columns, when its length is no multiple of 16, under a
// mask). Each output is one sum over k in order (a fused multiply-add per
// term, as OpenBLAS's kernels do), so the result depends neither on the tiling nor on threads.
#include "common.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <cstdlib>
#include <string>
#endif

namespace captioner {
namespace {

#if defined(__x86_64__)
// c[0:R, 0:16V] (+)= op(a)[0:R, :] · b[:, 0:16V]: R·V sums in registers (starting from c's
// values when `add`), b's row of 16V values loaded once per k for all R rows, a's values
// broadcast. R = 12, V = 2 use 24 of the 32 registers. The last vector reads and writes only
// the columns `last` selects (all 16 but at the end of a row whose length is no multiple of 16).
template <int R, int V, bool Transposed>
__attribute__((target("avx512f"))) void block(int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                                             float* c, int64_t ldc, bool add, __mmask16 last) {
  __m512 acc[R][V];
#pragma GCC unroll 12
  for (int r = 0; r < R; r++)
#pragma GCC unroll 2
    for (int v = 0; v < V; v++) {
      const __mmask16 m = v == V - 1 ? last : 0xFFFF;
      acc[r][v] = add ? _mm512_maskz_loadu_ps(m, c + r * ldc + 16 * v) : _mm512_setzero_ps();
    }
  for (int64_t p = 0; p < k; p++) {
    __m512 bv[V];
#pragma GCC unroll 2
    for (int v = 0; v < V; v++) bv[v] = _mm512_maskz_loadu_ps(v == V - 1 ? last : 0xFFFF, b + p * ldb + 16 * v);
#pragma GCC unroll 12
    for (int r = 0; r < R; r++) {
      const __m512 av = _mm512_set1_ps(Transposed ? a[p * lda + r] : a[r * lda + p]);
#pragma GCC unroll 2
      for (int v = 0; v < V; v++) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
#pragma GCC unroll 12
  for (int r = 0; r < R; r++)
#pragma GCC unroll 2
    for (int v = 0; v < V; v++) _mm512_mask_storeu_ps(c + r * ldc + 16 * v, v == V - 1 ? last : 0xFFFF, acc[r][v]);
}

constexpr int kRows = 12;

// Every row of a 16V-column strip: twelve rows at a time, then the rest.
template <int V, bool T>
void strip(int64_t m, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc,
           bool add, __mmask16 last) {
  // Row r of op(a) starts at a + r · lda, or (transposed) at a + r.
  const int64_t rowStep = T ? 1 : lda;
  int64_t r = 0;
  for (; r + kRows <= m; r += kRows) block<kRows, V, T>(k, a + r * rowStep, lda, b, ldb, c + r * ldc, ldc, add, last);
  const float* ar = a + r * rowStep;
  float* cr = c + r * ldc;
  switch (m - r) {
    case 0: break;
    case 1: block<1, V, T>(k, ar, lda, b, ldb, cr, ldc, add, last); break;
    case 2: block<2, V, T>(k, ar, lda, b, ldb, cr, ldc, add, last); break;
    case 3: block<3, V, T>(k, ar, lda, b, ldb, cr, ldc, add, last); break;
    case 4: block<4, V, T>(k, ar, lda, b, ldb, cr, ldc, add, last); break;
    case 5: block<5, V, T>(k, ar, lda, b, ldb, cr, ldc, add, last); break;
    case 6: block<6, V, T>(k, ar, lda, b, ldb, cr, ldc, add, last); break;
    case 7: block<7, V, T>(k, ar, lda, b, ldb, cr, ldc, add, last); break;
    case 8: block<8, V, T>(k, ar, lda, b, ldb, cr, ldc, add, last); break;
    case 9: block<9, V, T>(k, ar, lda, b, ldb, cr, ldc, add, last); break;
    case 10: block<10, V, T>(k, ar, lda, b, ldb, cr, ldc, add, last); break;
    default: block<11, V, T>(k, ar, lda, b, ldb, cr, ldc, add, last); break;
  }
}

template <bool T>
void strips(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
            int64_t ldc, bool add) {
  // A strip of 32 columns of b (k · 128 bytes) stays in the L2 cache while every row passes.
  int64_t j = 0;
  for (; j + 32 <= n; j += 32) strip<2, T>(m, k, a, lda, b + j, ldb, c + j, ldc, add, 0xFFFF);
  if (j + 16 <= n) {
    strip<1, T>(m, k, a, lda, b + j, ldb, c + j, ldc, add, 0xFFFF);
    j += 16;
  }
  if (j < n) strip<1, T>(m, k, a, lda, b + j, ldb, c + j, ldc, add, static_cast<__mmask16>((1u << (n - j)) - 1));
}

// Asked once, on first use (__builtin_cpu_init first, as in rows.cc). CAPTIONER_AVX512=0 leaves
// every product to OpenBLAS, as on a CPU without AVX-512 (to compare, or to test that path here).
bool hasAvx512() {
  static const bool yes = [] {
    const char* setting = std::getenv("CAPTIONER_AVX512");
    if (setting && std::string(setting) == "0") return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") != 0;
  }();
  return yes;
}
#endif

}  // namespace

bool tilesUseAvx512() {
#if defined(__x86_64__)
  return hasAvx512();
#else
  return false;
#endif
}

void tileProduct(bool transA, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                 int64_t ldb, float beta, float* c, int64_t ldc) {
#if defined(__x86_64__)
  if ((beta == 0.0f || beta == 1.0f) && hasAvx512()) {
    if (transA) strips<true>(m, n, k, a, lda, b, ldb, c, ldc, beta == 1.0f);
    else strips<false>(m, n, k, a, lda, b, ldb, c, ldc, beta == 1.0f);
    return;
  }
#endif
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, lda, b, ldb, beta, c,
              ldc);
}

}  // namespace captioner
