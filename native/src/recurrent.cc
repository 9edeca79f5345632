// Recurrent cells over a whole sequence, forward and backward (backpropagation through time), in
// one call each: an LSTM (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al.
// 2000) and a GRU (Cho et al. 2014), with the gate order and formulas of model/nn/cells.ts.
//
// The input projections of every step (xw = x·W + b, [batch, steps, G·H]) come in computed, as
// one matrix product by the caller; each step here adds h·U (one GEMM) and applies the gates
// elementwise. The backward pass walks the steps in reverse, carrying dh (and the LSTM's dc),
// and computes dU for all steps as one GEMM at the end. Sequences are [batch, steps, ·]
// row-major: step t of row b is at (b·T + t).
#include "common.h"

namespace captioner {
namespace {

inline float sigmoid(float v) { return 1.0f / (1.0f + std::exp(-v)); }

// Rows per thread for the elementwise part of a step: enough work to be worth a thread.
int64_t rowGrain(int64_t cols) { return std::max<int64_t>(1, 8192 / std::max<int64_t>(1, cols)); }

// Uᵀ [G, H] of the recurrent matrix U [H, G], for the backward pass's dz_t · Uᵀ at every step,
// when those products go to AVX-512 tiles (more rows than fewRowsTimesMatrix takes): they then
// walk Uᵀ by rows, and the transposition is paid once, not once a step. Else empty (the
// products read U as it is).
std::vector<float> transposedRecurrent(const float* U, int64_t B, int64_t H, int64_t G) {
  std::vector<float> ut;
  if (B <= kFewRows || !tilesUseAvx512()) return ut;
  ut.resize(G * H);
  transposeInto(H, G, U, G, ut.data());
  return ut;
}

// The previous state h_{t-1} of every row as one [batch·steps, H] matrix (h0 at t = 0).
std::vector<float> previousStates(const float* hs, const float* h0, int64_t B, int64_t T, int64_t H) {
  std::vector<float> prev(B * T * H);
  for (int64_t b = 0; b < B; b++) {
    std::memcpy(prev.data() + b * T * H, h0 + b * H, H * sizeof(float));
    if (T > 1) std::memcpy(prev.data() + (b * T + 1) * H, hs + b * T * H, (T - 1) * H * sizeof(float));
  }
  return prev;
}

// lstmSequence(xw, h0, c0, recurrent, hs, cs, gates, B, T, H):
//   z_t = xw_t + h_{t-1}·U;  i, f, o = σ(z_i, z_f, z_o);  g = tanh(z_g)
//   c_t = f ⊙ c_{t-1} + i ⊙ g;  h_t = o ⊙ tanh(c_t)
// xw [B, T, 4H], h0 and c0 [B, H], U [H, 4H] → hs and cs [B, T, H], gates [B, T, 4H] (i, f, g, o
// after their nonlinearities, kept for the backward pass).
Napi::Value LstmSequence(const Napi::CallbackInfo& info) {
  const float* xw = f32(info[0]);
  const float* h0 = f32(info[1]);
  const float* c0 = f32(info[2]);
  const float* U = f32(info[3]);
  float* hs = f32(info[4]);
  float* cs = f32(info[5]);
  float* gates = f32(info[6]);
  const int64_t B = num(info[7]), T = num(info[8]), H = num(info[9]), G = 4 * H;
  std::memcpy(gates, xw, B * T * G * sizeof(float));
  for (int64_t t = 0; t < T; t++) {
    const float* hPrev = t == 0 ? h0 : hs + (t - 1) * H;
    rowsTimesMatrix(B, G, H, hPrev, t == 0 ? H : T * H, U, false, 1.0f, gates + t * G, T * G);
    parallelFor(B, rowGrain(H), [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; b++) {
        float* z = gates + (b * T + t) * G;
        const float* cPrev = t == 0 ? c0 + b * H : cs + (b * T + t - 1) * H;
        float* c = cs + (b * T + t) * H;
        float* h = hs + (b * T + t) * H;
        for (int64_t j = 0; j < H; j++) {
          const float i = sigmoid(z[j]), f = sigmoid(z[H + j]), g = tanhOf(z[2 * H + j]), o = sigmoid(z[3 * H + j]);
          z[j] = i;
          z[H + j] = f;
          z[2 * H + j] = g;
          z[3 * H + j] = o;
          c[j] = f * cPrev[j] + i * g;
          h[j] = o * tanhOf(c[j]);
        }
      }
    });
  }
  return info.Env().Undefined();
}

// lstmSequenceGrad(dhs, dcs, gates, cs, hs, h0, c0, recurrent, dxw, dh0, dc0, dU, B, T, H): the
// gradients of lstmSequence's inputs from those of its outputs hs and cs (dhs, dcs [B, T, H]).
// dxw [B, T, 4H] is the gradient of the gate pre-activations (and so of xw); dh0, dc0 [B, H];
// dU [H, 4H] = Σ_t h_{t-1}ᵀ·dz_t. Outputs arrive zeroed.
Napi::Value LstmSequenceGrad(const Napi::CallbackInfo& info) {
  const float* dhs = f32(info[0]);
  const float* dcs = f32(info[1]);
  const float* gates = f32(info[2]);
  const float* cs = f32(info[3]);
  const float* hs = f32(info[4]);
  const float* h0 = f32(info[5]);
  const float* c0 = f32(info[6]);
  const float* U = f32(info[7]);
  float* dxw = f32(info[8]);
  float* dh = f32(info[9]);  // dh0: the carry dL/dh_{t-1} while walking back
  float* dc = f32(info[10]);  // dc0: likewise dL/dc_{t-1}
  float* dU = f32(info[11]);
  const int64_t B = num(info[12]), T = num(info[13]), H = num(info[14]), G = 4 * H;
  const std::vector<float> Ut = transposedRecurrent(U, B, H, G);
  for (int64_t t = T - 1; t >= 0; t--) {
    parallelFor(B, rowGrain(H), [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; b++) {
        const int64_t row = b * T + t;
        const float* z = gates + row * G;
        const float* c = cs + row * H;
        const float* cPrev = t == 0 ? c0 + b * H : cs + (row - 1) * H;
        float* dz = dxw + row * G;
        for (int64_t j = 0; j < H; j++) {
          const float i = z[j], f = z[H + j], g = z[2 * H + j], o = z[3 * H + j];
          const float tc = tanhOf(c[j]);
          const float dht = dhs[row * H + j] + dh[b * H + j];
          const float dct = dht * o * (1.0f - tc * tc) + dcs[row * H + j] + dc[b * H + j];
          dz[j] = dct * g * (i * (1.0f - i));
          dz[H + j] = dct * cPrev[j] * (f * (1.0f - f));
          dz[2 * H + j] = dct * i * (1.0f - g * g);
          dz[3 * H + j] = dht * tc * (o * (1.0f - o));
          dc[b * H + j] = dct * f;
        }
      }
    });
    // dL/dh_{t-1} = dz_t · Uᵀ
    if (Ut.empty()) rowsTimesMatrix(B, H, G, dxw + t * G, T * G, U, true, 0.0f, dh, H);
    else rowsTimesMatrix(B, H, G, dxw + t * G, T * G, Ut.data(), false, 0.0f, dh, H);
  }
  std::vector<float> prev = previousStates(hs, h0, B, T, H);
  gemm(true, false, H, G, B * T, 1.0f, prev.data(), H, dxw, G, 0.0f, dU, G);
  return info.Env().Undefined();
}

