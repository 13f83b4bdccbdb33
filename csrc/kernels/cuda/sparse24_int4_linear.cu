#include "sparse24_int4_linear.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "tensor_core_pairs.cuh"

namespace torchao_cpp {
namespace kernels {
namespace cuda {
namespace {

// Warps of a block split one 16-row tile's K between them (16 warps per SM
// at 2 blocks, enough 512-byte loads in flight for decode shapes).
constexpr int kWarps = 8;
// K blocks of 32 per step: a lane's 16-byte load of the packed values.
constexpr int64_t kStepK = 128;

// The A operand of one K block from the lane's word: register r holds the
// codes in nibbles r and r + 4, stored + 8. kMagic + (code + 8) - (kMagic + 8)
// is the code exactly; times the row's scale it is rounded once to T.
// Registers 0 and 2 are row g's, 1 and 3 row g + 8's.
template <class T>
__device__ __forceinline__ void decode_block(uint32_t w, uint32_t s_lo, uint32_t s_hi, uint32_t (&a)[4]) {
  constexpr uint32_t kMagic = Pair<T>::kMagic4, kMagicPlus8 = Pair<T>::kMagic4 | 0x00080008u;
#pragma unroll
  for (int r = 0; r < 4; ++r)
    a[r] = mul2<T>(sub2<T>(and_or<0x000F000Fu>(w >> (4 * r), kMagic), kMagicPlus8), r % 2 ? s_hi : s_lo);
}

// One block per NT 16-row tiles; its warps take contiguous runs of 128-wide
// K steps and are summed through shared memory. Lane (g, q) feeds rows g and
// g + 8 of each tile (A) and activation row g of each group of 8 (B: k = 2q,
// 2q + 1 and + 8, + 16, + 24 of the block), one activation load serving the
// NT tiles (with 9-16 rows the activations' 4-byte loads were the limit:
// each fetches 8 rows' sectors for 4 bytes a lane); rows past N read row
// N - 1's scales and are dropped, activation rows past M are zeros, tiles past
// the last repeat it and are dropped.
template <class T, int MT, int NT>
__global__ void __launch_bounds__(kWarps * 32) sparse24_int4_gemv(const Sparse24Int4Args<T> a) {
  using P = Pair<T>;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, q = lane % 4;
  const int64_t steps = a.K / kStepK, G = a.K / a.group_size, tiles = (a.N + 15) / 16;
  const int64_t s0 = steps * warp / kWarps, s1 = steps * (warp + 1) / kWarps;
  const int64_t steps_per_group = a.group_size / kStepK;
  const uint4 *vals[NT], *meta[NT];
  const T *sc_lo[NT], *sc_hi[NT];
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    const int64_t tile = min(int64_t(blockIdx.x) * NT + t, tiles - 1);
    sc_lo[t] = a.scale + min(tile * 16 + g, a.N - 1) * G;
    sc_hi[t] = a.scale + min(tile * 16 + g + 8, a.N - 1) * G;
    vals[t] = reinterpret_cast<const uint4*>(a.values) + tile * steps * 32 + lane;
    meta[t] = reinterpret_cast<const uint4*>(a.meta) + tile * steps * 16 + 2 * g + (q & 1);
  }
  float acc[NT][MT][4] = {};
  for (int64_t s = s0; s < s1; ++s) {
    uint4 v[NT], e[NT];
    uint32_t s_lo[NT], s_hi[NT];
    const int64_t grp = s / steps_per_group;
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      v[t] = load_stream(vals[t] + s * 32);
      e[t] = q < 2 ? load_stream(meta[t] + s * 16) : make_uint4(0, 0, 0, 0);
      const float f_lo = to_f32(sc_lo[t][grp]), f_hi = to_f32(sc_hi[t][grp]);
      s_lo[t] = P::of(f_lo, f_lo), s_hi[t] = P::of(f_hi, f_hi);
    }
#pragma unroll
    for (int b = 0; b < 4; ++b) {
      const int64_t k0 = s * kStepK + b * 32 + 2 * q;
      uint32_t x[MT][4];
#pragma unroll
      for (int j = 0; j < MT; ++j) {
        const int64_t m = 8 * j + g;
        const uint32_t* xr = reinterpret_cast<const uint32_t*>(a.x + m * a.ldx + k0);
#pragma unroll
        for (int i = 0; i < 4; ++i) x[j][i] = m < a.M ? __ldg(xr + 4 * i) : 0u;  // k + 8 i: 4 pairs apart
      }
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        uint32_t w[4];
        decode_block<T>(word(v[t], b), s_lo[t], s_hi[t], w);
#pragma unroll
        for (int j = 0; j < MT; ++j) P::mma_sp(acc[t][j], w, x[j], word(e[t], b));
      }
    }
  }
  if (!sum_over_warps<kWarps>(acc)) return;
  for_each_output(acc, int64_t(blockIdx.x) * NT, a.N, a.M, [&](int64_t n, int64_t m, float sum) {
    a.out[m * a.N + n] = from_f32<T>(sum + (a.bias ? to_f32(a.bias[n]) : 0.0f));
  });
}

// One thread per (tile, step, lane): the 4 K blocks of its word, each of its
// two rows' two groups written whole (kept values and zeros, one 8-byte
// store); a warp's stores cover 32 contiguous bytes of each of 8 rows. A step
// lies in one group (group_size is a multiple of 128): two scales a thread.
template <class T>
__global__ void sparse24_int4_dequant(const Sparse24Int4Args<T> a, T* w) {
  const int64_t steps = a.K / kStepK, G = a.K / a.group_size;
  const int64_t id = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (id >= (a.N + 15) / 16 * steps * 32) return;
  const int lane = int(id % 32), g = lane / 4, q = lane % 4;
  const int64_t s = id / 32 % steps, tile = id / 32 / steps;
  const uint4 v = reinterpret_cast<const uint4*>(a.values)[id];
  const uint4* mrow = reinterpret_cast<const uint4*>(a.meta) + (tile * steps + s) * 16 + 2 * g;
  const uint4 e_lo = mrow[0], e_hi = mrow[1];  // groups 0..3 and 4..7 of each block
  const int64_t grp_k = s * kStepK / a.group_size;
#pragma unroll
  for (int half = 0; half < 2; ++half) {  // rows g, g + 8
    const int64_t n = tile * 16 + g + 8 * half;
    if (n >= a.N) continue;
    const float sc = to_f32(a.scale[n * G + grp_k]);
#pragma unroll
    for (int b = 0; b < 4; ++b)
#pragma unroll
      for (int upper = 0; upper < 2; ++upper) {  // groups q, q + 4 of the block
        const int r = half + 2 * upper, grp = q + 4 * upper;
        const uint32_t nib = word(upper ? e_hi : e_lo, b) >> (16 * half + 4 * q);
        uint64_t four = 0;  // the group's 4 values, 16 bits each, zeros where pruned
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          const int code = int((word(v, b) >> (4 * (r + 4 * j))) & 15u) - 8;
          const T val = from_f32<T>(float(code) * sc);  // exact product, rounded once
          four |= uint64_t(*reinterpret_cast<const uint16_t*>(&val)) << (16 * ((nib >> (2 * j)) & 3));
        }
        *reinterpret_cast<uint2*>(w + n * a.K + s * kStepK + b * 32 + 4 * grp) =
            make_uint2(uint32_t(four), uint32_t(four >> 32));
      }
  }
}

