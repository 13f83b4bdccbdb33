#include "affine_quantized_tensor.h"

#include <cmath>
#include <sstream>

#include "../kernels/cpu/bitpack.h"
#include "../kernels/cpu/floatx.h"
#include "../kernels/cpu/simd.h"
#include "../kernels/cpu/sparse24.h"
#include "../ops/floatx.h"
#include "../ops/linear.h"
#include "../ops/quant_primitives.h"

namespace torchao_cpp {
namespace classes {

namespace k = ::torchao_cpp::kernels;

namespace {

at::ScalarType float_dtype_from_name(const std::string& n) {
  if (n == "float32") return at::kFloat;
  if (n == "bfloat16") return at::kBFloat16;
  if (n == "float16") return at::kHalf;
  TORCH_CHECK_VALUE(false, "dtype must be 'float32', 'bfloat16' or 'float16', got '", n, "'");
}

// Integer dtype that holds one unpacked code.
at::ScalarType storage_dtype(const CodeDtype& c) {
  if (c.is_float8) return at::kByte;
  if (c.bits == 32) return at::kInt;
  return c.is_signed ? at::kChar : at::kByte;
}

std::vector<int64_t> packed_shape(const std::vector<int64_t>& shape, int bits) {
  auto s = shape;
  s.back() = k::packed_row_bytes(s.back(), bits);
  return s;
}

template <class T>
std::string join(const std::vector<T>& v) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
  os << "]";
  return os.str();
}

// The dense one-byte codes (zeros where pruned) of 2:4 compressed rows, on
// the CPU: int8 (SemiSparseLayout) or float8 raw bytes in uint8 (CutlassSemiSparseLayout).
// MarlinSparseLayout's 4-bit rows give their signed values (codes - 8) as int8.
at::Tensor sparse_dense_codes(const at::Tensor& data, const std::vector<int64_t>& shape, at::ScalarType dtype,
                              int bits = 8) {
  auto rows = data.cpu().contiguous();
  auto dense = at::empty({shape[0], shape[1]}, rows.options().dtype(dtype));
  k::decompress_2to4(rows.data_ptr<uint8_t>(), shape[0], shape[1], static_cast<int8_t*>(dense.data_ptr()), bits);
  return dense;
}

// MarlinSparseLayout: symmetric codes around zero point 8, stored as codes - 8 (pruned weights are 0).
constexpr int64_t kMarlinZeroPoint = 8;

// What a 2:4 layout's code bytes stand for.
k::Sparse24Values sparse24_values(LayoutKind kind, const CodeDtype& cd) {
  if (kind == LayoutKind::MarlinSparse) return k::Sparse24Values::Int4;
  if (!cd.is_float8) return k::Sparse24Values::Int8;
  return cd.name == "float8_e4m3fn" ? k::Sparse24Values::Float8E4M3FN : k::Sparse24Values::Float8E5M2;
}

// Float8 codes (raw bytes) with a NaN or Inf value.
bool float8_codes_nonfinite(const at::Tensor& codes, const CodeDtype& cd) {
  auto b = codes.bitwise_and(0x7f);
  return cd.name == "float8_e4m3fn" ? (b == 0x7f).any().item<bool>() : (b >= 0x7c).any().item<bool>();
}

}  // namespace

AffineQuantizedTensor::AffineQuantizedTensor(const at::Tensor& codes, const at::Tensor& scale_,
                                             const c10::optional<at::Tensor>& zero_point_,
                                             std::vector<int64_t> block_size_, int64_t quant_min_, int64_t quant_max_,
                                             const std::string& zero_point_domain_, const std::string& layout_,
                                             const std::string& code_dtype_, const std::string& dtype_)
    : scale(scale_.contiguous()),
      block_size(std::move(block_size_)),
      shape(codes.sizes().vec()),
      dtype(dtype_),
      quant_min(quant_min_),
      quant_max(quant_max_),
      zero_point_domain(zero_point_domain_),
      layout(layout_),
      code_dtype(code_dtype_) {
  if (zero_point_.has_value() && zero_point_->defined()) zero_point = zero_point_->contiguous();
  const auto kind = parse_layout(layout);
  const auto cd = parse_code_dtype(code_dtype);
  at::Tensor c = codes;
  if (cd.is_float8) c = ops::float8_codes_as_uint8("AffineQuantizedTensor", codes);
  TORCH_CHECK_TYPE(c.scalar_type() == storage_dtype(cd), "AffineQuantizedTensor: codes for code_dtype ", code_dtype,
                   " must be ", storage_dtype(cd), ", got ", c.scalar_type());
  if (layout_is_bitpacked(kind)) {
    TORCH_CHECK_VALUE(c.dim() >= 1, "AffineQuantizedTensor: codes must have at least 1 dim");
    TORCH_CHECK_VALUE(c.numel() == 0 || (c.min().item<int64_t>() >= quant_min && c.max().item<int64_t>() <= quant_max),
                      "AffineQuantizedTensor: codes must lie in [quant_min, quant_max] = [", quant_min, ", ",
                      quant_max, "]");
    TORCH_CHECK_VALUE(cd.bits <= 8, "AffineQuantizedTensor: layout ", layout, " packs codes of at most 8 bits, got ",
                      code_dtype);
    data = ops::pack_bits(c, cd.bits, quant_min);
  } else if (layout_is_sparse24(kind)) {
    TORCH_CHECK_VALUE(c.dim() == 2 && c.size(1) % 4 == 0 && c.element_size() == 1, "AffineQuantizedTensor: ", layout,
                      " holds 2-d one-byte codes whose rows are groups of 4, got ", c.scalar_type(),
                      " codes of shape ", c.sizes());
    auto dense = c.cpu().contiguous();
    if (kind == LayoutKind::MarlinSparse) {
      TORCH_CHECK_VALUE(zero_point.has_value() &&
                            (zero_point->to(at::kDouble) == double(kMarlinZeroPoint)).all().item<bool>(),
                        "AffineQuantizedTensor: ", layout, " holds symmetric 4-bit codes with zero point ",
                        kMarlinZeroPoint, " (INT domain)");
      TORCH_CHECK_VALUE(dense.numel() == 0 || (dense.min().item<int64_t>() >= quant_min &&
                                               dense.max().item<int64_t>() <= quant_max && quant_min >= 0 &&
                                               quant_max <= 2 * kMarlinZeroPoint - 1),
                        "AffineQuantizedTensor: ", layout, " codes must lie in [quant_min, quant_max] = [", quant_min,
                        ", ", quant_max, "] within [0, 15]");
      dense = (dense.to(at::kShort) - kMarlinZeroPoint).to(at::kChar).contiguous();
    }
    const int bits = sparse24_bits(kind);
    auto packed = at::empty({c.size(0), k::sparse24_row_bytes(c.size(1), bits)}, dense.options().dtype(at::kByte));
    // Only zero / nonzero bytes matter: float8 codes compress as int8 ones (+0.0 is byte 0).
    const int64_t bad = k::compress_2to4(static_cast<const int8_t*>(dense.data_ptr()), c.size(0), c.size(1),
                                         packed.data_ptr<uint8_t>(), bits);
    TORCH_CHECK_VALUE(bad < 0, "AffineQuantizedTensor: ", layout, " needs 2:4 sparse codes (at most 2 nonzero in each "
                      "group of 4 along a row); row ", bad, " has more (prune the weight first)");
    data = packed.to(c.device());
  } else {
    data = c.contiguous();
  }
  data = ops::on_huge_pages(data);
  validate("AffineQuantizedTensor");
  prepare_device_forms();
}

namespace {
// 2^48 elements: far above any weight, far below int64 overflow in bits.
constexpr int64_t kMaxElements = int64_t(1) << 48;
}  // namespace

void AffineQuantizedTensor::validate(const char* what) const {
  const auto kind = parse_layout(layout);
  const auto cd = parse_code_dtype(code_dtype);
  float_dtype_from_name(dtype);
  const auto domain = ops::parse_zero_point_domain(zero_point_domain);
  TORCH_CHECK_VALUE(quant_min < quant_max, what, ": quant_min (", quant_min, ") must be < quant_max (", quant_max, ")");
  if (cd.is_float8) {
    TORCH_CHECK_VALUE(kind == LayoutKind::Float8 || kind == LayoutKind::CutlassSemiSparse, what, ": code_dtype ",
                      code_dtype, " needs Float8Layout or CutlassSemiSparseLayout, got ", layout);
    TORCH_CHECK_VALUE(domain == k::ZeroPointDomain::None, what, ": float8 codes have no zero point (zero_point_domain NONE), got ",
                      zero_point_domain);
  } else {
    TORCH_CHECK_VALUE(kind != LayoutKind::Float8 && kind != LayoutKind::CutlassSemiSparse, what, ": ", layout,
                      " needs a float8 code_dtype, got ", code_dtype);
    TORCH_CHECK_VALUE(quant_min >= cd.min_value() && quant_max <= cd.max_value(), what, ": [quant_min, quant_max] = [",
                      quant_min, ", ", quant_max, "] exceeds the range of ", code_dtype);
  }
  if (kind == LayoutKind::TensorCoreTiled || kind == LayoutKind::Int4CPU || kind == LayoutKind::Int4XPU)
    TORCH_CHECK_VALUE(cd.bits == 4 && shape.size() == 2, what, ": ", layout, " holds 2-d weights of 4-bit codes, got ",
                      code_dtype, " with shape ", join(shape));
  if (kind == LayoutKind::QDQ || kind == LayoutKind::Uintx || kind == LayoutKind::PackedIntx)
    TORCH_CHECK_VALUE(cd.bits <= 8, what, ": ", layout, " holds codes of at most 8 bits, got ", code_dtype);
  if (kind == LayoutKind::GemlitePacked)
    TORCH_CHECK_VALUE((cd.name == "uint4" || cd.name == "int8") && shape.size() == 2, what, ": ", layout,
                      " holds 2-d weights of uint4 or int8 codes (gemlite's bit widths 4 and 8), got ", code_dtype,
                      " with shape ", join(shape));
  TORCH_CHECK_VALUE(cd.is_floatx == (kind == LayoutKind::FloatxTensorCore), what, ": ",
                    cd.is_floatx ? "float-x code_dtype " + code_dtype + " needs FloatxTensorCoreLayout, got " + layout
                                 : "FloatxTensorCoreLayout needs a float-x code_dtype (fp<N>_e<E>m<M>), got " +
                                       code_dtype);
  if (cd.is_floatx) {
    // torchao's floatx weights: 2-d, one scale per row, every N-bit code a value (no zero point).
    TORCH_CHECK_VALUE(shape.size() == 2 && block_size.size() == 2 && block_size[0] == 1 && block_size[1] == shape[1],
                      what, ": ", layout, " holds 2-d weights with one scale per row (block_size [1, in_features]), "
                      "got shape ", join(shape), " with block_size ", join(block_size));
    TORCH_CHECK_VALUE(quant_min == 0 && quant_max == cd.max_value(), what, ": ", code_dtype,
                      " codes span [0, ", cd.max_value(), "], got [quant_min, quant_max] = [", quant_min, ", ",
                      quant_max, "]");
    TORCH_CHECK_VALUE(domain == k::ZeroPointDomain::None, what,
                      ": float-x codes have no zero point (zero_point_domain NONE), got ", zero_point_domain);
  }
  if (kind == LayoutKind::MarlinSparse) {
    // The seed's MarlinSparseLayout: symmetric uint4 codes, INT zero point 8.
    TORCH_CHECK_VALUE(cd.name == "uint4" && shape.size() == 2 && shape[1] % 4 == 0, what, ": ", layout,
                      " holds 2-d uint4 codes with in_features a multiple of 4, got ", code_dtype, " with shape ",
                      join(shape));
    TORCH_CHECK_VALUE(domain == k::ZeroPointDomain::Int && quant_min == 0 && quant_max == 15 && zero_point.has_value() &&
                          zero_point->defined() &&
                          (zero_point->numel() == 0 ||
                           (zero_point->to(at::kDouble) == double(kMarlinZeroPoint)).all().item<bool>()),
                      what, ": ", layout, " holds symmetric codes in [0, 15] with INT zero points all ",
                      kMarlinZeroPoint, ", got zero_point_domain ", zero_point_domain, " [", quant_min, ", ",
                      quant_max, "]");
  } else if (layout_is_sparse24(kind)) {
    const bool f8 = kind == LayoutKind::CutlassSemiSparse;
    TORCH_CHECK_VALUE((f8 ? cd.is_float8 : cd.name == "int8") && shape.size() == 2 && shape[1] % 4 == 0, what, ": ",
                      layout, " holds 2-d ", f8 ? "float8" : "int8", " codes with in_features a multiple of 4, got ",
                      code_dtype, " with shape ", join(shape));
    TORCH_CHECK_VALUE(block_size.size() == 2 && block_size[0] == 1 && block_size[1] == shape[1], what, ": ", layout,
                      " holds per-channel codes (block_size [1, in_features]), got block_size ", join(block_size));
    // Pruned weights are 0: code 0 with no zero point.
    TORCH_CHECK_VALUE(domain == k::ZeroPointDomain::None && quant_min <= 0 && quant_max >= 0, what, ": ", layout,
                      " holds codes without zero points (zero_point_domain NONE, 0 in [quant_min, quant_max]), got ",
                      zero_point_domain, " [", quant_min, ", ", quant_max, "]");
  }
  if (kind == LayoutKind::CutlassInt4 || kind == LayoutKind::MarlinQQQ)
    TORCH_CHECK_VALUE(cd.bits == 4 && cd.is_signed && shape.size() == 2, what, ": ", layout,
                      " holds 2-d weights of signed 4-bit codes (int4), got ", code_dtype, " with shape ", join(shape));

  // Shape and blocks.
  TORCH_CHECK_VALUE(block_size.size() == shape.size(), what, ": block_size ", join(block_size), " does not match shape ",
                    join(shape));
  int64_t nb = 1, numel = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    TORCH_CHECK_VALUE(shape[i] >= 0, what, ": negative size in shape ", join(shape));
    // Each size too: after a zero-size dim the product stays 0 whatever follows (a fuzzed
    // [0, 2^62] overflowed the packed row size below).
    TORCH_CHECK_VALUE(shape[i] <= kMaxElements, what, ": size ", shape[i], " in shape ", join(shape), " exceeds ",
                      kMaxElements);
    // Bounded so that sizes in bits (packed layouts) cannot overflow either.
    TORCH_CHECK_VALUE(!__builtin_mul_overflow(numel, shape[i], &numel) && numel <= kMaxElements, what, ": shape ",
                      join(shape), " has more than ", kMaxElements, " elements");
    TORCH_CHECK_VALUE(block_size[i] >= 1 && shape[i] % block_size[i] == 0, what, ": block_size ", join(block_size),
                      " does not divide shape ", join(shape));
    nb *= shape[i] / block_size[i];
  }

