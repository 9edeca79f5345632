// What every file of the addon shares: the BLAS, the thread count, a parallel loop, and the
// readers of N-API arguments. Every kernel works in place on typed arrays the caller allocates.
#pragma once
#include <napi.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
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

// The addon's own threads: gThreads − 1 workers that sleep on a condition variable between jobs
// (after a short spin, so that a kernel following another finds them awake), and the calling
// thread, which takes tasks too. OpenBLAS runs single-threaded inside them (see `gemm`): its own
// pool of threads spins with sched_yield for a long while after every call (2^28 cycles by
// default), and on a 2-core machine those spinning threads took the cores the addon's threads
// needed (perf: 30 % of a conv block's time in sched_yield and the kernel, 2026-12-02).
//
// Tasks are handed out one at a time to whichever thread is free, and the caller waits only for
// helpers that took part: a helper the scheduler has not run yet (a machine other jobs load)
// finds the job gone when it wakes, rather than holding the caller up.
//
// One job at a time: a call from a second JavaScript thread (a worker thread) while a job runs,
// or a call from inside a job, runs on its calling thread alone, with the same results.
class ThreadPool {
 public:
  // Runs job(task, slot) for every task in [0, tasks), each on one thread; `slot` in [0, gThreads)
  // names the thread. Returns when all have run.
  template <class F>
  void run(int64_t tasks, F&& job) {
    std::unique_lock<std::mutex> busy(runMutex_, std::try_to_lock);
    if (tasks <= 1 || gThreads <= 1 || inJob_ || !busy.owns_lock()) {
      for (int64_t t = 0; t < tasks; t++) job(t, 0);
      return;
    }
    ensureWorkers(gThreads - 1);
    Job current{tasks, [&](int64_t t, int s) { job(t, s); }};
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &current;
      wanted_ = static_cast<int>(std::min<int64_t>(gThreads - 1, tasks - 1));  // workers_ may hold more
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    inJob_ = true;
    work(current, 0);
    inJob_ = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = nullptr;  // a helper that wakes from now on finds nothing to do
    }
    // Wait for the helpers still running a task: spin briefly (they finish with us), then sleep.
    for (int spin = 0; current.active.load(std::memory_order_acquire) > 0; spin++) {
      if (spin < 4000) pause();
      else {
        std::unique_lock<std::mutex> lock(mutex_);
        done_.wait(lock, [&] { return current.active.load(std::memory_order_acquire) == 0; });
      }
    }
  }

  static ThreadPool& instance() {
    static ThreadPool* pool = new ThreadPool();  // never destroyed: its threads outlive static destructors
    return *pool;
  }

 private:
  struct Job {
    int64_t tasks;
    std::function<void(int64_t, int)> fn;
    std::atomic<int64_t> next{0};
    std::atomic<int> active{0};  // helpers inside the job
  };

  static void pause() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }

  static void work(Job& job, int slot) {
    for (int64_t t; (t = job.next.fetch_add(1, std::memory_order_relaxed)) < job.tasks;) job.fn(t, slot);
  }

  void ensureWorkers(int count) {
    while (static_cast<int>(workers_.size()) < count) {
      int slot = static_cast<int>(workers_.size()) + 1;
      workers_.emplace_back([this, slot] { loop(slot); });
      workers_.back().detach();
    }
  }

  void loop(int slot) {
    inJob_ = true;  // a parallel loop inside a task runs inline
    uint64_t seen = 0;
    for (;;) {
      // Spin a little for the next job before sleeping on the condition variable.
      for (int spin = 0; spin < 4000 && generation_.load(std::memory_order_acquire) == seen; spin++) pause();
      Job* job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
        seen = generation_.load(std::memory_order_acquire);
        job = job_;
        if (!job || slot > wanted_) continue;  // over already, or this job needs fewer helpers
        job->active.fetch_add(1, std::memory_order_relaxed);
      }
      work(*job, slot);
      if (job->active.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lock(mutex_);
        done_.notify_one();
      }
    }
  }

  std::mutex runMutex_;  // one job at a time
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  Job* job_ = nullptr;
  int wanted_ = 0;
  std::atomic<uint64_t> generation_{0};
  static inline thread_local bool inJob_ = false;
};