// gruSequence(xw, h0, recurrent, hs, gates, hn, B, T, H), as model/nn/cells.ts's gruStep:
//   hu = h_{t-1}·U;  z = σ(xw_z + hu_z);  r = σ(xw_r + hu_r);  n = tanh(xw_n + r ⊙ hu_n)
//   h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}
// xw [B, T, 3H] (the bias is in it), h0 [B, H], U [H, 3H] → hs [B, T, H], gates [B, T, 3H]
// (z, r, n) and hn [B, T, H] (hu_n), kept for the backward pass.
Napi::Value GruSequence(const Napi::CallbackInfo& info) {
  const float* xw = f32(info[0]);
  const float* h0 = f32(info[1]);
  const float* U = f32(info[2]);
  float* hs = f32(info[3]);
  float* gates = f32(info[4]);
  float* hn = f32(info[5]);
  const int64_t B = num(info[6]), T = num(info[7]), H = num(info[8]), G = 3 * H;
  std::vector<float> hu(B * G);
  for (int64_t t = 0; t < T; t++) {
    const float* hPrevAll = t == 0 ? h0 : hs + (t - 1) * H;
    const int64_t ldh = t == 0 ? H : T * H;
    rowsTimesMatrix(B, G, H, hPrevAll, ldh, U, false, 0.0f, hu.data(), G);
    parallelFor(B, rowGrain(H), [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; b++) {
        const int64_t row = b * T + t;
        const float* x = xw + row * G;
        const float* u = hu.data() + b * G;
        const float* hPrev = hPrevAll + b * ldh;
        float* gz = gates + row * G;
        for (int64_t j = 0; j < H; j++) {
          const float z = sigmoid(x[j] + u[j]), r = sigmoid(x[H + j] + u[H + j]);
          const float n = tanhOf(x[2 * H + j] + r * u[2 * H + j]);
          gz[j] = z;
          gz[H + j] = r;
          gz[2 * H + j] = n;
          hn[row * H + j] = u[2 * H + j];
          hs[row * H + j] = (1.0f - z) * n + z * hPrev[j];
        }
      }
    });
  }
  return info.Env().Undefined();
}

