#include "sparse24.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "cpu_features.h"
#include "float8_avx512.h"
#include "numeric.h"
#include "simd.h"

namespace torchao_cpp {
namespace kernels {

namespace {
constexpr int64_t kChunkBytes = 40;  // a full chunk: 32 codes + 8 metadata bytes

// Bytes of a full chunk of one-byte codes: 32 codes + 8 metadata bytes.
inline int64_t groups_in_chunk(int64_t K, int64_t c) { return std::min<int64_t>(16, K / 4 - 16 * c); }
// Byte offset of kept code j (0, 1) of group g in a row of one-byte codes.
inline int64_t code_offset(int64_t g, int j) { return g / 16 * kChunkBytes + 2 * (g % 16) + j; }
inline int nibble(const uint8_t* row, int64_t K, int64_t g, int bits = 8) {
  int cols[2];
  uint8_t codes[2];
  sparse24_group(row, K, g, cols, codes, bits);
  return cols[0] | cols[1] << 2;
}

// A chunk's metadata (at `meta`, `groups` groups) as one word.
inline uint64_t load_meta(const uint8_t* meta, int groups) {
  uint64_t v = 0;
  if (groups == 16)
    std::memcpy(&v, meta, 8);
  else
    for (int i = 0; i < (groups + 1) / 2; ++i) v |= uint64_t(meta[i]) << (8 * i);
  return v;
}

// Calls f(std::integral_constant<int, T>) with T = rows (1..TM): a tile
// template instantiated for every row count a last, partial tile can have.
template <int TM, class F>
inline void for_tile_rows(int rows, F&& f) {
  if constexpr (TM > 1) {
    if (rows < TM) return for_tile_rows<TM - 1>(rows, f);
  }
  f(std::integral_constant<int, TM>{});
}

// Magnitude for ranking; NaN ranks above everything, as in torch.argsort.
inline float rank_key(float v) { return std::isnan(v) ? INFINITY : std::fabs(v); }
}  // namespace

template <class T>
void prune_2to4(const T* w, int64_t N, int64_t K, T* out) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N * K; i += 4) {
    float key[4];
    for (int j = 0; j < 4; ++j) key[j] = rank_key(to_float(w[i + j]));
    // Rank in a stable ascending sort; the two lowest are zeroed.
    for (int j = 0; j < 4; ++j) {
      int rank = 0;
      for (int k = 0; k < 4; ++k) rank += key[k] < key[j] || (key[k] == key[j] && k < j);
      out[i + j] = rank < 2 ? from_float<T>(0.0f) : w[i + j];
    }
  }
}
template void prune_2to4<float>(const float*, int64_t, int64_t, float*);
template void prune_2to4<bf16>(const bf16*, int64_t, int64_t, bf16*);
template void prune_2to4<fp16>(const fp16*, int64_t, int64_t, fp16*);

int64_t compress_2to4(const int8_t* codes, int64_t N, int64_t K, uint8_t* out, int bits) {
  // Kept columns (i0 | i1 << 2) per mask of nonzero codes in a group; 0xFF: more than 2.
  // With fewer than 2 nonzero codes, the lowest zero columns fill the pair.
  static const uint8_t kPair[16] = {0x4, 0x4, 0x4, 0x4,  0x8, 0x8,  0x9,  0xFF,
                                    0xC, 0xC, 0xD, 0xFF, 0xE, 0xFF, 0xFF, 0xFF};
  const int64_t rb = sparse24_row_bytes(K, bits), full = sparse24_code_bytes(bits, 16) + 8;
  int64_t bad = -1;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const int8_t* c = codes + n * K;
    for (int64_t ch = 0; ch * 16 < K / 4; ++ch) {
      const int64_t G = groups_in_chunk(K, ch);
      uint8_t* vals = out + n * rb + ch * full;
      uint8_t* meta = vals + sparse24_code_bytes(bits, G);
      std::memset(vals, 0, size_t(meta - vals + (G + 1) / 2));
      for (int64_t l = 0; l < G; ++l) {
        const int8_t* q = c + 4 * (16 * ch + l);
        const int pair = kPair[(q[0] != 0) | (q[1] != 0) << 1 | (q[2] != 0) << 2 | (q[3] != 0) << 3];
        if (pair == 0xFF) {
#pragma omp critical
          bad = bad < 0 ? n : std::min(bad, n);
          break;
        }
        for (int t = 0; t < 2; ++t) {
          const int64_t j = 2 * l + t;
          const int8_t v = q[t ? pair >> 2 : pair & 3];
          if (bits == 4)
            vals[j % 16] |= uint8_t((v & 15) << (4 * (j / 16)));
          else
            vals[j] = uint8_t(v);
        }
        meta[l / 2] |= uint8_t(pair << (4 * (l % 2)));
      }
    }
  }
  return bad;
}

