// CUDA wrappers of the affine quant primitives: the same checks as the CPU
// ops (the shared plans of quant_primitives.h), then the torch-free kernels
// of kernels/cuda/quant_primitives.cuh on the current stream.
//
// Differences from the CPU ops, both because raising would need a host sync:
// a block holding NaN or Inf gets a NaN scale instead of an error, and scale
// values are not inspected (a zero scale saturates the codes).
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <limits>
#include <numeric>

#include "../kernels/cuda/quant_primitives.cuh"
#include "common_cuda.h"
#include "quant_primitives.h"

namespace torchao_cpp {
namespace ops {
namespace {

namespace kc = kernels::cuda;

void check_cuda(const char* op, const at::Tensor& t) {
  TORCH_CHECK_VALUE(t.is_cuda(), op, ": input must be a CUDA tensor, got device ", t.device());
}

// The input reordered so that each block's elements are consecutive, blocks
// in row-major block order (the order of scale): a view, no copy, when the
// blocks already are (per-row and per-group blocks).
struct BlockMajor {
  at::Tensor t;                    // contiguous
  std::vector<int64_t> split;      // [n0, b0, n1, b1, ...]
  std::vector<int64_t> perm;       // split dims -> [n0, n1, ..., b0, b1, ...]
  kc::Blocks blocks;
};

BlockMajor block_major(const at::Tensor& x, const k::BlockGeometry& g) {
  BlockMajor b;
  const int64_t nd = int64_t(g.sizes.size());
  for (int64_t i = 0; i < nd; ++i) {
    b.split.push_back(g.sizes[i] / g.block[i]);
    b.split.push_back(g.block[i]);
  }
  for (int64_t i = 0; i < nd; ++i) b.perm.push_back(2 * i);
  for (int64_t i = 0; i < nd; ++i) b.perm.push_back(2 * i + 1);
  b.t = x.reshape(b.split).permute(b.perm).contiguous();
  b.blocks.count = g.num_blocks();
  b.blocks.elems = nd == 0 ? 1 : g.numel() / std::max<int64_t>(b.blocks.count, 1);
  return b;
}

// A block-major result back in the input's layout.
at::Tensor from_block_major(const at::Tensor& y, const BlockMajor& b, at::IntArrayRef sizes) {
  std::vector<int64_t> permuted;
  for (auto d : b.perm) permuted.push_back(b.split[d]);
  std::vector<int64_t> inverse(b.perm.size());
  for (size_t i = 0; i < b.perm.size(); ++i) inverse[b.perm[i]] = int64_t(i);
  return y.view(permuted).permute(inverse).reshape(sizes).contiguous();
}

std::tuple<at::Tensor, at::Tensor> choose_qparams_affine_cuda(
    const at::Tensor& input, const std::string& mapping_type, at::IntArrayRef block_size, int64_t quant_min,
    int64_t quant_max, c10::optional<double> eps, c10::optional<at::ScalarType> scale_dtype,
    c10::optional<at::ScalarType> zero_point_dtype, bool preserve_zero, const std::string& zero_point_domain) {
  const char* op = "choose_qparams_affine";
  check_cuda(op, input);
  const auto p = plan_choose_qparams_affine(input, mapping_type, block_size, quant_min, quant_max, eps, scale_dtype,
                                            zero_point_dtype, preserve_zero, zero_point_domain);
  const c10::cuda::CUDAGuard guard(input.device());
  const auto b = block_major(input, p.g);
  auto scale = at::empty(p.qshape, input.options().dtype(p.sdt));
  auto zp_f = at::empty(p.qshape, input.options().dtype(at::kFloat));
  check_launch(op, kc::choose_qparams_affine(b.t.data_ptr(), kernel_dtype(input.scalar_type()), b.blocks, p.spec,
                                             scale.data_ptr(), kernel_dtype(p.sdt), zp_f.data_ptr<float>(),
                                             at::cuda::getCurrentCUDAStream()));
  return {scale, zero_point_from_float(p, zp_f)};
}

at::Tensor quantize_affine_cuda(const at::Tensor& input, at::IntArrayRef block_size, const at::Tensor& scale,
                                const c10::optional<at::Tensor>& zero_point, at::ScalarType output_dtype,
                                int64_t quant_min, int64_t quant_max, const std::string& zero_point_domain) {
  const char* op = "quantize_affine";
  check_cuda(op, input);
  const auto p = plan_quantize_affine(op, input, block_size, scale, zero_point, output_dtype, quant_min, quant_max,
                                      zero_point_domain);
  const c10::cuda::CUDAGuard guard(input.device());
  const auto b = block_major(input, p.g);
  auto out = at::empty(b.t.sizes(), input.options().dtype(output_dtype));
  check_launch(op, kc::quantize_affine(b.t.data_ptr(), kernel_dtype(input.scalar_type()), b.blocks,
                                       p.scale.data_ptr(), kernel_dtype(p.scale.scalar_type()),
                                       p.zp_f.defined() ? p.zp_f.data_ptr<float>() : nullptr, p.domain, quant_min,
                                       quant_max, p.zp_is_scale_dtype, out.data_ptr(), kernel_dtype(output_dtype),
                                       at::cuda::getCurrentCUDAStream()));
  return from_block_major(out, b, input.sizes());
}

at::Tensor dequantize_affine_cuda(const at::Tensor& input, at::IntArrayRef block_size, const at::Tensor& scale,
                                  const c10::optional<at::Tensor>& zero_point, int64_t quant_min, int64_t quant_max,
                                  const std::string& zero_point_domain, c10::optional<at::ScalarType> output_dtype) {
  const char* op = "dequantize_affine";
  check_cuda(op, input);
  TORCH_CHECK_TYPE(at::isIntegralType(input.scalar_type(), /*includeBool=*/false), op,
                   ": input must hold integer codes (uint8, int8, int16 or int32), got ", input.scalar_type());
  const auto p = plan_dequantize_affine(op, input, block_size, scale, zero_point, quant_min, quant_max,
                                        zero_point_domain, output_dtype);
  const c10::cuda::CUDAGuard guard(input.device());
  const auto b = block_major(input, p.g);
  auto out = at::empty(b.t.sizes(), input.options().dtype(p.odt));
  check_launch(op, kc::dequantize_affine(b.t.data_ptr(), kernel_dtype(input.scalar_type()), b.blocks,
                                         p.scale.data_ptr(), kernel_dtype(p.scale.scalar_type()),
                                         p.zp_f.defined() ? p.zp_f.data_ptr<float>() : nullptr, p.domain, quant_min,
                                         quant_max, out.data_ptr(), kernel_dtype(p.odt),
                                         at::cuda::getCurrentCUDAStream()));
  return from_block_major(out, b, input.sizes());
}

at::Tensor choose_qparams_affine_float8_cuda(const at::Tensor& input, at::IntArrayRef block_size,
                                             const std::string& float8_dtype,
                                             c10::optional<at::ScalarType> scale_dtype) {
  const char* op = "choose_qparams_affine_float8";
  check_cuda(op, input);
  check_float_dtype(op, "input", input.scalar_type());
  const auto fmt = parse_float8_dtype(float8_dtype);
  const auto sdt = scale_dtype.value_or(input.scalar_type());
  check_float_dtype(op, "scale_dtype", sdt);
  const auto g = make_geometry(op, input.sizes(), block_size);
  const c10::cuda::CUDAGuard guard(input.device());
  const auto b = block_major(input, g);
  auto scale = at::empty(qparams_shape(input.sizes(), block_size), input.options().dtype(sdt));
  check_launch(op, kc::choose_qparams_float8(b.t.data_ptr(), kernel_dtype(input.scalar_type()), b.blocks,
                                             k::float8_max(fmt), std::numeric_limits<float>::epsilon(),
                                             scale.data_ptr(), kernel_dtype(sdt), at::cuda::getCurrentCUDAStream()));
  return scale;
}

at::Tensor quantize_affine_float8_cuda(const at::Tensor& input, at::IntArrayRef block_size, const at::Tensor& scale,
                                       const std::string& float8_dtype) {
  const char* op = "quantize_affine_float8";
  check_cuda(op, input);
  check_float_dtype(op, "input", input.scalar_type());
  const auto fmt = parse_float8_dtype(float8_dtype);
  const auto g = make_geometry(op, input.sizes(), block_size);
  check_qparams(op, input, block_size, scale, c10::nullopt, g.num_blocks());
  const c10::cuda::CUDAGuard guard(input.device());
  const auto b = block_major(input, g);
  auto sc = scale.contiguous();
  auto out = at::empty(b.t.sizes(), input.options().dtype(at::kByte));
  check_launch(op, kc::quantize_affine_float8(b.t.data_ptr(), kernel_dtype(input.scalar_type()), b.blocks,
                                              sc.data_ptr(), kernel_dtype(sc.scalar_type()), fmt,
                                              out.data_ptr<uint8_t>(), at::cuda::getCurrentCUDAStream()));
  return from_block_major(out, b, input.sizes());
}

at::Tensor dequantize_affine_float8_cuda(const at::Tensor& input, at::IntArrayRef block_size, const at::Tensor& scale,
                                         const std::string& float8_dtype, c10::optional<at::ScalarType> output_dtype) {
  const char* op = "dequantize_affine_float8";
  check_cuda(op, input);
  const auto fmt = parse_float8_dtype(float8_dtype);
  auto codes = float8_codes_as_uint8(op, input);
  const auto odt = output_dtype.value_or(at::kFloat);
  check_float_dtype(op, "output_dtype", odt);
  const auto g = make_geometry(op, input.sizes(), block_size);
  check_qparams(op, input, block_size, scale, c10::nullopt, g.num_blocks());
  const c10::cuda::CUDAGuard guard(input.device());
  const auto b = block_major(codes, g);
  auto sc = scale.contiguous();
  auto out = at::empty(b.t.sizes(), input.options().dtype(odt));
  check_launch(op, kc::dequantize_affine_float8(b.t.data_ptr<uint8_t>(), b.blocks, sc.data_ptr(),
                                                kernel_dtype(sc.scalar_type()), fmt, out.data_ptr(), kernel_dtype(odt),
                                                at::cuda::getCurrentCUDAStream()));
  return from_block_major(out, b, input.sizes());
}

// The seed's per-token quantizers: one fused kernel, results in the op's dtypes.
std::tuple<at::Tensor, at::Tensor, at::Tensor> per_token_cuda(const char* op, const at::Tensor& input,
                                                              kc::ActQuant mode, at::ScalarType sdt,
                                                              at::ScalarType zdt) {
  check_cuda(op, input);
  check_float_dtype(op, "input", input.scalar_type());
  TORCH_CHECK_VALUE(input.dim() >= 1, op, ": input must have at least 1 dim, got a scalar");
  const c10::cuda::CUDAGuard guard(input.device());
  const int64_t K = input.size(-1);
  auto x = input.reshape({-1, K}).contiguous();
  const int64_t M = x.size(0);
  auto shape = input.sizes().vec();
  shape.pop_back();
  auto q = at::empty(input.sizes(), input.options().dtype(at::kChar));
  auto scale = at::empty(shape, input.options().dtype(at::kFloat));
  auto zp = at::empty(shape, input.options().dtype(at::kFloat));
  if (K > 0)
    check_launch(op, kc::quantize_per_token_int8(x.data_ptr(), kernel_dtype(input.scalar_type()), K, M, K, mode,
                                                 q.data_ptr<int8_t>(), scale.data_ptr<float>(), zp.data_ptr<float>(),
                                                 at::cuda::getCurrentCUDAStream()));
  return {q, scale.to(sdt), zp.to(zdt)};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> int8_asymm_per_token_quant_cuda(const at::Tensor& input) {
  return per_token_cuda("int8_asymm_per_token_quant", input, kc::ActQuant::Asymmetric, at::kFloat, at::kChar);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> int8_symm_per_token_reduced_range_quant_cuda(const at::Tensor& input) {
  const auto t = input.scalar_type();
  return per_token_cuda("int8_symm_per_token_reduced_range_quant", input, kc::ActQuant::SymmetricReducedRange,
                        t == at::kHalf ? at::kFloat : t, t);
}

// HQQ on the device: the CPU solver's per-group steps, one thread per group;
// the early stop reads the summed error back once per round, as the seed's
// solver does (quantize_ is not captured in graphs).
std::tuple<at::Tensor, at::Tensor, at::Tensor> choose_qparams_and_quantize_affine_hqq_cuda(const at::Tensor& weight,
                                                                                      int64_t nbits,
                                                                                      int64_t group_size) {
  const char* op = "choose_qparams_and_quantize_affine_hqq";
  check_hqq(op, weight, nbits, group_size);
  const c10::cuda::CUDAGuard guard(weight.device());
  const auto stream = at::cuda::getCurrentCUDAStream();
  const auto w = weight.to(at::kFloat).contiguous();
  const int64_t N = w.size(0), K = w.size(1), G = K / group_size, groups = N * G;
  auto codes = at::empty({N, K}, w.options().dtype(at::kByte));
  auto scale = at::empty({N, G}, w.options());
  auto zero = at::empty({N, G}, w.options());
  if (w.numel() == 0) return {codes, scale, zero};
  auto s = at::empty({groups}, w.options()), z = at::empty({groups}, w.options());
  auto err = at::empty({groups}, w.options().dtype(at::kDouble));
  const float* wp = w.data_ptr<float>();
  const int bits = int(nbits);
  check_launch(op, kc::hqq_init(wp, groups, group_size, bits, s.data_ptr<float>(), z.data_ptr<float>(), stream));
  const k::HqqOptions opt;
  double beta = opt.beta, best = 1e4;
  for (int it = 0; it < opt.iters; ++it) {
    check_launch(op, kc::hqq_round(wp, groups, group_size, bits, float(1.0 / beta), opt.lp_norm, s.data_ptr<float>(),
                                   z.data_ptr<float>(), err.data_ptr<double>(), stream));
    if (!k::hqq_continue(err.sum().item<double>(), w.numel(), opt, &best, &beta)) break;
  }
  check_launch(op, kc::hqq_finish(wp, groups, group_size, bits, s.data_ptr<float>(), z.data_ptr<float>(),
                                  codes.data_ptr<uint8_t>(), scale.data_ptr<float>(), zero.data_ptr<float>(), stream));
  return {codes, scale, zero};
}

}  // namespace
}  // namespace ops
}  // namespace torchao_cpp

TORCH_LIBRARY_IMPL(torchao_cpp, CUDA, m) {
  using namespace torchao_cpp::ops;
  m.impl("choose_qparams_affine", &choose_qparams_affine_cuda);
  m.impl("quantize_affine", &quantize_affine_cuda);
  m.impl("dequantize_affine", &dequantize_affine_cuda);
  m.impl("choose_qparams_affine_float8", &choose_qparams_affine_float8_cuda);
  m.impl("quantize_affine_float8", &quantize_affine_float8_cuda);
  m.impl("dequantize_affine_float8", &dequantize_affine_float8_cuda);
  m.impl("int8_asymm_per_token_quant", &int8_asymm_per_token_quant_cuda);
  m.impl("int8_symm_per_token_reduced_range_quant", &int8_symm_per_token_reduced_range_quant_cuda);
  m.impl("choose_qparams_and_quantize_affine_hqq", &choose_qparams_and_quantize_affine_hqq_cuda);
}
