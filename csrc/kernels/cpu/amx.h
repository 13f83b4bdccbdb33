// AMX tile configuration and tile instructions as inline assembly. GCC 12's
// intrinsics do not serve: its _tile_loadconfig does not tell the compiler
// that it reads the configuration (the stores that fill it were dropped as
// dead: every tile then had 0 rows and the first tile instruction raised
// SIGILL), _tile_stored does not tell it that it writes memory, and the tile
// macros take only literal tile numbers.
#pragma once

#include <cstdint>

namespace torchao_cpp {
namespace kernels {

// Palette-1 tile configuration (64 bytes, as ldtilecfg reads it).
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};  // bytes per row of each tile
  uint8_t rows[16] = {};
};

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// ldtilecfg with the configuration as a memory operand the compiler sees.
inline void load_tile_config(const TileConfig& c) { __asm__ volatile("ldtilecfg %0" : : "m"(c)); }
inline void release_tiles() { __asm__ volatile("tilerelease"); }

// Tile instructions on tiles named by template arguments (GCC's macros take
// only literal numbers); stores tell the compiler that they write memory.
template <int kT>
inline void tile_zero() {
  __asm__ volatile("tilezero %%tmm%c0" : : "i"(kT));
}
// No memory clobber on loads: the kernels' tiles read memory written before
// their parallel region or by tile stores, which volatile asm keeps in order.
template <int kT>
inline void tile_load(const void* p, int64_t stride) {
  __asm__ volatile("tileloadd (%1,%2,1), %%tmm%c0" : : "i"(kT), "r"(p), "r"(stride));
}
template <int kT>
inline void tile_store(void* p, int64_t stride) {
  __asm__ volatile("tilestored %%tmm%c0, (%1,%2,1)" : : "i"(kT), "r"(p), "r"(stride) : "memory");
}
// C += A B: uint8 rows of A times int8 quads of B, int32 sums.
template <int kC, int kA, int kB>
inline void tile_dpbusd() {
  __asm__ volatile("tdpbusd %%tmm%c2, %%tmm%c1, %%tmm%c0" : : "i"(kC), "i"(kA), "i"(kB));
}
// The sum tiles of a 2 x 2 block of R x C tiles (R, C in 1..2): tmm(2 i + j)
// at row i's base r[i] + 64 j bytes (16 32-bit sums further), rows `stride`
// bytes apart: zeroed, loaded, stored.
template <int R, int C>
inline void zero_sum_tiles() {
  tile_zero<0>();
  if constexpr (C == 2) tile_zero<1>();
  if constexpr (R == 2) tile_zero<2>();
  if constexpr (R == 2 && C == 2) tile_zero<3>();
}
template <int R, int C>
inline void load_sum_tiles(const void* r0, const void* r1, int64_t stride) {
  const char *a = static_cast<const char*>(r0), *b = static_cast<const char*>(r1);
  tile_load<0>(a, stride);
  if constexpr (C == 2) tile_load<1>(a + 64, stride);
  if constexpr (R == 2) tile_load<2>(b, stride);
  if constexpr (R == 2 && C == 2) tile_load<3>(b + 64, stride);
}
template <int R, int C>
inline void store_sum_tiles(void* r0, void* r1, int64_t stride) {
  char *a = static_cast<char*>(r0), *b = static_cast<char*>(r1);
  tile_store<0>(a, stride);
  if constexpr (C == 2) tile_store<1>(a + 64, stride);
  if constexpr (R == 2) tile_store<2>(b, stride);
  if constexpr (R == 2 && C == 2) tile_store<3>(b + 64, stride);
}

// C += A B: bfloat16 pairs of A times pairs of B, float32 sums.
template <int kC, int kA, int kB>
inline void tile_dpbf16ps() {
  __asm__ volatile("tdpbf16ps %%tmm%c2, %%tmm%c1, %%tmm%c0" : : "i"(kC), "i"(kA), "i"(kB));
}
#endif

}  // namespace kernels
}  // namespace torchao_cpp