void decompress_2to4(const uint8_t* rows, int64_t N, int64_t K, int8_t* codes, int bits) {
  const int64_t rb = sparse24_row_bytes(K, bits);
  for (int64_t n = 0; n < N; ++n) {
    const uint8_t* row = rows + n * rb;
    int8_t* c = codes + n * K;
    std::memset(c, 0, size_t(K));
    for (int64_t g = 0; g < K / 4; ++g) {
      int cols[2];
      uint8_t v[2];
      sparse24_group(row, K, g, cols, v, bits);
      c[4 * g + cols[0]] = int8_t(v[0]);
      c[4 * g + cols[1]] = int8_t(v[1]);
    }
  }
}

namespace {
// Where (row in tile, group in block) of the mma.sp form lives: lane, register, metadata word and shift.
struct MmaSlot {
  int lane, reg, meta_word, meta_shift;
};
MmaSlot mma_slot(int r, int grp) {
  const int g = r % 8, upper_rows = r / 8, q = grp % 4, upper_groups = grp / 4;
  return {4 * g + q, upper_rows + 2 * upper_groups, 2 * g + grp / 4, 16 * upper_rows + 4 * (grp % 4)};
}
}  // namespace

void sparse24_int4_mma_pack(const uint8_t* rows, int64_t N, int64_t K, uint32_t* values, uint32_t* meta) {
  const int64_t tiles = sparse24_mma_tiles(N), blocks = K / 32, rb = sparse24_row_bytes(K, 4);
  std::fill_n(values, tiles * blocks * 32, 0x88888888u);  // padding rows: zero codes (+ 8)
  std::fill_n(meta, tiles * blocks * 16, 0x44444444u);    // and columns 0, 1
  for (int64_t n = 0; n < N; ++n) {
    const int64_t t = n / 16;
    for (int64_t kg = 0; kg < K / 4; ++kg) {
      int cols[2];
      uint8_t v[2];
      sparse24_group(rows + n * rb, K, kg, cols, v, 4);
      const int64_t b = kg / 8;
      const MmaSlot s = mma_slot(int(n % 16), int(kg % 8));
      uint32_t& w = values[((t * (blocks / 4) + b / 4) * 32 + s.lane) * 4 + b % 4];
      for (int j = 0; j < 2; ++j) {
        const int shift = 4 * (s.reg + 4 * j);
        w = (w & ~(0xFu << shift)) | (uint32_t((int8_t(v[j]) + 8) & 15) << shift);
      }
      uint32_t& m = meta[((t * (blocks / 4) + b / 4) * 16 + s.meta_word) * 4 + b % 4];
      m = (m & ~(0xFu << s.meta_shift)) | (uint32_t(cols[0] | cols[1] << 2) << s.meta_shift);
    }
  }
}

void sparse24_int4_mma_unpack(const uint32_t* values, const uint32_t* meta, int64_t N, int64_t K, int8_t* codes) {
  const int64_t blocks = K / 32;
  std::fill_n(codes, N * K, int8_t(0));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t kg = 0; kg < K / 4; ++kg) {
      const int64_t t = n / 16, b = kg / 8;
      const MmaSlot s = mma_slot(int(n % 16), int(kg % 8));
      const uint32_t w = values[((t * (blocks / 4) + b / 4) * 32 + s.lane) * 4 + b % 4];
      const uint32_t m = meta[((t * (blocks / 4) + b / 4) * 16 + s.meta_word) * 4 + b % 4] >> s.meta_shift;
      for (int j = 0; j < 2; ++j)
        codes[n * K + 4 * kg + ((m >> (2 * j)) & 3)] = int8_t(int((w >> (4 * (s.reg + 4 * j))) & 15) - 8);
    }
}

namespace {
// The float8 form's slot of (row in tile, group in block): lane and byte of its values, its metadata lane and shift.
struct Mma8Slot {
  int lane, byte, meta_lane, meta_shift;
};
Mma8Slot mma8_slot(int r, int grp) {
  const int g = r % 8, q = grp % 8 / 2, reg = r / 8 + 2 * (grp / 8);
  return {4 * g + q, 4 * reg + 2 * (grp % 2), 4 * g + reg, 4 * (grp % 8)};
}
}  // namespace