  // Codes.
  TORCH_CHECK_VALUE(data.defined(), what, ": codes are missing");
  TORCH_CHECK_VALUE(data.device().is_cpu() || data.device().is_cuda(), what,
                    ": codes must be on a CPU or CUDA device, got ", data.device());
  const bool packed = layout_is_bitpacked(kind), sparse = layout_is_sparse24(kind);
  TORCH_CHECK_VALUE(!packed || !shape.empty(), what, ": packed layouts need at least 1 dim");
  const auto want_shape = packed   ? packed_shape(shape, cd.bits)
                          : sparse ? std::vector<int64_t>{shape[0], k::sparse24_row_bytes(shape[1], sparse24_bits(kind))}
                                   : shape;
  const auto want_dtype = packed || sparse ? at::kByte : storage_dtype(cd);
  TORCH_CHECK_TYPE(data.scalar_type() == want_dtype, what, ": codes must be ", want_dtype, " for ", layout, "/",
                   code_dtype, ", got ", data.scalar_type());
  TORCH_CHECK_VALUE(data.sizes().vec() == want_shape, what, ": codes must have shape ", join(want_shape), " for ",
                    layout, " and shape ", join(shape), ", got ", data.sizes());
  TORCH_CHECK_VALUE(data.is_contiguous(), what, ": codes must be contiguous");

