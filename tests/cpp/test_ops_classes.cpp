// The ops through the dispatcher and the custom classes, including pickling
// round trips and rejection of tampered state.
#include <gtest/gtest.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <sstream>

#include "api/quant_configs.h"
#include "classes/affine_quantized_tensor.h"

using torchao_cpp::classes::AffineQuantizedTensor;
using torchao_cpp::classes::LinearActivationQuantizedTensor;

namespace {

c10::OperatorHandle op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "");
}

std::vector<c10::IValue> call(const char* name, std::vector<c10::IValue> args) {
  auto h = op(name);
  torch::jit::Stack stack(std::move(args));
  // Fill schema defaults for trailing arguments.
  const auto& schema = h.schema();
  for (size_t i = stack.size(); i < schema.arguments().size(); ++i) stack.push_back(*schema.arguments()[i].default_value());
  h.callBoxed(&stack);
  return stack;
}

c10::intrusive_ptr<AffineQuantizedTensor> make_int4(const at::Tensor& w, int64_t group) {
  std::vector<int64_t> block{1, group};
  auto qp = call("torchao_cpp::choose_qparams_affine",
                 {w, std::string("ASYMMETRIC"), block, int64_t(0), int64_t(15), 1e-6, c10::IValue(), c10::IValue(),
                  false, std::string("FLOAT")});
  auto scale = qp[0].toTensor(), zp = qp[1].toTensor();
  auto codes = call("torchao_cpp::quantize_affine", {w, block, scale, zp, at::kByte, int64_t(0), int64_t(15),
                                                     std::string("FLOAT")})[0]
                   .toTensor();
  return c10::make_intrusive<AffineQuantizedTensor>(codes, scale, zp, block, 0, 15, "FLOAT", "Int4CPULayout", "uint4",
                                                    "float32");
}

// Saves obj as an attribute of a TorchScript module and loads it back: the
// path a deployed model takes (__getstate__ / __setstate__ of def_pickle).
template <class T>
c10::intrusive_ptr<T> jit_round_trip(const c10::intrusive_ptr<T>& obj) {
  torch::jit::Module m("holder");
  c10::IValue v(obj);
  m.register_attribute("obj", v.type(), v);
  std::stringstream ss;
  m.save(ss);
  auto loaded = torch::jit::load(ss);
  return loaded.attr("obj").toCustomClass<T>();
}

double sqnr(const at::Tensor& ref, const at::Tensor& x) {
  auto r = ref.to(at::kDouble), d = (ref.to(at::kDouble) - x.to(at::kDouble));
  return 10.0 * std::log10(r.pow(2).sum().item<double>() / d.pow(2).sum().item<double>());
}

}  // namespace

TEST(Ops, SchemasAreRegistered) {
  for (const char* name : {"torchao_cpp::choose_qparams_affine", "torchao_cpp::quantize_affine",
                           "torchao_cpp::dequantize_affine", "torchao_cpp::quantize_affine_float8",
                           "torchao_cpp::dequantize_affine_float8", "torchao_cpp::choose_qparams_affine_float8",
                           "torchao_cpp::int8_asymm_per_token_quant",
                           "torchao_cpp::int8_symm_per_token_reduced_range_quant", "torchao_cpp::pack_bits",
                           "torchao_cpp::unpack_bits", "torchao_cpp::weight_only_linear",
                           "torchao_cpp::int8_dynamic_linear"}) {
    auto h = c10::Dispatcher::singleton().findSchema({name, ""});
    ASSERT_TRUE(h.has_value()) << name;
    EXPECT_TRUE(h->hasKernelForDispatchKey(c10::DispatchKey::CPU)) << name;
    EXPECT_TRUE(h->hasKernelForDispatchKey(c10::DispatchKey::Meta)) << name;
  }
}