void sparse24_float8_mma_pack(const uint8_t* rows, int64_t N, int64_t K, uint32_t* values, uint32_t* meta) {
  const int64_t tiles = sparse24_mma_tiles(N), blocks = sparse24_float8_mma_blocks(K), rb = sparse24_row_bytes(K);
  std::fill_n(values, tiles * blocks * 128, 0u);         // padding: +0.0 codes
  std::fill_n(meta, tiles * blocks * 32, 0x44444444u);  // in columns 0, 1
  auto* bytes = reinterpret_cast<uint8_t*>(values);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t kg = 0; kg < K / 4; ++kg) {
      int cols[2];
      uint8_t v[2];
      sparse24_group(rows + n * rb, K, kg, cols, v);
      const int64_t base = (n / 16 * blocks + kg / 16) * 32;
      const Mma8Slot s = mma8_slot(int(n % 16), int(kg % 16));
      bytes[(base + s.lane) * 16 + s.byte] = v[0];
      bytes[(base + s.lane) * 16 + s.byte + 1] = v[1];
      uint32_t& m = meta[base + s.meta_lane];
      m = (m & ~(0xFu << s.meta_shift)) | (uint32_t(cols[0] | cols[1] << 2) << s.meta_shift);
    }
}

void sparse24_float8_mma_unpack(const uint32_t* values, const uint32_t* meta, int64_t N, int64_t K, uint8_t* codes) {
  const int64_t blocks = sparse24_float8_mma_blocks(K);
  const auto* bytes = reinterpret_cast<const uint8_t*>(values);
  std::fill_n(codes, N * K, uint8_t(0));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t kg = 0; kg < K / 4; ++kg) {
      const int64_t base = (n / 16 * blocks + kg / 16) * 32;
      const Mma8Slot s = mma8_slot(int(n % 16), int(kg % 16));
      const uint32_t nib = meta[base + s.meta_lane] >> s.meta_shift;
      for (int j = 0; j < 2; ++j) codes[n * K + 4 * kg + ((nib >> (2 * j)) & 3)] = bytes[(base + s.lane) * 16 + s.byte + j];
    }
}

int64_t check_2to4_metadata(const uint8_t* rows, int64_t N, int64_t K, int bits) {
  const int64_t rb = sparse24_row_bytes(K, bits);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t g = 0; g < K / 4; ++g) {
      const int nib = nibble(rows + n * rb, K, g, bits);
      if ((nib & 3) >= (nib >> 2)) return n;
    }
  return -1;
}

Sparse24Weights make_sparse24_weights(const uint8_t* rows, int64_t N, int64_t K, const float* scale) {
  Sparse24Weights w;
  w.rows = rows;
  w.N = N;
  w.K = K;
  w.rowsum.resize(size_t(N));
  w.scale.assign(scale, scale + N);
  const int64_t rb = sparse24_row_bytes(K);
  for (int64_t n = 0; n < N; ++n) {
    int32_t s = 0;
    for (int64_t g = 0; g < K / 4; ++g)
      s += int8_t(rows[n * rb + code_offset(g, 0)]) + int8_t(rows[n * rb + code_offset(g, 1)]);
    w.rowsum[size_t(n)] = float(s);
  }
  return w;
}