// Runs f(begin, end) over [0, n) split into up to gThreads equal chunks, one per thread; work
// below `grain` items per thread stays on the calling thread. The chunks depend only on n, grain
// and gThreads, so a reduction that sums per chunk gives the same result on every run.
template <class F>
inline void parallelFor(int64_t n, int64_t grain, F f) {
  int64_t threads = std::min<int64_t>(gThreads, grain > 0 ? (n + grain - 1) / grain : n);
  if (threads <= 1) {
    f(int64_t{0}, n);
    return;
  }
  int64_t chunk = (n + threads - 1) / threads;
  ThreadPool::instance().run(threads, [&](int64_t t, int) {
    int64_t b = t * chunk, e = std::min(n, (t + 1) * chunk);
    if (b < e) f(b, e);
  });
}

// Runs f(task, slot) for every task in [0, tasks), handed out in order to the threads; `slot`
// (< gThreads) names the thread running it.
template <class F>
inline void parallelTasks(int64_t tasks, F f) {
  ThreadPool::instance().run(tasks, f);
}

// c [m, n] = op(a) · b [k, n] + beta · c, op(a) being a [m, k] or, with `transA`, aᵀ for a [k, m]
// (row-major, row strides lda, ldb, ldc), on the calling thread: a convolution tile's product,
// or a slice of `gemm`'s. AVX-512 where the CPU has it and beta is 0 or 1, else OpenBLAS
// (tiles.cc).
void tileProduct(bool transA, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                 int64_t ldb, float beta, float* c, int64_t ldc);

// Whether tileProduct runs on AVX-512 here (tiles.cc).
bool tilesUseAvx512();

// out [k, n] = bᵀ for b [n, k] (row stride ldb), in 32 × 32 blocks.
inline void transposeInto(int64_t n, int64_t k, const float* b, int64_t ldb, float* out) {
  constexpr int64_t T = 32;
  for (int64_t i0 = 0; i0 < n; i0 += T)
    for (int64_t j0 = 0; j0 < k; j0 += T)
      for (int64_t i = i0; i < std::min(n, i0 + T); i++)
        for (int64_t j = j0; j < std::min(k, j0 + T); j++) out[j * n + i] = b[i * ldb + j];
}

// Products below this many multiply-adds (about a millisecond on one core) run on one thread.
constexpr int64_t kSmallProduct = int64_t{1} << 24;

// Products against a transposed b with at least this many rows transpose b first (see gemm).
constexpr int64_t kTransposeRows = 128;

// c [m, n] = alpha · op(a) · op(b) + beta · c (row-major, cblas_sgemm's arguments), on the
// addon's threads: a large product is split along its longer side, m or n, into one slice per
// thread, each a single-threaded OpenBLAS call (OpenBLAS itself is kept at one thread), or, b
// not transposed, a `tileProduct` (AVX-512 where the CPU has it).
inline void gemm(bool transA, bool transB, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                 const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (transB && alpha == 1.0f && (beta == 0.0f || beta == 1.0f) && m >= kTransposeRows && tilesUseAvx512()) {
    // bᵀ written out once (a small cost beside the product's m · n · k with this many rows), so
    // that the product runs on tileProduct.
    thread_local std::vector<float> bt;
    if (static_cast<int64_t>(bt.size()) < n * k) bt.resize(n * k);
    transposeInto(n, k, b, ldb, bt.data());
    gemm(transA, false, m, n, k, alpha, a, lda, bt.data(), n, beta, c, ldc);
    return;
  }
  auto call = [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    const float* as = transA ? a + m0 : a + m0 * lda;
    const float* bs = transB ? b + n0 * ldb : b + n0;
    if (!transB && alpha == 1.0f) {
      tileProduct(transA, m1 - m0, n1 - n0, k, as, lda, bs, ldb, beta, c + m0 * ldc + n0, ldc);
      return;
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, m1 - m0,
                n1 - n0, k, alpha, as, lda, bs, ldb, beta, c + m0 * ldc + n0, ldc);
  };
  int64_t threads = std::min<int64_t>(gThreads, std::max<int64_t>(1, m * n * k / kSmallProduct));
  if (threads <= 1) {
    call(0, m, 0, n);
    return;
  }
  // Slices of whole 16-row or 16-column panels, so that each thread's kernel runs full width.
  const bool byRows = m >= n;
  const int64_t extent = byRows ? m : n;
  const int64_t slice = (extent / threads + 15) / 16 * 16;
  const int64_t slices = (extent + slice - 1) / slice;
  parallelTasks(slices, [&](int64_t s, int) {
    int64_t s0 = s * slice, s1 = std::min(extent, s0 + slice);
    if (byRows) call(s0, s1, 0, n);
    else call(0, m, s0, s1);
  });
}