template <class T>
cudaError_t check_args(const Sparse24Int4Args<T>& a) {
  if (a.K <= 0 || a.K % kStepK || a.group_size <= 0 || a.group_size % kStepK || a.K % a.group_size || a.N <= 0)
    return cudaErrorInvalidValue;
  if (!a.values || !a.meta || !a.scale) return cudaErrorInvalidValue;
  if (reinterpret_cast<uintptr_t>(a.values) % 16 || reinterpret_cast<uintptr_t>(a.meta) % 16)
    return cudaErrorMisalignedAddress;
  return cudaSuccess;
}

}  // namespace

template <class T>
cudaError_t sparse24_int4_linear(const Sparse24Int4Args<T>& a, cudaStream_t stream) {
  if (const cudaError_t err = check_args(a)) return err;
  if (a.M < 1 || a.M > kSparse24Int4GemvRows || a.ldx % 2 || !a.x || !a.out) return cudaErrorInvalidValue;
  if (reinterpret_cast<uintptr_t>(a.x) % 4) return cudaErrorMisalignedAddress;
  const int64_t tiles = (a.N + 15) / 16;
  const dim3 block(kWarps * 32);
  // One row: one tile a block (the loads of activations are few, blocks many); more: two, sharing them.
  if (a.M == 1)
    sparse24_int4_gemv<T, 1, 1><<<unsigned(tiles), block, 0, stream>>>(a);
  else if (a.M <= 8)
    sparse24_int4_gemv<T, 1, 2><<<unsigned((tiles + 1) / 2), block, 0, stream>>>(a);
  else
    sparse24_int4_gemv<T, 2, 2><<<unsigned((tiles + 1) / 2), block, 0, stream>>>(a);
  return cudaGetLastError();
}

template <class T>
cudaError_t sparse24_int4_dequantize(const Sparse24Int4Args<T>& a, T* w, cudaStream_t stream) {
  if (const cudaError_t err = check_args(a)) return err;
  if (!w) return cudaErrorInvalidValue;
  const int64_t threads = (a.N + 15) / 16 * (a.K / kStepK) * 32;
  sparse24_int4_dequant<T><<<unsigned((threads + 255) / 256), 256, 0, stream>>>(a, w);
  return cudaGetLastError();
}

template cudaError_t sparse24_int4_linear<__nv_bfloat16>(const Sparse24Int4Args<__nv_bfloat16>&, cudaStream_t);
template cudaError_t sparse24_int4_linear<__half>(const Sparse24Int4Args<__half>&, cudaStream_t);
template cudaError_t sparse24_int4_dequantize<__nv_bfloat16>(const Sparse24Int4Args<__nv_bfloat16>&, __nv_bfloat16*,
                                                             cudaStream_t);
template cudaError_t sparse24_int4_dequantize<__half>(const Sparse24Int4Args<__half>&, __half*, cudaStream_t);

}  // namespace cuda
}  // namespace kernels
}  // namespace torchao_cpp