namespace {

// The dense GEMM's epilogue (int8_gemm.cpp), in its order; no FMA contraction (see CMake).
inline float epilogue(int32_t c, float a_scale, float a_zp, float rowsum, float scale, const float* bias, int64_t n) {
  const float d = float(c) - (128.0f + a_zp) * rowsum;
  const float acc = 0.0f + d * scale;
  return a_scale * acc + (bias ? bias[n] : 0.0f);
}

void gemm_portable(const uint8_t* u, const float* a_scale, const float* a_zp, int64_t M, const Sparse24Weights& w,
                   const float* bias, float* out, int nthreads) {
  const int64_t K = w.K, rb = sparse24_row_bytes(K);
#pragma omp parallel for num_threads(nthreads) schedule(static)
  for (int64_t n = 0; n < w.N; ++n) {
    const uint8_t* row = w.rows + n * rb;
    for (int64_t m = 0; m < M; ++m) {
      const uint8_t* a = u + m * K;
      int32_t c = 0;
      for (int64_t g = 0; g < K / 4; ++g) {
        const int nib = nibble(row, K, g);
        c += int32_t(a[4 * g + (nib & 3)]) * int8_t(row[code_offset(g, 0)]) +
             int32_t(a[4 * g + (nib >> 2)]) * int8_t(row[code_offset(g, 1)]);
      }
      out[m * w.N + n] = epilogue(c, a_scale[m], a_zp[m], w.rowsum[size_t(n)], w.scale[size_t(n)], bias, n);
    }
  }
}

// Values of all 256 one-byte codes: int8 codes, or float8 (raw bytes) of a format.
const float* value_table(Sparse24Values v) {
  static const auto tables = [] {
    std::vector<float> t(3 * 256);
    for (int c = 0; c < 256; ++c) {
      t[size_t(c)] = float(int8_t(uint8_t(c)));
      t[size_t(256 + c)] = float8_to_float<Float8Format::E4M3FN>(uint8_t(c));
      t[size_t(512 + c)] = float8_to_float<Float8Format::E5M2>(uint8_t(c));
    }
    return t;
  }();
  return tables.data() + 256 * int(v);
}

void float_gemm_portable(const float* x, int64_t M, const uint8_t* rows, int64_t N, int64_t K, Sparse24Values values,
                         const float* scale, int64_t group, float* acc, int nthreads) {
  const int bits = values == Sparse24Values::Int4 ? 4 : 8;
  const int64_t rb = sparse24_row_bytes(K, bits), G = K / group;
  const float* v = value_table(bits == 4 ? Sparse24Values::Int8 : values);  // 4-bit codes arrive sign-extended
#pragma omp parallel for num_threads(nthreads) schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const uint8_t* row = rows + n * rb;
    for (int64_t m = 0; m < M; ++m) {
      const float* a = x + m * K;
      float s = 0.0f;
      for (int64_t g = 0; g < K / 4; ++g) {
        const float sc = scale ? scale[n * G + 4 * g / group] : 1.0f;
        int cols[2];
        uint8_t c[2];
        sparse24_group(row, K, g, cols, c, bits);
        s += a[4 * g + cols[0]] * (v[c[0]] * sc);
        s += a[4 * g + cols[1]] * (v[c[1]] * sc);
      }
      acc[m * N + n] = s;
    }
  }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define VBMI_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni")))

constexpr int64_t kChunk = 64;  // activation columns per vpermb: 16 groups, 32 kept codes per row
constexpr int kPairs = 2;       // row pairs per tile (4 weight rows)
constexpr int kTileM = 4;       // activation rows per tile: 8 accumulators

// One chunk of a row pair: the vpermb indices of the kept codes (row n in the
// low 32 bytes, row n' in the high 32) and the codes themselves. `groups` < 16
// only for the last, partial chunk: its missing codes load as 0, so whatever
// activation their index picks adds nothing.
struct PairChunk {
  __m512i idx, vals;
};

VBMI_VNNI inline PairChunk pair_chunk(const uint8_t* r0, const uint8_t* r1, int64_t c, int groups, int64_t ahead) {
  // Field j (2 bits at bit 2j of the chunk's metadata) is the column of kept
  // code j within its group j / 2: vpmultishiftqb moves each field to a byte.
  alignas(64) static const uint8_t kShift[64] = {0,  2,  4,  6,  8,  10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30,
                                                 32, 34, 36, 38, 40, 42, 44, 46, 48, 50, 52, 54, 56, 58, 60, 62,
                                                 0,  2,  4,  6,  8,  10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30,
                                                 32, 34, 36, 38, 40, 42, 44, 46, 48, 50, 52, 54, 56, 58, 60, 62};
  alignas(64) static const uint8_t kBase[64] = {0,  0,  4,  4,  8,  8,  12, 12, 16, 16, 20, 20, 24, 24, 28, 28,
                                                32, 32, 36, 36, 40, 40, 44, 44, 48, 48, 52, 52, 56, 56, 60, 60,
                                                0,  0,  4,  4,  8,  8,  12, 12, 16, 16, 20, 20, 24, 24, 28, 28,
                                                32, 32, 36, 36, 40, 40, 44, 44, 48, 48, 52, 52, 56, 56, 60, 60};
  const uint8_t *c0 = r0 + c * kChunkBytes, *c1 = r1 + c * kChunkBytes;
  // The same chunk of the next block's rows (`ahead` bytes on): the next
  // block arrives while this one is decoded.
  _mm_prefetch(reinterpret_cast<const char*>(c0 + ahead), _MM_HINT_T0);
  _mm_prefetch(reinterpret_cast<const char*>(c1 + ahead), _MM_HINT_T0);
  // Row n's word in the low half, row n''s in the high half: broadcasts from
  // memory, which (unlike an insert of registers) leave port 5 to vpermb.
  __m512i meta;
  if (groups == 16)
    meta = _mm512_mask_broadcastq_epi64(_mm512_set1_epi64(int64_t(load_meta(c0 + 32, 16))), 0xF0,
                                        _mm_loadl_epi64(reinterpret_cast<const __m128i*>(c1 + 32)));
  else
    meta = _mm512_inserti64x4(_mm512_set1_epi64(int64_t(load_meta(c0 + 2 * groups, groups))),
                              _mm256_set1_epi64x(int64_t(load_meta(c1 + 2 * groups, groups))), 1);
  const __m512i fields = _mm512_multishift_epi64_epi8(_mm512_load_si512(kShift), meta);
  // (fields & 3) | base: base has its low 2 bits clear.
  const __m512i idx =
      _mm512_ternarylogic_epi32(fields, _mm512_set1_epi8(3), _mm512_load_si512(kBase), 0xEA);  // (A & B) | C
  if (groups == 16)
    return {idx, _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(c0))),
                                    _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c1)), 1)};
  const __mmask32 vm = (__mmask32(1) << (2 * groups)) - 1;
  const __m256i v0 = _mm256_maskz_loadu_epi8(vm, c0), v1 = _mm256_maskz_loadu_epi8(vm, c1);
  return {idx, _mm512_inserti64x4(_mm512_castsi256_si512(v0), v1, 1)};
}

