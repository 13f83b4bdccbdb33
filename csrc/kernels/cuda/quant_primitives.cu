// CUDA affine quant primitives over contiguous blocks. Every value is computed
// by the CPU kernels' scalar functions (TAO_HD); this file only maps blocks
// and elements to threads. Compiled with --fmad=false: a fused multiply-add
// would round differently from the CPU.
#include <algorithm>

#include "quant_primitives.cuh"
#include "row_chunks.cuh"

namespace torchao_cpp {
namespace kernels {
namespace cuda {
namespace {

constexpr int kThreads = 256;
static_assert(kThreads == kRowThreads, "one block size for the per-token quantizers");
constexpr int kNarrowRowThreads = 64;  // the per-token quantizer's threads for rows of up to 512 chunks
// Blocks of at least this many elements get a whole CTA for their min/max;
// smaller ones a warp each.
constexpr int64_t kCtaBlockElems = 8192;

template <class F>
cudaError_t with_code(DType t, F&& f) {
  switch (t) {
    case DType::UInt8:
      return f(uint8_t{});
    case DType::Int8:
      return f(int8_t{});
    case DType::Int16:
      return f(int16_t{});
    case DType::Int32:
      return f(int32_t{});
    default:
      return cudaErrorInvalidValue;
  }
}

// min / max that return NaN when either operand is NaN (sm_80 and newer): a
// row's NaN then shows in its min and max, with no test per element.
__device__ inline float min_nan(float a, float b) {
  float r;
  asm("min.NaN.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
  return r;
}
__device__ inline float max_nan(float a, float b) {
  float r;
  asm("max.NaN.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
  return r;
}
// Whether a min_nan / max_nan pair (started at +inf / -inf) saw NaN or Inf.
__device__ inline bool minmax_not_finite(float mn, float mx) {
  return isnan(mn) || isnan(mx) || mn == -INFINITY || mx == INFINITY;
}

struct MinMax {
  float mn, mx;
  bool bad;  // NaN or Inf seen
};

// Min and max over the kLanes threads that share a block (a warp, or the
// whole CTA when kLanes == kThreads), from each one's min_nan / max_nan.
// NaN propagates, so a NaN or Inf anywhere shows in the result's mn or mx.
template <int kLanes>
__device__ MinMax block_minmax(float mn, float mx, int lane) {
  for (int o = 16; o > 0; o >>= 1) {
    mn = min_nan(mn, __shfl_xor_sync(0xffffffffu, mn, o));
    mx = max_nan(mx, __shfl_xor_sync(0xffffffffu, mx, o));
  }
  if constexpr (kLanes > 32) {
    constexpr int kWarps = kLanes / 32;
    __shared__ float s_mn[kWarps], s_mx[kWarps];
    if (lane % 32 == 0) {
      s_mn[lane / 32] = mn;
      s_mx[lane / 32] = mx;
    }
    __syncthreads();
    for (int w = 0; w < kWarps; ++w) {
      mn = min_nan(mn, s_mn[w]);
      mx = max_nan(mx, s_mx[w]);
    }
  }
  return {mn, mx, minmax_not_finite(mn, mx)};
}

// Min and max of p[0..n) over the kLanes threads that share this block.
template <class T, int kLanes>
__device__ MinMax reduce_minmax(const T* p, int64_t n, int lane) {
  float mn = INFINITY, mx = -INFINITY;
  for (int64_t i = lane; i < n; i += kLanes) {
    const float v = to_float(p[i]);
    mn = min_nan(mn, v);
    mx = max_nan(mx, v);
  }
  return block_minmax<kLanes>(mn, mx, lane);
}

// One block per kLanes threads; blocks past the end leave whole warps (or the
// whole CTA) idle, so the shuffles stay converged.
template <int kLanes>
__device__ int64_t lane_block(int* lane) {
  *lane = int(threadIdx.x) % kLanes;
  return int64_t(blockIdx.x) * (kThreads / kLanes) + int64_t(threadIdx.x) / kLanes;
}

template <class T, class TS, int kLanes>
__global__ void __launch_bounds__(kThreads)
    choose_qparams_kernel(const T* in, Blocks b, QParamsSpec spec, TS* scale, float* zp) {
  int lane;
  const int64_t blk = lane_block<kLanes>(&lane);
  if (blk >= b.count) return;
  const MinMax r = reduce_minmax<T, kLanes>(in + blk * b.elems, b.elems, lane);
  if (lane != 0) return;
  if (r.bad) {
    scale[blk] = from_float<TS>(NAN);
    zp[blk] = 0.0f;
  } else {
    qparams_from_minmax<T, TS, float>(r.mn, r.mx, spec, scale + blk, zp + blk);
  }
}

template <class T, class TS, int kLanes>
__global__ void __launch_bounds__(kThreads)
    choose_float8_kernel(const T* in, Blocks b, float r_max, float eps, TS* scale) {
  int lane;
  const int64_t blk = lane_block<kLanes>(&lane);
  if (blk >= b.count) return;
  const MinMax r = reduce_minmax<T, kLanes>(in + blk * b.elems, b.elems, lane);
  if (lane == 0) scale[blk] = r.bad ? from_float<TS>(NAN) : float8_scale_from_minmax<T, TS>(r.mn, r.mx, r_max, eps);
}

// Launches a per-block reduction kernel with a warp or a CTA per block.
template <class Launch>
cudaError_t launch_per_block(Blocks b, cudaStream_t stream, Launch&& launch) {
  if (b.count <= 0 || b.elems <= 0) return cudaSuccess;
  if (b.elems >= kCtaBlockElems) {
    launch(std::integral_constant<int, kThreads>{}, dim3(unsigned(b.count)), stream);
  } else {
    constexpr int kPerCta = kThreads / 32;
    launch(std::integral_constant<int, 32>{}, dim3(unsigned((b.count + kPerCta - 1) / kPerCta)), stream);
  }
  return cudaGetLastError();
}

dim3 elementwise_grid(int64_t n) {
  return dim3(unsigned(std::min<int64_t>((n + kThreads - 1) / kThreads, 8192)));
}

#define TAO_GRID_STRIDE(i, n) \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

template <class T, class TS, class TQ>
__global__ void quantize_kernel(const T* in, Blocks b, const TS* scale, const float* zp, ZeroPointDomain domain,
                                float qmin, float qmax, float mid, bool exact_f32, TQ* out) {
  using C = promote_t<T, TS>;
  TAO_GRID_STRIDE(i, b.count * b.elems) {
    const int64_t blk = i / b.elems;
    const QuantBlock q = quant_block<TS>(to_float(scale[blk]), zp ? zp[blk] : 0.0f, domain, mid, exact_f32);
    out[i] = static_cast<TQ>(quantize_code<C>(to_float(in[i]), q, domain, exact_f32, qmin, qmax));
  }
}

template <class TQ, class TS, class TO>
__global__ void dequantize_kernel(const TQ* in, Blocks b, const TS* scale, const float* zp, ZeroPointDomain domain,
                                  float mid, TO* out) {
  TAO_GRID_STRIDE(i, b.count * b.elems) {
    const int64_t blk = i / b.elems;
    const float z = zp ? zp[blk] : 0.0f;
    out[i] = from_float<TO>(dequantize_value<TO>(float(in[i]), to_float(scale[blk]), z, zp != nullptr, domain, mid));
  }
}

template <Float8Format F, class T, class TS>
__global__ void quantize_float8_kernel(const T* in, Blocks b, const TS* scale, uint8_t* out) {
  using C = promote_t<T, TS>;
  TAO_GRID_STRIDE(i, b.count * b.elems) {
    const float r = round_to<TS>(1.0f / to_float(scale[i / b.elems]));
    out[i] = quantize_float8_value<F, C>(to_float(in[i]), r);
  }
}

template <Float8Format F, class TS, class TO>
__global__ void dequantize_float8_kernel(const uint8_t* in, Blocks b, const TS* scale, TO* out) {
  TAO_GRID_STRIDE(i, b.count * b.elems) {
    out[i] = from_float<TO>(dequantize_float8_value<F, TO>(in[i], to_float(scale[i / b.elems])));
  }
}

// The scale dtype of the symmetric reduced-range quantizer: the input's,
// except float16, kept in float32 against overflow (torchao).
template <class T>
using SymmScale = std::conditional_t<std::is_same_v<T, fp16>, float, T>;

// round_to<C>(v) for a finite v, without round_to's NaN test (bfloat16: round
// to nearest even on the bits). A NaN may come out as another NaN or +-0: the
// codes below clamp it away.
template <class C>
__device__ inline float round_finite(float v) {
  if constexpr (std::is_same_v<C, bf16>) {
    const uint32_t u = __float_as_uint(v);
    return __uint_as_float((u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u);
  } else {
    return round_to<C>(v);
  }
}

// 1.5 * 2^23: v + kRoundMagic, for |v| < 2^22, rounds v to the nearest
// integer (ties to even, as nearbyint) and leaves it in the low mantissa bits.
constexpr float kRoundMagic = 12582912.0f;

// A row's parameters from its min and max (every thread derives the same:
// no broadcast needed); thread 0 stores the scale and zero point.
//
// A code is quantize_int_code's clamp(nearbyint(round_to<C>(x * recip)) + z,
// qmin, qmax), computed as nearbyint(clamp(round_to<C>(x * recip), qmin - z,
// qmax - z)) + z: the same integer (z, qmin and qmax are integers), with no
// float-to-integer conversion (those issue at a quarter of the rate or less,
// and made this quantizer 2x slower than the float8 one). A row with NaN or
// Inf (NaN scale) clamps to [0, 0]: all its codes are 0, as before.
template <class T, ActQuant kMode>
struct PerToken {
  using TS = std::conditional_t<kMode == ActQuant::SymmetricReducedRange, SymmScale<T>, float>;
  using C = promote_t<T, TS>;
  float recip, lo, hi;
  int z;

  __device__ PerToken(const MinMax& r, int64_t m, float* scale, float* zp) {
    QParamsSpec spec;
    spec.domain = ZeroPointDomain::Int;
    spec.preserve_zero = true;
    if (kMode == ActQuant::Asymmetric) {
      spec.mapping = MappingType::Asymmetric;
      spec.quant_min = -128;
      spec.quant_max = 127;
      spec.eps = 1.1920928955078125e-07f;  // float32 eps
    } else if (kMode == ActQuant::Int4Symmetric) {
      spec.mapping = MappingType::Symmetric;
      spec.quant_min = -8;
      spec.quant_max = 7;
      spec.eps = 1.1920928955078125e-07f;
    } else {
      spec.mapping = MappingType::Symmetric;
      spec.quant_min = -127;
      spec.quant_max = 127;
      spec.eps = static_cast<float>(1e-5);
    }
    TS s;
    float zf;
    qparams_from_minmax<T, TS, float>(r.mn, r.mx, spec, &s, &zf);
    const float sf = r.bad ? NAN : to_float(s);
    if (threadIdx.x == 0) {
      scale[m] = sf;
      zp[m] = r.bad ? 0.0f : zf;
    }
    recip = round_to<TS>(1.0f / sf);
    z = r.bad ? 0 : int(zf);
    lo = r.bad ? 0.0f : float(spec.quant_min) - zf;
    hi = r.bad ? 0.0f : float(spec.quant_max) - zf;
  }
  // The code's low byte in the low byte of the result.
  __device__ uint32_t code_bits(float x) const {
    const float v = fminf(fmaxf(round_finite<C>(x * recip), lo), hi);
    const uint32_t bits = __float_as_uint(__fadd_rn(v, kRoundMagic));
    return kMode == ActQuant::Asymmetric ? bits + uint32_t(z) : bits;  // the symmetric z is 0
  }
  __device__ int8_t code(float x) const { return int8_t(code_bits(x) & 0xffu); }
  __device__ uint32_t code_pair(float a, float b) const { return __byte_perm(code_bits(a), code_bits(b), 0x0040); }
};

// One block per row, element by element (rows too long for registers or not aligned).
template <class T, ActQuant kMode>
__global__ void __launch_bounds__(kThreads)
    per_token_int8_kernel(const T* x, int64_t ldx, int64_t K, int8_t* q, float* scale, float* zp) {
  const int64_t m = blockIdx.x;
  const T* row = x + m * ldx;
  const PerToken<T, kMode> p(reduce_minmax<T, kThreads>(row, K, int(threadIdx.x)), m, scale, zp);
  for (int64_t k = threadIdx.x; k < K; k += kThreads) q[m * K + k] = p.code(to_float(row[k]));
}

// The same with the row in registers (RowChunks over N threads): read from memory once.
template <class T, ActQuant kMode, int N, int C>
__global__ void __launch_bounds__(N)
    per_token_int8_rows(const T* x, int64_t ldx, int64_t K, int8_t* q, float* scale, float* zp) {
  const int64_t m = blockIdx.x, chunks = K / RowChunks<T, C, N>::E;
  RowChunks<T, C, N> row;
  row.load(x + m * ldx, chunks);
  float mn = INFINITY, mx = -INFINITY;
  row.for_each(chunks, [&](float v) {
    mn = min_nan(mn, v);
    mx = max_nan(mx, v);
  });
  const PerToken<T, kMode> p(block_minmax<N>(mn, mx, int(threadIdx.x)), m, scale, zp);
  row.store_codes(reinterpret_cast<uint8_t*>(q + m * K), chunks, [&p](float a, float b) { return p.code_pair(a, b); });
}

}  // namespace

cudaError_t choose_qparams_affine(const void* in, DType in_t, Blocks b, const QParamsSpec& spec, void* scale,
                                  DType scale_t, float* zero_point, cudaStream_t stream) {
  return with_float(in_t, [&](auto t_in) {
    using T = decltype(t_in);
    return with_float(scale_t, [&](auto t_s) {
      using TS = decltype(t_s);
      return launch_per_block(b, stream, [&](auto lanes, dim3 grid, cudaStream_t s) {
        choose_qparams_kernel<T, TS, decltype(lanes)::value><<<grid, kThreads, 0, s>>>(
            static_cast<const T*>(in), b, spec, static_cast<TS*>(scale), zero_point);
      });
    });
  });
}

cudaError_t choose_qparams_float8(const void* in, DType in_t, Blocks b, float fmax, float eps, void* scale,
                                  DType scale_t, cudaStream_t stream) {
  return with_float(in_t, [&](auto t_in) {
    using T = decltype(t_in);
    return with_float(scale_t, [&](auto t_s) {
      using TS = decltype(t_s);
      return launch_per_block(b, stream, [&](auto lanes, dim3 grid, cudaStream_t s) {
        choose_float8_kernel<T, TS, decltype(lanes)::value>
            <<<grid, kThreads, 0, s>>>(static_cast<const T*>(in), b, 1.0f / fmax, eps, static_cast<TS*>(scale));
      });
    });
  });
}

cudaError_t quantize_affine(const void* in, DType in_t, Blocks b, const void* scale, DType scale_t,
                            const float* zero_point, ZeroPointDomain domain, int64_t quant_min, int64_t quant_max,
                            bool zp_is_scale_dtype, void* out, DType out_t, cudaStream_t stream) {
  if (b.count * b.elems == 0) return cudaSuccess;
  const float mid = (float(quant_max) + float(quant_min) + 1.0f) / 2.0f;
  const bool exact_f32 = domain == ZeroPointDomain::Float && !zp_is_scale_dtype;
  return with_float(in_t, [&](auto t_in) {
    using T = decltype(t_in);
    return with_float(scale_t, [&](auto t_s) {
      using TS = decltype(t_s);
      return with_code(out_t, [&](auto t_q) {
        using TQ = decltype(t_q);
        quantize_kernel<T, TS, TQ><<<elementwise_grid(b.count * b.elems), kThreads, 0, stream>>>(
            static_cast<const T*>(in), b, static_cast<const TS*>(scale), zero_point, domain, float(quant_min),
            float(quant_max), mid, exact_f32, static_cast<TQ*>(out));
        return cudaGetLastError();
      });
    });
  });
}

cudaError_t dequantize_affine(const void* in, DType in_t, Blocks b, const void* scale, DType scale_t,
                              const float* zero_point, ZeroPointDomain domain, int64_t quant_min, int64_t quant_max,
                              void* out, DType out_t, cudaStream_t stream) {
  if (b.count * b.elems == 0) return cudaSuccess;
  const float mid = (float(quant_max) + float(quant_min) + 1.0f) / 2.0f;
  return with_code(in_t, [&](auto t_q) {
    using TQ = decltype(t_q);
    return with_float(scale_t, [&](auto t_s) {
      using TS = decltype(t_s);
      return with_float(out_t, [&](auto t_o) {
        using TO = decltype(t_o);
        dequantize_kernel<TQ, TS, TO><<<elementwise_grid(b.count * b.elems), kThreads, 0, stream>>>(
            static_cast<const TQ*>(in), b, static_cast<const TS*>(scale), zero_point, domain, mid,
            static_cast<TO*>(out));
        return cudaGetLastError();
      });
    });
  });
}

cudaError_t quantize_affine_float8(const void* in, DType in_t, Blocks b, const void* scale, DType scale_t,
                                   Float8Format fmt, uint8_t* out, cudaStream_t stream) {
  if (b.count * b.elems == 0) return cudaSuccess;
  return with_float(in_t, [&](auto t_in) {
    using T = decltype(t_in);
    return with_float(scale_t, [&](auto t_s) {
      using TS = decltype(t_s);
      return with_float8(fmt, [&](auto f) {
        quantize_float8_kernel<decltype(f)::value, T, TS><<<elementwise_grid(b.count * b.elems), kThreads, 0, stream>>>(
            static_cast<const T*>(in), b, static_cast<const TS*>(scale), out);
        return cudaGetLastError();
      });
    });
  });
}

cudaError_t dequantize_affine_float8(const uint8_t* in, Blocks b, const void* scale, DType scale_t,
                                     Float8Format fmt, void* out, DType out_t, cudaStream_t stream) {
  if (b.count * b.elems == 0) return cudaSuccess;
  return with_float(scale_t, [&](auto t_s) {
    using TS = decltype(t_s);
    return with_float(out_t, [&](auto t_o) {
      using TO = decltype(t_o);
      return with_float8(fmt, [&](auto f) {
        dequantize_float8_kernel<decltype(f)::value, TS, TO>
            <<<elementwise_grid(b.count * b.elems), kThreads, 0, stream>>>(in, b, static_cast<const TS*>(scale),
                                                                           static_cast<TO*>(out));
        return cudaGetLastError();
      });
    });
  });
}

cudaError_t quantize_per_token_int8(const void* x, DType in_t, int64_t ldx, int64_t M, int64_t K, ActQuant mode,
                                    int8_t* q, float* scale, float* zero_point, cudaStream_t stream) {
  if (M == 0) return cudaSuccess;
  if (K <= 0 || ldx < K) return cudaErrorInvalidValue;
  return with_float(in_t, [&](auto t_in) {
    using T = decltype(t_in);
    const T* xp = static_cast<const T*>(x);
    auto launch = [&](auto kmode) {
      constexpr ActQuant kMode = decltype(kmode)::value;
      // Rows of up to 8 chunks a thread at 64 threads (K <= 4096 in 16-bit types) get 64 threads,
      // longer ones 256: a thread's share of the row's reduction and qparams is fixed, so fewer
      // threads with more chunks each spend fewer instructions a row.
      const int64_t chunks = K / RowChunks<T, 1>::E;
      auto rows = [&](auto n) {
        constexpr int N = decltype(n)::value;
        return with_row_chunks<N>(chunks, [&](auto c) {
          per_token_int8_rows<T, kMode, N, decltype(c)::value><<<unsigned(M), N, 0, stream>>>(xp, ldx, K, q, scale,
                                                                                            zero_point);
        });
      };
      const bool in_registers =
          row_chunks_aligned<T>(xp, ldx, K, q) && (chunks <= kRowMaxChunks * kNarrowRowThreads
                                                       ? rows(std::integral_constant<int, kNarrowRowThreads>{})
                                                       : rows(std::integral_constant<int, kRowThreads>{}));
      if (!in_registers)
        per_token_int8_kernel<T, kMode><<<unsigned(M), kThreads, 0, stream>>>(xp, ldx, K, q, scale, zero_point);
    };
    if (mode == ActQuant::Asymmetric)
      launch(std::integral_constant<ActQuant, ActQuant::Asymmetric>{});
    else if (mode == ActQuant::Int4Symmetric)
      launch(std::integral_constant<ActQuant, ActQuant::Int4Symmetric>{});
    else
      launch(std::integral_constant<ActQuant, ActQuant::SymmetricReducedRange>{});
    return cudaGetLastError();
  });
}

namespace {

__global__ void hqq_init_kernel(const float* w, int64_t groups, int64_t len, int nbits, float* s, float* z) {
  TAO_GRID_STRIDE(g, groups) hqq_group_init(w + g * len, len, nbits, s + g, z + g);
}

__global__ void hqq_round_kernel(const float* w, int64_t groups, int64_t len, float qmax, float inv_beta,
                                 float lp_norm, const float* s, float* z, double* err) {
  TAO_GRID_STRIDE(g, groups) err[g] = hqq_group_round(w + g * len, len, s[g], z + g, inv_beta, lp_norm, qmax);
}

__global__ void hqq_finish_kernel(const float* w, int64_t groups, int64_t len, float qmax, const float* s,
                                  const float* z, uint8_t* codes, float* scale, float* zero) {
  TAO_GRID_STRIDE(g, groups)
  hqq_group_finish(w + g * len, len, s[g], z[g], qmax, codes + g * len, scale + g, zero + g);
}

float hqq_qmax(int nbits) { return float((1 << nbits) - 1); }

}  // namespace

cudaError_t hqq_init(const float* w, int64_t groups, int64_t len, int nbits, float* s, float* z, cudaStream_t stream) {
  if (groups == 0) return cudaSuccess;
  hqq_init_kernel<<<elementwise_grid(groups), kThreads, 0, stream>>>(w, groups, len, nbits, s, z);
  return cudaGetLastError();
}

cudaError_t hqq_round(const float* w, int64_t groups, int64_t len, int nbits, float inv_beta, float lp_norm,
                      const float* s, float* z, double* err, cudaStream_t stream) {
  if (groups == 0) return cudaSuccess;
  hqq_round_kernel<<<elementwise_grid(groups), kThreads, 0, stream>>>(w, groups, len, hqq_qmax(nbits), inv_beta,
                                                                       lp_norm, s, z, err);
  return cudaGetLastError();
}

cudaError_t hqq_finish(const float* w, int64_t groups, int64_t len, int nbits, const float* s, const float* z,
                       uint8_t* codes, float* scale, float* zero, cudaStream_t stream) {
  if (groups == 0) return cudaSuccess;
  hqq_finish_kernel<<<elementwise_grid(groups), kThreads, 0, stream>>>(w, groups, len, hqq_qmax(nbits), s, z, codes,
                                                                        scale, zero);
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace kernels
}  // namespace torchao_cpp
