#include "weight_only_linear.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <type_traits>

#include "async_copy.cuh"
#include "tensor_core_pairs.cuh"

namespace torchao_cpp {
namespace kernels {
namespace cuda {
namespace {

// Warps of a block split its tiles' K between them; more warps keep more
// weight bytes in flight per tile, fewer keep more tiles resident. H100
// (benchmarks/results/cuda_h100.txt): 4 suit 4-bit codes, 8 suit bytes.
constexpr int kMaxWarps = 8;
template <CodeFormat F>
constexpr int kDefaultWarps = F == CodeFormat::Uint4 ? 4 : 8;
constexpr int64_t kMaxGridY = 65535;

// One row's group: W = (code + c) * s + z with c = code_offset (- z for an
// integer zero point, - mid for a float one). `sub` is the constant that
// turns the magic-number form of a code into code + c, exactly.
struct RowQ {
  float sub, s, z;
  uint32_t sub2, s2, z2;
};

// k / group_size without a division instruction (integer division is a
// long instruction sequence on the GPU, and the kernels need one per load):
// q = (umulhi(k, m) + k) >> l, exact for k < 2^31 (Granlund-Montgomery).
// check_args keeps K below 2^31, so div(K) is also a row's group count (a
// 64-bit K / group_size is a long call on the device).
struct GroupDiv {
  uint32_t m = 0, l = 0;
  GroupDiv() = default;
  explicit GroupDiv(int64_t d) {
    while ((int64_t(1) << l) < d) ++l;
    m = uint32_t(((uint64_t(1) << 32) * ((uint64_t(1) << l) - uint64_t(d))) / uint64_t(d) + 1);
  }
  __device__ __forceinline__ uint32_t operator()(uint32_t k) const { return (__umulhi(k, m) + k) >> l; }
};

// The constant turning the magic-number form of a code into code + c.
template <class T, CodeFormat F>
__device__ __forceinline__ float q_sub(const WeightOnlyArgs<T>& a, float z) {
  float c = a.code_offset;
  if (a.domain == ZeroDomain::Int) c -= z;
  if (a.domain == ZeroDomain::Float) c -= a.mid;
  // Uint4: kMagic + nibble; Int8: the sign bit flipped gives code + 128 as a byte.
  const float magic = F == CodeFormat::Int8 && !Pair<T>::kBytesExact ? 8388608.0f : Pair<T>::kMagic;
  return magic + (F == CodeFormat::Int8 ? 128.0f : 0.0f) - c;
}

// The group's qparams of one row: sc and zp point at the row's first group.
template <class T, CodeFormat F>
__device__ __forceinline__ RowQ row_q(const WeightOnlyArgs<T>& a, const T* sc, const T* zp, uint32_t group, bool ok) {
  RowQ q{0.0f, 0.0f, 0.0f, 0u, 0u, 0u};  // a row or k past the end: W = 0
  if (!ok) return q;
  const float s = to_f32(sc[group]), z = a.domain != ZeroDomain::None ? to_f32(zp[group]) : 0.0f;
  q.s = s;
  q.z = a.domain == ZeroDomain::Float ? z : 0.0f;
  q.sub = q_sub<T, F>(a, z);
  q.sub2 = Pair<T>::of(q.sub, q.sub);
  q.s2 = Pair<T>::of(s, s);
  q.z2 = Pair<T>::of(q.z, q.z);
  return q;
}

template <class T>
__device__ __forceinline__ float bits_to_f32(uint32_t b);
template <>
__device__ __forceinline__ float bits_to_f32<__nv_bfloat16>(uint32_t b) { return __uint_as_float(b << 16); }
template <>
__device__ __forceinline__ float bits_to_f32<__half>(uint32_t b) { return __half2float(__ushort_as_half((unsigned short)b)); }

// row_q from the raw bits of a scale and a zero point packed as s | z << 16
// (the same values with fewer instructions: a T value's pair is its bits
// twice). k holds the launch's constant part, q_sub(a, 0). The domain is a
// template argument: tested at run time, the Int and Float paths were both
// issued under predicates for every row and K block (H100 SASS).
// kIntZero: sub = k.sub + z (exact in float32, as q_sub computes it).
// Otherwise sub is k.sub and z the stored zero point, which the caller
// leaves 0 for ZeroDomain::None.
template <class T, CodeFormat F, bool kIntZero>
__device__ __forceinline__ RowQ row_q_bits(uint32_t sz, const RowQ& k) {
  RowQ q;
  q.s = bits_to_f32<T>(sz & 0xFFFFu);
  q.s2 = __byte_perm(sz, 0u, 0x1010);
  if constexpr (F == CodeFormat::Float8E4M3 && !Pair<T>::kBytesExact) {
    const float t = q.s * 0x1p120f;  // the exact float8 route's factor (DecodeFloat8)
    q.s2 = Pair<T>::of(t, t);
  }
  if constexpr (kIntZero) {
    q.sub = k.sub + bits_to_f32<T>(sz >> 16);
    // The exact byte route (Decode<bfloat16, Int8>) subtracts z - code_offset.
    const float d = F == CodeFormat::Int8 && !Pair<T>::kBytesExact ? q.sub - (8388608.0f + 128.0f) : q.sub;
    q.sub2 = Pair<T>::of(d, d);
    q.z = 0.0f;
    q.z2 = 0u;
  } else {
    q.sub = k.sub;
    q.sub2 = k.sub2;
    q.z = bits_to_f32<T>(sz >> 16);
    q.z2 = __byte_perm(sz, 0u, 0x3232);
  }
  return q;
}

// Dequantizes the codes of one 16-byte load into pairs of T: pair i holds
// codes lo(i) and lo(i) + kStride. The order matches b_pairs below, so the
// K order inside a tensor-core tile is permuted identically for both operands.
// word(w, q, p) decodes the kPerWord pairs of one 32-bit word (pairs
// kPerWord * u onwards of word u), so a kernel can decode as it multiplies.
template <class T, CodeFormat F>
struct Decode;

// The 16 pairs of a load, word by word.
template <class D>
struct DecodeLoad {
  template <int kPairs>  // 4 * D::kPerWord (D is incomplete here)
  __device__ static void run(const uint4& c, const RowQ& q, uint32_t (&p)[kPairs]) {
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      uint32_t pw[kPairs / 4];
      D::word(word(c, u), q, pw);
#pragma unroll
      for (int i = 0; i < kPairs / 4; ++i) p[kPairs / 4 * u + i] = pw[i];
    }
  }
};

template <class T>
struct Decode<T, CodeFormat::Uint4> : DecodeLoad<Decode<T, CodeFormat::Uint4>> {
  static constexpr int kCodes = 32, kStride = 4, kPerWord = 4;
  __device__ static int lo(int i) { return 8 * (i / 4) + i % 4; }
  template <int kMode = 0>  // one route
  __device__ static void word(uint32_t w, const RowQ& q, uint32_t (&p)[kPerWord]) {
#pragma unroll
    for (int s = 0; s < 4; ++s)
      p[s] = fma2<T>(sub2<T>(and_or<0x000F000Fu>(w >> (4 * s), Pair<T>::kMagic4), q.sub2), q.s2, q.z2);
  }
};

// How the gemv decodes bytes for bfloat16 (a byte needs 8 significant bits,
// bfloat16's magic-number form holds 7): kByteFloat32 through float32 (any
// zero domain), kByteExact and kByteExactShift as exact bfloat16 codes (no
// float zero point; the latter subtracts d = z - code_offset, held in sub2).
enum ByteMode : int { kByteFloat32 = 0, kByteExact = 1, kByteExactShift = 2 };

template <class T>
struct Decode<T, CodeFormat::Int8> : DecodeLoad<Decode<T, CodeFormat::Int8>> {
  static constexpr int kCodes = 16, kStride = 2, kPerWord = 2;
  __device__ static int lo(int i) { return 4 * (i / 2) + i % 2; }
  template <int kMode = kByteFloat32>
  __device__ static void word(uint32_t w, const RowQ& q, uint32_t (&p)[kPerWord]) {
    if constexpr (!Pair<T>::kBytesExact && kMode != kByteFloat32) {
      // Codes 0, 2 (then 1, 3) in the low bytes of the two halves: 128 + (code & 127)
      // less 128, or 256 where bit 7 (the sign) is set, is the code, exactly;
      // times s rounded once as the float32 route does (9 instructions a word
      // against 14 there).
      const uint32_t hi = w >> 8;
      uint32_t e0 = sub2<T>(and_or<0x007F007Fu>(w, Pair<T>::kMagic4), and_or<0x00800080u>(w, Pair<T>::kMagic4));
      uint32_t e1 = sub2<T>(and_or<0x007F007Fu>(hi, Pair<T>::kMagic4), and_or<0x00800080u>(hi, Pair<T>::kMagic4));
      if constexpr (kMode == kByteExactShift) {
        e0 = sub2<T>(e0, q.sub2);
        e1 = sub2<T>(e1, q.sub2);
      }
      p[0] = mul2<T>(e0, q.s2);
      p[1] = mul2<T>(e1, q.s2);
      return;
    }
    w ^= 0x80808080u;
    if constexpr (Pair<T>::kBytesExact) {
      p[0] = fma2<T>(sub2<T>(__byte_perm(w, 0x64646464u, 0x4240), q.sub2), q.s2, q.z2);
      p[1] = fma2<T>(sub2<T>(__byte_perm(w, 0x64646464u, 0x4341), q.sub2), q.s2, q.z2);
    } else {
      float v[4];
#pragma unroll
      for (int j = 0; j < 4; ++j)
        v[j] = fmaf(__uint_as_float(__byte_perm(w, 0x4B000000u, 0x7440 | j)) - q.sub, q.s, q.z);
      p[0] = Pair<T>::of(v[0], v[2]);
      p[1] = Pair<T>::of(v[1], v[3]);
    }
  }
};

// Float8 codes pair as stored: pair i holds codes 2i and 2i + 1 (one
// conversion of 16 bits to two halves). kMode 0: W = f * s through float32
// (the dequantize and GEMM kernels). kMode 1 (the gemv): float16, W = f * s as
// one half product; bfloat16 (e4m3 only), each code's bits moved into
// bfloat16 bits as f * 2^-120 (sign to bit 15, exponent and mantissa to bits
// 4-10: exact for every finite code, subnormals too) times s * 2^120
// (RowQ::s2), one bfloat16 product: a byte permute that also replicates the
// signs, a shift and a mask, 4 instructions a pair against 7 through float32,
// valid while |s| < 2^8 (else s * 2^120 overflows; the gemv votes on its
// rows' scales per K block).
template <class T, __nv_fp8_interpretation_t kFp8>
struct DecodeFloat8 : DecodeLoad<DecodeFloat8<T, kFp8>> {
  static constexpr int kCodes = 16, kStride = 1, kPerWord = 2;
  __device__ static int lo(int i) { return 2 * i; }
  template <int kMode = 0>
  __device__ static uint32_t pair(uint32_t w, int j, const RowQ& q) {
    const __half2_raw r = __nv_cvt_fp8x2_to_halfraw2(__nv_fp8x2_storage_t(j ? w >> 16 : w & 0xFFFFu), kFp8);
    const uint32_t h = uint32_t(r.x) | uint32_t(r.y) << 16;
    if constexpr (kMode == 1 && Pair<T>::kBytesExact) {
      return mul2<T>(h, q.s2);
    } else if constexpr (kMode == 1) {
      static_assert(kFp8 == __NV_E4M3, "e5m2 codes need more exponent bits");
      // Per half: the code in the low byte, its sign replicated over the high
      // byte (prmt's sign mode, which __byte_perm does not promise); << 4
      // puts the sign at bit 15 and the code's low 7 bits at 4-10.
      uint32_t v;
      if (j)
        asm("prmt.b32 %0, %1, 0, 0xB3A2;" : "=r"(v) : "r"(w));
      else
        asm("prmt.b32 %0, %1, 0, 0x9180;" : "=r"(v) : "r"(w));
      return mul2<T>((v << 4) & 0x87F087F0u, q.s2);
    } else {
      const float2 f = __half22float2(__half2(r));
      return Pair<T>::of(f.x * q.s, f.y * q.s);
    }
  }
  template <int kMode = 0>
  __device__ static void word(uint32_t w, const RowQ& q, uint32_t (&p)[kPerWord]) {
    p[0] = pair<kMode>(w, 0, q);
    p[1] = pair<kMode>(w, 1, q);
  }
};
template <class T>
struct Decode<T, CodeFormat::Float8E4M3> : DecodeFloat8<T, __NV_E4M3> {};
template <class T>
struct Decode<T, CodeFormat::Float8E5M2> : DecodeFloat8<T, __NV_E5M2> {};

// The activation pairs of k-tile t (0 or 1) of eight activations X, in the
// order Decode pairs the codes: (x0, x4), (x1, x5) | (x2, x6), (x3, x7) for
// 4-bit codes, (x0, x2), (x1, x3) | (x4, x6), (x5, x7) for int8, as stored
// (x0, x1), (x2, x3) | (x4, x5), (x6, x7) for float8.
template <CodeFormat F>
__device__ __forceinline__ void b_pairs(const uint4& X, int t, uint32_t& b0, uint32_t& b1) {
  const uint32_t lo = F == CodeFormat::Uint4 ? (t ? X.y : X.x) : (t ? X.z : X.x);
  const uint32_t hi = F == CodeFormat::Uint4 ? (t ? X.w : X.z) : (t ? X.w : X.y);
  if constexpr (F == CodeFormat::Float8E4M3 || F == CodeFormat::Float8E5M2) {
    b0 = lo;
    b1 = hi;
  } else {
    b0 = __byte_perm(lo, hi, 0x5410);
    b1 = __byte_perm(lo, hi, 0x7632);
  }
}


// Eight activations (16 bytes): one vector load when the row is aligned.
template <class T, bool kVec>
__device__ __forceinline__ uint4 load_x8(const T* xr) {
  if constexpr (kVec) {
    return __ldg(reinterpret_cast<const uint4*>(xr));
  } else {
    uint4 v;
    uint16_t* h = reinterpret_cast<uint16_t*>(&v);
#pragma unroll
    for (int i = 0; i < 8; ++i) h[i] = __ldg(reinterpret_cast<const unsigned short*>(xr) + i);
    return v;
  }
}

template <CodeFormat F>
constexpr int kBits = F == CodeFormat::Uint4 ? 4 : 8;

// Tensor-core weight-only GEMM for few rows: out^T = W x^T, W as the 16-row
// A operand (dequantized in registers) and up to 8 * MT activation rows as B.
// A block takes NT 16-row tiles of W (sharing each activation load between
// them); its warps take interleaved K blocks (the 4 lanes of a row each load
// 16 contiguous bytes: 64 bytes of a row and 16 rows per warp load) and are
// summed through shared memory at the end. Lane (g, t) holds rows g and g + 8
// of each tile and K range [kCodes * t, kCodes * (t + 1)) of each K block; the
// K order within a tensor-core tile is permuted, the same way for both
// operands (Decode, b_pairs), which leaves the sum unchanged.
template <class T, CodeFormat F, int NT, int MT, int U, bool kVec>
__global__ void __launch_bounds__(kMaxWarps * 32)
    wo_mma_kernel(const WeightOnlyArgs<T> a, const GroupDiv div, int64_t m_begin) {
  using D = Decode<T, F>;
  constexpr int kCodes = D::kCodes, kX = kCodes / 8, kBlockK = 4 * kCodes, kAcc = NT * MT * 4;
  __shared__ float red[kMaxWarps][kAcc][32];
  const int warp = threadIdx.x >> 5, warps = blockDim.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, tig = lane & 3;
  const int64_t n0 = int64_t(blockIdx.x) * 16 * NT, m0 = m_begin + int64_t(blockIdx.y) * (8 * MT);
  const int64_t row_bytes = a.K * kBits<F> / 8, kblocks = (a.K + kBlockK - 1) / kBlockK;
  // Rows g and g + 8 of each tile: r = 2 * tile + half.
  const int64_t groups = div(uint32_t(a.K));
  bool ok[2 * NT];
  const char* rows[2 * NT];
  const T *sc[2 * NT], *zp[2 * NT];
#pragma unroll
  for (int r = 0; r < 2 * NT; ++r) {
    const int64_t n = n0 + 16 * (r / 2) + 8 * (r % 2) + g, nr = n < a.N ? n : 0;
    ok[r] = n < a.N;
    rows[r] = static_cast<const char*>(a.codes) + nr * row_bytes;
    sc[r] = a.scale + nr * groups;
    zp[r] = a.zero ? a.zero + nr * groups : nullptr;
  }
  float acc[NT][MT][4];
#pragma unroll
  for (int i = 0; i < NT; ++i)
#pragma unroll
    for (int t = 0; t < MT; ++t) acc[i][t][0] = acc[i][t][1] = acc[i][t][2] = acc[i][t][3] = 0.0f;
  const uint4 zero4 = make_uint4(0u, 0u, 0u, 0u);
  for (int64_t kb0 = warp; kb0 < kblocks; kb0 += int64_t(warps) * U) {
    // Everything U K blocks need is requested before any is used.
    uint4 cw[U][2 * NT], xv[U][MT][kX];
    RowQ q[U][2 * NT];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t k0 = (kb0 + int64_t(u) * warps) * kBlockK + kCodes * tig;
      const bool in = k0 < a.K;
      const uint32_t group = div(uint32_t(in ? k0 : 0));
#pragma unroll
      for (int r = 0; r < 2 * NT; ++r) {
        cw[u][r] = in && ok[r] ? load_stream(rows[r] + k0 * kBits<F> / 8) : zero4;
        q[u][r] = row_q<T, F>(a, sc[r], zp[r], group, in && ok[r]);
      }
#pragma unroll
      for (int t = 0; t < MT; ++t) {
        const int64_t m = m0 + 8 * t + g;
#pragma unroll
        for (int v = 0; v < kX; ++v)
          xv[u][t][v] = in && m < a.M ? load_x8<T, kVec>(a.x + m * a.ldx + k0 + 8 * v) : zero4;
      }
    }
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
      for (int i = 0; i < NT; ++i) {
        uint32_t pa[kCodes / 2], pb[kCodes / 2];
        D::run(cw[u][2 * i], q[u][2 * i], pa);
        D::run(cw[u][2 * i + 1], q[u][2 * i + 1], pb);
#pragma unroll
        for (int j = 0; j < kCodes / 4; ++j) {
          const uint32_t w[4] = {pa[2 * j], pb[2 * j], pa[2 * j + 1], pb[2 * j + 1]};
#pragma unroll
          for (int t = 0; t < MT; ++t) {
            uint32_t b0, b1;
            b_pairs<F>(xv[u][t][j / 2], j % 2, b0, b1);
            Pair<T>::mma(acc[i][t], w, b0, b1);
          }
        }
      }
  }
#pragma unroll
  for (int i = 0; i < NT; ++i)
#pragma unroll
    for (int t = 0; t < MT; ++t)
#pragma unroll
      for (int e = 0; e < 4; ++e) red[warp][(i * MT + t) * 4 + e][lane] = acc[i][t][e];
  __syncthreads();
  // Accumulator e of lane l for tile i, m-tile t: row n0 + 16 i + l / 4
  // (+ 8 for e >= 2), activation row m0 + 8 t + 2 (l % 4) + e % 2.
  for (int j = threadIdx.x; j < kAcc * 32; j += blockDim.x) {
    const int idx = j >> 5, l = j & 31, i = idx / (4 * MT), t = (idx / 4) % MT, e = idx & 3;
    const int64_t n = n0 + 16 * i + (l >> 2) + (e >= 2 ? 8 : 0), m = m0 + 8 * t + 2 * (l & 3) + (e & 1);
    if (n >= a.N || m >= a.M) continue;
    float v = 0.0f;
    for (int w = 0; w < warps; ++w) v += red[w][idx][l];
    a.out[m * a.N + n] = from_f32<T>(v + (a.bias ? to_f32(a.bias[n]) : 0.0f));
  }
}


// Few activation rows (the decode case, M <= 16) when a group spans whole K
// blocks: the same tensor-core tile (out^T = W x^T, W as the 16-row A
// operand, MT groups of 8 activation rows as B: a decoded weight fragment
// feeds MT products), NT tiles per warp sharing the activation fragments, the block's
// warps splitting K in contiguous chunks. Each lane streams its codes through
// its own slots of a shared-memory ring (cp.async): kDepth K blocks in flight
// per warp while it decodes, at no register cost. Issued instructions are the
// other limit (H200, ncu: 355 per tile and K block with one tile per warp and
// per-row loads and predicates, 254 as here), hence no per-row predicates
// (rows past N are computed from row N - 1 and dropped), constant address
// offsets, and one scale and zero point load per lane and K block (the 4
// lanes of a row share the group: lane t loads row t's and passes them round
// by shuffles).
constexpr int kGemvMaxWarps = 16;
// Four tiles a warp need more than the 128 registers a 16-warp block allows
// (ptxas -v: 100-200 bytes spilled): blocks of up to 8 warps, 255 registers.
constexpr int gemv_max_warps(int nt) { return nt >= 4 ? 8 : kGemvMaxWarps; }
// Warps resident at once across an H100/H200 (132 SMs x 16 at ~124 registers):
// the default fills one wave (H200: faster than more warps in 1.7 waves) from
// its starting warp count on.
constexpr int64_t kGemvResidentWarps = 132 * 16;

struct GemvParams {
  GroupDiv div;
  int chunk = 0;  // K blocks per warp
};

// 16-byte loads per lane in one ring slot of the gemv: codes of its 2 NT rows,
// then (activations staged through the ring) those of its MT activation rows.
template <class T, CodeFormat F, int NT, int MT>
constexpr int gemv_slot_loads(bool stage) {
  return 2 * NT + (stage ? MT * Decode<T, F>::kCodes / 8 : 0);
}

// Ring slots of a gemv warp: kDepth K blocks in flight and the one being
// read; with pairs (kDepth 2), the pair in flight and the pair being read.
constexpr int gemv_slots(int depth, bool pairs) { return pairs ? 4 : depth + 1; }

// How the gemv reads activations: element by element (rows not 16-byte
// aligned), 16-byte loads as used, or staged through the ring with the codes.
enum class XLoad { Scalar, Vector, Staged };

// The gemv's decode route (Decode::word's kMode): exact bfloat16 codes for
// int8; for float8 the single half product (kF8Exact), which bfloat16 takes
// for a K block while all its 16 rows' scales are below 2^8 (kF8Checked: one
// warp vote per K block; a block-wide check before the loop, waiting on its
// loads, cost 4-8 % on the H100).
template <class T, CodeFormat F>
constexpr bool kF8Exact = F == CodeFormat::Float8E4M3 || (F == CodeFormat::Float8E5M2 && Pair<T>::kBytesExact);
template <class T, CodeFormat F>
constexpr bool kF8Checked = F == CodeFormat::Float8E4M3 && !Pair<T>::kBytesExact;
template <class T, CodeFormat F, bool kIntZero>
constexpr int kGemvMode = F == CodeFormat::Int8 ? (kIntZero ? kByteExactShift : kByteExact) : kF8Exact<T, F> ? 1 : 0;

template <class T, CodeFormat F, int NT, int MT, int kDepth, XLoad kX8, bool kIntZero, int kMinBlocks, bool kPairs>
__global__ void __launch_bounds__(gemv_max_warps(NT) * 32, kMinBlocks) wo_gemv_kernel(const WeightOnlyArgs<T> a, const GemvParams p) {
  using D = Decode<T, F>;
  constexpr int kCodes = D::kCodes, kX = kCodes / 8, kBlockK = 4 * kCodes, kRows = 2 * NT;
  constexpr int kStepBytes = kBlockK * kBits<F> / 8;  // a row's bytes per K block
  // One slot more than in flight: a refill goes to the slot read a step
  // earlier, never the one being read. A slot holds each lane's 16 bytes of
  // codes of its kRows rows, then (XLoad::Staged) its activations: loaded as
  // used, their latency cost 15-20 % of the 1-row time (H200, kernel without
  // them).
  constexpr bool kVec = kX8 != XLoad::Scalar, kStage = kX8 == XLoad::Staged;
  // kPairs: two K blocks a step, each warp load 128 contiguous bytes of 4
  // rows (row pieces of 64 bytes stream up to 25 % slower from DRAM on an
  // H100: benchmarks/cuda/stream_patterns.cu); one step in flight while one
  // is consumed. Lanes then copy codes other lanes decode.
  static_assert(!kPairs || kDepth == 2, "pairs keep two K blocks in flight");
  constexpr int kSlotLoads = gemv_slot_loads<T, F, NT, MT>(kStage), kSlots = gemv_slots(kDepth, kPairs),
                kSlotBytes = kSlotLoads * 32 * 16;
  static_assert(kStepBytes == 64, "a lane's 16 bytes of each of 4 lanes a row");
  extern __shared__ uint4 ring[];
  const int warp = threadIdx.x >> 5, warps = blockDim.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, tig = lane & 3;
  const int64_t n0 = int64_t(blockIdx.x) * 16 * NT;
  const int64_t row_bytes = a.K * kBits<F> / 8, kblocks = (a.K + kBlockK - 1) / kBlockK, groups = p.div(uint32_t(a.K));
  const int64_t kb0 = int64_t(warp) * p.chunk;
  const int steps = int(kblocks - kb0 < p.chunk ? (kblocks > kb0 ? kblocks - kb0 : 0) : p.chunk);
  // Row r = 2 i + h of the lane: n0 + 16 i + 8 h + g.
  auto row = [&](int r) {
    const int64_t n = n0 + 16 * (r / 2) + 8 * (r % 2) + g;
    return n < a.N ? n : a.N - 1;
  };
  // kPairs: load j of this lane copies 16 bytes of row 4 j + lane / 8 (so
  // of warp row r = j / 2 of lane g = 4 (j % 2) + lane / 8), chunk lane % 8 of
  // the pair's 128 bytes: K block `half` of the pair, that lane's tig.
  constexpr int kLoads = kPairs ? 2 * kRows : kRows;
  const int half = kPairs ? (lane & 7) >> 2 : 0, ptig = kPairs ? lane & 3 : tig;
  const char* codes[kLoads];
#pragma unroll
  for (int j = 0; j < kLoads; ++j) {
    const int64_t n = kPairs ? n0 + 4 * j + (lane >> 3) : row(j);
    codes[j] = static_cast<const char*>(a.codes) + (n < a.N ? n : a.N - 1) * row_bytes + (kb0 + half) * kStepBytes +
               16 * ptig;
  }
  // Lane t loads the qparams of rows t % kRows and (four tiles) t + 4: 4 lanes cover the kRows rows.
  constexpr int kQ = kRows > 4 ? kRows / 4 : 1;
  const unsigned short *sown[kQ], *zown[kQ];
#pragma unroll
  for (int q = 0; q < kQ; ++q) {
    const int64_t own = row(tig % kRows + 4 * q) * groups;
    sown[q] = reinterpret_cast<const unsigned short*>(a.scale) + own;
    zown[q] = a.zero ? reinterpret_cast<const unsigned short*>(a.zero) + own : sown[q];
  }
  const bool has_z = a.domain != ZeroDomain::None;
  // Lane (g, t) multiplies activation rows g + 8 mt. Lanes whose row is past
  // M load nothing and multiply zeros into output columns that are never
  // stored: at M = 1, 7 of 8 lanes would otherwise fetch and stage row 0's
  // activations again (L1 and shared memory bandwidth the codes need).
  const T* xp[MT];
  bool xin[MT];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
    xin[mt] = g + 8 * mt < a.M;
    xp[mt] = a.x + (xin[mt] ? g + 8 * mt : 0) * a.ldx + kb0 * kBlockK + kCodes * tig;
  }
  const int kfirst = int(kb0 < kblocks ? kb0 : 0) * kBlockK;  // the first K block's first k (any when steps = 0)
  const float sub = q_sub<T, F>(a, 0.0f);  // the qparams' constant part (an integer zero point adds z)
  const RowQ kq{sub, 0.0f, 0.0f, Pair<T>::of(sub, sub), 0u, 0u};
  uint4* const mine = ring + warp * kSlots * kSlotBytes / 16 + lane;  // slot s, load r: mine[(s * kSlotLoads + r) * 32]
  const uint32_t mine_s = uint32_t(__cvta_generic_to_shared(mine));
  // kPairs: where load j lands, the slot of K block `half` aside (+ half * kSlotBytes):
  // load j / 2 of lane 4 (4 (j % 2) + lane / 8) + lane % 4 in pair_s + j % 2 * 256.
  const uint32_t pair_s = uint32_t(__cvta_generic_to_shared(ring + warp * kSlots * kSlotBytes / 16)) +
                          uint32_t(half * kSlotBytes + (((lane >> 3) << 2) + (lane & 3)) * 16);
  uint32_t sq[kSlots][kQ], zq[kSlots][kQ];  // each slot's scale and zero point bits of the lane's rows
  // Requests this warp's K block i into slot `slot` as one cp.async group
  // (an empty group past the end; zeros past K in a partial last block).
  // The activations and qparams of K block i into `slot` (no commit).
  auto issue_x = [&](int slot, int i) {
    if (i < steps) {
      const int kb_k = kfirst + i * kBlockK, bytes = kb_k + kCodes * tig < a.K ? 16 : 0;
      if constexpr (kStage)
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
          if (xin[mt])
#pragma unroll
            for (int v = 0; v < kX; ++v)
              cp_async16<true>(mine_s + (slot * kSlotLoads + kRows + mt * kX + v) * 512,
                               xp[mt] + int64_t(i) * kBlockK + 8 * v, bytes);
      const uint32_t group = p.div(uint32_t(kb_k));
#pragma unroll
      for (int q = 0; q < kQ; ++q) {
        sq[slot][q] = __ldg(sown[q] + group);
        zq[slot][q] = has_z ? __ldg(zown[q] + group) : 0u;
      }
    }
  };
  auto issue = [&](int slot, int i) {
    if (i < steps) {
      const int bytes = kfirst + i * kBlockK + kCodes * tig < a.K ? 16 : 0;
#pragma unroll
      for (int r = 0; r < kRows; ++r)
        cp_async16(mine_s + (slot * kSlotLoads + r) * 512, codes[r] + int64_t(i) * kStepBytes, bytes);
    }
    issue_x(slot, i);
    cp_async_commit();
  };
  // kPairs: K blocks i and i + 1 into slots 2 ps and 2 ps + 1 as one group.
  auto issue_pair = [&](int ps, int i) {
    const int ih = i + half;
    if (ih < steps) {
      const int bytes = kfirst + ih * kBlockK + kCodes * ptig < a.K ? 16 : 0;
#pragma unroll
      for (int j = 0; j < kLoads; ++j)
        cp_async16(pair_s + uint32_t(((2 * ps * kSlotLoads + j / 2) * 32 + 16 * (j % 2)) * 16),
                   codes[j] + int64_t(i) * kStepBytes, bytes);
    }
    issue_x(2 * ps, i);
    issue_x(2 * ps + 1, i + 1);
    cp_async_commit();
  };
  // Two accumulators per product alternate along K (kChains 2): shorter mma
  // chains. Four tiles' products already make 8 independent chains.
  constexpr int kChains = NT >= 4 ? 1 : 2;
  float acc[NT][MT][kChains][4];
#pragma unroll
  for (int i = 0; i < NT; ++i)
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int c = 0; c < kChains; ++c) acc[i][mt][c][0] = acc[i][mt][c][1] = acc[i][mt][c][2] = acc[i][mt][c][3] = 0.0f;
  // Decodes and multiplies the K block i held in slot u.
  auto consume = [&](int u, int i) {
    const int k0 = kfirst + i * kBlockK + kCodes * tig;
    uint4 xv[MT][kX];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int v = 0; v < kX; ++v) xv[mt][v] = make_uint4(0u, 0u, 0u, 0u);
    if constexpr (!kStage)
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
        if (xin[mt] && k0 < a.K)
#pragma unroll
          for (int v = 0; v < kX; ++v) xv[mt][v] = load_x8<T, kVec>(xp[mt] + int64_t(i) * kBlockK + 8 * v);
    if constexpr (!kPairs) cp_async_wait<kDepth>();  // K block i has landed (kPairs: waited by the loop)
    uint4 c[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) c[r] = mine[(u * kSlotLoads + r) * 32];
    if constexpr (kStage)
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
        if (xin[mt])
#pragma unroll
          for (int v = 0; v < kX; ++v) xv[mt][v] = mine[(u * kSlotLoads + kRows + mt * kX + v) * 32];
    uint32_t sz[kQ];
#pragma unroll
    for (int j = 0; j < kQ; ++j) sz[j] = __byte_perm(sq[u][j], zq[u][j], 0x5410);
    RowQ q[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r)
      q[r] = row_q_bits<T, F, kIntZero>(__shfl_sync(0xFFFFFFFFu, sz[r / 4], (lane & ~3) | (r & 3)), kq);
    // Word by word: a word's pairs feed kPerWord / 2 products per tile.
    auto mul = [&](auto mode) {
#pragma unroll
      for (int u4 = 0; u4 < 4; ++u4) {
        uint32_t pw[kRows][D::kPerWord];
#pragma unroll
        for (int r = 0; r < kRows; ++r) D::template word<decltype(mode)::value>(word(c[r], u4), q[r], pw[r]);
#pragma unroll
        for (int h = 0; h < D::kPerWord / 2; ++h) {
          const int j = u4 * (D::kPerWord / 2) + h;
          uint32_t b0[MT], b1[MT];
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) b_pairs<F>(xv[mt][j / 2], j % 2, b0[mt], b1[mt]);
#pragma unroll
          for (int t = 0; t < NT; ++t) {
            const uint32_t w[4] = {pw[2 * t][2 * h], pw[2 * t + 1][2 * h], pw[2 * t][2 * h + 1], pw[2 * t + 1][2 * h + 1]};
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) Pair<T>::mma(acc[t][mt][j % kChains], w, b0[mt], b1[mt]);
          }
        }
      }
    };
    // Lane t of row group g holds the scales of its rows t % kRows (and t + 4): the vote sees all 16 * NT rows.
    if constexpr (kF8Checked<T, F>) {
      bool big = false;
#pragma unroll
      for (int j = 0; j < kQ; ++j) big |= (sq[u][j] & 0x7FFFu) >= 0x4380u;
      if (__any_sync(0xFFFFFFFFu, big))  // |s| >= 2^8
        mul(std::integral_constant<int, 0>{});
      else
        mul(std::integral_constant<int, 1>{});
    } else {
      mul(std::integral_constant<int, kGemvMode<T, F, kIntZero>>{});
    }
  };
  if constexpr (kPairs) {
    // Lanes read what other lanes copied: the warp syncs after each wait,
    // and before a refill (of the pair read a step earlier).
    issue_pair(0, 0);
    for (int ib = 0; ib < steps; ib += 4) {
#pragma unroll
      for (int pp = 0; pp < 2; ++pp) {
        const int i = ib + 2 * pp;
        if (i >= steps) break;  // the same for the whole warp
        __syncwarp();
        issue_pair(1 - pp, i + 2);
        cp_async_wait<1>();
        __syncwarp();
        consume(2 * pp, i);
        if (i + 1 < steps) consume(2 * pp + 1, i + 1);
      }
    }
  } else {
#pragma unroll
    for (int u = 0; u < kDepth; ++u) issue(u, u);
    for (int ib = 0; ib < steps; ib += kSlots) {
#pragma unroll
      for (int u = 0; u < kSlots; ++u) {
        const int i = ib + u;
        if (i >= steps) break;  // the same for the whole warp
        issue((u + kDepth) % kSlots, i + kDepth);
        consume(u, i);
      }
    }
  }
  cp_async_wait<0>();
  __syncthreads();  // the ring becomes the reduction buffer
  float* red = reinterpret_cast<float*>(ring);  // [warp][(tile * MT + mt) * 4 + e][lane]
  constexpr int kAcc = NT * MT * 4;