  // Scale.
  TORCH_CHECK_VALUE(scale.defined(), what, ": scale is missing");
  TORCH_CHECK_TYPE(scale.scalar_type() == at::kFloat || scale.scalar_type() == at::kBFloat16 ||
                       scale.scalar_type() == at::kHalf,
                   what, ": scale must be float32, bfloat16 or float16, got ", scale.scalar_type());
  TORCH_CHECK_VALUE(scale.device() == data.device(), what, ": scale is on ", scale.device(), ", codes on ", data.device());
  TORCH_CHECK_VALUE(scale.numel() == nb, what, ": scale has ", scale.numel(), " elements, expected ", nb,
                    " (one per block)");
  if (nb > 0) {
    auto sf = scale.to(at::kFloat);
    // A float-x row scale may be 0 (torchao's: max|row| / max_normal underflows in float16): the row is 0.
    TORCH_CHECK_VALUE(at::isfinite(sf).all().item<bool>() && (cd.is_floatx ? (sf >= 0) : (sf > 0)).all().item<bool>(),
                      what, cd.is_floatx ? ": scale must be finite and >= 0" : ": scale must be finite and > 0");
  }

  // Zero point.
  const bool has_zp = zero_point.has_value() && zero_point->defined();
  TORCH_CHECK_VALUE(has_zp == (domain != k::ZeroPointDomain::None), what, ": zero_point_domain ", zero_point_domain,
                    has_zp ? " takes no zero_point" : " needs a zero_point");
  if (has_zp) {
    const auto& z = *zero_point;
    TORCH_CHECK_VALUE(z.device() == data.device(), what, ": zero_point is on ", z.device(), ", codes on ", data.device());
    TORCH_CHECK_VALUE(z.numel() == nb, what, ": zero_point has ", z.numel(), " elements, expected ", nb);
    TORCH_CHECK_TYPE(z.scalar_type() != at::kBool && !z.is_complex(), what, ": zero_point has unsupported dtype ",
                     z.scalar_type());
    if (nb > 0) {
      auto zf = z.to(at::kDouble);
      TORCH_CHECK_VALUE(at::isfinite(zf).all().item<bool>(), what, ": zero_point must be finite");
      if (domain == k::ZeroPointDomain::Int)
        TORCH_CHECK_VALUE((zf >= double(quant_min)).all().item<bool>() && (zf <= double(quant_max)).all().item<bool>() &&
                              (at::round(zf) == zf).all().item<bool>(),
                          what, ": INT zero points must be integers in [", quant_min, ", ", quant_max, "]");
    }
  }

  // Code values.
  if (data.numel() > 0) {
    if (sparse) {
      auto rows = data.cpu();
      const int bits = sparse24_bits(kind);
      const int64_t bad = k::check_2to4_metadata(rows.data_ptr<uint8_t>(), shape[0], shape[1], bits);
      TORCH_CHECK_VALUE(bad < 0, what, ": ", layout, " metadata of row ", bad,
                        " is invalid (each group's two kept columns must be distinct and increasing)");
      auto v = bits == 4 ? sparse_dense_codes(rows, shape, at::kChar, 4).to(at::kShort) + kMarlinZeroPoint
                         : sparse_dense_codes(rows, shape, storage_dtype(cd));
      if (cd.is_float8) {
        TORCH_CHECK_VALUE(!float8_codes_nonfinite(v, cd), what, ": float8 codes contain NaN or Inf");
      } else {
        TORCH_CHECK_VALUE(v.numel() == 0 || (v.min().item<int64_t>() >= quant_min &&
                                             v.max().item<int64_t>() <= quant_max),
                          what, ": codes lie outside [quant_min, quant_max] = [", quant_min, ", ", quant_max, "]");
      }
    } else if (cd.is_float8) {
      TORCH_CHECK_VALUE(!float8_codes_nonfinite(data, cd), what, ": float8 codes contain NaN or Inf");
    } else if (!packed || quant_max - quant_min + 1 < (int64_t(1) << cd.bits)) {
      auto c = packed ? ops::unpack_bits(data.cpu(), cd.bits, quant_min, shape.back(), at::kInt) : data;
      TORCH_CHECK_VALUE(c.min().item<int64_t>() >= quant_min && c.max().item<int64_t>() <= quant_max, what,
                        ": codes lie outside [quant_min, quant_max] = [", quant_min, ", ", quant_max, "]");
    }
  }
}

std::tuple<at::Tensor, at::Tensor, c10::optional<at::Tensor>> AffineQuantizedTensor::get_plain() const {
  const auto cd = parse_code_dtype(code_dtype);
  at::Tensor codes = data;
  // Unpacking runs on the CPU kernels (a copy there and back for CUDA codes).
  if (layout_is_bitpacked(parse_layout(layout)))
    codes = ops::unpack_bits(data.cpu(), cd.bits, quant_min, shape.back(), storage_dtype(cd)).to(data.device());
  const auto kind = parse_layout(layout);
  if (kind == LayoutKind::MarlinSparse)
    codes = (sparse_dense_codes(data, shape, at::kChar, 4).to(at::kShort) + kMarlinZeroPoint)
                .to(storage_dtype(cd))
                .to(data.device());
  else if (layout_is_sparse24(kind))
    codes = sparse_dense_codes(data, shape, storage_dtype(cd)).to(data.device());
  return {codes, scale, zero_point};
}

at::Tensor AffineQuantizedTensor::dequantize() const {
  // Dequantizing is not a hot path: CUDA weights go through the CPU kernels.
  if (!data.device().is_cpu()) return to("cpu")->dequantize().to(data.device());
  const auto cd = parse_code_dtype(code_dtype);
  const auto out_dtype = float_dtype_from_name(dtype);
  auto codes = std::get<0>(get_plain());
  if (cd.is_float8) return ops::dequantize_affine_float8(codes, block_size, scale, cd.name, out_dtype);
  if (cd.is_floatx) return ops::dequantize_affine_floatx(codes, scale, cd.ebits, cd.mbits, out_dtype);
  return ops::dequantize_affine(codes, block_size, scale, zero_point, quant_min, quant_max, zero_point_domain,
                                out_dtype);
}

