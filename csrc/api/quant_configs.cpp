#include "quant_configs.h"

#include <torch/library.h>

#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

#include "../classes/layout.h"
#include "../kernels/cpu/floatx.h"
#include "../ops/floatx.h"
#include "../ops/quant_primitives.h"

namespace torchao_cpp {
namespace api {

namespace {

struct Entry {
  ConfigValidator validate;
  QuantizeHandler handler;
  int64_t max_weight_dim = 2;
};

std::map<std::string, Entry>& registry() {
  static std::map<std::string, Entry> r;
  return r;
}
std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}

const Entry& lookup(const std::string& config_type) {
  std::lock_guard<std::mutex> g(registry_mutex());
  auto it = registry().find(config_type);
  TORCH_CHECK_NOT_IMPLEMENTED(it != registry().end(), "no quantization handler is registered for config type '",
                              config_type, "'");
  return it->second;
}

// Python's name for what a field holds, for error messages.
std::string kind_name(const c10::IValue& v) {
  if (v.isString()) return "str '" + v.toStringRef() + "'";
  if (v.isBool()) return v.toBool() ? "bool True" : "bool False";
  if (v.isInt()) return "int " + std::to_string(v.toInt());
  if (v.isDouble()) return "float";
  if (v.isNone()) return "None";
  if (v.isList()) return "list";
  return v.tagKind();
}

// Typed, named access to a config's fields: every error names Config.field.
class Fields {
 public:
  Fields(const std::string& config, const ConfigFields& d, std::set<std::string> known) : config_(config), d_(d) {
    for (const auto& kv : d_)
      TORCH_CHECK_VALUE(known.count(kv.key()), config_, " has no field '", kv.key(), "'");
  }
  std::string name(const std::string& f) const { return config_ + "." + f; }
  bool has(const std::string& f) const { return d_.contains(f) && !d_.at(f).isNone(); }
  int64_t get_int(const std::string& f) const {
    const auto v = at(f);
    TORCH_CHECK_TYPE(v.isInt(), name(f), " must be int, got ", kind_name(v));
    return v.toInt();
  }
  c10::optional<int64_t> get_opt_int(const std::string& f) const {
    if (!has(f)) return c10::nullopt;
    return get_int(f);
  }
  bool get_bool(const std::string& f, bool dflt) const {
    if (!has(f)) return dflt;
    const auto v = at(f);
    TORCH_CHECK_TYPE(v.isBool(), name(f), " must be bool, got ", kind_name(v));
    return v.toBool();
  }
  std::string get_str(const std::string& f, const std::string& dflt) const {
    if (!has(f)) return dflt;
    const auto v = at(f);
    TORCH_CHECK_TYPE(v.isString(), name(f), " must be a name (str), got ", kind_name(v));
    return v.toStringRef();
  }
  // A list of names (the Python side sends a tuple of granularities so).
  c10::optional<std::vector<std::string>> get_opt_str_list(const std::string& f) const {
    if (!has(f) || !at(f).isList()) return c10::nullopt;
    std::vector<std::string> out;
    for (const auto& e : at(f).toListRef()) {
      TORCH_CHECK_TYPE(e.isString(), name(f), " must hold names (str), got ", kind_name(e));
      out.push_back(e.toStringRef());
    }
    return out;
  }
  bool is_list(const std::string& f) const { return has(f) && at(f).isList(); }
  at::Tensor get_tensor(const std::string& f) const {
    const auto v = at(f);
    TORCH_CHECK_TYPE(v.isTensor(), name(f), " must be a torch.Tensor, got ", kind_name(v));
    return v.toTensor();
  }
  c10::optional<std::string> get_opt_str(const std::string& f) const {
    if (!has(f)) return c10::nullopt;
    return get_str(f, "");
  }
  std::string get_choice(const std::string& f, const std::string& dflt, const std::vector<std::string>& choices) const {
    const auto v = get_str(f, dflt);
    for (const auto& c : choices)
      if (v == c) return v;
    std::ostringstream os;
    for (size_t i = 0; i < choices.size(); ++i) os << (i ? ", " : "") << choices[i];
    TORCH_CHECK_VALUE(false, name(f), " must be one of ", os.str(), ", got ", v);
  }