// gruSequenceGrad(dhs, gates, hn, hs, h0, recurrent, dxw, dh0, dU, B, T, H): the gradients of
// gruSequence's inputs from that of its output hs. dxw [B, T, 3H]; dh0 [B, H]; dU [H, 3H].
// Outputs arrive zeroed.
Napi::Value GruSequenceGrad(const Napi::CallbackInfo& info) {
  const float* dhs = f32(info[0]);
  const float* gates = f32(info[1]);
  const float* hn = f32(info[2]);
  const float* hs = f32(info[3]);
  const float* h0 = f32(info[4]);
  const float* U = f32(info[5]);
  float* dxw = f32(info[6]);
  float* dh = f32(info[7]);  // dh0: the carry dL/dh_{t-1} while walking back
  float* dU = f32(info[8]);
  const int64_t B = num(info[9]), T = num(info[10]), H = num(info[11]), G = 3 * H;
  const std::vector<float> Ut = transposedRecurrent(U, B, H, G);
  std::vector<float> dhu(B * T * G);  // the gradient of h_{t-1}·U, per step
  std::vector<float> next(B * H);
  for (int64_t t = T - 1; t >= 0; t--) {
    parallelFor(B, rowGrain(H), [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; b++) {
        const int64_t row = b * T + t;
        const float* g = gates + row * G;
        const float* hPrev = t == 0 ? h0 + b * H : hs + (row - 1) * H;
        float* dx = dxw + row * G;
        float* du = dhu.data() + row * G;
        for (int64_t j = 0; j < H; j++) {
          const float z = g[j], r = g[H + j], n = g[2 * H + j];
          const float dht = dhs[row * H + j] + dh[b * H + j];
          const float dn = dht * (1.0f - z) * (1.0f - n * n);
          const float dz = dht * (hPrev[j] - n) * (z * (1.0f - z));
          const float dr = dn * hn[row * H + j] * (r * (1.0f - r));
          dx[j] = du[j] = dz;
          dx[H + j] = du[H + j] = dr;
          dx[2 * H + j] = dn;
          du[2 * H + j] = dn * r;
          next[b * H + j] = dht * z;
        }
      }
    });
    // dL/dh_{t-1} = dht ⊙ z + dhu_t · Uᵀ
    if (Ut.empty()) rowsTimesMatrix(B, H, G, dhu.data() + t * G, T * G, U, true, 1.0f, next.data(), H);
    else rowsTimesMatrix(B, H, G, dhu.data() + t * G, T * G, Ut.data(), false, 1.0f, next.data(), H);
    std::memcpy(dh, next.data(), B * H * sizeof(float));
  }
  std::vector<float> prev = previousStates(hs, h0, B, T, H);
  gemm(true, false, H, G, B * T, 1.0f, prev.data(), H, dhu.data(), G, 0.0f, dU, G);
  return info.Env().Undefined();
}

}  // namespace

void InitRecurrent(Napi::Env env, Napi::Object exports) {
  exports.Set("lstmSequence", Napi::Function::New(env, LstmSequence));
  exports.Set("lstmSequenceGrad", Napi::Function::New(env, LstmSequenceGrad));
  exports.Set("gruSequence", Napi::Function::New(env, GruSequence));
  exports.Set("gruSequenceGrad", Napi::Function::New(env, GruSequenceGrad));
}

}  // namespace captioner