TEST(Ops, QuantizeDequantizeInt8Symmetric) {
  torch::manual_seed(0);
  auto w = torch::randn({16, 64});
  std::vector<int64_t> block{1, 64};
  auto qp = call("torchao_cpp::choose_qparams_affine", {w, std::string("SYMMETRIC"), block, int64_t(-128), int64_t(127)});
  auto scale = qp[0].toTensor();
  // SYMMETRIC: scale = max|x| / 127.5 per row.
  EXPECT_TRUE(torch::equal(scale, std::get<0>(w.abs().max(1)) / 127.5));
  auto q = call("torchao_cpp::quantize_affine",
                {w, block, scale, qp[1].toTensor(), at::kChar, int64_t(-128), int64_t(127)})[0]
               .toTensor();
  EXPECT_EQ(q.scalar_type(), at::kChar);
  auto d = call("torchao_cpp::dequantize_affine", {q, block, scale, qp[1].toTensor(), int64_t(-128), int64_t(127)})[0]
               .toTensor();
  EXPECT_GT(sqnr(w, d), 40.0);
}

TEST(Ops, BadBlockSizeIsAValueError) {
  auto w = torch::randn({4, 10});
  try {
    call("torchao_cpp::choose_qparams_affine", {w, std::string("SYMMETRIC"), std::vector<int64_t>{1, 3}, int64_t(-8),
                                                int64_t(7)});
    FAIL() << "expected an error";
  } catch (const c10::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("does not divide input size 10"), std::string::npos) << e.what();
  }
}

TEST(Classes, AffineQuantizedTensorDequantizesAndRunsLinear) {
  torch::manual_seed(1);
  auto w = torch::randn({8, 64});
  auto aqt = make_int4(w, 32);
  EXPECT_EQ(aqt->data.sizes(), (std::vector<int64_t>{8, 32}));  // two 4-bit codes per byte
  EXPECT_EQ(aqt->data.scalar_type(), at::kByte);
  auto deq = aqt->dequantize();
  EXPECT_GT(sqnr(w, deq), 18.0);  // 4-bit groups of 32: about 20 dB on Gaussian data
  auto x = torch::randn({3, 64});
  auto y = aqt->linear(x, c10::nullopt);
  EXPECT_GT(sqnr(torch::matmul(x, deq.t()), y), 60.0);
  auto plain = std::get<0>(aqt->get_plain());
  EXPECT_EQ(plain.sizes(), w.sizes());
  EXPECT_LE(plain.max().item<int>(), 15);
}

TEST(Classes, ScaleF32IsTheScaleExactlyConvertedOnce) {
  torch::manual_seed(2);
  auto aqt = make_int4(torch::randn({8, 64}), 32);
  // A float32 scale is handed back as it is (no copy).
  EXPECT_TRUE(aqt->scale_f32().is_same(aqt->scale));
  auto codes = std::get<0>(aqt->get_plain());
  auto bf = c10::make_intrusive<AffineQuantizedTensor>(codes, aqt->scale.to(at::kBFloat16),
                                                       aqt->zero_point->to(at::kBFloat16), aqt->block_size, 0, 15,
                                                       "FLOAT", "Int4CPULayout", "uint4", "bfloat16");
  const at::Tensor& f = bf->scale_f32();
  EXPECT_EQ(f.scalar_type(), at::kFloat);
  EXPECT_TRUE(f.is_contiguous());
  EXPECT_TRUE(torch::equal(f, bf->scale.to(at::kFloat)));
  EXPECT_EQ(&bf->scale_f32(), &f);  // converted once, then the same tensor
}

TEST(Classes, PickleRoundTripIsExact) {
  torch::manual_seed(2);
  auto aqt = make_int4(torch::randn({4, 64}), 64);
  auto back = jit_round_trip(aqt);
  EXPECT_TRUE(torch::equal(back->data, aqt->data));
  EXPECT_TRUE(torch::equal(back->dequantize(), aqt->dequantize()));
  EXPECT_EQ(back->layout, "Int4CPULayout");

  auto laqt = c10::make_intrusive<LinearActivationQuantizedTensor>(aqt, "int8_asymm_per_token");
  auto l2 = jit_round_trip(laqt);
  auto x = torch::randn({2, 64});
  EXPECT_TRUE(torch::equal(l2->linear(x, c10::nullopt), laqt->linear(x, c10::nullopt)));
}