#pragma unroll
  for (int t = 0; t < NT; ++t)
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float v = acc[t][mt][0][e];
#pragma unroll
        for (int c = 1; c < kChains; ++c) v += acc[t][mt][c][e];
        red[(warp * kAcc + (t * MT + mt) * 4 + e) * 32 + lane] = v;
      }
  __syncthreads();
  // Accumulator e of lane l, tile t, activation group mt: row n0 + 16 t + l / 4
  // (+ 8 for e >= 2), activation row 8 mt + 2 (l % 4) + e % 2.
  for (int j = threadIdx.x; j < kAcc * 32; j += blockDim.x) {
    const int idx = j >> 5, l = j & 31, t = idx / (4 * MT), mt = (idx / 4) % MT, e = idx & 3;
    const int64_t n = n0 + 16 * t + (l >> 2) + (e >= 2 ? 8 : 0), m = 8 * mt + 2 * (l & 3) + (e & 1);
    if (n >= a.N || m >= a.M) continue;
    float v = 0.0f;
    for (int w = 0; w < warps; ++w) v += red[(w * kAcc + idx) * 32 + l];
    a.out[m * a.N + n] = from_f32<T>(v + (a.bias ? to_f32(a.bias[n]) : 0.0f));
  }
}

// One thread per 16-byte load of codes: W[n, k] exactly as the GEMM kernel
// dequantizes it, so both paths see the same weight.
template <class T, CodeFormat F>
__global__ void dequantize_kernel(const WeightOnlyArgs<T> a, T* __restrict__ w) {
  using D = Decode<T, F>;
  const int64_t loads = a.K / D::kCodes, i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= a.N * loads) return;
  const int64_t n = i / loads, k0 = (i % loads) * D::kCodes;
  uint32_t p[D::kCodes / 2];
  const int64_t groups = a.K / a.group_size;
  D::run(__ldg(reinterpret_cast<const uint4*>(a.codes) + i),
         row_q<T, F>(a, a.scale + n * groups, a.zero ? a.zero + n * groups : nullptr, uint32_t(k0 / a.group_size), true), p);
  T v[D::kCodes];