// Where a tile gets its pair chunks: decoded on the spot (one activation-row
// tile: each chunk is used once), or from the block's buffer, decoded once for
// every tile of a larger M (the buffer's stores would cost more than they save at M <= kTileM).
struct DecodeChunks {
  const uint8_t* const (&r)[kPairs][2];
  int64_t K, ahead;
  VBMI_VNNI PairChunk get(int64_t ch, int p) const {
    return pair_chunk(r[p][0], r[p][1], ch, int(std::min<int64_t>(16, (K - ch * kChunk) / 4)), ahead);
  }
};
struct BufferedChunks {
  const PairChunk* pc;
  VBMI_VNNI PairChunk get(int64_t ch, int p) const { return pc[ch * kPairs + p]; }
};

// Integer sums C of TM activation rows x kPairs row pairs: per chunk, the
// pairs' indices and codes, then per row one activation load, and a vpermb and
// a vpdpbusd per pair.
template <int TM, class Chunks>
VBMI_VNNI void tile(const uint8_t* u, int64_t K, int64_t m0, const Chunks& src, int32_t (&c)[kTileM][kPairs][2]) {
  constexpr int P = kPairs;
  __m512i acc[TM][P];
  for (int i = 0; i < TM; ++i)
    for (int p = 0; p < P; ++p) acc[i][p] = _mm512_setzero_si512();
  const int64_t full = K / kChunk, chunks = (K + kChunk - 1) / kChunk;
  for (int64_t ch = 0; ch < chunks; ++ch) {
    const __mmask64 am = ch < full ? ~__mmask64(0) : (__mmask64(1) << (K - ch * kChunk)) - 1;
    PairChunk pc[P];
    for (int p = 0; p < P; ++p) pc[p] = src.get(ch, p);
#pragma GCC unroll 4
    for (int i = 0; i < TM; ++i) {
      const __m512i a = _mm512_maskz_loadu_epi8(am, u + (m0 + i) * K + ch * kChunk);
      for (int p = 0; p < P; ++p)
        acc[i][p] = _mm512_dpbusd_epi32(acc[i][p], _mm512_permutexvar_epi8(pc[p].idx, a), pc[p].vals);
    }
  }
  for (int i = 0; i < TM; ++i)
    for (int p = 0; p < P; ++p) {
      c[i][p][0] = _mm512_reduce_add_epi32(_mm512_maskz_mov_epi32(0x00FF, acc[i][p]));
      c[i][p][1] = _mm512_reduce_add_epi32(_mm512_maskz_mov_epi32(0xFF00, acc[i][p]));
    }
}

