// What every file of the addon shares: the BLAS, the thread count, a parallel loop, and the
// readers of N-API arguments. Every kernel works in place on typed arrays the caller allocates.
#pragma once
#include <napi.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

extern "C" {
#include <cblas.h>
}

// The operation codes shared with TypeScript (enum classes ops::Binary, ops::Unary,
// ops::Activation, ops::Broadcast), generated from native/ops.json by native/build.mjs.
#include "ops.h"

#ifdef CAPTIONER_OPENBLAS
extern "C" {
void openblas_set_num_threads(int);
int openblas_get_num_threads(void);
char* openblas_get_config(void);
char* openblas_get_corename(void);
}
#endif

namespace captioner {

inline int gThreads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));


// Runs f(begin, end) over [0, n) split across up to gThreads threads; work below `grain`
// items per thread stays on the calling thread (starting a thread costs tens of µs).
template <class F>
inline void parallelFor(int64_t n, int64_t grain, F f) {
  int64_t threads = std::min<int64_t>(gThreads, grain > 0 ? (n + grain - 1) / grain : n);
  if (threads <= 1) {
    f(int64_t{0}, n);
    return;
  }
  int64_t chunk = (n + threads - 1) / threads;
  std::vector<std::thread> pool;
  for (int64_t t = 1; t < threads; t++) {
    int64_t b = t * chunk, e = std::min(n, (t + 1) * chunk);
    if (b < e) pool.emplace_back([=] { f(b, e); });
  }
  f(int64_t{0}, std::min(n, chunk));
  for (auto& th : pool) th.join();
}

// Runs OpenBLAS single-threaded while in scope when `small`. Matrix-vector products are bound by
// memory, and waking a second BLAS thread for each one measured 4x slower (0.66 vs 0.15 ms for
// 512x2048); the convolutions of a single image did the same on a busy machine.
struct SingleThreadedBlas {
#ifdef CAPTIONER_OPENBLAS
  int saved;
  explicit SingleThreadedBlas(bool small = true) : saved(small ? openblas_get_num_threads() : 1) {
    if (saved > 1) openblas_set_num_threads(1);
  }
  ~SingleThreadedBlas() { if (saved > 1) openblas_set_num_threads(saved); }
#else
  explicit SingleThreadedBlas(bool = true) {}
#endif
};

// Products below this many multiply-adds (about a millisecond on one core) run on one thread.
constexpr int64_t kSmallProduct = int64_t{1} << 24;

// c [m, n] = a [m, k] · op(b) + beta · c, op(b) being b [k, n] or, with `transB`, bᵀ for b [n, k];
// lda and ldc are the row strides of a and c. A few rows (decoding one caption or a small beam)
// run as matrix-vector products, which stream b instead of packing it as a GEMM does.
inline void rowsTimesMatrix(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, bool transB,
                            float beta, float* c, int64_t ldc) {
  if (m <= 4) {
    SingleThreadedBlas oneThread;
    for (int64_t r = 0; r < m; r++) {
      if (transB) cblas_sgemv(CblasRowMajor, CblasNoTrans, n, k, 1.0f, b, k, a + r * lda, 1, beta, c + r * ldc, 1);
      else cblas_sgemv(CblasRowMajor, CblasTrans, k, n, 1.0f, b, n, a + r * lda, 1, beta, c + r * ldc, 1);
    }
    return;
  }
  SingleThreadedBlas oneThread(m * n * k < kSmallProduct);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, transB ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a, lda, b, transB ? k : n,
              beta, c, ldc);
}

inline float* f32(const Napi::Value& v) { return v.As<Napi::Float32Array>().Data(); }
inline int32_t* i32(const Napi::Value& v) { return v.As<Napi::Int32Array>().Data(); }
inline int64_t num(const Napi::Value& v) { return v.As<Napi::Number>().Int64Value(); }

// Reads an operation code of `group` (native/ops.json) into `op`; an unknown code throws a
// RangeError in JavaScript and returns false.
template <class Op>
inline bool readOp(const Napi::Value& v, int size, const char* group, Op* op) {
  int64_t code = num(v);
  if (code < 0 || code >= size) {
    Napi::RangeError::New(v.Env(), std::string("unknown ") + group + " op code " + std::to_string(code))
        .ThrowAsJavaScriptException();
    return false;
  }
  *op = static_cast<Op>(code);
  return true;
}

// The column-matrix scratch buffer, kept between calls on each JS thread (worker threads too) so
// that its pages are not faulted in afresh by every convolution.
inline float* scratch(int64_t floats) {
  thread_local std::vector<float> buffer;
  if (static_cast<int64_t>(buffer.size()) < floats) buffer.resize(floats);
  return buffer.data();
}

// Registers the kernels of each family on `exports` (kernels.cc, optimizer.cc, recurrent.cc, loss.cc).
void InitOptimizer(Napi::Env env, Napi::Object exports);
void InitRecurrent(Napi::Env env, Napi::Object exports);
void InitLoss(Napi::Env env, Napi::Object exports);

}  // namespace captioner