#pragma unroll
  for (int j = 0; j < D::kCodes / 2; ++j) {
    const T* h = reinterpret_cast<const T*>(&p[j]);
    v[D::lo(j)] = h[0];
    v[D::lo(j) + D::kStride] = h[1];
  }
  uint4* dst = reinterpret_cast<uint4*>(w + n * a.K + k0);
#pragma unroll
  for (int j = 0; j < D::kCodes / 8; ++j) dst[j] = reinterpret_cast<const uint4*>(v)[j];
}

// PackedTable codes: 32 codes (bits 32-bit words, so any width stays word
// aligned) per lane and step, decoded with constant shifts and looked up in
// shared memory. W = (q + c) * s + z in float32, rounded once to T as the
// other formats; products accumulate in float32.
constexpr int kTableCodes = 32;

struct TableQ {
  float c, s, z;  // W = (q + c) * s + z
};
template <class T>
__device__ __forceinline__ TableQ table_q(const WeightOnlyArgs<T>& a, int64_t qi) {
  const float s = to_f32(a.scale[qi]);
  const float z = a.domain != ZeroDomain::None ? to_f32(a.zero[qi]) : 0.0f;
  const float c = a.code_offset - (a.domain == ZeroDomain::Int ? z : a.domain == ZeroDomain::Float ? a.mid : 0.0f);
  return {c, s, a.domain == ZeroDomain::Float ? z : 0.0f};
}
template <class T>
__device__ __forceinline__ float table_w(float q, const TableQ& t) {
  return to_f32(from_f32<T>(fmaf(q + t.c, t.s, t.z)));
}