VBMI_VNNI void gemm_vbmi(const uint8_t* u, const float* a_scale, const float* a_zp, int64_t M, const Sparse24Weights& w,
                         const float* bias, float* out, int nthreads) {
  const int64_t rb = sparse24_row_bytes(w.K), NB = 2 * kPairs;
  const int64_t blocks = (w.N + NB - 1) / NB;
  const int64_t chunks = (w.K + kChunk - 1) / kChunk;
#pragma omp parallel num_threads(nthreads)
  {
    // 64-byte aligned by hand: std::vector does not align its elements to 64 here.
    std::vector<uint8_t> store(size_t(chunks * kPairs) * sizeof(PairChunk) + 64);
    auto* pc = reinterpret_cast<PairChunk*>((reinterpret_cast<uintptr_t>(store.data()) + 63) & ~uintptr_t(63));
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) {
      // Rows past N repeat the last row; their sums are dropped.
      const uint8_t* r[kPairs][2];
      for (int p = 0; p < kPairs; ++p)
        for (int h = 0; h < 2; ++h) r[p][h] = w.rows + std::min(b * NB + 2 * p + h, w.N - 1) * rb;
      const DecodeChunks direct{r, w.K, NB * rb};
      if (M > kTileM)
        for (int64_t ch = 0; ch < chunks; ++ch)
          for (int p = 0; p < kPairs; ++p) pc[size_t(ch * kPairs + p)] = direct.get(ch, p);
      for (int64_t m0 = 0; m0 < M; m0 += kTileM) {
        const int rows = int(std::min<int64_t>(kTileM, M - m0));
        int32_t c[kTileM][kPairs][2];
        for_tile_rows<kTileM>(rows, [&](auto tm) {
          if (M > kTileM)
            tile<tm()>(u, w.K, m0, BufferedChunks{pc}, c);
          else
            tile<tm()>(u, w.K, m0, direct, c);
        });
        for (int i = 0; i < rows; ++i)
          for (int p = 0; p < kPairs; ++p)
            for (int h = 0; h < 2; ++h) {
              const int64_t n = b * NB + 2 * p + h, m = m0 + i;
              if (n < w.N)
                out[m * w.N + n] =
                    epilogue(c[i][p][h], a_scale[m], a_zp[m], w.rowsum[size_t(n)], w.scale[size_t(n)], bias, n);
            }
      }
    }
  }
}
// --- float activations ----------------------------------------------------
#define AVX512_F __attribute__((target("avx512f,avx512bw,avx512vl")))

constexpr int kFRows = 4;  // weight rows per block

// One row's chunk: its kept codes' values (times the row's scale; float8
// e4m3fn x 2^-8, float8_avx512.h) and their columns, kept codes 0..15 within
// the chunk's columns 0..31 (i0), 16..31 within columns 32..63 (i1):
// vpermi2ps indices into two registers of x.
struct FChunk {
  __m512 v0, v1;
  __m512i i0, i1;
};

// Lane j: field j of a metadata half-word (its kept column within group j / 2) + 4 (j / 2).
AVX512_F inline __m512i chunk_indices(uint32_t w) {
  const __m512i shift = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i base = _mm512_setr_epi32(0, 0, 4, 4, 8, 8, 12, 12, 16, 16, 20, 20, 24, 24, 28, 28);
  return _mm512_ternarylogic_epi32(_mm512_srlv_epi32(_mm512_set1_epi32(int(w)), shift), _mm512_set1_epi32(3), base,
                                   0xEA);  // (A & B) | C
}

// Values of 32 code bytes: int8 codes, or float8 through the float16 converter.
template <Sparse24Values V>
AVX512_F inline void chunk_values(__m256i bytes, __m512& v0, __m512& v1) {
  if constexpr (V == Sparse24Values::Int4) {
    // Byte j holds code j (low nibble) and code j + 16: each sign-extended by a shift pair.
    const __m512i b = _mm512_cvtepu8_epi32(_mm256_castsi256_si128(bytes));
    v0 = _mm512_cvtepi32_ps(_mm512_srai_epi32(_mm512_slli_epi32(b, 28), 28));
    v1 = _mm512_cvtepi32_ps(_mm512_srai_epi32(_mm512_slli_epi32(b, 24), 28));
  } else if constexpr (V == Sparse24Values::Int8) {
    v0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(bytes)));
    v1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(bytes, 1)));
  } else {
    const __m512i h = float8_to_f16_bits<V == Sparse24Values::Float8E4M3FN>(_mm512_cvtepu8_epi16(bytes));
    v0 = _mm512_cvtph_ps(_mm512_castsi512_si256(h));
    v1 = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1));
  }
}

