// The optimiser's kernels: Adam's update of every variable in one pass over its values, and the
// sum of squares of every gradient (the global norm that clipping reads) in one pass.
//
// Both do, element by element, the float32 arithmetic of the elementwise kernels they replace
// (model/train/optim.ts's JavaScript path), so a step gives the same numbers either way; the
// addon is compiled with -ffp-contract=off so that no multiply-add is fused into one rounding.
#include "common.h"

namespace captioner {
namespace {

// The Float32Arrays of a JavaScript array of them.
std::vector<float*> floatArrays(const Napi::Value& v, std::vector<int64_t>* sizes) {
  Napi::Array list = v.As<Napi::Array>();
  std::vector<float*> out;
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Float32Array a = list.Get(i).As<Napi::Float32Array>();
    out.push_back(a.Data());
    if (sizes) sizes->push_back(static_cast<int64_t>(a.ElementLength()));
  }
  return out;
}

// A piece of one array: the unit of work the threads share.
struct Piece {
  int64_t array, begin, end;
};

constexpr int64_t kPiece = int64_t{1} << 15;

std::vector<Piece> pieces(const std::vector<int64_t>& sizes) {
  std::vector<Piece> out;
  for (int64_t a = 0; a < static_cast<int64_t>(sizes.size()); a++)
    for (int64_t b = 0; b < sizes[a]; b += kPiece) out.push_back({a, b, std::min(sizes[a], b + kPiece)});
  return out;
}

// adam(variables, m, v, grads, scaled, gradScale, beta1, oneMinusBeta1, beta2, oneMinusBeta2, c1, c2,
//      epsilon, learningRate): for every variable θ with moments m, v and gradient g (lists of
// Float32Arrays of equal lengths), in place (Kingma & Ba 2015, Algorithm 1):
//   g ← g·gradScale (when `scaled`: clipping by the global norm)
//   m ← m·β1 + g·(1−β1);  v ← v·β2 + g²·(1−β2)
//   θ ← θ − (m/c1) / (√(v/c2) + ε) · lr,  with c1 = 1−β1^t, c2 = 1−β2^t
// Every constant is rounded to float32 first, as a TF.js scalar is.
Napi::Value Adam(const Napi::CallbackInfo& info) {
  std::vector<int64_t> sizes;
  std::vector<float*> theta = floatArrays(info[0], &sizes);
  std::vector<float*> m = floatArrays(info[1], nullptr);
  std::vector<float*> v = floatArrays(info[2], nullptr);
  std::vector<float*> grads = floatArrays(info[3], nullptr);
  if (m.size() != theta.size() || v.size() != theta.size() || grads.size() != theta.size()) {
    Napi::RangeError::New(info.Env(), "adam: the lists of variables, moments and gradients differ in length")
        .ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  const bool scaled = info[4].As<Napi::Boolean>();
  auto f = [&](int i) { return static_cast<float>(info[i].As<Napi::Number>().DoubleValue()); };
  const float scale = f(5), b1 = f(6), omb1 = f(7), b2 = f(8), omb2 = f(9), c1 = f(10), c2 = f(11), eps = f(12),
              lr = f(13);
  std::vector<Piece> work = pieces(sizes);
  parallelFor(static_cast<int64_t>(work.size()), 4, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; p++) {
      const Piece& piece = work[p];
      float* th = theta[piece.array];
      float* mm = m[piece.array];
      float* vv = v[piece.array];
      const float* gg = grads[piece.array];
      for (int64_t i = piece.begin; i < piece.end; i++) {
        const float g = scaled ? gg[i] * scale : gg[i];
        const float mi = mm[i] * b1 + g * omb1;
        const float vi = vv[i] * b2 + (g * g) * omb2;
        const float update = (mi / c1) / (std::sqrt(vi / c2) + eps);
        mm[i] = mi;
        vv[i] = vi;
        th[i] = th[i] - update * lr;
      }
    }
  });
  return info.Env().Undefined();
}

// sumOfSquares(grads) → Σ over arrays of Σ g² : each array's sum accumulated in double from the
// float32 squares and rounded to float32 (as Sum of Square does), the arrays' sums added in
// float32 in order (as AddN does). Pieces are summed separately and then in order, so the
// result does not depend on the thread count.
Napi::Value SumOfSquares(const Napi::CallbackInfo& info) {
  std::vector<int64_t> sizes;
  std::vector<float*> grads = floatArrays(info[0], &sizes);
  std::vector<Piece> work = pieces(sizes);
  std::vector<double> partial(work.size(), 0.0);
  parallelFor(static_cast<int64_t>(work.size()), 4, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; p++) {
      const float* g = grads[work[p].array];
      double s = 0;
      for (int64_t i = work[p].begin; i < work[p].end; i++) {
        const float sq = g[i] * g[i];
        s += sq;
      }
      partial[p] = s;
    }
  });
  std::vector<double> perArray(grads.size(), 0.0);
  for (size_t p = 0; p < work.size(); p++) perArray[work[p].array] += partial[p];
  float total = 0;
  for (size_t a = 0; a < grads.size(); a++) total = a == 0 ? static_cast<float>(perArray[a]) : total + static_cast<float>(perArray[a]);
  return Napi::Number::New(info.Env(), total);
}

}  // namespace

void InitOptimizer(Napi::Env env, Napi::Object exports) {
  exports.Set("adam", Napi::Function::New(env, Adam));
  exports.Set("sumOfSquares", Napi::Function::New(env, SumOfSquares));
}

}  // namespace captioner