// The words of chunk `ch` of row n (one word more, zero, for the last funnel shift).
template <int Bits>
__device__ __forceinline__ void table_load(const void* codes, int64_t chunks, int64_t n, int64_t ch,
                                           uint32_t (&w)[Bits + 1]) {
  const uint32_t* src = static_cast<const uint32_t*>(codes) + (n * chunks + ch) * Bits;
#pragma unroll
  for (int i = 0; i < Bits; ++i) w[i] = __ldg(src + i);
  w[Bits] = 0u;
}
template <int Bits, int W = Bits>
__device__ __forceinline__ uint32_t table_code(const uint32_t (&w)[W + 1], int j) {
  const int bit = j * Bits, i = bit >> 5, off = bit & 31;
  return (off + Bits <= 32 ? w[i] >> off : __funnelshift_r(w[i], w[i + 1], off)) & ((1u << Bits) - 1u);
}

template <int Bits>
__device__ __forceinline__ void table_to_shared(const CodeTable& tab, float* lut) {
  for (int i = threadIdx.x; i < (1 << Bits); i += blockDim.x) lut[i] = tab.value[i];
  __syncthreads();
}

__device__ __forceinline__ void cp_async4(uint32_t dst, const void* src, int bytes) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(bytes) : "memory");
}

// Up to MR activation rows (the decode case): a warp per weight row. A run
// of 1024 codes is kTableSubs pieces of 256; lane l decodes codes 8 l ..
// 8 l + 7 of each piece, so that the lanes' activation loads are contiguous
// 512-byte requests (with lanes 64 bytes apart each load touched 16 cache
// lines: 2 rows took 1.4x the time of one on the H200). A run's codes reach
// shared memory through coalesced cp.async copies, kTableStages - 1 runs
// ahead. kRowTable (one group a row: float-x formats, per-row integer codes):
// the warp first turns the table into the row's weights, so a code costs a
// lookup, not a conversion.
constexpr int kTableWarps = 8, kTableStages = 4, kTableSubs = 4, kTableRunCodes = 256 * kTableSubs;
template <class T, int Bits, int MR, bool kVec, bool kRowTable>
__global__ void __launch_bounds__(kTableWarps * 32)
    table_gemv_kernel(const WeightOnlyArgs<T> a, const CodeTable tab, const GroupDiv div) {
  constexpr int kRunWords = kTableRunCodes * Bits / 32;
  __shared__ float lut[1 << Bits];
  __shared__ float row_w[kTableWarps][kRowTable ? 1 << Bits : 1];
  __shared__ uint32_t stage[kTableWarps][kTableStages][kRunWords + 1];  // + 1: the last lane's funnel shift
  table_to_shared<Bits>(tab, lut);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t n = int64_t(blockIdx.x) * kTableWarps + warp;
  if (n >= a.N) return;
  const int64_t groups = div(uint32_t(a.K)), runs = (a.K + kTableRunCodes - 1) / kTableRunCodes;
  if constexpr (kRowTable) {
    const TableQ q = table_q(a, n);
    for (int c = lane; c < (1 << Bits); c += 32) row_w[warp][c] = table_w<T>(lut[c], q);
  }
  const int64_t row_words = a.K / 32 * Bits;
  const uint32_t* row = static_cast<const uint32_t*>(a.codes) + n * row_words;
  if (lane < kTableStages) stage[warp][lane][kRunWords] = 0u;
  auto issue = [&](int64_t r) {
    if (r < runs) {
      const uint32_t dst = uint32_t(__cvta_generic_to_shared(&stage[warp][r % kTableStages][0]));
#pragma unroll
      for (int i = lane; i < kRunWords; i += 32) {
        const int64_t wi = r * kRunWords + i;
        cp_async4(dst + 4 * i, row + (wi < row_words ? wi : 0), wi < row_words ? 4 : 0);
      }
    }
    cp_async_commit();
  };
#pragma unroll
  for (int r = 0; r < kTableStages - 1; ++r) issue(r);
  float acc[MR];
#pragma unroll
  for (int m = 0; m < MR; ++m) acc[m] = 0.0f;
  for (int64_t r = 0; r < runs; ++r) {
    issue(r + kTableStages - 1);
    cp_async_wait<kTableStages - 1>();
    __syncwarp();  // every lane's copies of run r have landed (and the row's weights are written)
#pragma unroll
    for (int p = 0; p < kTableSubs; ++p) {
      const int64_t k0 = r * kTableRunCodes + 256 * p + 8 * lane;
      if (k0 >= a.K) break;
      // The lane's 8 codes: 8 * Bits bits from bit 8 * Bits * (32 p + lane) of the run.
      const uint32_t* sw = &stage[warp][r % kTableStages][0];
      const int bit = 8 * Bits * (32 * p + lane), i = bit >> 5, off = bit & 31;
      uint32_t w[3] = {__funnelshift_r(sw[i], sw[i + 1], off), 0u, 0u};
      if (Bits > 4) w[1] = __funnelshift_r(sw[i + 1], sw[i + 2 <= kRunWords ? i + 2 : kRunWords], off);
      float wv[8];
      if constexpr (kRowTable) {
#pragma unroll
        for (int j = 0; j < 8; ++j) wv[j] = row_w[warp][table_code<Bits, 2>(w, j)];
      } else {
        const TableQ q = table_q(a, n * groups + div(uint32_t(k0)));
#pragma unroll
        for (int j = 0; j < 8; ++j) wv[j] = table_w<T>(lut[table_code<Bits, 2>(w, j)], q);
      }
#pragma unroll
      for (int m = 0; m < MR; ++m) {
        if (m >= a.M) break;
        const uint4 x8 = load_x8<T, kVec>(a.x + m * a.ldx + k0);
        const T* xs = reinterpret_cast<const T*>(&x8);
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[m] = fmaf(wv[e], to_f32(xs[e]), acc[m]);
      }
    }
    __syncwarp();  // run r's slot is refilled next
  }
  cp_async_wait<0>();
#pragma unroll
  for (int m = 0; m < MR; ++m)
#pragma unroll
    for (int d = 16; d > 0; d >>= 1) acc[m] += __shfl_xor_sync(0xFFFFFFFFu, acc[m], d);
  if (lane != 0) return;
  const float b = a.bias ? to_f32(a.bias[n]) : 0.0f;
#pragma unroll
  for (int m = 0; m < MR; ++m)
    if (m < a.M) a.out[m * a.N + n] = from_f32<T>(acc[m] + b);
}

