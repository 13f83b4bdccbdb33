// The closed set of code layouts (names match the seed's Layout classes) and
// the code dtypes they store. A layout says how codes are packed in memory:
// that packing is what the kernels read.
#pragma once

#include <cstdint>
#include <string>

namespace torchao_cpp {
namespace classes {

enum class LayoutKind {
  Plain,            // PlainLayout: one code per element, in its own integer dtype
  TensorCoreTiled,  // TensorCoreTiledLayout: 4-bit codes, two per byte
  Int4CPU,          // Int4CPULayout: 4-bit codes, two per byte
  Uintx,            // UintxLayout: N-bit codes bit-packed along rows
  QDQ,              // QDQLayout: one code per element (int8 storage)
  Float8,           // Float8Layout: raw float8 bytes
  PackedIntx,       // PackedLinearInt8DynamicActivationIntxWeightLayout: N-bit codes bit-packed along rows
  CutlassInt4,      // CutlassInt4PackedLayout: signed 4-bit codes, two per byte
  Int4XPU,          // Int4XPULayout: 4-bit codes, two per byte (tinygemm math; no XPU kernels here)
  FloatxTensorCore,  // FloatxTensorCoreLayout: N-bit float-x codes bit-packed along rows (as Uintx)
  SemiSparse,        // SemiSparseLayout: 2:4 sparse int8 codes, rows compressed to values + metadata (sparse24.h)
  CutlassSemiSparse,  // CutlassSemiSparseLayout: 2:4 sparse float8 codes, rows compressed as SemiSparse's
  MarlinSparse,       // MarlinSparseLayout: 2:4 sparse 4-bit codes (zero point 8), rows of 4-bit kept codes
  GemlitePacked,      // GemlitePackedLayout: 4- or 8-bit codes bit-packed along rows (as Uintx)
  MarlinQQQ,          // MarlinQQQLayout: signed 4-bit codes, two per byte, with the seed's QQQ scales fused
};

LayoutKind parse_layout(const std::string& name);
std::string layout_name(LayoutKind k);
// Packed layouts store rows of bit-packed codes in uint8.
bool layout_is_bitpacked(LayoutKind k);
// 2:4 sparse layouts store rows compressed (sparse24.h) in uint8.
inline bool layout_is_sparse24(LayoutKind k) {
  return k == LayoutKind::SemiSparse || k == LayoutKind::CutlassSemiSparse || k == LayoutKind::MarlinSparse;
}
// Bits per kept code in a 2:4 layout's rows (sparse24.h).
inline int sparse24_bits(LayoutKind k) { return k == LayoutKind::MarlinSparse ? 4 : 8; }

// Code dtypes: int1..int8, uint1..uint8, int32 (tinygemm's 0..15 codes),
// float8_e4m3fn, float8_e5m2, and float-x formats "fp<N>_e<E>m<M>" (N = 1 + E + M <= 8,
// E >= 1, no Inf/NaN codes; stored as unsigned N-bit codes 0..2^N-1).
struct CodeDtype {
  std::string name;
  int bits = 8;
  bool is_signed = true;
  bool is_float8 = false;
  bool is_floatx = false;
  int ebits = 0, mbits = 0;  // float-x formats
  int64_t min_value() const;
  int64_t max_value() const;
};
CodeDtype parse_code_dtype(const std::string& name);

}  // namespace classes
}  // namespace torchao_cpp