template <Sparse24Values V>
AVX512_F inline FChunk float_chunk(const uint8_t* row, int64_t c, int groups, float scale, int64_t ahead) {
  constexpr int bits = V == Sparse24Values::Int4 ? 4 : 8;
  const uint8_t* p = row + c * (sparse24_code_bytes(bits, 16) + 8);
  _mm_prefetch(reinterpret_cast<const char*>(p + ahead), _MM_HINT_T0);
  // A partial chunk's missing codes load as 0 (value 0): whatever column their index picks adds nothing.
  __m256i bytes;
  if constexpr (bits == 4)
    bytes = _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));  // zero-padded
  else
    bytes = groups == 16 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))
                         : _mm256_maskz_loadu_epi8((__mmask32(1) << (2 * groups)) - 1, p);
  FChunk f;
  chunk_values<V>(bytes, f.v0, f.v1);
  if (scale != 1.0f) {  // a scale folded into the values: weight-only linears' dequantized weights
    f.v0 = _mm512_mul_ps(f.v0, _mm512_set1_ps(scale));
    f.v1 = _mm512_mul_ps(f.v1, _mm512_set1_ps(scale));
  }
  const uint64_t meta = load_meta(p + sparse24_code_bytes(bits, groups), groups);
  f.i0 = chunk_indices(uint32_t(meta));
  f.i1 = chunk_indices(uint32_t(meta >> 32));
  return f;
}

// Chunks decoded on the spot (M <= kTileM: each is used once) or from the
// block's buffer. sc[i]: row i's scales (one per group of `group` columns,
// K or a multiple of the chunk), or nullptr.
template <Sparse24Values V>
struct FDirect {
  const uint8_t* const (&r)[kFRows];
  const float* const (&sc)[kFRows];
  int64_t K, group, ahead;
  AVX512_F FChunk get(int64_t ch, int i) const {
    return float_chunk<V>(r[i], ch, int(std::min<int64_t>(16, (K - ch * kChunk) / 4)),
                          sc[i] ? sc[i][ch * kChunk / group] : 1.0f, ahead);
  }
};
struct FBuffered {
  const FChunk* pc;
  AVX512_F FChunk get(int64_t ch, int i) const { return pc[ch * kFRows + i]; }
};

// Sums of TM activation rows x kFRows weight rows: per chunk and weight row,
// per activation row four loads of x (L1), two gathers and two FMAs.
template <int TM, class Chunks>
AVX512_F void float_tile(const float* x, int64_t K, int64_t m0, const Chunks& src, float (&s)[kTileM][kFRows]) {
  __m512 acc[TM][kFRows];
  for (int t = 0; t < TM; ++t)
    for (int i = 0; i < kFRows; ++i) acc[t][i] = _mm512_setzero_ps();
  const int64_t chunks = (K + kChunk - 1) / kChunk;
  for (int64_t ch = 0; ch < chunks; ++ch) {
    const int64_t left = K - ch * kChunk;  // columns in this chunk
    __mmask16 q[4];
    for (int j = 0; j < 4; ++j)
      q[j] = left >= 16 * (j + 1) ? __mmask16(0xFFFF) : left > 16 * j ? __mmask16((1u << (left - 16 * j)) - 1) : 0;
#pragma GCC unroll 4
    for (int i = 0; i < kFRows; ++i) {
      const FChunk c = src.get(ch, i);
#pragma GCC unroll 4
      for (int t = 0; t < TM; ++t) {
        const float* xr = x + (m0 + t) * K + ch * kChunk;
        const __m512 a0 = _mm512_maskz_loadu_ps(q[0], xr), a1 = _mm512_maskz_loadu_ps(q[1], xr + 16);
        const __m512 a2 = _mm512_maskz_loadu_ps(q[2], xr + 32), a3 = _mm512_maskz_loadu_ps(q[3], xr + 48);
        acc[t][i] = _mm512_fmadd_ps(_mm512_permutex2var_ps(a0, c.i0, a1), c.v0, acc[t][i]);
        acc[t][i] = _mm512_fmadd_ps(_mm512_permutex2var_ps(a2, c.i1, a3), c.v1, acc[t][i]);
      }
    }
  }
  for (int t = 0; t < TM; ++t)
    for (int i = 0; i < kFRows; ++i) s[t][i] = _mm512_reduce_add_ps(acc[t][i]);
}