// One thread per chunk: the same weights as table_gemv_kernel, stored.
template <class T, int Bits>
__global__ void table_dequantize_kernel(const WeightOnlyArgs<T> a, const CodeTable tab, const GroupDiv div, T* w) {
  __shared__ float lut[1 << Bits];
  table_to_shared<Bits>(tab, lut);
  const int64_t chunks = a.K / kTableCodes, i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= a.N * chunks) return;
  const int64_t n = i / chunks, ch = i % chunks;
  uint32_t c[Bits + 1];
  table_load<Bits>(a.codes, chunks, n, ch, c);
  const TableQ q = table_q(a, n * div(uint32_t(a.K)) + div(uint32_t(ch * kTableCodes)));
  T v[kTableCodes];
#pragma unroll
  for (int j = 0; j < kTableCodes; ++j) v[j] = from_f32<T>(table_w<T>(lut[table_code<Bits>(c, j)], q));
  uint4* dst = reinterpret_cast<uint4*>(w + i * kTableCodes);
#pragma unroll
  for (int j = 0; j < kTableCodes / 8; ++j) dst[j] = reinterpret_cast<const uint4*>(v)[j];
}

template <class T, int Bits>
cudaError_t launch_table(const WeightOnlyArgs<T>& a, T* w, cudaStream_t stream) {
  const GroupDiv div(a.group_size);
  if (w != nullptr) {
    const int64_t chunks = a.N * (a.K / kTableCodes);
    table_dequantize_kernel<T, Bits><<<unsigned((chunks + 255) / 256), 256, 0, stream>>>(a, *a.table, div, w);
    return cudaGetLastError();
  }
  const bool vec = reinterpret_cast<uintptr_t>(a.x) % 16 == 0 && a.ldx % 8 == 0;
  const unsigned blocks = unsigned((a.N + kTableWarps - 1) / kTableWarps);
  const bool row_table = a.group_size == a.K;
  auto go = [&](auto mr) {
    constexpr int MR = decltype(mr)::value;
    const auto kernel = vec ? (row_table ? table_gemv_kernel<T, Bits, MR, true, true> : table_gemv_kernel<T, Bits, MR, true, false>)
                            : (row_table ? table_gemv_kernel<T, Bits, MR, false, true> : table_gemv_kernel<T, Bits, MR, false, false>);
    kernel<<<blocks, kTableWarps * 32, 0, stream>>>(a, *a.table, div);
  };
  if (a.M <= 1)
    go(std::integral_constant<int, 1>{});
  else if (a.M <= 2)
    go(std::integral_constant<int, 2>{});
  else if (a.M <= 4)
    go(std::integral_constant<int, 4>{});
  else
    go(std::integral_constant<int, kTableGemvRows>{});
  return cudaGetLastError();
}

