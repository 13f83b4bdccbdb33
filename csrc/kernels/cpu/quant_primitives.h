// Torch-free affine quantization primitives: choose_qparams / quantize /
// dequantize over arbitrary block sizes, plus their float8 variants.
//
// Each formula mirrors torchao 0.11's eager implementation op by op; the
// round_to<T>() calls mark where PyTorch materialises a low-precision tensor,
// which is what makes the results bit-identical to torchao's.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "numeric.h"

namespace torchao_cpp {
namespace kernels {

enum class MappingType { Symmetric, SymmetricNoClippingErr, Asymmetric };
enum class ZeroPointDomain { Int, Float, None };

// A contiguous N-d tensor cut into blocks of `block` elements per dimension
// (block[i] divides sizes[i]); blocks are numbered row-major.
struct BlockGeometry {
  std::vector<int64_t> sizes;
  std::vector<int64_t> block;

  int64_t numel() const {
    int64_t n = 1;
    for (auto s : sizes) n *= s;
    return n;
  }
  int64_t num_blocks() const {
    int64_t n = 1;
    for (size_t i = 0; i < sizes.size(); ++i) n *= sizes[i] / block[i];
    return n;
  }
  // True when no block spans more than one innermost row, so rows can be
  // processed independently.
  bool blocks_within_rows() const {
    for (size_t i = 0; i + 1 < sizes.size(); ++i)
      if (block[i] != 1) return false;
    return true;
  }
};

// Calls fn(offset, length, block_index) for every run of consecutive elements
// of one innermost row that lie in the same block. Rows are independent calls,
// distributed over `nthreads` when `parallel` is set.
template <class Fn>
void for_each_run(const BlockGeometry& g, bool parallel, int nthreads, Fn&& fn) {
  const int nd = int(g.sizes.size());
  if (g.numel() == 0) return;
  if (nd == 0) {
    fn(int64_t(0), int64_t(1), int64_t(0));
    return;
  }
  const int64_t inner = g.sizes[nd - 1];
  const int64_t inner_block = g.block[nd - 1];
  const int64_t rows = g.numel() / inner;
  std::vector<int64_t> nblocks(nd), bstride(nd);
  for (int i = 0; i < nd; ++i) nblocks[i] = g.sizes[i] / g.block[i];
  int64_t st = 1;
  for (int i = nd - 1; i >= 0; --i) {
    bstride[i] = st;
    st *= nblocks[i];
  }
  auto row_fn = [&](int64_t r) {
    int64_t rem = r, base = 0;
    for (int i = nd - 2; i >= 0; --i) {
      const int64_t idx = rem % g.sizes[i];
      rem /= g.sizes[i];
      base += (idx / g.block[i]) * bstride[i];
    }
    for (int64_t c = 0; c < inner; c += inner_block)
      fn(r * inner + c, inner_block, base + c / inner_block);
  };
  if (parallel && nthreads > 1 && rows > 1) {
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t r = 0; r < rows; ++r) row_fn(r);
  } else {
    for (int64_t r = 0; r < rows; ++r) row_fn(r);
  }
}

struct QParamsSpec {
  MappingType mapping = MappingType::Asymmetric;
  ZeroPointDomain domain = ZeroPointDomain::Int;
  bool preserve_zero = true;
  int64_t quant_min = 0;
  int64_t quant_max = 255;
  float eps = std::numeric_limits<float>::epsilon();
};

// Scale and zero point of one block from its min and max, computed in the
// input's precision T as torchao does, then stored as TS / TZ.
template <class T, class TS, class TZ>
TAO_HD inline void qparams_from_minmax(float mn, float mx, const QParamsSpec& s, TS* scale, TZ* zp) {
  const float qmin = float(s.quant_min), qmax = float(s.quant_max);
  float lo = mn, hi = mx;
  if (s.preserve_zero) {
    lo = std::min(lo, 0.0f);
    hi = std::max(hi, 0.0f);
  }
  float sc, z = 0.0f;
  if (s.mapping != MappingType::Asymmetric) {
    if (s.mapping == MappingType::Symmetric) {
      sc = round_to<T>(std::max(-lo, hi) / ((qmax - qmin) / 2.0f));
    } else {
      const float smin = round_to<T>(lo / qmin), smax = round_to<T>(hi / qmax);
      sc = smin > smax ? smin : smax;
    }
    z = float(int64_t((s.quant_max + s.quant_min + 1) / 2.0));
    sc = round_to<T>(std::max(sc, s.eps));
  } else {
    sc = round_to<T>(round_to<T>(hi - lo) / (qmax - qmin));
    sc = round_to<T>(std::max(sc, s.eps));
    if (s.domain == ZeroPointDomain::None) {
      z = 0.0f;
    } else if (s.preserve_zero) {
      z = round_to<T>(qmin - std::nearbyint(round_to<T>(lo / sc)));
      z = std::min(std::max(z, qmin), qmax);
    } else {
      const float mid = (qmax + qmin + 1.0f) / 2.0f;
      z = round_to<T>(lo + round_to<T>(sc * mid));
    }
  }
  *scale = from_float<TS>(sc);
  if (zp) *zp = from_float<TZ>(z);
}

// Per-block min and max. Returns -1, or the index of the first block holding
// NaN or Inf (whose min/max are then meaningless).
template <class T>
int64_t block_minmax(const T* in, const BlockGeometry& g, std::vector<float>& mn, std::vector<float>& mx, int nthreads) {
  const int64_t nb = g.num_blocks();
  mn.assign(nb, std::numeric_limits<float>::infinity());
  mx.assign(nb, -std::numeric_limits<float>::infinity());
  std::vector<uint8_t> bad(nb, 0);
  for_each_run(g, g.blocks_within_rows(), nthreads, [&](int64_t off, int64_t len, int64_t b) {
    float lo = mn[b], hi = mx[b];
    bool nan = false;
    for (int64_t i = 0; i < len; ++i) {
      const float v = to_float(in[off + i]);
      nan |= std::isnan(v);
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    mn[b] = lo;
    mx[b] = hi;
    if (nan || std::isinf(lo) || std::isinf(hi)) bad[b] = 1;
  });
  for (int64_t b = 0; b < nb; ++b)
    if (bad[b]) return b;
  return -1;
}

// Returns -1, or the index of the first block whose min or max is not finite
// (scales are then left unset: the caller reports the error).
template <class T, class TS, class TZ>
int64_t choose_qparams_affine(const T* in, const BlockGeometry& g, const QParamsSpec& spec, TS* scale, TZ* zp,
                              int nthreads) {
  std::vector<float> mn, mx;
  const int64_t bad = block_minmax(in, g, mn, mx, nthreads);
  if (bad >= 0) return bad;
  for (size_t b = 0; b < mn.size(); ++b) qparams_from_minmax<T>(mn[b], mx[b], spec, scale + b, zp ? zp + b : nullptr);
  return -1;
}

// float8 scales as torchao computes them: max|x| times the reciprocal of the
// format's max (r), in the input's precision; clamped to eps so that an
// all-zero block gets a usable scale.
template <class T, class TS>
TAO_HD inline TS float8_scale_from_minmax(float mn, float mx, float r, float eps) {
  const float amax = std::max(-mn, mx);
  return from_float<TS>(round_to<T>(std::max(round_to<T>(amax * r), eps)));
}

template <class T, class TS>
int64_t choose_qparams_float8(const T* in, const BlockGeometry& g, float fmax, float eps, TS* scale, int nthreads) {
  std::vector<float> mn, mx;
  const int64_t bad = block_minmax(in, g, mn, mx, nthreads);
  if (bad >= 0) return bad;
  for (size_t b = 0; b < mn.size(); ++b) scale[b] = float8_scale_from_minmax<T, TS>(mn[b], mx[b], 1.0f / fmax, eps);
  return -1;
}

// Per-block constants of quantize_affine, precomputed once per block.
struct QuantBlock {
  float recip;   // 1/scale in the scale's precision (INT, NONE)
  float scale;   // FLOAT domain divides instead
  float offset;  // INT: zero point; FLOAT: the block's min value
};

// Code of x in the INT / NONE domains, computed in C as torchao does: the one
// definition shared by quantize_affine and the fused activation quantizers.
template <class C>
TAO_HD inline float quantize_int_code(float x, float recip, float offset, float qmin, float qmax) {
  if (std::isnan(x)) x = 0.0f;
  return std::min(std::max(std::nearbyint(round_to<C>(x * recip)) + offset, qmin), qmax);
}

// A block's constants for quantize_affine from its scale s (a TS value) and
// zero point z. exact_f32: a FLOAT-domain zero point whose dtype is not TS, so
// PyTorch promotes that arithmetic to float32.
template <class TS>
TAO_HD inline QuantBlock quant_block(float s, float z, ZeroPointDomain domain, float mid, bool exact_f32) {
  QuantBlock q;
  q.scale = s;
  q.recip = round_to<TS>(1.0f / s);
  // A reciprocal that overflows TS (a float16 scale below 1/65504, as eps gives a zero row) stays in
  // float32: torchao's x * inf would saturate every nonzero code and cast 0 * inf = NaN to a code.
  if (std::isinf(q.recip)) q.recip = 1.0f / s;
  if (exact_f32)
    q.offset = z - s * mid;
  else if (domain == ZeroPointDomain::Float)
    q.offset = round_to<TS>(z - round_to<TS>(s * mid));
  else
    q.offset = z;
  return q;
}

// Code of x (NaN quantizes as 0), computed in C = promote(T, TS).
template <class C>
TAO_HD inline float quantize_code(float x, const QuantBlock& q, ZeroPointDomain domain, bool exact_f32, float qmin,
                                  float qmax) {
  if (domain != ZeroPointDomain::Float) return quantize_int_code<C>(x, q.recip, q.offset, qmin, qmax);
  if (std::isnan(x)) x = 0.0f;
  const float v = exact_f32 ? std::nearbyint((x - q.offset) / q.scale)
                            : std::nearbyint(round_to<C>(round_to<C>(x - q.offset) / q.scale));
  return std::min(std::max(v, qmin), qmax);
}

// Float value of code c in TO's precision; z: INT-domain zero points already
// through int32, FLOAT-domain ones as float; has_zp false for none.
template <class TO>
TAO_HD inline float dequantize_value(float c, float s, float z, bool has_zp, ZeroPointDomain domain, float mid) {
  if (domain == ZeroPointDomain::Float) {
    const float v = round_to<TO>(round_to<TO>(c - mid) * s);
    return has_zp ? round_to<TO>(v + z) : v;
  }
  if (domain == ZeroPointDomain::Int) return round_to<TO>(round_to<TO>(c - z) * s);
  return round_to<TO>(round_to<TO>(c) * s);
}

// float8 code of x given r = 1/scale in the scale's precision; C = promote(T, TS).
template <Float8Format F, class C>
TAO_HD inline uint8_t quantize_float8_value(float x, float r) {
  const float mx = Float8Traits<F>::kMax;
  float v = round_to<C>(x * r);
  if (!std::isnan(v)) v = std::min(std::max(v, -mx), mx);
  return float_to_float8<F>(v);
}

template <Float8Format F, class TO>
TAO_HD inline float dequantize_float8_value(uint8_t c, float s) {
  return round_to<TO>(round_to<TO>(float8_to_float<F>(c)) * s);
}

// Codes for `in` given per-block scale/zero point. NaN inputs quantize as 0.
// zp holds zero points as float (nullptr for domain None). For the FLOAT
// domain, `zp_is_scale_dtype` says whether the zero point tensor had the
// scale's dtype TS; otherwise PyTorch promotes that arithmetic to float32.
template <class T, class TS, class TQ>
void quantize_affine(const T* in, const BlockGeometry& g, const TS* scale, const float* zp,
                     ZeroPointDomain domain, int64_t quant_min, int64_t quant_max, TQ* out, int nthreads,
                     bool zp_is_scale_dtype = true) {
  using C = promote_t<T, TS>;
  const bool exact_f32 = domain == ZeroPointDomain::Float && !zp_is_scale_dtype;
  const int64_t nb = g.num_blocks();
  std::vector<QuantBlock> qb(nb);
  const float mid = (float(quant_max) + float(quant_min) + 1.0f) / 2.0f;
  for (int64_t b = 0; b < nb; ++b)
    qb[b] = quant_block<TS>(to_float(scale[b]), zp ? zp[b] : 0.0f, domain, mid, exact_f32);
  const float qmin = float(quant_min), qmax = float(quant_max);
  for_each_run(g, true, nthreads, [&](int64_t off, int64_t len, int64_t b) {
    const QuantBlock q = qb[b];
    for (int64_t i = off; i < off + len; ++i)
      out[i] = static_cast<TQ>(quantize_code<C>(to_float(in[i]), q, domain, exact_f32, qmin, qmax));
  });
}

// Float values for codes. zp: INT domain zero points already converted to
// int32 then float (torchao's `zero_point.to(torch.int32)`), FLOAT domain zero
// points as float, nullptr for none.
template <class TQ, class TS, class TO>
void dequantize_affine(const TQ* in, const BlockGeometry& g, const TS* scale, const float* zp,
                       ZeroPointDomain domain, int64_t quant_min, int64_t quant_max, TO* out, int nthreads) {
  const float mid = (float(quant_max) + float(quant_min) + 1.0f) / 2.0f;
  for_each_run(g, true, nthreads, [&](int64_t off, int64_t len, int64_t b) {
    const float s = to_float(scale[b]);
    const float z = zp ? zp[b] : 0.0f;
    for (int64_t i = off; i < off + len; ++i)
      out[i] = from_float<TO>(dequantize_value<TO>(float(in[i]), s, z, zp != nullptr, domain, mid));
  });
}

// float8 codes: clamp(x * (1/scale)) to the format's range, then round.
// NaN stays NaN; infinities saturate.
template <Float8Format F, class T, class TS>
void quantize_affine_float8(const T* in, const BlockGeometry& g, const TS* scale, uint8_t* out, int nthreads) {
  using C = promote_t<T, TS>;
  for_each_run(g, true, nthreads, [&](int64_t off, int64_t len, int64_t b) {
    const float r = round_to<TS>(1.0f / to_float(scale[b]));
    for (int64_t i = off; i < off + len; ++i) out[i] = quantize_float8_value<F, C>(to_float(in[i]), r);
  });
}

template <Float8Format F, class TS, class TO>
void dequantize_affine_float8(const uint8_t* in, const BlockGeometry& g, const TS* scale, TO* out, int nthreads) {
  for_each_run(g, true, nthreads, [&](int64_t off, int64_t len, int64_t b) {
    const float s = to_float(scale[b]);
    for (int64_t i = off; i < off + len; ++i) out[i] = from_float<TO>(dequantize_float8_value<F, TO>(in[i], s));
  });
}

}  // namespace kernels
}  // namespace torchao_cpp