 private:
  c10::IValue at(const std::string& f) const {
    TORCH_CHECK_VALUE(d_.contains(f), config_, ": missing field '", f, "'");
    return d_.at(f);
  }
  std::string config_;
  const ConfigFields& d_;
};

const std::vector<std::string> kSymOrAsym = {"SYMMETRIC", "ASYMMETRIC"};
constexpr double kFp32Eps = std::numeric_limits<float>::epsilon();

at::ScalarType float_dtype(const Fields& f, const std::string& field, const std::string& value) {
  if (value == "float32") return at::kFloat;
  if (value == "bfloat16") return at::kBFloat16;
  if (value == "float16") return at::kHalf;
  TORCH_CHECK_VALUE(false, f.name(field), " must be float32, bfloat16 or float16, got ", value);
}

std::vector<int64_t> block_for(const at::Tensor& w, c10::optional<int64_t> group_size) {
  std::vector<int64_t> b(w.dim(), 1);
  b.back() = group_size.value_or(w.size(-1));
  return b;
}

// The seed skips (and logs) layers whose in_features the group size does not divide.
bool group_fits(const at::Tensor& w, c10::optional<int64_t> group_size, const std::string& config,
                const std::string& fqn, QuantizedWeight& out) {
  if (!group_size || w.size(-1) % *group_size == 0) return true;
  std::ostringstream os;
  os << "Skipping " << config << " for " << (fqn.empty() ? "<root>" : fqn) << ": in_features of weight "
     << w.sizes() << " is not divisible by group_size " << *group_size;
  out.skip_reason = os.str();
  return false;
}

// Why the seed's hardware-named layouts are refused here (empty for other names).
std::string layout_note(const std::string& layout) {
  if (layout == "SemiSparseLayout")
    return " (2:4 semi-structured sparsity: SemiSparseLayout with Int8DynamicActivationInt8WeightConfig)";
  if (layout == "CutlassSemiSparseLayout")
    return " (2:4 sparse float8: CutlassSemiSparseLayout with Float8DynamicActivationFloat8SemiSparseWeightConfig)";
  if (layout == "MarlinSparseLayout") return " (2:4 sparse int4: MarlinSparseLayout with Int4WeightOnlyConfig)";
  if (layout == "MarlinQQQLayout")
    return " (the Marlin QQQ format: MarlinQQQLayout with Int8DynamicActivationInt4WeightConfig)";
  return "";
}

std::string act_quant_for(const std::string& act_mapping_type) {
  return act_mapping_type == "ASYMMETRIC" ? "int8_asymm_per_token" : "int8_symm_per_token_reduced_range";
}

// HQQ-optimised asymmetric codes in [0, 2^nbits - 1] with FLOAT-domain zero
// points in `compute_dtype` (the seed's use_hqq=True path of to_affine_quantized_intx).
c10::intrusive_ptr<classes::AffineQuantizedTensor> hqq_quantize(const at::Tensor& weight, int nbits,
                                                                int64_t group_size, at::ScalarType compute_dtype,
                                                                const std::string& layout);

// The seed's Marlin QQQ weights (choose_qparams_and_quantize_affine_qqq, 4 bits): int4 codes with the
// scale that dequantize_affine_qqq multiplies them by; group_size 128 or in_features.
c10::intrusive_ptr<classes::AffineQuantizedTensor> qqq_quantize(const at::Tensor& weight, int64_t group_size);

// --- Int8WeightOnlyConfig ------------------------------------------------------
const std::set<std::string> kInt8WoFields = {"group_size", "set_inductor_config"};
void validate_int8_wo(const ConfigFields& d) {
  Fields f("Int8WeightOnlyConfig", d, kInt8WoFields);
  if (auto g = f.get_opt_int("group_size")) TORCH_CHECK_VALUE(*g >= 1, f.name("group_size"), " must be >= 1, got ", *g);
  f.get_bool("set_inductor_config", true);
}
QuantizedWeight quantize_int8_wo(const at::Tensor& w, const ConfigFields& d, const std::string& fqn) {
  Fields f("Int8WeightOnlyConfig", d, kInt8WoFields);
  QuantizedWeight out;
  const auto g = f.get_opt_int("group_size");
  if (!group_fits(w, g, "Int8WeightOnlyConfig", fqn, out)) return out;
  out.weight = affine_quantize(w, "SYMMETRIC", block_for(w, g), "int8", -128, 127, kFp32Eps, c10::nullopt, at::kLong,
                               true, "INT", "PlainLayout");
  return out;
}

// --- Int4WeightOnlyConfig ------------------------------------------------------
const std::set<std::string> kInt4WoFields = {"group_size", "layout", "use_hqq", "zero_point_domain",
                                             "set_inductor_config"};
void validate_int4_wo(const ConfigFields& d) {
  Fields f("Int4WeightOnlyConfig", d, kInt4WoFields);
  const auto g = f.get_int("group_size");
  TORCH_CHECK_VALUE(g == 32 || g == 64 || g == 128 || g == 256, f.name("group_size"),
                    " must be one of [32, 64, 128, 256], got ", g);
  const auto layout = f.get_str("layout", "TensorCoreTiledLayout");
  TORCH_CHECK_NOT_IMPLEMENTED(layout == "TensorCoreTiledLayout" || layout == "Int4CPULayout" || layout == "Int4XPULayout" ||
                                  layout == "MarlinSparseLayout",
                              f.name("layout"), " ", layout, ": supported layouts are TensorCoreTiledLayout, "
                              "Int4CPULayout, Int4XPULayout and MarlinSparseLayout", layout_note(layout));
  const bool hqq = f.get_bool("use_hqq", false);
  const auto zpd = f.get_choice("zero_point_domain", "NONE", {"NONE", "FLOAT", "INT"});
  if (layout == "MarlinSparseLayout") {
    // The seed's LAYOUT_TO_ZERO_POINT_DOMAIN: Marlin's symmetric codes have INT zero points only.
    TORCH_CHECK_NOT_IMPLEMENTED(zpd != "FLOAT", f.name("zero_point_domain"),
                                "=FLOAT is not supported by MarlinSparseLayout (it uses the INT domain)");
    TORCH_CHECK_NOT_IMPLEMENTED(!hqq, f.name("use_hqq"), "=True is not supported with MarlinSparseLayout (HQQ's "
                                "zero points are FLOAT-domain, Marlin's symmetric INT)");
    f.get_bool("set_inductor_config", true);
    return;
  }
  TORCH_CHECK_NOT_IMPLEMENTED(zpd != "INT", f.name("zero_point_domain"), "=INT is not supported by ", layout,
                              layout == "Int4XPULayout" ? " here (the integer zero points of the seed's XPU kernel; "
                                                          "the default FLOAT domain is)"
                                                        : " (it uses the FLOAT domain)");
  f.get_bool("set_inductor_config", true);
}
QuantizedWeight quantize_int4_wo(const at::Tensor& w, const ConfigFields& d, const std::string& fqn) {
  Fields f("Int4WeightOnlyConfig", d, kInt4WoFields);
  QuantizedWeight out;
  const auto g = f.get_int("group_size");
  if (!group_fits(w, g, "Int4WeightOnlyConfig", fqn, out)) return out;
  const auto layout = f.get_str("layout", "TensorCoreTiledLayout");
  if (layout == "MarlinSparseLayout") {
    if (w.dim() != 2 || w.size(1) % 4 != 0) {
      std::ostringstream os;
      os << "Skipping Int4WeightOnlyConfig(layout=MarlinSparseLayout) for " << (fqn.empty() ? "<root>" : fqn)
         << ": weight " << w.sizes() << " is not a 2-d weight with in_features a multiple of 4 (2:4 sparsity prunes "
         << "groups of 4)";
      out.skip_reason = os.str();
      return out;
    }
    TORCH_CHECK_VALUE(g == 128 || g == w.size(-1), f.name("group_size"),
                      ": MarlinSparseLayout only supports 128 group size or per channel quantization, got ", g);
    // The seed's MarlinSparseLayout.pre_process (inject_24: mask_creator's 2:4 pruning), then symmetric
    // codes in [0, 15] around the INT zero point 8 (bfloat16), scales in the weight's dtype.
    out.weight = affine_quantize(ops::prune_2to4(w.cpu()).to(w.device()), "SYMMETRIC", block_for(w, g), "uint4", 0, 15,
                                 1e-6, c10::nullopt, at::kBFloat16, true, "INT", layout);
    return out;
  }
  // The seed: zero points in the weight's dtype for Int4CPULayout, bfloat16 for tinygemm.
  const auto zp_dtype = layout == "Int4CPULayout" ? w.scalar_type() : at::kBFloat16;
  if (f.get_bool("use_hqq", false)) {
    out.weight = hqq_quantize(w, 4, g, zp_dtype, layout);
    return out;
  }
  out.weight = affine_quantize(w, "ASYMMETRIC", block_for(w, g), "uint4", 0, 15, 1e-6, c10::nullopt, zp_dtype, false,
                               "FLOAT", layout);
  return out;
}

// --- Int8DynamicActivationInt8WeightConfig ---------------------------------------------
const std::set<std::string> kInt8DqFields = {"layout", "act_mapping_type", "weight_only_decode", "set_inductor_config"};
void validate_int8_dq(const ConfigFields& d) {
  Fields f("Int8DynamicActivationInt8WeightConfig", d, kInt8DqFields);
  f.get_choice("act_mapping_type", "SYMMETRIC", kSymOrAsym);
  const auto layout = f.get_str("layout", "PlainLayout");
  TORCH_CHECK_NOT_IMPLEMENTED(layout == "PlainLayout" || layout == "SemiSparseLayout", f.name("layout"), " ", layout,
                              ": supported layouts are PlainLayout and SemiSparseLayout", layout_note(layout));
  f.get_bool("weight_only_decode", false);
  f.get_bool("set_inductor_config", true);
}
QuantizedWeight quantize_int8_dq(const at::Tensor& w, const ConfigFields& d, const std::string& fqn) {
  Fields f("Int8DynamicActivationInt8WeightConfig", d, kInt8DqFields);
  QuantizedWeight out;
  if (w.size(-1) <= 16) {
    out.skip_reason = "Skipping Int8DynamicActivationInt8WeightConfig for " + (fqn.empty() ? std::string("<root>") : fqn) +
                      ": in_features " + std::to_string(w.size(-1)) + " <= 16";
    return out;
  }
  const auto layout = f.get_str("layout", "PlainLayout");
  at::Tensor src = w;
  if (layout == "SemiSparseLayout") {
    if (w.dim() != 2 || w.size(1) % 4 != 0) {
      std::ostringstream os;
      os << "Skipping Int8DynamicActivationInt8WeightConfig(layout=SemiSparseLayout) for "
         << (fqn.empty() ? "<root>" : fqn) << ": weight " << w.sizes()
         << " is not a 2-d weight with in_features a multiple of 4 (2:4 sparsity prunes groups of 4)";
      out.skip_reason = os.str();
      return out;
    }
    // The seed's SemiSparseLayout.pre_process: 2:4 pruning before the scales are chosen.
    src = ops::prune_2to4(w.cpu()).to(w.device());
  }
  out.weight = affine_quantize(src, "SYMMETRIC", block_for(w, c10::nullopt), "int8", -128, 127, kFp32Eps, c10::nullopt,
                               at::kLong, true, "NONE", layout);
  out.act_quant = f.get_bool("weight_only_decode", false)
                      ? "int8_symm_per_token_reduced_range_noop_decode"
                      : act_quant_for(f.get_choice("act_mapping_type", "SYMMETRIC", kSymOrAsym));
  return out;
}

// --- Int8DynamicActivationInt4WeightConfig ---------------------------------------------
const std::set<std::string> kInt8Int4Fields = {"group_size", "layout", "mapping_type", "act_mapping_type",
                                               "set_inductor_config"};
// group_size None or -1 means per channel (the seed's transform).
c10::optional<int64_t> group_8da4w(const Fields& f) {
  const auto g = f.get_opt_int("group_size");
  if (!g || *g == -1) return c10::nullopt;
  TORCH_CHECK_VALUE(*g >= 1, f.name("group_size"), " must be >= 1, -1 or None, got ", *g);
  return g;
}
void validate_8da4w(const ConfigFields& d) {
  Fields f("Int8DynamicActivationInt4WeightConfig", d, kInt8Int4Fields);
  group_8da4w(f);
  f.get_choice("mapping_type", "SYMMETRIC", kSymOrAsym);
  f.get_choice("act_mapping_type", "ASYMMETRIC", kSymOrAsym);
  const auto layout = f.get_str("layout", "PlainLayout");
  TORCH_CHECK_NOT_IMPLEMENTED(layout == "PlainLayout" || layout == "MarlinQQQLayout", f.name("layout"), " ", layout,
                              ": only PlainLayout and MarlinQQQLayout", layout_note(layout));
  f.get_bool("set_inductor_config", true);
}
QuantizedWeight quantize_8da4w(const at::Tensor& w, const ConfigFields& d, const std::string& fqn) {
  const std::string c = "Int8DynamicActivationInt4WeightConfig";
  Fields f(c, d, kInt8Int4Fields);
  QuantizedWeight out;
  const auto g = group_8da4w(f);
  if (!group_fits(w, g, c, fqn, out)) return out;
  out.act_quant = act_quant_for(f.get_choice("act_mapping_type", "ASYMMETRIC", kSymOrAsym));
  if (f.get_str("layout", "PlainLayout") == "MarlinQQQLayout") {
    const int64_t N = w.size(0), K = w.size(1), gs = g.value_or(K);
    TORCH_CHECK_VALUE(gs == 128 || gs == K, c, ": MarlinQQQLayout takes group_size 128 or per channel (-1 or "
                      "in_features), got ", gs, " for '", fqn, "' with in_features ", K);
    // The seed's Marlin QQQ kernel tiles (thread_k, thread_n): one must divide (in_features, out_features).
    const bool tiles = (K % 64 == 0 && N % 256 == 0) || (K % 128 == 0 && N % 128 == 0) ||
                       (K % 128 == 0 && N % 64 == 0) || (K % 64 == 0 && N % 128 == 0);
    TORCH_CHECK_VALUE(tiles, c, ": MarlinQQQLayout needs in_features a multiple of 64 and out_features a multiple of "
                      "128 (or in_features % 128 == 0 and out_features % 64 == 0, or 64 and 256), as the seed's Marlin "
                      "QQQ kernel; '", fqn, "' has in_features ", K, " and out_features ", N);
    out.weight = qqq_quantize(w, gs);
    return out;
  }
  out.weight = affine_quantize(w, f.get_choice("mapping_type", "SYMMETRIC", kSymOrAsym), block_for(w, g), "int4", -8, 7,
                               kFp32Eps, c10::nullopt, c10::nullopt, true, "INT", "PlainLayout");
  return out;
}

// --- Int4DynamicActivationInt4WeightConfig ---------------------------------------------
// The seed refuses (NotImplementedError) any layout but CutlassInt4PackedLayout
// and asymmetric weights or activations; so does this project, at construction.
const std::set<std::string> kInt4Int4Fields = {"layout", "mapping_type", "act_mapping_type", "set_inductor_config"};
void validate_4da4w(const ConfigFields& d) {
  Fields f("Int4DynamicActivationInt4WeightConfig", d, kInt4Int4Fields);
  const auto layout = f.get_str("layout", "CutlassInt4PackedLayout");
  TORCH_CHECK_NOT_IMPLEMENTED(layout == "CutlassInt4PackedLayout", f.name("layout"),
                              ": only CutlassInt4PackedLayout layout is supported, received ", layout, "()");
  TORCH_CHECK_NOT_IMPLEMENTED(f.get_choice("mapping_type", "SYMMETRIC", kSymOrAsym) == "SYMMETRIC",
                              f.name("mapping_type"), ": only mapping_type=SYMMETRIC is supported");
  TORCH_CHECK_NOT_IMPLEMENTED(f.get_choice("act_mapping_type", "SYMMETRIC", kSymOrAsym) == "SYMMETRIC",
                              f.name("act_mapping_type"), ": only act_mapping_type=SYMMETRIC is supported");
  f.get_bool("set_inductor_config", true);
}
QuantizedWeight quantize_4da4w(const at::Tensor& w, const ConfigFields& d, const std::string&) {
  validate_4da4w(d);
  QuantizedWeight out;
  // _int4_symm_cutlass_quant, for the weight as for the activations: per row, [-8, 7], float32 scales, no zero point.
  out.weight = affine_quantize(w, "SYMMETRIC", block_for(w, c10::nullopt), "int4", -8, 7, kFp32Eps, at::kFloat,
                               c10::nullopt, true, "NONE", "CutlassInt4PackedLayout");
  out.act_quant = "int4_symm_per_token";
  return out;
}

// --- IntxWeightOnlyConfig / Int8DynamicActivationIntxWeightConfig ----------------------------
int intx_bits(const Fields& f, const std::string& field) {
  const auto v = f.get_str(field, "int8");
  for (int bits = 1; bits <= 8; ++bits)
    if (v == "int" + std::to_string(bits)) return bits;
  TORCH_CHECK_VALUE(false, f.name(field), " must be one of int1..int8, got ", v);
}

c10::optional<int64_t> intx_group(const Fields& f, const std::string& field) {
  const auto gran = f.get_choice(field, "PerAxis", {"PerGroup", "PerAxis"});
  if (gran == "PerAxis") {
    const auto axis = f.get_opt_int("axis").value_or(0);
    TORCH_CHECK_VALUE(axis == 0, f.name(field), " must be PerGroup(group_size) or PerAxis(0), got PerAxis(", axis, ")");
    return c10::nullopt;
  }
  const auto g = f.get_int("group_size");
  TORCH_CHECK_VALUE(g >= 1, f.name(field), " group_size must be >= 1, got ", g);
  return g;
}

c10::intrusive_ptr<classes::AffineQuantizedTensor> intx_weight(const at::Tensor& w, const Fields& f, int bits,
                                                                c10::optional<int64_t> g, const std::string& mapping,
                                                                const std::string& scale_dtype_field,
                                                                const std::string& layout) {
  c10::optional<at::ScalarType> sdt;
  if (auto s = f.get_opt_str(scale_dtype_field)) sdt = float_dtype(f, scale_dtype_field, *s);
  const int64_t qmin = -(int64_t(1) << (bits - 1)), qmax = (int64_t(1) << (bits - 1)) - 1;
  return affine_quantize(w, mapping, block_for(w, g), "int" + std::to_string(bits), qmin, qmax, c10::nullopt, sdt,
                         at::kChar, true, "INT", layout);
}

const std::set<std::string> kIntxWoFields = {"weight_dtype", "granularity", "group_size", "axis", "mapping_type",
                                             "scale_dtype", "layout"};
void validate_intx_wo(const ConfigFields& d) {
  Fields f("IntxWeightOnlyConfig", d, kIntxWoFields);
  intx_bits(f, "weight_dtype");
  intx_group(f, "granularity");
  f.get_choice("mapping_type", "SYMMETRIC", kSymOrAsym);
  if (auto s = f.get_opt_str("scale_dtype")) float_dtype(f, "scale_dtype", *s);
  const auto layout = f.get_str("layout", "QDQLayout");
  TORCH_CHECK_NOT_IMPLEMENTED(layout == "QDQLayout", f.name("layout"), " ", layout, ": only QDQLayout");
}
QuantizedWeight quantize_intx_wo(const at::Tensor& w, const ConfigFields& d, const std::string& fqn) {
  Fields f("IntxWeightOnlyConfig", d, kIntxWoFields);
  QuantizedWeight out;
  const auto g = intx_group(f, "granularity");
  if (!group_fits(w, g, "IntxWeightOnlyConfig", fqn, out)) return out;
  out.weight = intx_weight(w, f, intx_bits(f, "weight_dtype"), g, f.get_choice("mapping_type", "SYMMETRIC", kSymOrAsym),
                           "scale_dtype", "QDQLayout");
  return out;
}

const std::set<std::string> kInt8IntxFields = {
    "weight_dtype", "weight_granularity", "group_size", "axis", "weight_zero_point_domain", "weight_mapping_type",
    "weight_scale_dtype", "act_mapping_type", "layout", "layout_target"};
const std::vector<std::string> kPackedTargets = {"auto", "universal", "kleidiai", "aten"};
void validate_8daintx(const ConfigFields& d) {
  Fields f("Int8DynamicActivationIntxWeightConfig", d, kInt8IntxFields);
  intx_bits(f, "weight_dtype");
  intx_group(f, "weight_granularity");
  f.get_choice("weight_mapping_type", "SYMMETRIC", kSymOrAsym);
  f.get_choice("act_mapping_type", "ASYMMETRIC", kSymOrAsym);
  if (auto s = f.get_opt_str("weight_scale_dtype")) float_dtype(f, "weight_scale_dtype", *s);
  const auto zpd = f.get_choice("weight_zero_point_domain", "INT", {"INT", "NONE"});
  TORCH_CHECK_NOT_IMPLEMENTED(zpd == "INT", f.name("weight_zero_point_domain"), "=", zpd,
                              ": only integer zero points are supported");
  const auto layout = f.get_choice("layout", "QDQLayout",
                                   {"QDQLayout", "PackedLinearInt8DynamicActivationIntxWeightLayout"});
  if (layout != "QDQLayout") f.get_choice("layout_target", "auto", kPackedTargets);
}
QuantizedWeight quantize_8daintx(const at::Tensor& w, const ConfigFields& d, const std::string& fqn) {
  Fields f("Int8DynamicActivationIntxWeightConfig", d, kInt8IntxFields);
  QuantizedWeight out;
  const auto g = intx_group(f, "weight_granularity");
  if (!group_fits(w, g, "Int8DynamicActivationIntxWeightConfig", fqn, out)) return out;
  out.weight = intx_weight(w, f, intx_bits(f, "weight_dtype"), g,
                           f.get_choice("weight_mapping_type", "SYMMETRIC", kSymOrAsym), "weight_scale_dtype",
                           f.get_str("layout", "QDQLayout"));
  out.act_quant = act_quant_for(f.get_choice("act_mapping_type", "ASYMMETRIC", kSymOrAsym));
  return out;
}

// --- UIntXWeightOnlyConfig ---------------------------------------------------------
const std::set<std::string> kUintxFields = {"dtype", "group_size", "pack_dim", "use_hqq", "set_inductor_config"};
int uintx_bits(const Fields& f) {
  const auto v = f.get_str("dtype", "");
  const bool ok = v.size() == 5 && v.rfind("uint", 0) == 0 && v[4] >= '1' && v[4] <= '7';
  TORCH_CHECK_VALUE(ok, f.name("dtype"), " must be one of uint1..uint7, got ", v.empty() ? "None" : v);
  return v[4] - '0';
}
void validate_uintx(const ConfigFields& d) {
  Fields f("UIntXWeightOnlyConfig", d, kUintxFields);
  uintx_bits(f);
  const auto g = f.get_int("group_size");
  TORCH_CHECK_VALUE(g >= 1, f.name("group_size"), " must be >= 1, got ", g);
  const auto pd = f.get_opt_int("pack_dim").value_or(-1);
  TORCH_CHECK_NOT_IMPLEMENTED(pd == -1, f.name("pack_dim"), "=", pd, ": only -1 is supported");
  f.get_bool("use_hqq", false);
  f.get_bool("set_inductor_config", true);
}
QuantizedWeight quantize_uintx(const at::Tensor& w, const ConfigFields& d, const std::string& fqn) {
  Fields f("UIntXWeightOnlyConfig", d, kUintxFields);
  QuantizedWeight out;
  const auto g = f.get_int("group_size");
  if (!group_fits(w, g, "UIntXWeightOnlyConfig", fqn, out)) return out;
  const int bits = uintx_bits(f);
  if (f.get_bool("use_hqq", false)) {
    // The seed: HQQ codes in PlainLayout (one byte each), zero points in the weight's dtype.
    out.weight = hqq_quantize(w, bits, g, w.scalar_type(), "PlainLayout");
    return out;
  }
  out.weight = affine_quantize(w, "ASYMMETRIC", block_for(w, g), "uint" + std::to_string(bits), 0,
                               (int64_t(1) << bits) - 1, kFp32Eps, c10::nullopt, at::kInt, true, "INT", "UintxLayout");
  return out;
}

// --- GemliteUIntXWeightOnlyConfig ---------------------------------------------------
// The seed's gemlite config (get_gemlite_aqt_kwargs): 4-bit codes are HQQ-optimised, asymmetric,
// per group, with float16 FLOAT-domain zero points; 8-bit codes are symmetric int8 per channel
// (eps 1e-5, no zero point). Codes are bit-packed along rows and run this project's weight-only
// kernels; gemlite's Triton packing (packing_bitwidth, contiguous) has no meaning here.
const std::set<std::string> kGemliteFields = {"group_size", "bit_width", "packing_bitwidth", "contiguous",
                                              "set_inductor_config"};
void validate_gemlite(const ConfigFields& d) {
  Fields f("GemliteUIntXWeightOnlyConfig", d, kGemliteFields);
  const auto bits = f.get_int("bit_width");
  TORCH_CHECK_VALUE(bits == 4 || bits == 8, f.name("bit_width"), " must be 4 or 8 (gemlite's bit widths), got ", bits);
  const auto pb = f.get_int("packing_bitwidth");
  TORCH_CHECK_VALUE(pb == 8 || pb == 16 || pb == 32, f.name("packing_bitwidth"), " must be 8, 16 or 32, got ", pb);
  if (auto g = f.get_opt_int("group_size")) {
    TORCH_CHECK_VALUE(*g == 32 || *g == 64 || *g == 128 || *g == 256 || *g == 512 || *g == 1024, f.name("group_size"),
                      " must be one of 32, 64, 128, 256, 512, 1024 or None, got ", *g);
    TORCH_CHECK_VALUE(bits != 8, f.name("group_size"), " must be None (per channel) for bit_width=8, got ", *g);
  }
  f.get_bool("contiguous", false);
  f.get_bool("set_inductor_config", true);
}
QuantizedWeight quantize_gemlite(const at::Tensor& w, const ConfigFields& d, const std::string& fqn) {
  const std::string c = "GemliteUIntXWeightOnlyConfig";
  Fields f(c, d, kGemliteFields);
  TORCH_CHECK_TYPE(w.scalar_type() == at::kHalf, c, ": gemlite only works with float16 weights, the weight of '", fqn,
                   "' is ", w.scalar_type(), " (convert the model with .half() first)");
  QuantizedWeight out;
  const auto g = f.get_opt_int("group_size");
  if (!group_fits(w, g, c, fqn, out)) return out;
  if (f.get_int("bit_width") == 4) {
    out.weight = hqq_quantize(w, 4, g.value_or(w.size(-1)), at::kHalf, "GemlitePackedLayout");
    return out;
  }
  out.weight = affine_quantize(w, "SYMMETRIC", block_for(w, c10::nullopt), "int8", -128, 127, 1e-5, c10::nullopt,
                               c10::nullopt, true, "NONE", "GemlitePackedLayout");
  return out;
}

// --- Float8WeightOnlyConfig ---------------------------------------------------------
const std::set<std::string> kFp8WoFields = {"weight_dtype", "set_inductor_config"};
void validate_fp8_wo(const ConfigFields& d) {
  Fields f("Float8WeightOnlyConfig", d, kFp8WoFields);
  f.get_choice("weight_dtype", "float8_e4m3fn", {"float8_e4m3fn", "float8_e5m2"});
  f.get_bool("set_inductor_config", true);
}
QuantizedWeight quantize_fp8_wo(const at::Tensor& w, const ConfigFields& d, const std::string&) {
  Fields f("Float8WeightOnlyConfig", d, kFp8WoFields);
  QuantizedWeight out;
  const auto dt = f.get_choice("weight_dtype", "float8_e4m3fn", {"float8_e4m3fn", "float8_e5m2"});
  out.weight = affine_quantize(w, "SYMMETRIC", block_for(w, c10::nullopt), dt, 0, 0, c10::nullopt, c10::nullopt,
                               c10::nullopt, true, "NONE", "Float8Layout");
  return out;
}

// --- FPXWeightOnlyConfig ---------------------------------------------------------------
// Float-x weights (sign, ebits exponent bits, mbits mantissa bits, no Inf/NaN codes) with one scale per
// row: the seed's fp6-llm config. The seed runs it on CUDA tensor cores only; here the CPU kernel reads
// the bit-packed codes (N = 1 + ebits + mbits bits per weight).
const std::set<std::string> kFpxFields = {"ebits", "mbits", "set_inductor_config"};
std::pair<int, int> fpx_format(const Fields& f) {
  const auto e = f.get_int("ebits");
  const auto m = f.get_int("mbits");
  TORCH_CHECK_VALUE(e >= 1, f.name("ebits"), " must be >= 1, got ", e);
  TORCH_CHECK_VALUE(m >= 0, f.name("mbits"), " must be >= 0, got ", m);
  TORCH_CHECK_VALUE(kernels::floatx_format_valid(e, m), f.name("ebits"), " + ", f.name("mbits"),
                    " + 1 (the sign) must be <= 8 bits, got ebits=", e, ", mbits=", m);
  return {int(e), int(m)};
}
void validate_fpx(const ConfigFields& d) {
  Fields f("FPXWeightOnlyConfig", d, kFpxFields);
  fpx_format(f);
  f.get_bool("set_inductor_config", true);
}
QuantizedWeight quantize_fpx(const at::Tensor& w, const ConfigFields& d, const std::string& fqn) {
  Fields f("FPXWeightOnlyConfig", d, kFpxFields);
  const auto fmt = fpx_format(f);
  QuantizedWeight out;
  TORCH_CHECK_VALUE(w.dim() == 2, "FPXWeightOnlyConfig: floatx only works for 2-d Tensor, got: ", w.dim());
  const int64_t out_dim = w.size(0), in_dim = w.size(1);
  // The seed's shape rule (its CUDA kernel's tiles), kept so that the same layers are quantized.
  if (in_dim % 64 != 0 || out_dim % 256 != 0) {
    std::ostringstream os;
    os << "Skipping floatx quantization float" << fmt.first + fmt.second + 1 << "_" << fmt.first << "_" << fmt.second
       << " because the shape is not compatible with the kernel: in_dim=" << in_dim << ", out_dim=" << out_dim
       << " expected in_dim % 64 == 0 and out_dim % 256 == 0 (layer '" << (fqn.empty() ? "<root>" : fqn)
       << "' stays in float)";
    out.skip_reason = os.str();
    return out;
  }
  const auto name = kernels::floatx_name(fmt.first, fmt.second);
  out.weight = affine_quantize(w, "SYMMETRIC", {1, in_dim}, name, 0, (int64_t(1) << (1 + fmt.first + fmt.second)) - 1,
                               c10::nullopt, c10::nullopt, c10::nullopt, true, "NONE", "FloatxTensorCoreLayout");
  return out;
}

// --- Float8DynamicActivationFloat8WeightConfig / Float8StaticActivationFloat8WeightConfig ---
const std::vector<std::string> kFloat8Dtypes = {"float8_e4m3fn", "float8_e5m2"};
// axis / group_size arrive with a PerAxis / PerGroup granularity, which fp8_granularity refuses by name.
const std::set<std::string> kFp8DqFields = {"activation_dtype", "weight_dtype", "granularity", "axis", "group_size",
                                            "mm_config", "mm_config_emulate", "mm_config_use_fast_accum",
                                            "mm_config_pad_inner_dim", "set_inductor_config"};
std::set<std::string> fp8_static_fields() {
  auto s = kFp8DqFields;
  s.insert("scale");
  return s;
}

// The seed's _normalize_granularity: (activation, weight) granularities, each
// PerTensor or PerRow, and the same for both.
std::pair<std::string, std::string> fp8_granularity(const Fields& f) {
  const auto field = f.name("granularity");
  if (f.is_list("granularity")) {
    const auto g = *f.get_opt_str_list("granularity");
    std::ostringstream os;
    os << "[";
    for (size_t i = 0; i < g.size(); ++i) os << (i ? ", " : "") << g[i] << "()";
    os << "]";
    TORCH_CHECK_VALUE(g.size() == 2, field, ": invalid granularity specification ", os.str(),
                      ", only PerTensor or PerRow are supported (one, or a pair for activation and weight)");
    for (const auto& x : g)
      TORCH_CHECK_VALUE(x == "PerTensor" || x == "PerRow", field, ": invalid granularity types ", os.str(),
                        ", only PerTensor or PerRow are supported");
    TORCH_CHECK_VALUE(g[0] == g[1], field, ": different granularities for activation and weight are not supported: ",
                      os.str(), ", only PerTensor or PerRow are supported");
    return {g[0], g[1]};
  }
  const auto g = f.get_str("granularity", "PerTensor");
  TORCH_CHECK_VALUE(g == "PerTensor" || g == "PerRow", field, ": invalid granularity specification ", g,
                    "(), only PerTensor or PerRow are supported");
  return {g, g};
}

// The seed's Float8MMConfig defaults to use_fast_accum=True in these configs.
bool fp8_fast_accum(const Fields& f) {
  if (!f.has("mm_config")) return true;
  TORCH_CHECK_TYPE(f.get_str("mm_config", "") == "Float8MMConfig", f.name("mm_config"),
                   " must be a Float8MMConfig or None");
  f.get_bool("mm_config_emulate", false);
  f.get_bool("mm_config_pad_inner_dim", false);
  return f.get_bool("mm_config_use_fast_accum", false);
}

void validate_fp8_common(const Fields& f) {
  f.get_choice("activation_dtype", "float8_e4m3fn", kFloat8Dtypes);
  f.get_choice("weight_dtype", "float8_e4m3fn", kFloat8Dtypes);
  fp8_granularity(f);
  fp8_fast_accum(f);
  f.get_bool("set_inductor_config", true);
}

void validate_fp8_dq(const ConfigFields& d) {
  validate_fp8_common(Fields("Float8DynamicActivationFloat8WeightConfig", d, kFp8DqFields));
}

at::Tensor fp8_static_scale(const Fields& f) {
  const auto s = f.get_tensor("scale");
  TORCH_CHECK_VALUE(s.numel() == 1, f.name("scale"), " must hold one activation scale (PerTensor), got shape ",
                    s.sizes());
  TORCH_CHECK_TYPE(s.is_floating_point(), f.name("scale"), " must be a float tensor, got ", s.scalar_type());
  TORCH_CHECK_VALUE(!s.is_meta(), f.name("scale"), " is on meta: the static activation scale needs a value");
  const double v = s.to(at::kDouble).cpu().item<double>();
  TORCH_CHECK_VALUE(std::isfinite(v) && v > 0, f.name("scale"), " must be finite and > 0, got ", v);
  return s;
}

void validate_fp8_static(const ConfigFields& d) {
  Fields f("Float8StaticActivationFloat8WeightConfig", d, fp8_static_fields());
  validate_fp8_common(f);
  TORCH_CHECK_VALUE(fp8_granularity(f).first == "PerTensor", f.name("granularity"),
                    ": static quantization only supports PerTensor granularity");
  fp8_static_scale(f);
}

QuantizedWeight quantize_fp8_act(const at::Tensor& w, const Fields& f, const std::string& config,
                                 const std::string& fqn, bool is_static) {
  QuantizedWeight out;
  const int64_t N = w.size(-2), K = w.size(-1);
  // The seed's _fp8_mm_compat: _scaled_mm needs both dims to be multiples of 16.
  if (N % 16 != 0 || K % 16 != 0) {
    std::ostringstream os;
    os << "Skipping " << config << " for " << (fqn.empty() ? "<root>" : fqn)
       << ": float8 quantization needs in_features and out_features that are multiples of 16 (as _scaled_mm), "
          "weight shape is "
       << w.sizes();
    out.skip_reason = os.str();
    return out;
  }
  const auto gran = fp8_granularity(f);
  TORCH_CHECK_TYPE(gran.second != "PerRow" || w.scalar_type() == at::kBFloat16, config,
                   ": PerRow quantization only works for bfloat16 weights, got ", w.scalar_type());
  std::vector<int64_t> block(w.dim(), 1);
  block.back() = K;
  if (gran.second == "PerTensor") block[w.dim() - 2] = N;
  const auto wdt = f.get_choice("weight_dtype", "float8_e4m3fn", kFloat8Dtypes);
  out.weight = affine_quantize(w, "SYMMETRIC", block, wdt, 0, 0, c10::nullopt, at::kFloat, c10::nullopt, true, "NONE",
                               "Float8Layout");
  const auto adt = f.get_choice("activation_dtype", "float8_e4m3fn", kFloat8Dtypes);
  out.act_quant = adt + (is_static ? "_static" : gran.first == "PerRow" ? "_per_row" : "_per_tensor");
  if (is_static) out.act_scale = fp8_static_scale(f).to(at::kFloat).reshape({}).to(w.device());
  out.fast_accum = fp8_fast_accum(f);
  return out;
}

QuantizedWeight quantize_fp8_dq(const at::Tensor& w, const ConfigFields& d, const std::string& fqn) {
  const std::string c = "Float8DynamicActivationFloat8WeightConfig";
  return quantize_fp8_act(w, Fields(c, d, kFp8DqFields), c, fqn, false);
}

QuantizedWeight quantize_fp8_static(const at::Tensor& w, const ConfigFields& d, const std::string& fqn) {
  const std::string c = "Float8StaticActivationFloat8WeightConfig";
  return quantize_fp8_act(w, Fields(c, d, fp8_static_fields()), c, fqn, true);
}

// --- Float8DynamicActivationFloat8SemiSparseWeightConfig ----------------------------
const std::set<std::string> kFp8SparseFields = {"layout", "activation_dtype", "weight_dtype"};
void validate_fp8_sparse(const ConfigFields& d) {
  Fields f("Float8DynamicActivationFloat8SemiSparseWeightConfig", d, kFp8SparseFields);
  const auto layout = f.get_str("layout", "CutlassSemiSparseLayout");
  TORCH_CHECK_NOT_IMPLEMENTED(layout == "CutlassSemiSparseLayout", f.name("layout"),
                              ": only CutlassSemiSparseLayout layout is supported, received ", layout, "()");
  f.get_choice("activation_dtype", "float8_e5m2", kFloat8Dtypes);
  f.get_choice("weight_dtype", "float8_e4m3fn", kFloat8Dtypes);
}
QuantizedWeight quantize_fp8_sparse(const at::Tensor& w, const ConfigFields& d, const std::string& fqn) {
  const std::string c = "Float8DynamicActivationFloat8SemiSparseWeightConfig";
  Fields f(c, d, kFp8SparseFields);
  QuantizedWeight out;
  if (w.dim() != 2 || w.size(1) % 4 != 0) {
    std::ostringstream os;
    os << "Skipping " << c << " for " << (fqn.empty() ? "<root>" : fqn) << ": weight " << w.sizes()
       << " is not a 2-d weight with in_features a multiple of 4 (2:4 sparsity prunes groups of 4)";
    out.skip_reason = os.str();
    return out;
  }
  // The seed's CutlassSemiSparseLayout.pre_process (mask_creator): 2:4 pruning before the scales are chosen;
  // then _float8_cutlass_quant_sparse: one float32 scale per row.
  const auto src = ops::prune_2to4(w.cpu()).to(w.device());
  out.weight = affine_quantize(src, "SYMMETRIC", block_for(w, c10::nullopt),
                               f.get_choice("weight_dtype", "float8_e4m3fn", kFloat8Dtypes), 0, 0, c10::nullopt,
                               at::kFloat, c10::nullopt, true, "NONE", "CutlassSemiSparseLayout");
  // _float8_cutlass_quant on the activations: per token, float32 scales.
  out.act_quant = f.get_choice("activation_dtype", "float8_e5m2", kFloat8Dtypes) + "_per_row";
  return out;
}

// The built-in configs, registered when the library loads.
const bool kBuiltins = [] {
  register_config("Int8WeightOnlyConfig", validate_int8_wo, quantize_int8_wo);
  register_config("Int4WeightOnlyConfig", validate_int4_wo, quantize_int4_wo);
  register_config("Int8DynamicActivationInt8WeightConfig", validate_int8_dq, quantize_int8_dq);
  register_config("Int8DynamicActivationInt4WeightConfig", validate_8da4w, quantize_8da4w);
  register_config("Int4DynamicActivationInt4WeightConfig", validate_4da4w, quantize_4da4w);
  register_config("IntxWeightOnlyConfig", validate_intx_wo, quantize_intx_wo);
  register_config("Int8DynamicActivationIntxWeightConfig", validate_8daintx, quantize_8daintx);
  register_config("UIntXWeightOnlyConfig", validate_uintx, quantize_uintx);
  register_config("GemliteUIntXWeightOnlyConfig", validate_gemlite, quantize_gemlite);
  register_config("Float8WeightOnlyConfig", validate_fp8_wo, quantize_fp8_wo);
  register_config("FPXWeightOnlyConfig", validate_fpx, quantize_fpx);
  register_config("Float8DynamicActivationFloat8WeightConfig", validate_fp8_dq, quantize_fp8_dq, 3);
  register_config("Float8StaticActivationFloat8WeightConfig", validate_fp8_static, quantize_fp8_static, 3);
  register_config("Float8DynamicActivationFloat8SemiSparseWeightConfig", validate_fp8_sparse, quantize_fp8_sparse);
  return true;
}();

// The end codes of every block must dequantize to finite values. They need
// not when the weight holds values near its dtype's max: a symmetric scale of
// max / 127.5 puts code -128 at -1.004 max, which overflows.
void check_grid_finite(const at::Tensor& weight, const at::Tensor& scale, const c10::optional<at::Tensor>& zp,
                       at::ScalarType storage, int64_t quant_min, int64_t quant_max,
                       const std::string& zero_point_domain) {
  const int64_t nb = scale.numel();
  if (nb == 0) return;
  // Codes (quant_min, quant_max) per block, dequantized as the weight would be.
  const auto ends = at::tensor({quant_min, quant_max}, at::kLong).to(storage).repeat({nb}).reshape({nb, 2});
  c10::optional<at::Tensor> z;
  if (zp) z = zp->reshape({nb});
  const auto v = ops::dequantize_affine(ends, {1, 2}, scale.reshape({nb}), z, quant_min, quant_max,
                                        zero_point_domain, weight.scalar_type())
                     .to(at::kFloat)
                     .contiguous();
  const float* d = v.data_ptr<float>();
  for (int64_t i = 0; i < 2 * nb; ++i)
    TORCH_CHECK_VALUE(std::isfinite(d[i]), "affine_quantize: code ", i % 2 ? quant_max : quant_min,
                      " of weight block ", i / 2, " dequantizes to ", d[i], " in ", weight.scalar_type(), " (scale ",
                      scale.reshape({nb})[i / 2].item<double>(), "): the weight holds values too close to its "
                      "dtype's max to quantize");
}

}  // namespace

void register_config(const std::string& config_type, ConfigValidator validate, QuantizeHandler handler,
                     int64_t max_weight_dim) {
  std::lock_guard<std::mutex> g(registry_mutex());
  registry()[config_type] = Entry{std::move(validate), std::move(handler), max_weight_dim};
}

std::vector<std::string> registered_configs() {
  std::lock_guard<std::mutex> g(registry_mutex());
  std::vector<std::string> names;
  for (const auto& kv : registry()) names.push_back(kv.first);
  return names;
}

void validate_config(const std::string& config_type, const ConfigFields& fields) {
  lookup(config_type).validate(fields);
}

namespace {

// check_weight runs a config's handler in this mode: it stops where the handler starts quantizing (the
// first affine_quantize), so the handler's own refusals and skip rules are applied without quantizing and
// without a second copy of them here.
thread_local bool tls_dry_run = false;
struct DryRunReachedQuantization {};

// The config's entry, after the checks of the weight's metadata every handler relies on.
const Entry& checked_entry(const at::Tensor& weight, const std::string& config_type, const ConfigFields& fields,
                           const std::string& fqn, const char* op) {
  const auto& e = lookup(config_type);
  e.validate(fields);
  TORCH_CHECK_NOT_IMPLEMENTED(!weight.is_meta(), op, ": the weight of '", fqn,
                              "' is on meta: quantizing needs its values (load them first)");
  TORCH_CHECK_VALUE(weight.dim() >= 2 && weight.dim() <= e.max_weight_dim, config_type, ": '", fqn, "' has a ",
                    weight.dim(), "-d weight; ",
                    e.max_weight_dim == 2 ? "linear weights are 2-d (out_features, in_features)"
                                          : "this config takes 2-d or 3-d weights ([experts,] out_features, "
                                            "in_features)");
  return e;
}

}  // namespace

void check_weight(const at::Tensor& weight, const std::string& config_type, const ConfigFields& fields,
                  const std::string& fqn) {
  const auto& e = checked_entry(weight, config_type, fields, fqn, "check_weight");
  const auto t = weight.scalar_type();
  TORCH_CHECK_TYPE(t == at::kFloat || t == at::kBFloat16 || t == at::kHalf, config_type, ": the weight of '", fqn,
                   "' must be float32, bfloat16 or float16, got ", t);
  bool skipped = false;
  tls_dry_run = true;
  try {
    skipped = !e.handler(weight, fields, fqn).skip_reason.empty();  // returned before quantizing
  } catch (const DryRunReachedQuantization&) {
  } catch (...) {
    tls_dry_run = false;
    throw;
  }
  tls_dry_run = false;
  if (skipped) return;  // as the seed, the values of a layer left in float are not looked at
  // In float32 chunks (CPU aminmax has no float16 in torch 1.13) of 4 MB, not a copy of the weight:
  // quantize_ runs this on every layer before it frees any.
  const auto flat = weight.reshape({-1});
  constexpr int64_t kChunk = int64_t(1) << 20;
  double lo = 0.0, hi = 0.0;
  for (int64_t i = 0; i < flat.numel(); i += kChunk) {
    const auto mm = at::aminmax(flat.narrow(0, i, std::min(kChunk, flat.numel() - i)).to(at::kFloat));
    const double a = std::get<0>(mm).item<double>(), b = std::get<1>(mm).item<double>();
    lo = i == 0 || std::isnan(a) ? a : std::min(lo, a);  // keep a NaN once seen
    hi = i == 0 || std::isnan(b) ? b : std::max(hi, b);
    if (std::isnan(lo) || std::isnan(hi)) break;
  }
  TORCH_CHECK_VALUE(std::isfinite(lo) && std::isfinite(hi), config_type, ": the weight of '", fqn,
                    "' contains NaN or Inf; quantization parameters are undefined for non-finite values");
  // Past a quarter of the dtype's range, scales (max - min over the code range, or max / 127.5 times the
  // code -128) can overflow to Inf.
  const double limit = (t == at::kHalf ? 65504.0 : double(std::numeric_limits<float>::max())) / 4;
  TORCH_CHECK_VALUE(std::max(-lo, hi) <= limit, config_type, ": the weight of '", fqn, "' holds values up to ",
                    std::max(-lo, hi), " in magnitude; above ", limit,
                    " (a quarter of its dtype's range) the quantization scales overflow");
}

QuantizedWeight quantize_weight(const at::Tensor& weight, const std::string& config_type, const ConfigFields& fields,
                                const std::string& fqn) {
  const auto& e = checked_entry(weight, config_type, fields, fqn, "quantize_weight");
  // The quant primitives run on the CPU kernels: a CUDA weight is quantized
  // there and its codes moved back (quantizing is not a hot path).
  if (!weight.device().is_cpu()) {
    auto q = e.handler(weight.cpu(), fields, fqn);
    if (q.weight) q.weight = q.weight->to(weight.device().str());
    if (q.act_scale) q.act_scale = q.act_scale->to(weight.device());
    return q;
  }
  return e.handler(weight, fields, fqn);
}

c10::intrusive_ptr<classes::AffineQuantizedTensor> affine_quantize(
    const at::Tensor& weight, const std::string& mapping_type, std::vector<int64_t> block_size,
    const std::string& code_dtype, int64_t quant_min, int64_t quant_max, c10::optional<double> eps,
    c10::optional<at::ScalarType> scale_dtype, c10::optional<at::ScalarType> zero_point_dtype, bool preserve_zero,
    const std::string& zero_point_domain, const std::string& layout) {
  if (tls_dry_run) throw DryRunReachedQuantization{};
  TORCH_CHECK_NOT_IMPLEMENTED(!weight.is_meta(), "affine_quantize: weight is on meta: quantizing needs its values");
  if (!weight.device().is_cpu())
    return affine_quantize(weight.cpu(), mapping_type, std::move(block_size), code_dtype, quant_min, quant_max, eps,
                           scale_dtype, zero_point_dtype, preserve_zero, zero_point_domain, layout)
        ->to(weight.device().str());
  const auto cd = classes::parse_code_dtype(code_dtype);
  const auto dtype_name = weight.scalar_type() == at::kFloat      ? "float32"
                          : weight.scalar_type() == at::kBFloat16 ? "bfloat16"
                          : weight.scalar_type() == at::kHalf     ? "float16"
                                                                  : "";
  TORCH_CHECK_TYPE(*dtype_name, "affine_quantize: weight must be float32, bfloat16 or float16, got ",
                   weight.scalar_type());
  if (cd.is_float8) {
    auto scale = ops::choose_qparams_affine_float8(weight, block_size, code_dtype, scale_dtype);
    auto codes = ops::quantize_affine_float8(weight, block_size, scale, code_dtype);
    const int64_t fmax = int64_t(kernels::float8_max(ops::parse_float8_dtype(code_dtype)));
    return c10::make_intrusive<classes::AffineQuantizedTensor>(codes, scale, c10::nullopt, block_size, -fmax, fmax,
                                                               "NONE", layout, code_dtype, dtype_name);
  }
  if (cd.is_floatx) {
    // torchao's from_hp_to_fpx: choose_qparams_affine_floatx + quantize_affine_floatx, one scale per row.
    TORCH_CHECK_VALUE(weight.dim() == 2 && block_size.size() == 2 && block_size[0] == 1 &&
                          block_size[1] == weight.size(1),
                      "affine_quantize: float-x codes (", code_dtype, ") take a 2-d weight and block_size [1, ",
                      weight.dim() == 2 ? weight.size(1) : -1, "] (one scale per row), got weight shape ",
                      weight.sizes(), " and block_size ", block_size);
    TORCH_CHECK_VALUE(zero_point_domain == "NONE", "affine_quantize: float-x codes (", code_dtype,
                      ") have no zero point: zero_point_domain must be NONE, got ", zero_point_domain);
    auto scale = ops::choose_qparams_affine_floatx(weight, cd.ebits, cd.mbits);
    // The largest code times each scale must be finite in the weight's dtype (values near float16's max).
    const float mx = kernels::floatx_max_normal(cd.ebits, cd.mbits);
    const auto top = (scale.to(at::kFloat) * mx).to(weight.scalar_type());
    TORCH_CHECK_VALUE(at::isfinite(top).all().item<bool>(), "affine_quantize: the largest ", code_dtype,
                      " code times a row's scale overflows ", weight.scalar_type(),
                      ": the weight holds values too close to its dtype's max to quantize");
    auto codes = ops::quantize_affine_floatx(weight, scale, cd.ebits, cd.mbits);
    return c10::make_intrusive<classes::AffineQuantizedTensor>(codes, scale, c10::nullopt, block_size, 0,
                                                               cd.max_value(), "NONE", layout, code_dtype, dtype_name);
  }
  at::Tensor scale, zp;
  std::tie(scale, zp) = ops::choose_qparams_affine(weight, mapping_type, block_size, quant_min, quant_max, eps,
                                                   scale_dtype, zero_point_dtype, preserve_zero, zero_point_domain);
  c10::optional<at::Tensor> zp_opt;
  if (zero_point_domain != "NONE") zp_opt = zp;
  const auto storage = cd.bits == 32 ? at::kInt : cd.is_signed ? at::kChar : at::kByte;
  check_grid_finite(weight, scale, zp_opt, storage, quant_min, quant_max, zero_point_domain);
  auto codes = ops::quantize_affine(weight, block_size, scale, zp_opt, storage, quant_min, quant_max, zero_point_domain);
  return c10::make_intrusive<classes::AffineQuantizedTensor>(codes, scale, zp_opt, block_size, quant_min, quant_max,
                                                             zero_point_domain, layout, code_dtype, dtype_name);
}

namespace {
c10::intrusive_ptr<classes::AffineQuantizedTensor> hqq_quantize(const at::Tensor& weight, int nbits,
                                                                int64_t group_size, at::ScalarType compute_dtype,
                                                                const std::string& layout) {
  if (tls_dry_run) throw DryRunReachedQuantization{};
  TORCH_CHECK_NOT_IMPLEMENTED(!weight.is_meta(), "hqq_quantize: weight is on meta: quantizing needs its values");
  // The solver runs where the weight is (CPU or CUDA, float32; the seed solves in float16 on CUDA);
  // the codes are then laid out on the CPU and moved back, as every config does.
  const auto& dev = weight.device();
  if (!dev.is_cpu() && !dev.is_cuda())
    return hqq_quantize(weight.cpu(), nbits, group_size, compute_dtype, layout)->to(dev.str());
  const auto dtype = weight.scalar_type();
  const char* dtype_name = dtype == at::kFloat ? "float32" : dtype == at::kBFloat16 ? "bfloat16" : "float16";
  auto solved = ops::call_choose_qparams_and_quantize_affine_hqq(weight, nbits, group_size);
  const auto codes = std::get<0>(solved).cpu(), scale = std::get<1>(solved).cpu(), zero = std::get<2>(solved).cpu();
  const auto sc = scale.to(compute_dtype), zp = zero.to(compute_dtype);
  c10::optional<at::Tensor> zp_opt = zp;
  check_grid_finite(weight, sc, zp_opt, at::kByte, 0, (int64_t(1) << nbits) - 1, "FLOAT");
  auto aqt = c10::make_intrusive<classes::AffineQuantizedTensor>(codes, sc, zp_opt, std::vector<int64_t>{1, group_size},
                                                                  0, (int64_t(1) << nbits) - 1, "FLOAT", layout,
                                                                  "uint" + std::to_string(nbits), dtype_name);
  return dev.is_cpu() ? aqt : aqt->to(dev.str());
}

c10::intrusive_ptr<classes::AffineQuantizedTensor> qqq_quantize(const at::Tensor& weight, int64_t group_size) {
  if (tls_dry_run) throw DryRunReachedQuantization{};
  TORCH_CHECK_NOT_IMPLEMENTED(!weight.is_meta(), "qqq_quantize: weight is on meta: quantizing needs its values");
  if (!weight.device().is_cpu()) return qqq_quantize(weight.cpu(), group_size)->to(weight.device().str());
  const auto T = weight.scalar_type();
  const char* dtype_name = T == at::kFloat ? "float32" : T == at::kBFloat16 ? "bfloat16" : "float16";
  const int64_t N = weight.size(0), K = weight.size(1);
  // The seed's torch ops on T tensors, in float32 as torch computes them (its opmath, scalars
  // included) and rounded to the dtype of each tensor the seed keeps.
  const auto in = [](const at::Tensor& x, at::ScalarType t) { return x.to(t).to(at::kFloat); };
  const auto w = weight.to(at::kFloat);
  at::Tensor codes, scale, dead;  // dead: blocks whose scale is 0 (the seed divides by it)
  if (group_size < K) {
    const auto wg = w.reshape({-1, group_size});
    const auto s_group = in(wg.abs().amax(-1, true) * float(2.0 / 15), T);  // s_group *= 2 / max_q_val
    auto q = at::clamp(at::round(in(wg / s_group, T)) + 8, 0, 15);          // round(w / s_group) + 8
    q = at::where(at::isnan(q), at::full({}, 8.0f, q.options()), q);          // 0 / 0 in a zero group: value 0
    const auto R = at::promote_types(at::kHalf, T);                          // (q - 8).half() * s_group
    const auto w_ref = in((q - 8) * s_group, R).reshape({N, K});
    const auto s_channel = in(w_ref.abs().amax(-1, true) / 127.0f, R);      // s_channel /= 127.0, then .float()
    const auto fused = in(s_group.reshape({N, -1}) / s_channel, at::kHalf);  // (s_group / s_channel).half()
    // dequantize_affine_qqq: (q - 8).half() * (s_group * s_channel.half()), in float16.
    scale = in(fused * in(s_channel, at::kHalf), at::kHalf);
    dead = (s_group == 0).reshape({N, -1});
    codes = (q - 8).reshape({N, K});
  } else {
    const auto s_channel = in(w.abs().amax(-1, true) / 7.0f, T);  // s_channel /= max_q_val
    codes = at::clamp(at::round(in(w / s_channel, T)), -7, 7);
    // s_channel /= 2 ** (8 - 4) for the kernel's shifted codes, and dequantize_affine_qqq's * 2 ** (8 - 4).
    scale = (in(s_channel / 16.0f, T) * 16.0f).reshape({N, 1});
    dead = s_channel == 0;
  }
  // A zero group or row (or a float16 scale that underflows): torchao's NaN codes there stand for 0.
  const auto bad = dead | (scale == 0) | at::logical_not(at::isfinite(scale));
  codes = at::where(bad.repeat_interleave(group_size, 1).reshape({N, K}), at::zeros({}, codes.options()), codes);
  scale = at::where(bad, at::ones({}, scale.options()), scale);
  const auto sdt = group_size < K ? at::kHalf : at::kFloat;
  return c10::make_intrusive<classes::AffineQuantizedTensor>(
      codes.to(at::kChar), scale.to(sdt).reshape(group_size < K ? std::vector<int64_t>{N, K / group_size}
                                                                : std::vector<int64_t>{N}),
      c10::nullopt, std::vector<int64_t>{1, group_size}, -8, 7, "NONE", "MarlinQQQLayout", "int4", dtype_name);
}
}  // namespace

// --- ops ---------------------------------------------------------------------------------

namespace {

void validate_quant_config_op(const std::string& config_type, const c10::Dict<std::string, c10::IValue>& fields) {
  validate_config(config_type, fields);
}

// (weight-only tensor, activation-quantized tensor, skip reason): at most one tensor is set.
std::tuple<c10::optional<c10::intrusive_ptr<classes::AffineQuantizedTensor>>,
           c10::optional<c10::intrusive_ptr<classes::LinearActivationQuantizedTensor>>, std::string>
quantize_weight_op(const at::Tensor& weight, const std::string& config_type,
                   const c10::Dict<std::string, c10::IValue>& fields, const std::string& fqn) {
  auto q = quantize_weight(weight, config_type, fields, fqn);
  c10::optional<c10::intrusive_ptr<classes::AffineQuantizedTensor>> w;
  c10::optional<c10::intrusive_ptr<classes::LinearActivationQuantizedTensor>> la;
  if (q.weight && q.act_quant.empty()) w = q.weight;
  if (q.weight && !q.act_quant.empty())
    la = c10::make_intrusive<classes::LinearActivationQuantizedTensor>(q.weight, q.act_quant, q.act_scale,
                                                                       q.fast_accum);
  return {w, la, q.skip_reason};
}

c10::intrusive_ptr<classes::AffineQuantizedTensor> affine_quantize_op(
    const at::Tensor& weight, const std::string& mapping_type, std::vector<int64_t> block_size,
    const std::string& code_dtype, int64_t quant_min, int64_t quant_max, c10::optional<double> eps,
    c10::optional<at::ScalarType> scale_dtype, c10::optional<at::ScalarType> zero_point_dtype, bool preserve_zero,
    const std::string& zero_point_domain, const std::string& layout) {
  return affine_quantize(weight, mapping_type, std::move(block_size), code_dtype, quant_min, quant_max, eps,
                         scale_dtype, zero_point_dtype, preserve_zero, zero_point_domain, layout);
}

}  // namespace

}  // namespace api
}  // namespace torchao_cpp

// The registry works on any backend: its handlers call the dispatched ops.
TORCH_LIBRARY_IMPL(torchao_cpp, CompositeExplicitAutograd, m) {
  using namespace torchao_cpp::api;
  m.impl("quantize_weight", &quantize_weight_op);
  m.impl("check_weight", &check_weight);
  m.impl("affine_quantize", &affine_quantize_op);
}

TORCH_LIBRARY_IMPL(torchao_cpp, CatchAll, m) {
  using namespace torchao_cpp::api;
  m.impl("validate_quant_config", &validate_quant_config_op);
  m.impl("registered_quant_configs", &registered_configs);
}