// PackedTable: the GEMV kernel up to kTableGemvRows rows, else (w != nullptr)
// the dequantize kernel for the GEMM path.
template <class T>
cudaError_t run_table(const WeightOnlyArgs<T>& a, T* w, cudaStream_t stream) {
  switch (a.bits) {
    case 1: return launch_table<T, 1>(a, w, stream);
    case 2: return launch_table<T, 2>(a, w, stream);
    case 3: return launch_table<T, 3>(a, w, stream);
    case 4: return launch_table<T, 4>(a, w, stream);
    case 5: return launch_table<T, 5>(a, w, stream);
    case 6: return launch_table<T, 6>(a, w, stream);
    case 7: return launch_table<T, 7>(a, w, stream);
    case 8: return launch_table<T, 8>(a, w, stream);
  }
  return cudaErrorInvalidValue;
}

// NT tiles of 16 rows per block, MT groups of 8 activation rows per pass, U
// K blocks in flight per warp: more of one leaves registers for less of another.
template <class T, CodeFormat F, int NT, int MT, int U>
cudaError_t launch(const WeightOnlyArgs<T>& a, cudaStream_t stream) {
  constexpr int64_t kBlockK = 4 * Decode<T, F>::kCodes;
  const int64_t kblocks = (a.K + kBlockK - 1) / kBlockK;
  const int64_t want = a.warps > 0 ? (a.warps < kMaxWarps ? a.warps : kMaxWarps) : kDefaultWarps<F>;
  const int warps = int(kblocks < want ? kblocks : want);
  // 16-byte activation loads need 16-byte aligned rows.
  const bool vec = reinterpret_cast<uintptr_t>(a.x) % 16 == 0 && a.ldx % 8 == 0;
  const int64_t passes = (a.M + 8 * MT - 1) / (8 * MT);
  const GroupDiv div(a.group_size);
  for (int64_t p0 = 0; p0 < passes; p0 += kMaxGridY) {
    const dim3 grid(unsigned((a.N + 16 * NT - 1) / (16 * NT)),
                    unsigned(passes - p0 < kMaxGridY ? passes - p0 : kMaxGridY));
    if (vec)
      wo_mma_kernel<T, F, NT, MT, U, true><<<grid, warps * 32, 0, stream>>>(a, div, p0 * 8 * MT);
    else
      wo_mma_kernel<T, F, NT, MT, U, false><<<grid, warps * 32, 0, stream>>>(a, div, p0 * 8 * MT);
  }
  return cudaGetLastError();
}

// Whether 9-16 activation rows are staged through the ring by default. Not
// for 4-bit codes: staging moves about 12 bytes of activations through L1 and
// shared memory per byte of codes, and loading them as used ran 10-13 % faster
// at 16 rows (H200, benchmarks/results/cuda_kernels_h200.txt); 8-bit codes,
// with half that ratio, ran 12-30 % faster staged.
template <CodeFormat F>
constexpr bool kStageTwoGroups = F != CodeFormat::Uint4;

