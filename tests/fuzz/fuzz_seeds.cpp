// Writes the seed corpus of the fuzz targets from valid objects: one weight
// per registered config (default fields) and per layout, encoded in the
// targets' byte format. Usage: fuzz_seeds <corpus dir>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "api/quant_configs.h"
#include "fuzz_targets.h"

namespace fs = std::filesystem;
using namespace torchao_cpp;
using fuzz::Writer;

namespace {

void save(const fs::path& dir, const std::string& target, const std::string& name, const Writer& w) {
  fs::create_directories(dir / target);
  std::ofstream f(dir / target / name, std::ios::binary);
  f.write(reinterpret_cast<const char*>(w.bytes().data()), std::streamsize(w.bytes().size()));
}

void save_weight(const fs::path& dir, const std::string& name, const api::QuantizedWeight& q) {
  const auto state = q.weight->getstate();
  Writer a;
  a.u8(1);  // linear over 2 input rows
  fuzz::write_affine_state(a, state);
  save(dir, "fuzz_affine_setstate", name, a);
  Writer e;
  e.u8(0), e.u8(1), e.ivalue(c10::IValue(state));
  save(dir, "fuzz_state_dict_entry", name, e);
  if (q.act_quant.empty()) return;
  const auto act = fuzz::LinearActivationQuantizedTensor(q.weight, q.act_quant, q.act_scale, q.fast_accum).getstate();
  Writer l;
  l.u8(1);
  fuzz::write_activation_state(l, act);
  save(dir, "fuzz_activation_setstate", name, l);
  Writer le;
  le.u8(1), le.u8(1), le.ivalue(c10::IValue(act));
  save(dir, "fuzz_state_dict_entry", name + "_act", le);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fuzz_seeds <corpus dir>\n";
    return 2;
  }
  const fs::path dir(argv[1]);
  torch::manual_seed(0);
  const auto w = at::randn({32, 256});
  int written = 0;
  for (const auto& config : api::registered_configs()) {
    try {
      auto fields = c10::impl::toTypedDict<std::string, c10::IValue>(
          c10::impl::GenericDict(c10::StringType::get(), c10::AnyType::get()));
      // The fields without a default.
      if (config == "Int4WeightOnlyConfig") fields.insert("group_size", int64_t(128));
      if (config == "Int8DynamicActivationInt4WeightConfig") fields.insert("group_size", int64_t(32));
      if (config == "UIntXWeightOnlyConfig") fields.insert("dtype", std::string("uint5")), fields.insert("group_size", int64_t(64));
      if (config == "Float8StaticActivationFloat8WeightConfig") fields.insert("scale", at::full({1}, 0.05));
      // FPX: the format has no default, and layers need out_features % 256 == 0 (else skipped).
      const bool fpx = config == "FPXWeightOnlyConfig";
      if (fpx) fields.insert("ebits", int64_t(3)), fields.insert("mbits", int64_t(2));
      // gemlite: float16 weights only.
      const bool gemlite = config == "GemliteUIntXWeightOnlyConfig";
      if (gemlite)
        fields.insert("group_size", int64_t(64)), fields.insert("bit_width", int64_t(4)),
            fields.insert("packing_bitwidth", int64_t(32));
      save_weight(dir, config,
                  api::quantize_weight(fpx ? at::randn({256, 64}) : gemlite ? w.to(at::kHalf) : w, config, fields,
                                       "seed"));
      ++written;
    } catch (const std::exception& e) {
      std::cerr << "fuzz_seeds: " << config << " with default fields: " << e.what() << "\n";
    }
  }
  // 2:4 sparse codes (SemiSparseLayout), through the config that prunes them; K not a multiple of 64.
  try {
    auto fields = c10::impl::toTypedDict<std::string, c10::IValue>(
        c10::impl::GenericDict(c10::StringType::get(), c10::AnyType::get()));
    fields.insert("layout", std::string("SemiSparseLayout"));
    save_weight(dir, "semi_sparse_int8",
                api::quantize_weight(at::randn({16, 68}), "Int8DynamicActivationInt8WeightConfig", fields, "seed"));
    ++written;
  } catch (const std::exception& e) {
    std::cerr << "fuzz_seeds: semi_sparse_int8: " << e.what() << "\n";
  }
  // 2:4 sparse 4-bit codes (MarlinSparseLayout), group 128.
  try {
    auto fields = c10::impl::toTypedDict<std::string, c10::IValue>(
        c10::impl::GenericDict(c10::StringType::get(), c10::AnyType::get()));
    fields.insert("layout", std::string("MarlinSparseLayout"));
    fields.insert("group_size", int64_t(128));
    save_weight(dir, "marlin_sparse_int4",
                api::quantize_weight(at::randn({16, 256}), "Int4WeightOnlyConfig", fields, "seed"));
    ++written;
  } catch (const std::exception& e) {
    std::cerr << "fuzz_seeds: marlin_sparse_int4: " << e.what() << "\n";
  }
  // The seed's QQQ weights (MarlinQQQLayout), groups of 128, int8 symmetric activations.
  try {
    auto fields = c10::impl::toTypedDict<std::string, c10::IValue>(
        c10::impl::GenericDict(c10::StringType::get(), c10::AnyType::get()));
    fields.insert("layout", std::string("MarlinQQQLayout"));
    fields.insert("group_size", int64_t(128));
    fields.insert("act_mapping_type", std::string("SYMMETRIC"));
    save_weight(dir, "marlin_qqq_g128",
                api::quantize_weight(at::randn({128, 256}).to(at::kHalf), "Int8DynamicActivationInt4WeightConfig",
                                     fields, "seed"));
    ++written;
  } catch (const std::exception& e) {
    std::cerr << "fuzz_seeds: marlin_qqq_g128: " << e.what() << "\n";
  }
  // Every layout and a few code widths, small shapes, other float dtypes.
  struct Spec {
    const char* name;
    const char* mapping;
    std::vector<int64_t> block;
    const char* code_dtype;
    int64_t qmin, qmax;
    const char* domain;
    const char* layout;
    at::ScalarType dtype;
  };
  const std::vector<Spec> specs = {
      {"plain_int8_bf16", "SYMMETRIC", {1, 64}, "int8", -128, 127, "INT", "PlainLayout", at::kBFloat16},
      {"int4cpu_g32", "ASYMMETRIC", {1, 32}, "uint4", 0, 15, "FLOAT", "Int4CPULayout", at::kFloat},
      {"tiled_g64_f16", "ASYMMETRIC", {1, 64}, "uint4", 0, 15, "FLOAT", "TensorCoreTiledLayout", at::kHalf},
      {"uintx_u3_g16", "ASYMMETRIC", {1, 16}, "uint3", 0, 7, "INT", "UintxLayout", at::kFloat},
      {"uintx_u1_g32", "ASYMMETRIC", {1, 32}, "uint1", 0, 1, "INT", "UintxLayout", at::kFloat},
      {"intx_i5_g32", "SYMMETRIC", {1, 32}, "int5", -16, 15, "INT", "PackedLinearInt8DynamicActivationIntxWeightLayout",
       at::kFloat},
      {"qdq_i4", "SYMMETRIC", {1, 64}, "int4", -8, 7, "INT", "QDQLayout", at::kFloat},
      {"float8_e5m2", "SYMMETRIC", {1, 64}, "float8_e5m2", 0, 0, "NONE", "Float8Layout", at::kFloat},
      {"floatx_fp6_e3m2_f16", "SYMMETRIC", {1, 64}, "fp6_e3m2", 0, 63, "NONE", "FloatxTensorCoreLayout", at::kHalf},
  };
  for (const auto& s : specs) {
    try {
      const bool f8 = std::string(s.layout) == "Float8Layout";
      api::QuantizedWeight q;
      q.weight = api::affine_quantize(at::randn({16, 64}).to(s.dtype), s.mapping, s.block, s.code_dtype, s.qmin, s.qmax,
                                      f8 ? c10::nullopt : c10::optional<double>(1e-6), c10::nullopt, c10::nullopt,
                                      std::string(s.domain) != "FLOAT", s.domain, s.layout);
      save_weight(dir, s.name, q);
      ++written;
    } catch (const std::exception& e) {
      std::cerr << "fuzz_seeds: " << s.name << ": " << e.what() << "\n";
    }
  }
  // Unpacker seeds: each bit width over a packed row.
  for (int bits = 1; bits <= 8; ++bits) {
    Writer u;
    u.u8(uint8_t(bits)), u.i64(0), u.i64(64), u.u8(3);  // cols 64, uint8 output
    u.tensor(at::randint(0, 256, {2, (64 * bits + 7) / 8}, at::kByte));
    save(dir, "fuzz_unpack", "bits" + std::to_string(bits), u);
  }
  std::cout << "fuzz_seeds: " << written << " weights written to " << dir << "\n";
  return written > 0 ? 0 : 1;
}