at::Tensor AffineQuantizedTensor::linear(const at::Tensor& input, const c10::optional<at::Tensor>& bias) const {
  TORCH_CHECK_NOT_IMPLEMENTED(shape.size() == 2 && block_size[0] == 1, "AffineQuantizedTensor.linear: needs a 2-d weight "
                              "quantized per row or per group along in_features, got shape ",
                              join(shape), " with block_size ", join(block_size));
  TORCH_CHECK_TYPE(input.scalar_type() == float_dtype_from_name(dtype), "linear: input dtype ", input.scalar_type(),
                   " does not match the weight's dtype ", dtype);
  TORCH_CHECK_VALUE(input.device() == data.device(), "linear: input is on ", input.device(),
                    " but the quantized weight is on ", data.device(), "; move one of them");
  const auto cd = parse_code_dtype(code_dtype);
  // Through the dispatcher: the input's device picks the CPU or CUDA kernel.
  // The CPU kernels read float zero points; the CUDA kernels the stored ones.
  // 2:4 codes in a weight-only linear (noop_decode, float fallbacks): on the
  // CPU for a few rows, the kept codes only; otherwise dense codes for the call.
  const auto kind = parse_layout(layout);
  if (layout_is_sparse24(kind)) {
    const int64_t rows = shape[1] ? input.numel() / shape[1] : 0;
    if (data.is_cpu() && rows <= ops::kSparse24GatherMaxRows)
      return ops::weight_only_linear_sparse24(input, data, shape[1], sparse24_values(kind, cd), scale, block_size[1],
                                              bias);
    // MarlinSparseLayout's dense values are int8 codes - 8 without a zero point.
    const bool marlin = kind == LayoutKind::MarlinSparse;
    // On CUDA, where in_features and the group are multiples of 128: the sparse tensor cores' form.
    if (const auto* form = marlin && data.is_cuda() ? &mma_sp_form_for_cuda() : nullptr; form && form->first.defined())
      return ops::call_sparse24_int4_linear(input, form->first, form->second, shape[0], shape[1], block_size[1],
                                            scale, bias);
    return ops::call_weight_only_linear(
        input,
        data.is_cuda() ? int8_codes_for_cuda()
                       : sparse_dense_codes(data, shape, marlin ? at::kChar : storage_dtype(cd), sparse24_bits(kind)),
        marlin ? "plain" : code_format(), marlin ? 8 : cd.bits, shape[0], shape[1], block_size[1], scale, c10::nullopt,
        marlin ? quant_min - kMarlinZeroPoint : quant_min, marlin ? quant_max - kMarlinZeroPoint : quant_max,
        marlin ? "NONE" : zero_point_domain, bias);
  }
  // The CUDA kernels read N-bit packed rows as stored where in_features and
  // the group are multiples of 32; other shapes of bit-packed codes
  // (UIntXWeightOnlyConfig's 1..7 bits, packed intx, GemlitePackedLayout's
  // int8) are unpacked once to int8 on the device.
  if (data.is_cuda() && code_format() == "packed" && cd.bits != 4 && (shape[1] % 32 != 0 || block_size[1] % 32 != 0))
    return ops::call_weight_only_linear(input, int8_codes_for_cuda(), "plain", 8, shape[0], shape[1], block_size[1],
                                        scale, zero_point_for_cuda(), quant_min, quant_max, zero_point_domain_for_cuda(),
                                        bias);
  return ops::call_weight_only_linear(input, data, code_format(), cd.bits, shape[0], shape[1], block_size[1], scale,
                                      data.is_cpu() ? zero_point_f32() : zero_point_for_cuda(), quant_min, quant_max,
                                      data.is_cpu() ? zero_point_domain : zero_point_domain_for_cuda(), bias);
}

c10::intrusive_ptr<AffineQuantizedTensor> AffineQuantizedTensor::to(const std::string& device) const {
  const at::Device d(device);
  auto out = c10::make_intrusive<AffineQuantizedTensor>();
  out->data = data.is_cpu() && d.is_cpu() ? data : ops::on_huge_pages(data.to(d));
  out->scale = scale.to(d);
  if (zero_point.has_value() && zero_point->defined()) out->zero_point = zero_point->to(d);
  out->block_size = block_size;
  out->shape = shape;
  out->dtype = dtype;
  out->quant_min = quant_min;
  out->quant_max = quant_max;
  out->zero_point_domain = zero_point_domain;
  out->layout = layout;
  out->code_dtype = code_dtype;
  out->prepare_device_forms();
  return out;  // the same validated contents, so no re-validation
}

std::string AffineQuantizedTensor::device() const { return data.device().str(); }

const c10::optional<at::Tensor>& AffineQuantizedTensor::zero_point_f32() const {
  std::call_once(zero_point_f32_once_, [&] {
    if (zero_point.has_value() && zero_point->defined()) zero_point_f32_ = zero_point->to(at::kFloat).contiguous();
  });
  return zero_point_f32_;
}

const at::Tensor& AffineQuantizedTensor::scale_f32() const {
  std::call_once(scale_f32_once_, [&] { scale_f32_ = scale.to(at::kFloat).contiguous(); });
  return scale_f32_;
}

void AffineQuantizedTensor::prepare_device_forms() const {
  if (!data.is_cuda()) return;
  zero_point_for_cuda();
  // Per-channel scales (N values: the int8 x int8 linear's) as float32 now, not at a first call under capture.
  if (!shape.empty() && scale.numel() == shape[0]) scale_f32();
  const auto kind = parse_layout(layout);
  const auto cd = parse_code_dtype(code_dtype);
  // 2:4 codes: cuSPARSELt's form where it takes them (int8 dynamic linears), the mma.sp form where it takes
  // them (MarlinSparseLayout, CutlassSemiSparseLayout), else the dense codes every CUDA path reads. A cuSPARSELt weight called as a
  // weight-only linear still expands them at that first call.
  if (layout_is_sparse24(kind)) {
    if (!cusparselt_codes_for_cuda().defined() && !mma_sp_form_for_cuda().first.defined()) int8_codes_for_cuda();
    return;
  }
  // Bit-packed codes in shapes the N-bit CUDA kernel does not read (AffineQuantizedTensor::linear), and the
  // int4 codes the int8 tensor cores read (LinearActivationQuantizedTensor::linear).
  if (code_format() == "packed" && cd.bits != 4 && (shape.back() % 32 != 0 || block_size.back() % 32 != 0))
    int8_codes_for_cuda();
  if (kind == LayoutKind::CutlassInt4 || kind == LayoutKind::MarlinQQQ) int8_codes_for_cuda();
}

const c10::optional<at::Tensor>& AffineQuantizedTensor::zero_point_for_cuda() const {
  std::call_once(zero_point_cuda_once_, [&] {
    zero_point_cuda_ = zero_point;
    zero_point_domain_cuda_ = zero_point_domain;
    if (!zero_point.has_value() || !zero_point->defined() || at::isFloatingType(zero_point->scalar_type())) return;
    // One device sync, here where prepare_device_forms runs it (never under graph capture).
    if (zero_point_domain == "INT" && !zero_point->ne(0).any().item<bool>()) {
      zero_point_cuda_ = c10::nullopt;
      zero_point_domain_cuda_ = "NONE";
      return;
    }
    zero_point_cuda_ = zero_point->to(float_dtype_from_name(dtype)).contiguous();
  });
  return zero_point_cuda_;
}

const std::string& AffineQuantizedTensor::zero_point_domain_for_cuda() const {
  zero_point_for_cuda();
  return zero_point_domain_cuda_;
}

const at::Tensor& AffineQuantizedTensor::int8_codes_for_cuda() const {
  std::call_once(int8_codes_cuda_once_, [&] {
    const auto kind = parse_layout(layout);
    if (layout_is_sparse24(kind)) {
      // Where no sparse CUDA form serves the call: the dense codes (MarlinSparseLayout: codes - 8), expanded once.
      const auto dt = kind == LayoutKind::MarlinSparse ? at::kChar : storage_dtype(parse_code_dtype(code_dtype));
      int8_codes_cuda_ = sparse_dense_codes(data, shape, dt, sparse24_bits(kind)).to(data.device());
      return;
    }
    const auto cd = parse_code_dtype(code_dtype);
    if (code_format() != "packed") {
      int8_codes_cuda_ = data;
      return;
    }
    int8_codes_cuda_ = ops::unpack_bits(data.cpu(), cd.bits, quant_min, shape.back(), at::kChar).to(data.device());
  });
  return int8_codes_cuda_;
}