template <class T, CodeFormat F, int NT, int MT, int kDepth, XLoad kX8, int kMinBlocks, bool kPairs>
auto gemv_kernel(bool int_zero) {
  // Float8 codes take no zero point: one instantiation fewer.
  constexpr bool kMayInt = F == CodeFormat::Uint4 || F == CodeFormat::Int8;
  return kMayInt && int_zero ? wo_gemv_kernel<T, F, NT, MT, kDepth, kX8, kMayInt, kMinBlocks, kPairs>
                             : wo_gemv_kernel<T, F, NT, MT, kDepth, kX8, false, kMinBlocks, kPairs>;
}
template <class T, CodeFormat F, int NT, int MT, int kDepth, int kMinBlocks, bool kPairs>
auto gemv_kernel(XLoad x8, bool int_zero) {
  return x8 == XLoad::Staged   ? gemv_kernel<T, F, NT, MT, kDepth, XLoad::Staged, kMinBlocks, kPairs>(int_zero)
         : x8 == XLoad::Vector ? gemv_kernel<T, F, NT, MT, kDepth, XLoad::Vector, kMinBlocks, kPairs>(int_zero)
                               : gemv_kernel<T, F, NT, MT, kDepth, XLoad::Scalar, kMinBlocks, kPairs>(int_zero);
}
// The gemv build for 1 or 2 blocks of 16 warps per SM (128 or 64 registers).
// Built for 2 only where it fits 64 registers: 8-bit codes, one tile, one
// activation group, 2 K blocks in flight (staged activations: no spill; ptxas
// -v). 4-bit codes spilled 20-84 bytes there; their best launch per shape ran
// 7-17 % slower than the 128-register build's (H100, M = 1).
template <CodeFormat F, int NT, int MT, int kDepth>
constexpr bool kGemvTwoBlocks = NT == 1 && MT == 1 && kDepth == 2 && kBits<F> == 8;
template <class T, CodeFormat F, int NT, int MT, int kDepth, bool kPairs>
auto gemv_kernel(XLoad x8, bool int_zero, int occupancy) {
  if constexpr (kGemvTwoBlocks<F, NT, MT, kDepth>)
    if (occupancy == 2) return gemv_kernel<T, F, NT, MT, kDepth, 2, kPairs>(x8, int_zero);
  return gemv_kernel<T, F, NT, MT, kDepth, 1, kPairs>(x8, int_zero);
}
template <class T, CodeFormat F, int NT, int MT, int kDepth>
auto gemv_kernel(XLoad x8, bool int_zero, int occupancy, bool pairs) {
  if constexpr (kDepth == 2)
    if (pairs) return gemv_kernel<T, F, NT, MT, kDepth, true>(x8, int_zero, occupancy);
  return gemv_kernel<T, F, NT, MT, kDepth, false>(x8, int_zero, occupancy);
}

// Defaults for up to 8 activation rows, from the H100 sweep of launch tunings
// (test_cuda_kernels --bench, benchmarks/results/cuda_h100.txt, 2026-12-06):
// one tile per warp, 8 warps for 4-bit codes (int4 g128 M = 1: 7.7 / 17.6 /
// 17.1 us on (4096, 4096) / (4096, 14336) / (14336, 4096) against 7.8 / 19.2 /
// 18.4 with the earlier 2 tiles and 4 warps), 16 for bytes. Bytes with short K
// runs per warp (up to 8 K blocks) take the 64-register build, two blocks per
// SM: more warps hide the decode's latency where each warp's stream is short
// (int8 10.5 / 26.5 us on (4096, 4096) / (4096, 14336) against 12.2 / 31.5 for
// 128 registers and 10.4 / 34.3 for the earlier default; float8 10.4 / 25.2
// against 11.9 / 30.7 and 10.3 / 33.4); with long runs the 128-register build
// is faster (14336 x 4096, 14 K blocks a warp: int8 28.5 against 30.9, float8
// 28.0 against 30.0; 31.7 and 31.1 before). At 9-16 rows bytes start from 8
// warps, 4-bit codes (two tiles a warp) from 4: int8 (4096, 14336) 30.6 us
// against 35.9 with 4 (H100, 2026-12-06, cuda_h100.txt; the other two shapes
// reached 8 warps from 4 anyway).
template <CodeFormat F, int NT, int MT>
constexpr int kGemvStartWarps = MT == 1 && NT == 1 ? (kBits<F> == 4 ? 8 : 16) : kBits<F> == 8 && NT == 1 ? 8 : 4;

// Pairs of K blocks a warp step (WeightOnlyArgs::pairs) by default for bytes
// whose warps each stream more than 8 K blocks, with the two-block build where
// it exists: H100 kernel sweep (cuda_h100.txt, 2026-12-07), (14336, 4096), M = 1
// int8 25.6 us against 27.9 (float8 26.8 against 28.8), M = 16 28.8 against 31.9
// (29.0 against 32.5); with short runs ((4096, 14336): 25.3-29.6 against
// 25.4-26.4) and for 4-bit codes (7-15 % slower: decode-bound) not.
template <CodeFormat F>
bool gemv_pairs_default(int64_t kblocks, int64_t warps) {
  return kBits<F> == 8 && kblocks > 8 * warps;
}
template <CodeFormat F, int NT, int MT, int kDepth>
int gemv_occupancy(int64_t kblocks, int64_t warps, bool pairs) {
  return kGemvTwoBlocks<F, NT, MT, kDepth> && (kblocks <= 8 * warps || pairs) ? 2 : 1;
}

// Half the warps (8, each streaming twice the K blocks) for bytes with short
// runs when all blocks of the two-block build fit one wave: H100 kernel sweep
// (cuda_h100.txt, 2026-12-07), (4096, 4096) M = 1, 256 blocks: int8 10.2 us
// against 10.5 with 16 warps, float8 10.1 against 10.5; with more blocks than
// a wave ((4096, 14336), 896) 16 warps keep more bytes in flight (int8 25.4
// against 26.9, float8 25.9 against 27.3).
template <CodeFormat F, int NT, int MT, int kDepth>
bool gemv_half_warps(int64_t kblocks, int64_t warps, int64_t blocks, int sms) {
  return kGemvTwoBlocks<F, NT, MT, kDepth> && warps == kGemvMaxWarps && kblocks <= 8 * (warps / 2) &&
         blocks <= 2 * int64_t(sms);
}

// NT tiles per warp; warps per block: kGemvStartWarps (fewer where K is
// short: each warp gets at least two K blocks), or as many more (split K when
// N is small) as one wave holds.
template <class T, CodeFormat F, int NT, int MT, int kDepth>
cudaError_t launch_gemv(const WeightOnlyArgs<T>& a, cudaStream_t stream) {
  constexpr int64_t kBlockK = 4 * Decode<T, F>::kCodes;
  const int64_t kblocks = (a.K + kBlockK - 1) / kBlockK, blocks = (a.N + 16 * NT - 1) / (16 * NT);
  constexpr int kMaxWarps = gemv_max_warps(NT);
  int64_t warps = a.warps > 0 ? (a.warps < kMaxWarps ? a.warps : kMaxWarps) : kGemvStartWarps<F, NT, MT>;
  int device = 0, optin = 48 * 1024, sms = 1;
  if (const cudaError_t e = cudaGetDevice(&device)) return e;
  if (const cudaError_t e = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device)) return e;
  if (const cudaError_t e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device)) return e;
  if (a.warps <= 0) {
    while (warps > 4 && warps * 2 > kblocks) warps /= 2;
    while (warps < kMaxWarps && blocks * warps * 2 <= kGemvResidentWarps && warps * 2 * 2 <= kblocks) warps *= 2;
    if (gemv_half_warps<F, NT, MT, kDepth>(kblocks, warps, blocks, sms)) warps /= 2;
  }
  if (warps > kblocks) warps = kblocks;
  const bool pairs = kDepth == 2 && (a.pairs > 0 || (a.pairs == 0 && gemv_pairs_default<F>(kblocks, warps)));
  const int occupancy = a.occupancy > 0 ? a.occupancy : gemv_occupancy<F, NT, MT, kDepth>(kblocks, warps, pairs);
  const bool vec = reinterpret_cast<uintptr_t>(a.x) % 16 == 0 && a.ldx % 8 == 0;
  const bool stage = vec && (a.stage > 0 || (a.stage == 0 && (MT == 1 || kStageTwoGroups<F>)));
  // Each warp's ring must fit the block's shared memory (227 KB on Hopper,
  // 163 KB on A100, 99 KB on other sm_8x): fewer warps where it does not.
  const int per_warp = gemv_slots(kDepth, pairs) * gemv_slot_loads<T, F, NT, MT>(stage) * 512;
  // The two-block build gets its two blocks: each takes half the shared memory.
  const int budget = kGemvTwoBlocks<F, NT, MT, kDepth> && occupancy == 2 ? optin / 2 : optin;
  if (warps * per_warp > budget) warps = budget / per_warp > 0 ? budget / per_warp : 1;
  GemvParams p;
  p.div = GroupDiv(a.group_size);
  p.chunk = int((kblocks + warps - 1) / warps);
  const auto kernel = gemv_kernel<T, F, NT, MT, kDepth>(stage ? XLoad::Staged : vec ? XLoad::Vector : XLoad::Scalar,
                                                       a.domain == ZeroDomain::Int, occupancy, pairs);
  const int smem = int(warps) * per_warp;
  // Above the default 48 KB a kernel must ask (a host-side attribute: no sync, graph-safe).
  if (smem > 48 * 1024)
    if (const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem)) return e;
  kernel<<<unsigned(blocks), unsigned(warps * 32), smem, stream>>>(a, p);
  return cudaGetLastError();
}

