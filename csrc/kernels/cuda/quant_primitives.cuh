// Torch-free CUDA kernels of the affine quant primitives and the per-token
// int8 activation quantizer. The per-element math is the CPU kernels' own
// (kernels/cpu/quant_primitives.h, compiled for host and device), so both
// backends give the same bits.
//
// The input is `count` blocks of `elems` consecutive elements: the ATen
// wrapper permutes any other block shape into that order first.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "../cpu/hqq.h"
#include "../cpu/quant_primitives.h"

namespace torchao_cpp {
namespace kernels {
namespace cuda {

// Element types the primitives read and write.
enum class DType : int { Float32, BFloat16, Float16, UInt8, Int8, Int16, Int32 };

// Calls f with a value of the float type t names (float, bf16, fp16);
// cudaErrorInvalidValue for any other type.
template <class F>
cudaError_t with_float(DType t, F&& f) {
  switch (t) {
    case DType::Float32:
      return f(float{});
    case DType::BFloat16:
      return f(bf16{});
    case DType::Float16:
      return f(fp16{});
    default:
      return cudaErrorInvalidValue;
  }
}

// Calls f with std::integral_constant<Float8Format, fmt>.
template <class F>
cudaError_t with_float8(Float8Format fmt, F&& f) {
  if (fmt == Float8Format::E4M3FN) return f(std::integral_constant<Float8Format, Float8Format::E4M3FN>{});
  return f(std::integral_constant<Float8Format, Float8Format::E5M2>{});
}

struct Blocks {
  int64_t count = 0;  // number of blocks
  int64_t elems = 0;  // elements per block
};

// Scale (scale_t) and float zero point per block, computed in in_t's
// precision. A block holding NaN or Inf gets a NaN scale and zero point 0
// (the CPU op raises instead; raising here would need a host sync).
cudaError_t choose_qparams_affine(const void* in, DType in_t, Blocks b, const QParamsSpec& spec, void* scale,
                                  DType scale_t, float* zero_point, cudaStream_t stream);

// float8 scale per block: max|x| * (1 / fmax) in in_t's precision, clamped to eps.
cudaError_t choose_qparams_float8(const void* in, DType in_t, Blocks b, float fmax, float eps, void* scale,
                                  DType scale_t, cudaStream_t stream);

// zero_point: float per block (nullptr for domain None). zp_is_scale_dtype as
// in the CPU kernel: whether a FLOAT-domain zero point had scale_t.
cudaError_t quantize_affine(const void* in, DType in_t, Blocks b, const void* scale, DType scale_t,
                            const float* zero_point, ZeroPointDomain domain, int64_t quant_min, int64_t quant_max,
                            bool zp_is_scale_dtype, void* out, DType out_t, cudaStream_t stream);

// zero_point: INT domain through int32 then float, FLOAT as float, nullptr for none.
cudaError_t dequantize_affine(const void* in, DType in_t, Blocks b, const void* scale, DType scale_t,
                              const float* zero_point, ZeroPointDomain domain, int64_t quant_min, int64_t quant_max,
                              void* out, DType out_t, cudaStream_t stream);

cudaError_t quantize_affine_float8(const void* in, DType in_t, Blocks b, const void* scale, DType scale_t,
                                   Float8Format fmt, uint8_t* out, cudaStream_t stream);

cudaError_t dequantize_affine_float8(const uint8_t* in, Blocks b, const void* scale, DType scale_t,
                                     Float8Format fmt, void* out, DType out_t, cudaStream_t stream);

// The seed's per-token int8 activation quantizers in one pass per row
// (choose_qparams + quantize fused): M rows of K elements of in_t, ldx
// elements apart; q is M x K int8 (row stride K), scale and zero_point (float)
// M each. Asymmetric: [-128, 127], float32 scale, eps = float32 eps.
// SymmetricReducedRange: [-127, 127], scale in in_t (float32 for float16),
// eps = 1e-5, zero point 0. Int4Symmetric: [-8, 7] in int8, float32 scale,
// eps = float32 eps, zero point 0. A row with NaN or Inf gets a NaN scale.
enum class ActQuant : int { Asymmetric, SymmetricReducedRange, Int4Symmetric };
cudaError_t quantize_per_token_int8(const void* x, DType in_t, int64_t ldx, int64_t M, int64_t K, ActQuant mode,
                                    int8_t* q, float* scale, float* zero_point, cudaStream_t stream);

// HQQ (kernels/cpu/hqq.h), one thread per group of `len` consecutive float32
// values, each running the CPU solver's per-group steps in the same order:
// hqq_init sets the min/max start (s, z); hqq_round runs one solver round,
// moving z and writing each group's sum |w - r| to err (double, groups), which
// the caller sums for the early stop; hqq_finish writes the codes (groups x
// len) and the stored FLOAT-domain scale and zero.
cudaError_t hqq_init(const float* w, int64_t groups, int64_t len, int nbits, float* s, float* z, cudaStream_t stream);
cudaError_t hqq_round(const float* w, int64_t groups, int64_t len, int nbits, float inv_beta, float lp_norm,
                      const float* s, float* z, double* err, cudaStream_t stream);
cudaError_t hqq_finish(const float* w, int64_t groups, int64_t len, int nbits, const float* s, const float* z,
                       uint8_t* codes, float* scale, float* zero, cudaStream_t stream);

}  // namespace cuda
}  // namespace kernels
}  // namespace torchao_cpp
