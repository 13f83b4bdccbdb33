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
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

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
inline float hqq_shrink(float x, float inv_beta, float lp_norm) {
  const float ax = std::fabs(x);
  float v = lp_norm == 1.0f ? ax - inv_beta : ax - inv_beta * std::pow(ax, lp_norm - 1.0f);
  v = v > 0.0f ? v : 0.0f;
  return x > 0.0f ? v : x < 0.0f ? -v : 0.0f;
}

// w: groups x len float32 values (row-major, group g at w + g * len).
// codes: groups x len in [0, 2^nbits - 1]; scale, zero: one per group.
// Returns the number of solver rounds run.
inline int hqq_quantize(const float* w, int64_t groups, int64_t len, int nbits, const HqqOptions& opt, uint8_t* codes,
                        float* scale, float* zero, int nthreads) {
  const float qmax = float((1 << nbits) - 1);
  std::vector<float> s(static_cast<size_t>(groups)), z(static_cast<size_t>(groups));
#pragma omp parallel for num_threads(nthreads) schedule(static)
  for (int64_t g = 0; g < groups; ++g) {
    const float* x = w + g * len;
    float mn = x[0], mx = x[0];
    for (int64_t i = 1; i < len; ++i) mn = std::min(mn, x[i]), mx = std::max(mx, x[i]);
    // (max_v / (max - min)).clamp(max=2e4), which torch evaluates as
    // reciprocal(max - min) * max_v; a constant group gives inf, clamped.
    float sg = (1.0f / (mx - mn)) * qmax;
    sg = std::isnan(sg) ? sg : std::min(sg, 2e4f);
    float zg = -mn * sg;
    if (nbits == 4) zg = std::nearbyint(zg);
    s[g] = sg, z[g] = zg;
  }
  auto code = [&](float x, float sg, float zg) {
    const float t = x * sg;
    return std::min(std::max(std::nearbyint(t + zg), 0.0f), qmax);
  };
  int rounds = 0;
  double beta = opt.beta, best = 1e4;
  for (int it = 0; it < opt.iters; ++it) {
    const float inv_beta = float(1.0 / beta);
    double err = 0.0;
#pragma omp parallel for num_threads(nthreads) schedule(static) reduction(+ : err)
    for (int64_t g = 0; g < groups; ++g) {
      const float* x = w + g * len;
      const float sg = s[g], zg = z[g];
      double acc = 0.0, e_abs = 0.0;
      for (int64_t i = 0; i < len; ++i) {
        const float q = code(x[i], sg, zg);
        const float r = (q - zg) / sg;
        const float e = hqq_shrink(x[i] - r, inv_beta, opt.lp_norm);
        acc += double(q - (x[i] - e) * sg);
        e_abs += double(std::fabs(x[i] - r));
      }
      z[g] = float(acc / double(len));
      err += e_abs;
    }
    ++rounds;
    beta *= opt.kappa;
    const double mean_err = err / double(groups * len);
    if (opt.early_stop) {
      if (mean_err < best)
        best = mean_err;
      else
        break;
    }
  }
  const float mid = (qmax + 1.0f) / 2.0f;
#pragma omp parallel for num_threads(nthreads) schedule(static)
  for (int64_t g = 0; g < groups; ++g) {
    const float* x = w + g * len;
    for (int64_t i = 0; i < len; ++i) codes[g * len + i] = uint8_t(code(x[i], s[g], z[g]));
    scale[g] = 1.0f / s[g];
    zero[g] = (mid - z[g]) * scale[g];
  }
  return rounds;
}

}  // namespace kernels
}  // namespace torchao_cpp