const at::Tensor& AffineQuantizedTensor::cusparselt_codes_for_cuda() const {
  std::call_once(cusparselt_once_, [&] {
    if (!data.is_cuda()) return;
    const auto kind = parse_layout(layout);
    const auto cd = parse_code_dtype(code_dtype);
    // The dense weight only passes through: the device keeps the compressed form alone.
    at::Tensor dense;
    // Not MarlinSparseLayout: its dequantized values through sparse24_linear (bfloat16, about 9 bits per weight)
    // ran prefill (M = 2048) 1.9x faster than its dense path on the H200 but decode 2-3x slower
    // (benchmarks/results/cuda_layers_sparse24_h200.txt); it stays on the int8 weight-only kernel.
    // Only weights the int8 x int8 CUDA path takes: per channel, without zero points.
    const bool per_channel = shape.size() == 2 && block_size[0] == 1 && block_size[1] == shape[1] &&
                             (zero_point_domain == "NONE" || !zero_point.has_value());
    if (kind == LayoutKind::SemiSparse && per_channel && !cd.is_float8 && storage_dtype(cd) == at::kChar)
      dense = sparse_dense_codes(data, shape, at::kChar).to(data.device());
    else
      return;
    auto c = ops::call_sparse24_cusparselt_compress(dense);
    if (c.numel() > 0) cusparselt_codes_ = c;
  });
  return cusparselt_codes_;
}

const std::pair<at::Tensor, at::Tensor>& AffineQuantizedTensor::mma_sp_form_for_cuda() const {
  std::call_once(mma_sp_once_, [&] {
    const int64_t K = shape.back();
    const auto kind = parse_layout(layout);
    if (!data.is_cuda() || shape.size() != 2) return;
    std::tuple<at::Tensor, at::Tensor> form;
    if (kind == LayoutKind::MarlinSparse && K % 128 == 0 && block_size.back() % 128 == 0)
      form = ops::call_sparse24_int4_mma_pack(data.cpu(), shape[0], K);
    else if (kind == LayoutKind::CutlassSemiSparse)
      form = ops::call_sparse24_float8_mma_pack(data.cpu(), shape[0], K);
    else
      return;
    mma_sp_form_ = {std::get<0>(form).to(data.device()), std::get<1>(form).to(data.device())};
  });
  return mma_sp_form_;
}

const kernels::PackedInt8Weights* AffineQuantizedTensor::int8_packed() const {
  std::call_once(int8_packed_once_, [&] {
    // Signed codes of at most 8 bits, plain int8 or bit-packed (unpacked to int8 here, once).
    const auto cd = parse_code_dtype(code_dtype);
    if (cd.is_float8 || !data.device().is_cpu() || shape.size() != 2 || block_size[0] != 1) return;
    if (quant_min < -128 || quant_max > 127) return;
    if (layout_is_sparse24(parse_layout(layout))) return;  // sparse24() serves SemiSparseLayout
    const bool plain = code_format() == "plain" && data.scalar_type() == at::kChar;
    if (!plain && code_format() != "packed") return;
    const int64_t K = shape[1], group = block_size[1];
    if (group != K && group % 4 != 0) return;
    if (zero_point.has_value() && zero_point->defined() && (zero_point->ne(0).any().item<bool>() ||
                                                             zero_point_domain == "FLOAT"))
      return;
    const at::Tensor codes = plain ? data : ops::unpack_bits(data, cd.bits, quant_min, K, at::kChar);
    auto sc = scale.to(at::kFloat).contiguous();
    int8_packed_ = std::make_unique<kernels::PackedInt8Weights>(
        kernels::pack_int8_weights(codes.data_ptr<int8_t>(), shape[0], K, group, sc.data_ptr<float>()));
  });
  return int8_packed_.get();
}

const kernels::Sparse24Weights* AffineQuantizedTensor::sparse24() const {
  std::call_once(sparse24_once_, [&] {
    if (parse_layout(layout) != LayoutKind::SemiSparse || !data.device().is_cpu() || block_size[1] != shape[1]) return;
    auto sc = scale.to(at::kFloat).contiguous();
    sparse24_ = std::make_unique<kernels::Sparse24Weights>(
        kernels::make_sparse24_weights(data.data_ptr<uint8_t>(), shape[0], shape[1], sc.data_ptr<float>()));
  });
  return sparse24_.get();
}

std::string AffineQuantizedTensor::code_format() const {
  const auto cd = parse_code_dtype(code_dtype);
  if (cd.is_float8 || cd.is_floatx) return cd.name;
  return layout_is_bitpacked(parse_layout(layout)) ? "packed" : "plain";
}

int64_t AffineQuantizedTensor::nbytes() const {
  int64_t n = data.numel() * data.element_size() + scale.numel() * scale.element_size();
  if (zero_point.has_value() && zero_point->defined()) n += zero_point->numel() * zero_point->element_size();
  return n;
}

std::string AffineQuantizedTensor::repr() const {
  std::ostringstream os;
  os << "AffineQuantizedTensor(shape=" << join(shape) << ", block_size=" << join(block_size) << ", code_dtype="
     << code_dtype << ", quant_min=" << quant_min << ", quant_max=" << quant_max
     << ", zero_point_domain=" << zero_point_domain << ", layout=" << layout;
  const auto cd = parse_code_dtype(code_dtype);
  if (cd.is_floatx)
    os << "(ebits=" << cd.ebits << ", mbits=" << cd.mbits << ")";
  else
    os << "()";
  os << ", dtype=" << dtype << ")";
  return os.str();
}

AffineQuantizedTensor::State AffineQuantizedTensor::getstate() const {
  return State{kStateVersion, data, scale, zero_point, block_size, shape, dtype, quant_min, quant_max, zero_point_domain,
               layout, code_dtype};
}

c10::intrusive_ptr<AffineQuantizedTensor> AffineQuantizedTensor::setstate(State s) {
  TORCH_CHECK_VALUE(std::get<0>(s) == kStateVersion, "AffineQuantizedTensor.__setstate__: unsupported state version ",
                    std::get<0>(s), " (this build reads version ", kStateVersion, ")");
  auto t = c10::make_intrusive<AffineQuantizedTensor>();
  t->data = ops::on_huge_pages(std::get<1>(s));
  t->scale = std::get<2>(s);
  t->zero_point = std::get<3>(s);
  t->block_size = std::get<4>(s);
  t->shape = std::get<5>(s);
  t->dtype = std::get<6>(s);
  t->quant_min = std::get<7>(s);
  t->quant_max = std::get<8>(s);
  t->zero_point_domain = std::get<9>(s);
  t->layout = std::get<10>(s);
  t->code_dtype = std::get<11>(s);
  t->validate("AffineQuantizedTensor.__setstate__");
  t->prepare_device_forms();
  return t;
}

// --- LinearActivationQuantizedTensor ------------------------------------------------

