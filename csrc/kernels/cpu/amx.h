// AMX tile configuration and the compiler fences GCC 12's tile intrinsics
// need. Its _tile_loadconfig does not tell the compiler that it reads the
// configuration (the stores that fill it were dropped as dead: every tile
// then had 0 rows and the first tile instruction raised SIGILL), and
// _tile_stored does not tell it that it writes memory.
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
__attribute__((target("amx-tile"))) inline void load_tile_config(const TileConfig& c) {
  __asm__ volatile("ldtilecfg %0" : : "m"(c));
}
// After tile stores into buf: its later loads must read memory.
inline void tiles_stored_to(void* buf) { __asm__ volatile("" : : "r"(buf) : "memory"); }
#endif

}  // namespace kernels
}  // namespace torchao_cpp