// Products with at most this many rows go to fewRowsTimesMatrix (rows.cc).
constexpr int64_t kFewRows = 8;

// c [m, n] = a [m, k] · b [k, n] + beta · c for m ≤ kFewRows (b row-major, row strides lda, ldb,
// ldc): b read once for all the rows, the columns split between threads when it pays (rows.cc).
void fewRowsTimesMatrix(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                        float beta, float* c, int64_t ldc);

// c [m, n] = a [m, k] · op(b) + beta · c, op(b) being b [k, n] or, with `transB`, bᵀ for b [n, k];
// lda and ldc are the row strides of a and c. A few rows (decoding one caption or a small beam)
// run as fewRowsTimesMatrix or, against bᵀ, as matrix-vector products, which stream b instead of
// packing it as a GEMM does.
inline void rowsTimesMatrix(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, bool transB,
                            float beta, float* c, int64_t ldc) {
  if (m <= kFewRows && !transB) {
    fewRowsTimesMatrix(m, n, k, a, lda, b, n, beta, c, ldc);
    return;
  }
  if (m <= 4) {
    for (int64_t r = 0; r < m; r++)
      cblas_sgemv(CblasRowMajor, CblasNoTrans, n, k, 1.0f, b, k, a + r * lda, 1, beta, c + r * ldc, 1);
    return;
  }
  gemm(false, transB, m, n, k, 1.0f, a, lda, b, transB ? k : n, beta, c, ldc);
}

// tanh of a float as the CPU backend's Tanh computes it (JavaScript's Math.tanh, rounded to
// float): in double, ±(1 − e^−2|x|) / (1 + e^−2|x|), or x − x³/3 below 1e-4 where that
// difference would cancel; the same float as Math.tanh on every input tried (every 97th float),
// and about 1.5× faster here than glibc's tanhf, which took most of an LSTM step's elementwise
// time.
inline float tanhOf(float v) {
  const double a = std::fabs(static_cast<double>(v));
  double r;
  if (a < 1e-4) {
    r = a - a * a * a / 3.0;
  } else {
    const double t = std::exp(-2.0 * a);
    r = (1.0 - t) / (1.0 + t);
  }
  return static_cast<float>(std::copysign(r, static_cast<double>(v)));
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

// Scratch buffer `which` (0 or 1) of the thread running a task of parallelTasks, kept between
// calls like `scratch` (the pool's threads live as long as the process).
inline float* taskScratch(int which, int64_t floats) {
  thread_local std::vector<float> buffers[2];
  std::vector<float>& buffer = buffers[which];
  if (static_cast<int64_t>(buffer.size()) < floats) buffer.resize(floats);
  return buffer.data();
}

// Registers the kernels of each family on `exports` (kernels.cc, optimizer.cc, recurrent.cc, loss.cc).
void InitOptimizer(Napi::Env env, Napi::Object exports);
void InitRecurrent(Napi::Env env, Napi::Object exports);
void InitLoss(Napi::Env env, Napi::Object exports);

}  // namespace captioner