TEST(Classes, SetstateRejectsTamperedState) {
  auto aqt = make_int4(torch::randn({4, 64}), 32);
  auto expect_error = [&](AffineQuantizedTensor::State st, const std::string& fragment) {
    try {
      AffineQuantizedTensor::setstate(std::move(st));
      FAIL() << "accepted bad state; expected: " << fragment;
    } catch (const c10::Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  auto st = aqt->getstate();
  std::get<0>(st) = 99;
  expect_error(st, "unsupported state version 99");
  st = aqt->getstate();
  std::get<1>(st) = std::get<1>(st).narrow(1, 0, 10).contiguous();
  expect_error(st, "codes must have shape");
  st = aqt->getstate();
  std::get<2>(st) = torch::zeros({4, 2});
  expect_error(st, "scale must be finite and > 0");
  st = aqt->getstate();
  std::get<4>(st) = {1, 48};
  expect_error(st, "does not divide shape");
  st = aqt->getstate();
  std::get<3>(st) = c10::nullopt;
  expect_error(st, "needs a zero_point");
  st = aqt->getstate();
  std::get<10>(st) = "MadeUpLayout";
  expect_error(st, "unknown layout");
  st = aqt->getstate();
  std::get<8>(st) = 300;
  expect_error(st, "exceeds the range of uint4");
}

TEST(Registry, BuiltinConfigsQuantizeAndValidate) {
  using torchao_cpp::api::ConfigFields;
  auto fields = [] {
    return c10::impl::toTypedDict<std::string, c10::IValue>(
        c10::impl::GenericDict(c10::StringType::get(), c10::AnyType::get()));
  };
  const auto names = torchao_cpp::api::registered_configs();
  // The 10 configs of the first release, Int4DynamicActivationInt4WeightConfig, FPXWeightOnlyConfig,
  // Float8DynamicActivationFloat8SemiSparseWeightConfig and GemliteUIntXWeightOnlyConfig.
  EXPECT_EQ(names.size(), 14u);
  torch::manual_seed(3);
  auto w = torch::randn({16, 128});
  auto f = fields();
  f.insert("group_size", int64_t(32));
  f.insert("layout", std::string("Int4CPULayout"));
  auto q = torchao_cpp::api::quantize_weight(w, "Int4WeightOnlyConfig", f, "layers.0");
  ASSERT_TRUE(q.weight);
  EXPECT_EQ(q.weight->layout, "Int4CPULayout");
  EXPECT_EQ(q.weight->data.sizes(), (std::vector<int64_t>{16, 64}));
  EXPECT_GT(sqnr(w, q.weight->dequantize()), 18.0);

  auto skipped = torchao_cpp::api::quantize_weight(torch::randn({16, 48}), "Int4WeightOnlyConfig", f, "layers.1");
  EXPECT_FALSE(skipped.weight);
  EXPECT_NE(skipped.skip_reason.find("Skipping Int4WeightOnlyConfig for layers.1"), std::string::npos);

  auto dq = fields();
  auto a = torchao_cpp::api::quantize_weight(w, "Int8DynamicActivationInt8WeightConfig", dq, "fc");
  EXPECT_EQ(a.act_quant, "int8_symm_per_token_reduced_range");

  // 2:4 float8 from C++: compressed rows (5 bits per weight), per-token e5m2 activations.
  auto sp = torchao_cpp::api::quantize_weight(w, "Float8DynamicActivationFloat8SemiSparseWeightConfig", fields(), "fc");
  ASSERT_TRUE(sp.weight);
  EXPECT_EQ(sp.weight->layout, "CutlassSemiSparseLayout");
  EXPECT_EQ(sp.weight->data.sizes(), (std::vector<int64_t>{16, 80}));
  EXPECT_EQ(sp.act_quant, "float8_e5m2_per_row");

  // gemlite from C++ (float16 weights only): 4-bit HQQ codes bit-packed, float16 scales and zero points.
  auto gl = fields();
  gl.insert("group_size", int64_t(64));
  gl.insert("bit_width", int64_t(4));
  gl.insert("packing_bitwidth", int64_t(32));
  auto g4 = torchao_cpp::api::quantize_weight(w.to(torch::kHalf), "GemliteUIntXWeightOnlyConfig", gl, "fc");
  ASSERT_TRUE(g4.weight);
  EXPECT_EQ(g4.weight->layout, "GemlitePackedLayout");
  EXPECT_EQ(g4.weight->data.sizes(), (std::vector<int64_t>{16, 64}));
  EXPECT_EQ(g4.weight->scale.scalar_type(), torch::kHalf);
  EXPECT_GT(sqnr(w, g4.weight->dequantize().to(torch::kFloat)), 18.0);
  EXPECT_THROW(torchao_cpp::api::quantize_weight(w, "GemliteUIntXWeightOnlyConfig", gl, "fc"), c10::TypeError);

  // float8 x float8 from C++: a static scale travels with the weight.
  auto st = fields();
  st.insert("scale", torch::tensor(0.02));
  auto w8 = torch::randn({32, 64});
  auto f8 = torchao_cpp::api::quantize_weight(w8, "Float8StaticActivationFloat8WeightConfig", st, "fc");
  ASSERT_TRUE(f8.weight && f8.act_scale);
  EXPECT_EQ(f8.act_quant, "float8_e4m3fn_static");
  EXPECT_TRUE(f8.fast_accum);
  EXPECT_FLOAT_EQ(f8.act_scale->item<float>(), 0.02f);
  torchao_cpp::classes::LinearActivationQuantizedTensor la(f8.weight, f8.act_quant, f8.act_scale, f8.fast_accum);
  auto x = torch::randn({3, 64});
  EXPECT_GT(sqnr(torch::nn::functional::linear(x, w8), la.linear(x, c10::nullopt)), 20.0);

  auto bad = fields();
  bad.insert("group_size", int64_t(48));
  try {
    torchao_cpp::api::validate_config("Int4WeightOnlyConfig", bad);
    FAIL() << "accepted group_size 48";
  } catch (const c10::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("Int4WeightOnlyConfig.group_size must be one of [32, 64, 128, 256]"),
              std::string::npos);
  }
}

// FPXWeightOnlyConfig from C++: fp6 e3m2 codes packed 6 bits per weight, one scale per row, the CPU
// kernel's linear equal to input @ dequantized^T, pickling through TorchScript's state.
TEST(Registry, FloatxWeightOnlyFromCpp) {
  auto f = c10::impl::toTypedDict<std::string, c10::IValue>(
      c10::impl::GenericDict(c10::StringType::get(), c10::AnyType::get()));
  f.insert("ebits", int64_t(3));
  f.insert("mbits", int64_t(2));
  torch::manual_seed(5);
  const auto w = torch::randn({256, 128}).to(torch::kBFloat16);
  auto q = torchao_cpp::api::quantize_weight(w, "FPXWeightOnlyConfig", f, "fc");
  ASSERT_TRUE(q.weight);
  EXPECT_TRUE(q.act_quant.empty());
  EXPECT_EQ(q.weight->layout, "FloatxTensorCoreLayout");
  EXPECT_EQ(q.weight->code_dtype, "fp6_e3m2");
  EXPECT_EQ(q.weight->data.sizes(), (std::vector<int64_t>{256, 96}));  // 128 * 6 / 8 bytes per row
  EXPECT_EQ(q.weight->scale.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(q.weight->nbytes(), 256 * 96 + 256 * 2);
  const auto deq = q.weight->dequantize();
  EXPECT_EQ(deq.scalar_type(), torch::kBFloat16);
  EXPECT_GT(sqnr(w.to(torch::kFloat), deq.to(torch::kFloat)), 24.0);  // 26 dB measured: two mantissa bits
  const auto x = torch::randn({3, 128}).to(torch::kBFloat16);
  const auto y = q.weight->linear(x, c10::nullopt);
  EXPECT_GT(sqnr(torch::matmul(x.to(torch::kFloat), deq.to(torch::kFloat).t()), y.to(torch::kFloat)), 40.0);
  const auto back = torchao_cpp::classes::AffineQuantizedTensor::setstate(q.weight->getstate());
  EXPECT_TRUE(torch::equal(back->dequantize(), deq));
  EXPECT_NE(q.weight->repr().find("layout=FloatxTensorCoreLayout(ebits=3, mbits=2)"), std::string::npos);
  // The seed's shape rule: out_features 64 is skipped with its message.
  auto skipped = torchao_cpp::api::quantize_weight(torch::randn({64, 128}), "FPXWeightOnlyConfig", f, "fc2");
  EXPECT_FALSE(skipped.weight);
  EXPECT_NE(skipped.skip_reason.find("Skipping floatx quantization float6_3_2 because the shape is not compatible"),
            std::string::npos);
}
