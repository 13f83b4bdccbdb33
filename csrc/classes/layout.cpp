#include "layout.h"

#include <c10/util/Exception.h>

#include "../kernels/cpu/floatx.h"

namespace torchao_cpp {
namespace classes {

LayoutKind parse_layout(const std::string& n) {
  if (n == "PlainLayout") return LayoutKind::Plain;
  if (n == "TensorCoreTiledLayout") return LayoutKind::TensorCoreTiled;
  if (n == "Int4CPULayout") return LayoutKind::Int4CPU;
  if (n == "UintxLayout") return LayoutKind::Uintx;
  if (n == "QDQLayout") return LayoutKind::QDQ;
  if (n == "Float8Layout") return LayoutKind::Float8;
  if (n == "PackedLinearInt8DynamicActivationIntxWeightLayout") return LayoutKind::PackedIntx;
  if (n == "CutlassInt4PackedLayout") return LayoutKind::CutlassInt4;
  if (n == "Int4XPULayout") return LayoutKind::Int4XPU;
  if (n == "FloatxTensorCoreLayout") return LayoutKind::FloatxTensorCore;
  if (n == "SemiSparseLayout") return LayoutKind::SemiSparse;
  if (n == "CutlassSemiSparseLayout") return LayoutKind::CutlassSemiSparse;
  if (n == "MarlinSparseLayout") return LayoutKind::MarlinSparse;
  if (n == "GemlitePackedLayout") return LayoutKind::GemlitePacked;
  if (n == "MarlinQQQLayout") return LayoutKind::MarlinQQQ;
  TORCH_CHECK_VALUE(false, "unknown layout '", n,
                    "'; expected one of PlainLayout, TensorCoreTiledLayout, Int4CPULayout, UintxLayout, QDQLayout, "
                    "Float8Layout, PackedLinearInt8DynamicActivationIntxWeightLayout, CutlassInt4PackedLayout, "
                    "Int4XPULayout, FloatxTensorCoreLayout, SemiSparseLayout, CutlassSemiSparseLayout, MarlinSparseLayout, "
                    "GemlitePackedLayout, MarlinQQQLayout");
}

std::string layout_name(LayoutKind k) {
  switch (k) {
    case LayoutKind::Plain:
      return "PlainLayout";
    case LayoutKind::TensorCoreTiled:
      return "TensorCoreTiledLayout";
    case LayoutKind::Int4CPU:
      return "Int4CPULayout";
    case LayoutKind::Uintx:
      return "UintxLayout";
    case LayoutKind::QDQ:
      return "QDQLayout";
    case LayoutKind::PackedIntx:
      return "PackedLinearInt8DynamicActivationIntxWeightLayout";
    case LayoutKind::FloatxTensorCore:
      return "FloatxTensorCoreLayout";
    case LayoutKind::CutlassInt4:
      return "CutlassInt4PackedLayout";
    case LayoutKind::Int4XPU:
      return "Int4XPULayout";
    case LayoutKind::SemiSparse:
      return "SemiSparseLayout";
    case LayoutKind::CutlassSemiSparse:
      return "CutlassSemiSparseLayout";
    case LayoutKind::MarlinSparse:
      return "MarlinSparseLayout";
    case LayoutKind::GemlitePacked:
      return "GemlitePackedLayout";
    case LayoutKind::MarlinQQQ:
      return "MarlinQQQLayout";
    default:
      return "Float8Layout";
  }
}

bool layout_is_bitpacked(LayoutKind k) {
  return k == LayoutKind::TensorCoreTiled || k == LayoutKind::Int4CPU || k == LayoutKind::Uintx ||
         k == LayoutKind::PackedIntx || k == LayoutKind::CutlassInt4 || k == LayoutKind::Int4XPU || k == LayoutKind::FloatxTensorCore ||
         k == LayoutKind::GemlitePacked || k == LayoutKind::MarlinQQQ;
}

int64_t CodeDtype::min_value() const {
  if (is_signed) return -(int64_t(1) << (bits - 1));
  return 0;
}
int64_t CodeDtype::max_value() const {
  if (is_signed) return (int64_t(1) << (bits - 1)) - 1;
  return (int64_t(1) << bits) - 1;
}

CodeDtype parse_code_dtype(const std::string& n) {
  CodeDtype d;
  d.name = n;
  if (n == "float8_e4m3fn" || n == "float8_e5m2") {
    d.is_float8 = true;
    return d;
  }
  int e = 0, m = 0;
  if (kernels::floatx_parse_name(n, &e, &m)) {
    d.is_floatx = true;
    d.is_signed = false;
    d.bits = 1 + e + m;
    d.ebits = e;
    d.mbits = m;
    return d;
  }
  if (n == "int32") {
    d.bits = 32;
    return d;
  }
  const bool u = n.rfind("uint", 0) == 0;
  const bool s = !u && n.rfind("int", 0) == 0;
  if (u || s) {
    const std::string num = n.substr(u ? 4 : 3);
    if (num.size() == 1 && num[0] >= '1' && num[0] <= '8') {
      d.bits = num[0] - '0';
      d.is_signed = s;
      return d;
    }
  }
  TORCH_CHECK_VALUE(false, "unknown code dtype '", n,
                    "'; expected int1..int8, uint1..uint8, int32, float8_e4m3fn, float8_e5m2 or a float-x format "
                    "fp<N>_e<E>m<M> (N = 1 + E + M <= 8, E >= 1, e.g. fp6_e3m2)");
}

}  // namespace classes
}  // namespace torchao_cpp
