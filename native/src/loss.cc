// The sequence loss of model/train/loss.ts (maskedSequenceLoss) and its gradient, one pass over
// the logits each: softmax cross-entropy at every position, a target of (1 − α)·one-hot + α/V
// (label smoothing, Szegedy et al. 2016), positions whose target is the pad id masked out. And
// the softmax and log-softmax of rows (attention weights; a decoding step's log-probabilities).
#include "common.h"

namespace captioner {
namespace {

// Each row's log Σ exp(z), from its largest value: the softmax's normaliser.
inline double logSumExp(const float* z, int64_t V) {
  float max = -INFINITY;
  for (int64_t j = 0; j < V; j++) max = std::max(max, z[j]);
  double s = 0;
  for (int64_t j = 0; j < V; j++) s += std::exp(static_cast<double>(z[j]) - max);
  return max + std::log(s);
}

// softmaxCrossEntropy(logits [R, V], targets int32 [R], V, pad, smoothing, scale)
//   → −scale · Σ_r [target_r ≠ pad] · Σ_j t_rj · log softmax(z_r)_j
// with t_r = (1 − α)·onehot(target_r) + α/V. Accumulated in double.
Napi::Value SoftmaxCrossEntropy(const Napi::CallbackInfo& info) {
  auto logitsArray = info[0].As<Napi::Float32Array>();
  const float* logits = logitsArray.Data();
  const int32_t* targets = i32(info[1]);
  const int64_t V = num(info[2]), pad = num(info[3]);
  const double alpha = info[4].As<Napi::Number>().DoubleValue(), scale = info[5].As<Napi::Number>().DoubleValue();
  const int64_t R = static_cast<int64_t>(logitsArray.ElementLength()) / V;
  std::vector<double> rowLoss(R, 0.0);
  parallelFor(R, std::max<int64_t>(1, (1 << 15) / V), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      if (targets[r] == pad) continue;
      const float* z = logits + r * V;
      const double lse = logSumExp(z, V);
      double picked = (1.0 - alpha) * (z[targets[r]] - lse);
      if (alpha > 0) {
        double all = 0;
        for (int64_t j = 0; j < V; j++) all += z[j] - lse;
        picked += alpha / V * all;
      }
      rowLoss[r] = picked;
    }
  });
  double total = 0;
  for (double l : rowLoss) total += l;
  return Napi::Number::New(info.Env(), -scale * total);
}

// softmaxCrossEntropyGrad(logits, targets, dlogits, V, pad, smoothing, scale): the gradient of
// the loss above with respect to the logits, for a loss scaled by `scale` (the caller folds
// the upstream gradient in): dz_rj = scale · [target_r ≠ pad] · (softmax(z_r)_j − t_rj), since
// Σ_j t_rj = 1. dlogits arrives zeroed.
Napi::Value SoftmaxCrossEntropyGrad(const Napi::CallbackInfo& info) {
  auto logitsArray = info[0].As<Napi::Float32Array>();
  const float* logits = logitsArray.Data();
  const int32_t* targets = i32(info[1]);
  float* dz = f32(info[2]);
  const int64_t V = num(info[3]), pad = num(info[4]);
  const double alpha = info[5].As<Napi::Number>().DoubleValue(), scale = info[6].As<Napi::Number>().DoubleValue();
  const int64_t R = static_cast<int64_t>(logitsArray.ElementLength()) / V;
  parallelFor(R, std::max<int64_t>(1, (1 << 15) / V), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      if (targets[r] == pad) continue;
      const float* z = logits + r * V;
      float* d = dz + r * V;
      const double lse = logSumExp(z, V);
      const double uniform = alpha / V;
      for (int64_t j = 0; j < V; j++) d[j] = static_cast<float>(scale * (std::exp(z[j] - lse) - uniform));
      d[targets[r]] = static_cast<float>(scale * (std::exp(z[targets[r]] - lse) - uniform - (1.0 - alpha)));
    }
  });
  return info.Env().Undefined();
}

// softmaxRows(x, out, V, log): over each row of V values, as the CPU backend's Softmax kernel
// and tfjs-core's logSoftmax compute them, rounding where they round: a = x − max (float),
// e = exp(a) (float), s = Σ e (in double, rounded to float); then softmax e / s or log-softmax
// a − log(s), each computed in double and rounded to float as JavaScript does.
Napi::Value SoftmaxRows(const Napi::CallbackInfo& info) {
  auto xArray = info[0].As<Napi::Float32Array>();
  const float* x = xArray.Data();
  float* out = f32(info[1]);
  const int64_t V = num(info[2]);
  const bool log = info[3].As<Napi::Boolean>();
  const int64_t R = static_cast<int64_t>(xArray.ElementLength()) / V;
  parallelFor(R, std::max<int64_t>(1, (1 << 15) / V), [&](int64_t r0, int64_t r1) {
    std::vector<float> e(V);
    for (int64_t r = r0; r < r1; r++) {
      const float* z = x + r * V;
      float* y = out + r * V;
      float max = -INFINITY;
      for (int64_t j = 0; j < V; j++) max = std::max(max, z[j]);
      double sum = 0;
      for (int64_t j = 0; j < V; j++) {
        e[j] = static_cast<float>(std::exp(static_cast<double>(z[j] - max)));
        sum += e[j];
      }
      const float s = static_cast<float>(sum);
      if (log) {
        const double l = static_cast<float>(std::log(static_cast<double>(s)));
        for (int64_t j = 0; j < V; j++) y[j] = static_cast<float>(static_cast<double>(z[j] - max) - l);
      } else {
        for (int64_t j = 0; j < V; j++) y[j] = static_cast<float>(static_cast<double>(e[j]) / s);
      }
    }
  });
  return info.Env().Undefined();
}

}  // namespace

void InitLoss(Napi::Env env, Napi::Object exports) {
  exports.Set("softmaxCrossEntropy", Napi::Function::New(env, SoftmaxCrossEntropy));
  exports.Set("softmaxCrossEntropyGrad", Napi::Function::New(env, SoftmaxCrossEntropyGrad));
  exports.Set("softmaxRows", Napi::Function::New(env, SoftmaxRows));
}

}  // namespace captioner