namespace {
// The seed's int8 activation quantizers, by name.
constexpr const char* kAsymm = "int8_asymm_per_token";
constexpr const char* kSymmReduced = "int8_symm_per_token_reduced_range";
// As kSymmReduced, but inputs with x.shape[1] == 1 (decode steps) stay float
// and meet the int8 weight directly (weight_only_decode=True).
constexpr const char* kSymmReducedNoopDecode = "int8_symm_per_token_reduced_range_noop_decode";
// The seed's _int4_symm_cutlass_quant: int4 [-8, 7] per token, symmetric.
constexpr const char* kInt4Symm = "int4_symm_per_token";

// The int8_dynamic_linear op's name for an integer activation quantizer.
std::string int_act_mode(const std::string& act_quant) {
  if (act_quant == kAsymm) return "asymmetric";
  if (act_quant == kInt4Symm) return "int4_symmetric";
  return "symmetric_reduced_range";
}

// A float8 activation quantizer: "float8_<dtype>_<per_tensor|per_row|static>".
struct Float8Act {
  std::string dtype;        // float8_e4m3fn | float8_e5m2
  std::string granularity;  // PerTensor | PerRow
  bool is_static = false;   // one calibrated scale (act_scale)
};

c10::optional<Float8Act> parse_float8_act(const std::string& a) {
  for (const char* dt : {"float8_e4m3fn", "float8_e5m2"}) {
    const std::string prefix = std::string(dt) + "_";
    if (a.rfind(prefix, 0) != 0) continue;
    const auto rest = a.substr(prefix.size());
    if (rest == "per_tensor") return Float8Act{dt, "PerTensor", false};
    if (rest == "per_row") return Float8Act{dt, "PerRow", false};
    if (rest == "static") return Float8Act{dt, "PerTensor", true};
  }
  return c10::nullopt;
}

// Block of the activation quantizer for `input`: the whole tensor or one row.
std::vector<int64_t> float8_act_block(const Float8Act& f, const at::Tensor& input) {
  auto b = input.sizes().vec();
  if (f.granularity == "PerRow")
    for (size_t i = 0; i + 1 < b.size(); ++i) b[i] = 1;
  return b;
}
}  // namespace

LinearActivationQuantizedTensor::LinearActivationQuantizedTensor(c10::intrusive_ptr<AffineQuantizedTensor> w,
                                                                 const std::string& aq,
                                                                 const c10::optional<at::Tensor>& scale,
                                                                 bool fast_accum_)
    : weight(std::move(w)), act_quant(aq), fast_accum(fast_accum_) {
  const char* what = "LinearActivationQuantizedTensor";
  TORCH_CHECK_VALUE(weight, what, ": weight is missing");
  if (scale.has_value() && scale->defined()) act_scale = scale;
  const auto f8 = parse_float8_act(act_quant);
  const bool int8 = act_quant == kAsymm || act_quant == kSymmReduced || act_quant == kSymmReducedNoopDecode ||
                    act_quant == kInt4Symm;
  TORCH_CHECK_VALUE(int8 || f8, what, ": act_quant must be '", kAsymm, "', '", kSymmReduced, "', '",
                    kSymmReducedNoopDecode, "', '", kInt4Symm,
                    "' or 'float8_{e4m3fn,e5m2}_{per_tensor,per_row,static}', got '", act_quant, "'");
  TORCH_CHECK_VALUE(f8 || !fast_accum, what, ": fast_accum applies to float8 activations only, got act_quant '",
                    act_quant, "'");
  if (!f8) {
    TORCH_CHECK_VALUE(!act_scale, what, ": act_scale is for float8 static activation quantization, got act_quant '",
                      act_quant, "'");
    return;
  }
  TORCH_CHECK_VALUE(parse_code_dtype(weight->code_dtype).is_float8, what, ": float8 activations (", act_quant,
                    ") need a float8 weight, got code_dtype ", weight->code_dtype);
  const auto& sh = weight->shape;
  const auto& bs = weight->block_size;
  const size_t d = sh.size();
  bool per_tensor = d >= 2 && bs[d - 1] == sh[d - 1] && bs[d - 2] == sh[d - 2];
  bool per_row = d >= 1 && bs[d - 1] == sh[d - 1];
  for (size_t i = 0; i + 2 < d; ++i) per_tensor = per_tensor && bs[i] == 1;
  for (size_t i = 0; i + 1 < d; ++i) per_row = per_row && bs[i] == 1;
  TORCH_CHECK_VALUE(per_tensor || per_row, what, ": a float8 weight is scaled per tensor or per row, got block_size ",
                    join(bs), " for shape ", join(sh));
  if (!f8->is_static) {
    TORCH_CHECK_VALUE(!act_scale, what, ": act_scale is for static quantization (float8_*_static), got act_quant '",
                      act_quant, "'");
    return;
  }
  TORCH_CHECK_VALUE(act_scale, what, ": act_quant '", act_quant, "' needs act_scale");
  const auto& a = *act_scale;
  TORCH_CHECK_VALUE(a.numel() == 1, what, ": act_scale must hold one element, got shape ", a.sizes());
  TORCH_CHECK_TYPE(a.is_floating_point(), what, ": act_scale must be a float tensor, got ", a.scalar_type());
  TORCH_CHECK_VALUE(a.device() == weight->data.device(), what, ": act_scale is on ", a.device(), ", the weight on ",
                    weight->data.device());
  const double v = a.to(at::kDouble).cpu().item<double>();
  TORCH_CHECK_VALUE(std::isfinite(v) && v > 0, what, ": act_scale must be finite and > 0, got ", v);
  act_scale = a.to(at::kFloat).reshape({}).contiguous();
}

bool LinearActivationQuantizedTensor::skips_input(const at::Tensor& input) const {
  return act_quant == kSymmReducedNoopDecode && input.dim() >= 2 && input.size(1) == 1;
}

at::Tensor LinearActivationQuantizedTensor::quantize_dequantize_input(const at::Tensor& input) const {
  if (skips_input(input)) return input;
  if (const auto f8 = parse_float8_act(act_quant)) {
    // The CPU primitives (a debugging aid, not a hot path).
    const auto x = input.cpu();
    const auto block = float8_act_block(*f8, x);
    const auto scale = act_scale ? act_scale->cpu().reshape(ops::qparams_shape(x.sizes(), block))
                                 : ops::choose_qparams_affine_float8(x, block, f8->dtype, at::kFloat);
    const auto q = ops::quantize_affine_float8(x, block, scale, f8->dtype);
    return ops::dequantize_affine_float8(q, block, scale, f8->dtype, x.scalar_type()).to(input.device());
  }
  const bool asymm = act_quant == kAsymm, int4 = act_quant == kInt4Symm;
  std::vector<int64_t> block(input.dim(), 1);
  block.back() = input.size(-1);
  if (int4) {  // no int4 quantizer op: the CPU primitives
    auto q = ops::per_token_quant_cpu("LinearActivationQuantizedTensor", input.cpu(), kernels::ActQuant::Int4Symmetric);
    return ops::dequantize_affine(std::get<0>(q), block, std::get<1>(q), std::get<2>(q), -8, 7, "INT",
                                  input.scalar_type())
        .to(input.device());
  }
  // On the input's device, without a host round trip (CUDA graphs).
  auto q = ops::call_int8_per_token_quant(input, asymm);
  return ops::call_dequantize_affine(std::get<0>(q), block, std::get<1>(q), std::get<2>(q), asymm ? -128 : -127, 127,
                                     "INT", input.scalar_type());
}

