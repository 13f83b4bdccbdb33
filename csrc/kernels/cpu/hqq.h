// Torch-free HQQ (half-quadratic quantization): torchao's
// choose_qparams_and_quantize_affine_hqq with its default proximal solver
// (optimize_weights_proximal_legacy), for groups of consecutive values.
//
// Per group: min/max scale and zero point, then up to `iters` rounds of
//   q = clamp(round(w * s + z), 0, qmax);  r = (q - z) / s
//   e = shrink_p(w - r, beta);             z = mean(q - (w - e) * s);  beta *= kappa
// stopping (as torchao, for all groups at once) the first time the mean
// |w - r| over the whole tensor does not improve. The scale stays the min/max
// one; only the zero point moves. Outputs the codes of the final (s, z) and
// the affine (FLOAT-domain) parameters torchao stores: scale = 1 / s and
// zero = (mid - z) * scale, mid = (qmax + 1) / 2.
//
// The per-group steps are compiled for host and device: the CUDA solver
// (kernels/cuda/quant_primitives.cu) runs them one thread per group, in the
// same order, so both backends give the same groups the same values.
#pragma once

#include <math.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "numeric.h"

namespace torchao_cpp {
namespace kernels {

struct HqqOptions {
  float lp_norm = 0.7f;
  double beta = 10.0;  // Python floats in torchao: kept in double, as beta *= kappa compounds
  double kappa = 1.01;
  int iters = 20;
  bool early_stop = true;
};

// torchao's _shrink_lp_op: sign(x) * relu(|x| - |x|^(p-1) / beta) (p = 1: relu(|x| - 1 / beta)).
TAO_HD inline float hqq_shrink(float x, float inv_beta, float lp_norm) {
  const float ax = fabsf(x);
  float v = lp_norm == 1.0f ? ax - inv_beta : ax - inv_beta * powf(ax, lp_norm - 1.0f);
  v = v > 0.0f ? v : 0.0f;
  return x > 0.0f ? v : x < 0.0f ? -v : 0.0f;
}

TAO_HD inline float hqq_code(float x, float sg, float zg, float qmax) {
  const float t = x * sg;
  return std::min(std::max(std::nearbyint(t + zg), 0.0f), qmax);
}

// The min/max start of group x: s = (max_v / (max - min)).clamp(max=2e4),
// which torch evaluates as reciprocal(max - min) * max_v (a constant group
// gives inf, clamped), z = -min * s (rounded for 4 bits).
TAO_HD inline void hqq_group_init(const float* x, int64_t len, int nbits, float* s, float* z) {
  const float qmax = float((1 << nbits) - 1);
  float mn = x[0], mx = x[0];
  for (int64_t i = 1; i < len; ++i) mn = std::min(mn, x[i]), mx = std::max(mx, x[i]);
  float sg = (1.0f / (mx - mn)) * qmax;
  sg = sg != sg ? sg : std::min(sg, 2e4f);
  float zg = -mn * sg;
  if (nbits == 4) zg = std::nearbyint(zg);
  *s = sg, *z = zg;
}

// One solver round of group x: moves *z and returns sum |x - r| over the group.
TAO_HD inline double hqq_group_round(const float* x, int64_t len, float sg, float* z, float inv_beta, float lp_norm,
                                     float qmax) {
  const float zg = *z;
  double acc = 0.0, e_abs = 0.0;
  for (int64_t i = 0; i < len; ++i) {
    const float q = hqq_code(x[i], sg, zg, qmax);
    const float r = (q - zg) / sg;
    const float e = hqq_shrink(x[i] - r, inv_beta, lp_norm);
    acc += double(q - (x[i] - e) * sg);
    e_abs += double(fabsf(x[i] - r));
  }
  *z = float(acc / double(len));
  return e_abs;
}

// The final codes of group x and torchao's stored (FLOAT-domain) scale and zero.
TAO_HD inline void hqq_group_finish(const float* x, int64_t len, float sg, float zg, float qmax, uint8_t* codes,
                                    float* scale, float* zero) {
  for (int64_t i = 0; i < len; ++i) codes[i] = uint8_t(hqq_code(x[i], sg, zg, qmax));
  const float mid = (qmax + 1.0f) / 2.0f;
  *scale = 1.0f / sg;
  *zero = (mid - zg) * *scale;
}

// Early stop as torchao: after a round whose mean |w - r| does not improve.
// Returns true when the solver goes on; updates best and beta.
inline bool hqq_continue(double err_sum, int64_t numel, const HqqOptions& opt, double* best, double* beta) {
  *beta *= opt.kappa;
  const double mean_err = err_sum / double(numel);
  if (!opt.early_stop) return true;
  if (mean_err < *best) {
    *best = mean_err;
    return true;
  }
  return false;
}

// w: groups x len float32 values (row-major, group g at w + g * len).
// codes: groups x len in [0, 2^nbits - 1]; scale, zero: one per group.
// Returns the number of solver rounds run.
inline int hqq_quantize(const float* w, int64_t groups, int64_t len, int nbits, const HqqOptions& opt, uint8_t* codes,
                        float* scale, float* zero, int nthreads) {
  const float qmax = float((1 << nbits) - 1);
  std::vector<float> s(static_cast<size_t>(groups)), z(static_cast<size_t>(groups));
#pragma omp parallel for num_threads(nthreads) schedule(static)
  for (int64_t g = 0; g < groups; ++g) hqq_group_init(w + g * len, len, nbits, &s[g], &z[g]);
  int rounds = 0;
  double beta = opt.beta, best = 1e4;
  for (int it = 0; it < opt.iters; ++it) {
    const float inv_beta = float(1.0 / beta);
    double err = 0.0;
#pragma omp parallel for num_threads(nthreads) schedule(static) reduction(+ : err)
    for (int64_t g = 0; g < groups; ++g)
      err += hqq_group_round(w + g * len, len, s[g], &z[g], inv_beta, opt.lp_norm, qmax);
    ++rounds;
    if (!hqq_continue(err, groups * len, opt, &best, &beta)) break;
  }
#pragma omp parallel for num_threads(nthreads) schedule(static)
  for (int64_t g = 0; g < groups; ++g)
    hqq_group_finish(w + g * len, len, s[g], z[g], qmax, codes + g * len, scale + g, zero + g);
  return rounds;
}

}  // namespace kernels
}  // namespace torchao_cpp