// Default tiles per warp: 1 for one activation group (see kGemvStartWarps).
// For two: 2 for 4-bit codes with 2 K blocks in flight and activations loaded
// as used (their default): 128 registers, no spill, 1.06-1.38x one tile at 16
// rows on the H200 (benchmarks/results/cuda_kernels_lop3_h200.txt), 1.04-1.33x
// on the H100 (cuda_h100.txt); 1 otherwise, where two tiles' accumulators and
// staged activations exceed the 128 registers a 512-thread block allows.
template <class T, CodeFormat F, int MT, int kDepth>
cudaError_t launch_gemv_tiles(const WeightOnlyArgs<T>& a, cudaStream_t stream) {
  constexpr bool kTwoTiles = MT == 2 && F == CodeFormat::Uint4 && kDepth == 2;
  const int tiles = a.tiles > 0 ? a.tiles : kTwoTiles && a.stage <= 0 ? 2 : 1;
  // Four tiles (a tuning, not yet a default): 4 warps of them, staged, one K block a step, ran
  // (4096, 14336) at 16 rows in 23.6-23.7 us against 25.1-25.4 for two tiles' default launch (H100,
  // benchmarks/results/cuda_int4_m16_experiments_h100.txt); their outputs await a kernel-test run.
  if constexpr (kTwoTiles)
    if (tiles == 4) return launch_gemv<T, F, 4, MT, kDepth>(a, stream);
  return tiles == 1 ? launch_gemv<T, F, 1, MT, kDepth>(a, stream) : launch_gemv<T, F, 2, MT, kDepth>(a, stream);
}

template <class T, CodeFormat F, int MT>
cudaError_t launch_gemv_depth(const WeightOnlyArgs<T>& a, cudaStream_t stream) {
  return a.depth == 3 ? launch_gemv_tiles<T, F, MT, 3>(a, stream) : launch_gemv_tiles<T, F, MT, 2>(a, stream);
}

template <class T, CodeFormat F>
cudaError_t launch_rows(const WeightOnlyArgs<T>& a, cudaStream_t stream) {
  // Few rows: the streaming kernel where groups span whole K blocks.
  // More rows: activation loads grow, so two tiles share each.
  constexpr int64_t kBlockK = 4 * Decode<T, F>::kCodes;
  // The gemv's exact byte route for bfloat16 takes codes without a zero point
  // or with integer ones; a float zero point, or a code_offset without a zero
  // point, takes the GEMM kernel (no config makes either for int8 codes in
  // groups the gemv takes; the raw op can).
  constexpr bool kExactBytes = F == CodeFormat::Int8 && !Pair<T>::kBytesExact;
  const bool bytes_ok = !kExactBytes || a.domain == ZeroDomain::Int || (a.domain == ZeroDomain::None && a.code_offset == 0.0f);
  const bool gemv = a.group_size % kBlockK == 0 && a.depth >= 0 && bytes_ok;
  if (a.M <= 8) return gemv ? launch_gemv_depth<T, F, 1>(a, stream) : launch<T, F, 1, 1, 4>(a, stream);
  if (a.M <= 16) return gemv ? launch_gemv_depth<T, F, 2>(a, stream) : launch<T, F, 2, 2, 2>(a, stream);
  return launch<T, F, 2, 4, 1>(a, stream);
}

int format_bits(CodeFormat f) {
  switch (f) {
    case CodeFormat::Uint4:
      return 4;
    case CodeFormat::Int8:
    case CodeFormat::Float8E4M3:
    case CodeFormat::Float8E5M2:
      return 8;
    case CodeFormat::PackedTable:
      return 0;  // checked apart
  }
  return 0;
}

template <class T>
cudaError_t check_args(const WeightOnlyArgs<T>& a) {
  if (a.format == CodeFormat::PackedTable) {
    if (a.bits < 1 || a.bits > 8 || a.table == nullptr || a.K <= 0 || a.K >= (int64_t(1) << 31) ||
        a.K % kTableCodes != 0 || a.group_size <= 0 || a.group_size % kTableCodes != 0 ||
        a.K % a.group_size != 0 || a.M < 0 || a.N < 0 || (a.domain != ZeroDomain::None && a.zero == nullptr))
      return cudaErrorInvalidValue;
    return reinterpret_cast<uintptr_t>(a.codes) % 4 != 0 ? cudaErrorMisalignedAddress : cudaSuccess;
  }
  const int bits = format_bits(a.format);
  if (bits == 0) return cudaErrorInvalidValue;
  const bool float8 = a.format == CodeFormat::Float8E4M3 || a.format == CodeFormat::Float8E5M2;
  if (float8 && (a.domain != ZeroDomain::None || a.code_offset != 0.0f)) return cudaErrorInvalidValue;
  const int64_t codes_per_load = 128 / bits;
  if (a.K <= 0 || a.K >= (int64_t(1) << 31) || a.K % codes_per_load != 0 || a.group_size <= 0 || a.group_size % codes_per_load != 0 ||
      a.K % a.group_size != 0 || a.M < 0 || a.N < 0)
    return cudaErrorInvalidValue;
  if (a.domain != ZeroDomain::None && a.zero == nullptr) return cudaErrorInvalidValue;
  if (reinterpret_cast<uintptr_t>(a.codes) % 16 != 0) return cudaErrorMisalignedAddress;
  return cudaSuccess;
}

// Calls f with the format as a template argument.
template <class T, template <class, CodeFormat> class Fn>
cudaError_t by_format(const WeightOnlyArgs<T>& a, cudaStream_t stream, T* w = nullptr) {
  switch (a.format) {
    case CodeFormat::Uint4:
      return Fn<T, CodeFormat::Uint4>::run(a, stream, w);
    case CodeFormat::Int8:
      return Fn<T, CodeFormat::Int8>::run(a, stream, w);
    case CodeFormat::Float8E4M3:
      return Fn<T, CodeFormat::Float8E4M3>::run(a, stream, w);
    case CodeFormat::Float8E5M2:
      return Fn<T, CodeFormat::Float8E5M2>::run(a, stream, w);
    case CodeFormat::PackedTable:
      break;  // run_table
  }
  return cudaErrorInvalidValue;
}

template <class T, CodeFormat F>
struct LinearFn {
  static cudaError_t run(const WeightOnlyArgs<T>& a, cudaStream_t stream, T*) { return launch_rows<T, F>(a, stream); }
};
template <class T, CodeFormat F>
struct DequantizeFn {
  static cudaError_t run(const WeightOnlyArgs<T>& a, cudaStream_t stream, T* w) {
    const int64_t loads = a.N * (a.K / Decode<T, F>::kCodes);
    dequantize_kernel<T, F><<<unsigned((loads + 255) / 256), 256, 0, stream>>>(a, w);
    return cudaGetLastError();
  }
};

}  // namespace

template <class T>
cudaError_t weight_only_linear(const WeightOnlyArgs<T>& a, cudaStream_t stream) {
  if (const cudaError_t e = check_args(a)) return e;
  if (a.M == 0 || a.N == 0) return cudaSuccess;
  if (a.format == CodeFormat::PackedTable) {
    if (a.M > kTableGemvRows) return cudaErrorInvalidValue;  // the caller dequantizes and runs a GEMM
    return run_table<T>(a, nullptr, stream);
  }
  return by_format<T, LinearFn>(a, stream);
}

template <class T>
cudaError_t weight_only_dequantize(const WeightOnlyArgs<T>& a, T* w, cudaStream_t stream) {
  if (const cudaError_t e = check_args(a)) return e;
  if (reinterpret_cast<uintptr_t>(w) % 16 != 0) return cudaErrorMisalignedAddress;
  if (a.N == 0) return cudaSuccess;
  if (a.format == CodeFormat::PackedTable) return run_table<T>(a, w, stream);
  return by_format<T, DequantizeFn>(a, stream, w);
}

template <class T>
cudaError_t int4_weight_only_linear(const T* x, int64_t ldx, const uint8_t* codes, const T* scale, const T* zero,
                                    int64_t M, int64_t N, int64_t K, int64_t group_size, T* out,
                                    cudaStream_t stream) {
  WeightOnlyArgs<T> a;
  a.x = x;
  a.ldx = ldx;
  a.codes = codes;
  a.format = CodeFormat::Uint4;
  a.scale = scale;
  a.zero = zero;
  a.domain = ZeroDomain::Float;
  a.mid = 8.0f;
  a.M = M;
  a.N = N;
  a.K = K;
  a.group_size = group_size;
  a.out = out;
  return weight_only_linear(a, stream);
}

#define TORCHAO_CPP_INSTANTIATE(T)                                                                            \
  template cudaError_t weight_only_linear<T>(const WeightOnlyArgs<T>&, cudaStream_t);                        \
  template cudaError_t weight_only_dequantize<T>(const WeightOnlyArgs<T>&, T*, cudaStream_t);                 \
  template cudaError_t int4_weight_only_linear<T>(const T*, int64_t, const uint8_t*, const T*, const T*, int64_t, \
                                                  int64_t, int64_t, int64_t, T*, cudaStream_t);
TORCHAO_CPP_INSTANTIATE(__nv_bfloat16)
TORCHAO_CPP_INSTANTIATE(__half)
#undef TORCHAO_CPP_INSTANTIATE

}  // namespace cuda
}  // namespace kernels
}  // namespace torchao_cpp
