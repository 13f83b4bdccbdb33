// What every fuzz target does with an object rebuilt from untrusted state:
// use it the way a loaded model would. Errors must surface as exceptions
// (c10::Error and friends), never as crashes or sanitizer reports.
#pragma once

#include <torch/script.h>

#include "classes/affine_quantized_tensor.h"
#include "fuzz_bytes.h"

namespace torchao_cpp {
namespace fuzz {

using classes::AffineQuantizedTensor;
using classes::LinearActivationQuantizedTensor;

inline AffineQuantizedTensor::State read_affine_state(Reader& r) {
  const int64_t version = r.i64();
  auto data = r.tensor();
  auto scale = r.tensor();
  auto zp = r.opt_tensor();
  auto block = r.ints();
  auto shape = r.ints();
  auto dtype = r.str();
  const int64_t qmin = r.i64(), qmax = r.i64();
  auto domain = r.str();
  auto layout = r.str();
  auto code_dtype = r.str();
  return {version, data, scale, zp, block, shape, dtype, qmin, qmax, domain, layout, code_dtype};
}

inline void write_affine_state(Writer& w, const AffineQuantizedTensor::State& s) {
  w.i64(std::get<0>(s));
  w.tensor(std::get<1>(s));
  w.tensor(std::get<2>(s));
  w.opt_tensor(std::get<3>(s));
  w.ints(std::get<4>(s));
  w.ints(std::get<5>(s));
  w.str(std::get<6>(s));
  w.i64(std::get<7>(s));
  w.i64(std::get<8>(s));
  w.str(std::get<9>(s));
  w.str(std::get<10>(s));
  w.str(std::get<11>(s));
}

inline LinearActivationQuantizedTensor::State read_activation_state(Reader& r) {
  const int64_t version = r.i64();
  auto weight = read_affine_state(r);
  auto act_quant = r.str();
  auto act_scale = r.opt_tensor();
  const bool fast = r.u8() % 2;
  return {version, weight, act_quant, act_scale, fast};
}

inline void write_activation_state(Writer& w, const LinearActivationQuantizedTensor::State& s) {
  w.i64(std::get<0>(s));
  write_affine_state(w, std::get<1>(s));
  w.str(std::get<2>(s));
  w.opt_tensor(std::get<3>(s));
  w.u8(std::get<4>(s));
}

// An input for a linear over `w`: `rows` rows of random values in the weight's dtype.
inline at::Tensor linear_input(const AffineQuantizedTensor& w, int64_t rows) {
  const auto dtype = w.dtype == "bfloat16" ? at::kBFloat16 : w.dtype == "float16" ? at::kHalf : at::kFloat;
  const int64_t k = w.shape.size() == 2 ? w.shape[1] : 1;
  return at::randn({rows, k}).to(dtype);
}

// Runs f; exceptions are the expected answer to bad state.
template <class F>
void expect_no_crash(F&& f) {
  try {
    f();
  } catch (const std::exception&) {
  }
}

inline void exercise(const AffineQuantizedTensor& w, uint8_t rows) {
  expect_no_crash([&] { w.dequantize(); });
  expect_no_crash([&] { w.get_plain(); });
  expect_no_crash([&] { w.linear(linear_input(w, 1 + rows % 5), c10::nullopt); });
  expect_no_crash([&] { (void)w.repr(); });
  expect_no_crash([&] { (void)w.nbytes(); });
  // What was accepted once must be accepted again from its own state.
  AffineQuantizedTensor::setstate(w.getstate());
}

inline void exercise(const LinearActivationQuantizedTensor& a, uint8_t rows) {
  expect_no_crash([&] { a.linear(linear_input(*a.weight, 1 + rows % 5), c10::nullopt); });
  expect_no_crash([&] { a.quantize_dequantize_input(linear_input(*a.weight, 2)); });
  expect_no_crash([&] { (void)a.repr(); });
  LinearActivationQuantizedTensor::setstate(a.getstate());
}

}  // namespace fuzz
}  // namespace torchao_cpp