template <Sparse24Values V>
AVX512_F void float_gemm_avx512(const float* x, int64_t M, const uint8_t* rows, int64_t N, int64_t K,
                                const float* scale, int64_t group, float* acc, int nthreads) {
  const int64_t rb = sparse24_row_bytes(K, V == Sparse24Values::Int4 ? 4 : 8), blocks = (N + kFRows - 1) / kFRows, G = K / group;
  const int64_t chunks = (K + kChunk - 1) / kChunk;
  const float unit = V == Sparse24Values::Float8E4M3FN ? 256.0f : 1.0f;  // exact: a power of two
#pragma omp parallel num_threads(nthreads)
  {
    // 64-byte aligned by hand: std::vector does not align its elements to 64 here.
    std::vector<uint8_t> store(M > kTileM ? size_t(chunks * kFRows) * sizeof(FChunk) + 64 : 0);
    auto* pc = reinterpret_cast<FChunk*>((reinterpret_cast<uintptr_t>(store.data()) + 63) & ~uintptr_t(63));
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) {
      // Rows past N repeat the last row; their sums are dropped.
      const uint8_t* r[kFRows];
      const float* sc[kFRows];
      for (int i = 0; i < kFRows; ++i) {
        const int64_t n = std::min(b * kFRows + i, N - 1);
        r[i] = rows + n * rb;
        sc[i] = scale ? scale + n * G : nullptr;
      }
      const FDirect<V> direct{r, sc, K, group, kFRows * rb};
      if (M > kTileM)
        for (int64_t ch = 0; ch < chunks; ++ch)
          for (int i = 0; i < kFRows; ++i) pc[size_t(ch * kFRows + i)] = direct.get(ch, i);
      for (int64_t m0 = 0; m0 < M; m0 += kTileM) {
        const int tr = int(std::min<int64_t>(kTileM, M - m0));
        float s[kTileM][kFRows];
        for_tile_rows<kTileM>(tr, [&](auto tm) {
          if (M > kTileM)
            float_tile<tm()>(x, K, m0, FBuffered{pc}, s);
          else
            float_tile<tm()>(x, K, m0, direct, s);
        });
        for (int t = 0; t < tr; ++t)
          for (int i = 0; i < kFRows; ++i)
            if (b * kFRows + i < N) acc[(m0 + t) * N + b * kFRows + i] = s[t][i] * unit;
      }
    }
  }
}
#endif

}  // namespace

void int8_sparse24_gemm_u8(const uint8_t* u, const float* a_scale, const float* a_zp, int64_t M,
                           const Sparse24Weights& w, const float* bias, float* out, int nthreads) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  const auto& f = cpu_features();
  // set_isa() below AVX-512 (tests) selects the portable path too.
  if (f.avx512f && f.avx512bw && f.avx512vl && f.avx512vbmi && f.avx512vnni && active_isa() == Isa::Avx512)
    return gemm_vbmi(u, a_scale, a_zp, M, w, bias, out, nthreads);
#endif
  gemm_portable(u, a_scale, a_zp, M, w, bias, out, nthreads);
}

void sparse24_gemm_f32(const float* x, int64_t M, const uint8_t* rows, int64_t N, int64_t K, Sparse24Values values,
                       const float* scale, int64_t group, float* acc, int nthreads) {
  if (M == 0 || N == 0) return;
  if (!scale) group = K;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  const auto& f = cpu_features();
  if (f.avx512f && f.avx512bw && f.avx512vl && active_isa() == Isa::Avx512 && (group == K || group % kChunk == 0)) {
    switch (values) {
      case Sparse24Values::Int8:
        return float_gemm_avx512<Sparse24Values::Int8>(x, M, rows, N, K, scale, group, acc, nthreads);
      case Sparse24Values::Float8E4M3FN:
        return float_gemm_avx512<Sparse24Values::Float8E4M3FN>(x, M, rows, N, K, scale, group, acc, nthreads);
      case Sparse24Values::Float8E5M2:
        return float_gemm_avx512<Sparse24Values::Float8E5M2>(x, M, rows, N, K, scale, group, acc, nthreads);
      case Sparse24Values::Int4:
        return float_gemm_avx512<Sparse24Values::Int4>(x, M, rows, N, K, scale, group, acc, nthreads);
    }
  }
#endif
  float_gemm_portable(x, M, rows, N, K, values, scale, group, acc, nthreads);
}

}  // namespace kernels
}  // namespace torchao_cpp