at::Tensor LinearActivationQuantizedTensor::linear(const at::Tensor& input, const c10::optional<at::Tensor>& bias) const {
  const auto& w = *weight;
  if (skips_input(input)) return w.linear(input, bias);
  const auto cd = parse_code_dtype(w.code_dtype);
  if (const auto f8 = parse_float8_act(act_quant)) {
    TORCH_CHECK_NOT_IMPLEMENTED(w.shape.size() == 2, "LinearActivationQuantizedTensor.linear: the weight has shape ",
                                join(w.shape), "; a linear takes a 2-d weight (3-d float8 weights dequantize for "
                                "other ops)");
    TORCH_CHECK_TYPE(input.scalar_type() == float_dtype_from_name(w.dtype), "linear: input dtype ", input.scalar_type(),
                     " does not match the weight's dtype ", w.dtype);
    TORCH_CHECK_VALUE(input.device() == w.data.device(), "linear: input is on ", input.device(),
                      " but the weight is on ", w.data.device());
    if (layout_is_sparse24(parse_layout(w.layout))) {
      // 2:4 float8 codes: read compressed on the CPU; on CUDA in the sparse tensor cores' form.
      if (w.data.is_cpu())
        return ops::float8_linear_sparse24(input, f8->dtype, f8->granularity, act_scale, w.data, w.shape[1],
                                           w.code_dtype, w.scale, bias);
      const auto& form = w.mma_sp_form_for_cuda();
      return ops::call_sparse24_float8_linear(input, f8->dtype, f8->granularity, act_scale, form.first, form.second,
                                              w.shape[0], w.shape[1], w.code_dtype, w.scale, bias, fast_accum);
    }
    return ops::call_float8_linear(input, f8->dtype, f8->granularity, act_scale, w.data, w.code_dtype, w.scale, bias,
                                   fast_accum);
  }
  const std::string mode = int_act_mode(act_quant);
  if (input.is_cuda()) {
    // CUDA: per-channel int8 weights without zero points (Int8DynamicActivationInt8WeightConfig).
    const bool per_channel = w.shape.size() == 2 && w.block_size[0] == 1 && w.block_size[1] == w.shape[1] &&
                             (w.zero_point_domain == "NONE" || !w.zero_point.has_value());
    // 2:4 int8 codes: on the sparse tensor cores (cuSPARSELt) where the build has it, else dense
    // (int8_codes_for_cuda expands them once).
    const bool int8_per_channel = per_channel && !cd.is_float8 && cd.bits == 8 &&
                                  ((w.code_format() == "plain" && w.data.scalar_type() == at::kChar) ||
                                   parse_layout(w.layout) == LayoutKind::SemiSparse);
    // int4 x int4 runs on the int8 tensor cores (codes in [-8, 7] are int8 codes), so do per-channel QQQ codes.
    const auto kind = parse_layout(w.layout);
    const bool int4_per_channel = per_channel && ((act_quant == kInt4Symm && kind == LayoutKind::CutlassInt4) ||
                                                  (act_quant != kInt4Symm && kind == LayoutKind::MarlinQQQ));
    // Other integer weights (group-wise QQQ codes, 8da4w, Int8DynamicActivationIntxWeightConfig:
    // per group or with zero points): the seed's own path, the activations quantized and
    // dequantized on the device, then the weight-only kernel on the codes.
    if (!int8_per_channel && !int4_per_channel) {
      TORCH_CHECK_NOT_IMPLEMENTED(!cd.is_float8 && !cd.is_floatx && act_quant != kInt4Symm,
                                  "LinearActivationQuantizedTensor.linear: on CUDA, dynamic activation quantization (",
                                  act_quant, ") takes integer weights (int4 activations: per-channel int4 weights); "
                                  "this weight is ", w.repr(), " (run it on the CPU)");
      TORCH_CHECK_NOT_IMPLEMENTED(input.scalar_type() == at::kBFloat16 || input.scalar_type() == at::kHalf,
                                  "LinearActivationQuantizedTensor.linear: the CUDA kernels take bfloat16 or float16 "
                                  "activations, got ", input.scalar_type());
      return w.linear(quantize_dequantize_input(input), bias);
    }
    TORCH_CHECK_TYPE(input.scalar_type() == float_dtype_from_name(w.dtype), "linear: input dtype ", input.scalar_type(),
                     " does not match the weight's dtype ", w.dtype);
    TORCH_CHECK_VALUE(input.device() == w.data.device(), "linear: input is on ", input.device(),
                      " but the weight is on ", w.data.device());
    const auto& sparse = w.cusparselt_codes_for_cuda();
    if (sparse.defined())
      return ops::call_int8_dynamic_linear(input, mode, sparse, "cusparselt", 8, w.shape[0], w.shape[1], w.shape[1],
                                           w.scale_f32(), c10::nullopt, w.quant_min, bias);
    return ops::call_int8_dynamic_linear(input, mode, w.int8_codes_for_cuda(), "plain", 8, w.shape[0], w.shape[1],
                                         w.shape[1], w.scale_f32(), c10::nullopt, w.quant_min, bias);
  }
  // Integer codes of at most 8 bits with an INT/NONE zero point go through
  // the integer kernel; anything else sees the quantize-dequantized input.
  const bool integer_path = !cd.is_float8 && !cd.is_floatx && cd.bits <= 8 && w.shape.size() == 2 && w.block_size[0] == 1 &&
                            w.zero_point_domain != "FLOAT";
  if (integer_path) {
    TORCH_CHECK_TYPE(input.scalar_type() == float_dtype_from_name(w.dtype), "linear: input dtype ", input.scalar_type(),
                     " does not match the weight's dtype ", w.dtype);
    // int8 codes without weight zero points go through the pre-packed VNNI
    // GEMM where the CPU has VNNI (faster for decode and prefill alike).
    if (kernels::int8_gemm_has_vnni() && kernels::active_isa() == kernels::Isa::Avx512)
      if (const auto* packed = w.int8_packed())
        return ops::int8_dynamic_linear_packed(input, mode, *packed, bias);
    // 2:4 codes: the sparse GEMM reads them compressed.
    if (const auto* sparse = w.sparse24()) return ops::int8_dynamic_linear_sparse24(input, mode, *sparse, bias);
    return ops::int8_dynamic_linear(input, mode, w.data,
                                    w.code_format(), cd.bits, w.shape[0], w.shape[1], w.block_size[1], w.scale,
                                    w.zero_point_f32(), w.quant_min, bias);
  }
  return w.linear(quantize_dequantize_input(input), bias);
}

c10::intrusive_ptr<LinearActivationQuantizedTensor> LinearActivationQuantizedTensor::to(const std::string& device) const {
  c10::optional<at::Tensor> s;
  if (act_scale) s = act_scale->to(at::Device(device));
  return c10::make_intrusive<LinearActivationQuantizedTensor>(weight->to(device), act_quant, s, fast_accum);
}

std::string LinearActivationQuantizedTensor::repr() const {
  // The static scale is state, not configuration: a checkpoint with another
  // calibrated scale still matches (repr is what load_state_dict compares).
  return "LinearActivationQuantizedTensor(act_quant=" + act_quant + ", weight=" + weight->repr() +
         (fast_accum ? ", fast_accum=True" : "") + ")";
}

LinearActivationQuantizedTensor::State LinearActivationQuantizedTensor::getstate() const {
  return State{kStateVersion, weight->getstate(), act_quant, act_scale, fast_accum};
}

c10::intrusive_ptr<LinearActivationQuantizedTensor> LinearActivationQuantizedTensor::setstate(State s) {
  TORCH_CHECK_VALUE(std::get<0>(s) == kStateVersion,
                    "LinearActivationQuantizedTensor.__setstate__: unsupported state version ", std::get<0>(s),
                    " (this build reads version ", kStateVersion, ")");
  return c10::make_intrusive<LinearActivationQuantizedTensor>(AffineQuantizedTensor::setstate(std::get<1>(s)),
                                                              std::get<2>(s), std::get<3>(s), std::get<4>(s));
}

