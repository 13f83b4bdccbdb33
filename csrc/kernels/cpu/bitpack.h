// Torch-free bit packing of N-bit codes (N = 1..8) along rows.
//
// Packed layout: each row of `cols` codes occupies row_bytes(cols, N) bytes;
// code j sits at bit j*N of the row, little-endian within and across bytes.
// Codes are stored as (code - quant_min), so signed and unsigned formats use
// the same unsigned packing.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <type_traits>

namespace torchao_cpp {
namespace kernels {

inline int64_t packed_row_bytes(int64_t cols, int bits) { return (cols * bits + 7) / 8; }

template <int Bits, class TQ>
void pack_bits_rows(const TQ* codes, int64_t rows, int64_t cols, int64_t quant_min, uint8_t* out) {
  static_assert(Bits >= 1 && Bits <= 8, "bit width 1..8");
  const int64_t rb = packed_row_bytes(cols, Bits);
  const uint32_t mask = (1u << Bits) - 1u;
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t* dst = out + r * rb;
    for (int64_t b = 0; b < rb; ++b) dst[b] = 0;
    const TQ* src = codes + r * cols;
    for (int64_t j = 0; j < cols; ++j) {
      const uint32_t v = uint32_t(int64_t(src[j]) - quant_min) & mask;
      const int64_t bit = j * Bits;
      dst[bit >> 3] |= uint8_t(v << (bit & 7));
      if ((bit & 7) + Bits > 8) dst[(bit >> 3) + 1] |= uint8_t(v >> (8 - (bit & 7)));
    }
  }
}

// Code j of a packed row (quant_min not added).
template <int Bits>
inline uint32_t unpack_bits_at(const uint8_t* row, int64_t j) {
  const int64_t bit = j * Bits;
  uint32_t v = row[bit >> 3] >> (bit & 7);
  if ((bit & 7) + Bits > 8) v |= uint32_t(row[(bit >> 3) + 1]) << (8 - (bit & 7));
  return v & ((1u << Bits) - 1u);
}

template <int Bits, class TQ>
void unpack_bits_rows(const uint8_t* packed, int64_t rows, int64_t cols, int64_t quant_min, TQ* out) {
  const int64_t rb = packed_row_bytes(cols, Bits);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j)
      out[r * cols + j] = static_cast<TQ>(int64_t(unpack_bits_at<Bits>(packed + r * rb, j)) + quant_min);
}

// Calls f(std::integral_constant<int, bits>) for a run-time bit width.
template <class F>
auto dispatch_bits(int bits, F&& f) {
  switch (bits) {
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    case 3: return f(std::integral_constant<int, 3>{});
    case 4: return f(std::integral_constant<int, 4>{});
    case 5: return f(std::integral_constant<int, 5>{});
    case 6: return f(std::integral_constant<int, 6>{});
    case 7: return f(std::integral_constant<int, 7>{});
    case 8: return f(std::integral_constant<int, 8>{});
    default: throw std::invalid_argument("bit width must be in 1..8");
  }
}

}  // namespace kernels
}  // namespace torchao_cpp