namespace {

// Fields of a pickled state, which arrives as whatever the file holds: the
// typed State is only built once the version, arity and each field's type
// have been checked, so a state of another format version (or a forged one)
// gets an error naming the field instead of an internal cast failure.
class PickledState {
 public:
  PickledState(const char* what, const c10::IValue& v, int64_t version, size_t arity) : what_(what) {
    TORCH_CHECK_VALUE(v.isTuple(), what, ": state must be a tuple (version, ...), got ", v.tagKind());
    for (const auto& x : v.toTupleRef().elements()) e_.push_back(x);
    TORCH_CHECK_VALUE(!e_.empty() && e_[0].isInt(), what, ": state must start with its format version (an int)");
    TORCH_CHECK_VALUE(e_[0].toInt() == version, what, ": unsupported state version ", e_[0].toInt(),
                      " (this build reads version ", version, ")");
    TORCH_CHECK_VALUE(e_.size() == arity, what, ": a version ", version, " state has ", arity, " fields, got ",
                      e_.size());
  }
  const c10::IValue& at(size_t i, const char* field, bool ok, const char* want) const {
    const auto& v = e_[i];
    TORCH_CHECK_TYPE(ok, what_, ": field ", field, " must be ", want, ", got ", v.tagKind());
    return v;
  }
  int64_t integer(size_t i, const char* field) const { return at(i, field, e_[i].isInt(), "an int").toInt(); }
  bool boolean(size_t i, const char* field) const { return at(i, field, e_[i].isBool(), "a bool").toBool(); }
  std::string str(size_t i, const char* field) const {
    return at(i, field, e_[i].isString(), "a str").toStringRef();
  }
  at::Tensor tensor(size_t i, const char* field) const {
    return at(i, field, e_[i].isTensor(), "a Tensor").toTensor();
  }
  c10::optional<at::Tensor> opt_tensor(size_t i, const char* field) const {
    if (e_[i].isNone()) return c10::nullopt;
    return tensor(i, field);
  }
  // Any list of ints (an empty one may arrive typed as another list).
  std::vector<int64_t> ints(size_t i, const char* field) const {
    const auto& v = at(i, field, e_[i].isList(), "a list of ints");
    std::vector<int64_t> out;
    for (const auto& x : v.toListRef()) {
      TORCH_CHECK_TYPE(x.isInt(), what_, ": field ", field, " must be a list of ints, got an element ", x.tagKind());
      out.push_back(x.toInt());
    }
    return out;
  }
  const c10::IValue& any(size_t i) const { return e_[i]; }

 private:
  const char* what_;
  std::vector<c10::IValue> e_;
};

AffineQuantizedTensor::State affine_state(const c10::IValue& v) {
  const PickledState p("AffineQuantizedTensor.__setstate__", v, AffineQuantizedTensor::kStateVersion, 12);
  return {p.integer(0, "version"),          p.tensor(1, "codes"),       p.tensor(2, "scale"),
          p.opt_tensor(3, "zero_point"),    p.ints(4, "block_size"),    p.ints(5, "shape"),
          p.str(6, "dtype"),                p.integer(7, "quant_min"),  p.integer(8, "quant_max"),
          p.str(9, "zero_point_domain"),    p.str(10, "layout"),        p.str(11, "code_dtype")};
}

LinearActivationQuantizedTensor::State activation_state(const c10::IValue& v) {
  const PickledState p("LinearActivationQuantizedTensor.__setstate__", v,
                       LinearActivationQuantizedTensor::kStateVersion, 5);
  return {p.integer(0, "version"), affine_state(p.any(1)), p.str(2, "act_quant"), p.opt_tensor(3, "act_scale"),
          p.boolean(4, "fast_accum")};
}

}  // namespace

// Methods are callable from Python and TorchScript.
void register_classes(torch::Library& m) {
  m.class_<AffineQuantizedTensor>("AffineQuantizedTensor")
        .def(torch::init<at::Tensor, at::Tensor, c10::optional<at::Tensor>, std::vector<int64_t>, int64_t, int64_t,
                         std::string, std::string, std::string, std::string>())
        .def("dequantize", &AffineQuantizedTensor::dequantize)
        .def("get_plain", &AffineQuantizedTensor::get_plain)
        .def("linear", &AffineQuantizedTensor::linear)
        .def("repr", &AffineQuantizedTensor::repr)
        .def("to", &AffineQuantizedTensor::to)
        .def("device", &AffineQuantizedTensor::device)
        .def("nbytes", &AffineQuantizedTensor::nbytes)
        .def("packed_data", [](const c10::intrusive_ptr<AffineQuantizedTensor>& s) { return s->data; })
        .def("scale", [](const c10::intrusive_ptr<AffineQuantizedTensor>& s) { return s->scale; })
        .def("zero_point", [](const c10::intrusive_ptr<AffineQuantizedTensor>& s) { return s->zero_point; })
        .def("block_size", [](const c10::intrusive_ptr<AffineQuantizedTensor>& s) { return s->block_size; })
        .def("shape", [](const c10::intrusive_ptr<AffineQuantizedTensor>& s) { return s->shape; })
        .def("dtype", [](const c10::intrusive_ptr<AffineQuantizedTensor>& s) { return s->dtype; })
        .def("quant_min", [](const c10::intrusive_ptr<AffineQuantizedTensor>& s) { return s->quant_min; })
        .def("quant_max", [](const c10::intrusive_ptr<AffineQuantizedTensor>& s) { return s->quant_max; })
        .def("zero_point_domain", [](const c10::intrusive_ptr<AffineQuantizedTensor>& s) { return s->zero_point_domain; })
        .def("layout", [](const c10::intrusive_ptr<AffineQuantizedTensor>& s) { return s->layout; })
        .def("code_dtype", [](const c10::intrusive_ptr<AffineQuantizedTensor>& s) { return s->code_dtype; })
        // cuSPARSELt's form of a CUDA 2:4 int8 weight: None where the weight runs dense (and on the CPU).
        .def("cusparselt_codes",
             [](const c10::intrusive_ptr<AffineQuantizedTensor>& s) {
               const auto& c = s->cusparselt_codes_for_cuda();
               return c.defined() ? c10::optional<at::Tensor>(c) : c10::nullopt;
             })
        .def_pickle([](const c10::intrusive_ptr<AffineQuantizedTensor>& s) { return s->getstate(); },
                    [](c10::IValue st) { return AffineQuantizedTensor::setstate(affine_state(st)); });

  m.class_<LinearActivationQuantizedTensor>("LinearActivationQuantizedTensor")
        .def(torch::init<c10::intrusive_ptr<AffineQuantizedTensor>, std::string, c10::optional<at::Tensor>, bool>())
        .def("linear", &LinearActivationQuantizedTensor::linear)
        .def("quantize_dequantize_input", &LinearActivationQuantizedTensor::quantize_dequantize_input)
        .def("repr", &LinearActivationQuantizedTensor::repr)
        .def("to", &LinearActivationQuantizedTensor::to)
        .def("weight", [](const c10::intrusive_ptr<LinearActivationQuantizedTensor>& s) { return s->weight; })
        .def("act_quant", [](const c10::intrusive_ptr<LinearActivationQuantizedTensor>& s) { return s->act_quant; })
        .def("act_scale", [](const c10::intrusive_ptr<LinearActivationQuantizedTensor>& s) { return s->act_scale; })
        .def("fast_accum", [](const c10::intrusive_ptr<LinearActivationQuantizedTensor>& s) { return s->fast_accum; })
        .def_pickle([](const c10::intrusive_ptr<LinearActivationQuantizedTensor>& s) { return s->getstate(); },
                    [](c10::IValue st) { return LinearActivationQuantizedTensor::setstate(activation_state(st)); });
}

}  // namespace classes
}  // namespace torchao_cpp
