#include "sparse24_float8_linear.cuh"

#include "tensor_core_pairs.cuh"

namespace torchao_cpp {
namespace kernels {
namespace cuda {
namespace {

// Warps of a block split one or two 16-row tiles' K between them, as the 2:4 int4 GEMV.
constexpr int kWarps = 8;

// acc += W (16 x 64, 2:4, A) x X^T (64 x 8, B): the weight's format first.
#define TAO_MMA_SP_F8(WT, XT)                                                                                       \
  asm("mma.sp::ordered_metadata.sync.aligned.m16n8k64.row.col.f32." WT "." XT ".f32 {%0,%1,%2,%3}, "                 \
      "{%4,%5,%6,%7}, {%8,%9,%10,%11}, {%0,%1,%2,%3}, %12, 0x0;\n"                                                   \
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])                                                              \
      : "r"(a.x), "r"(a.y), "r"(a.z), "r"(a.w), "r"(b[0]), "r"(b[1]), "r"(b[2]), "r"(b[3]), "r"(e))
template <bool WE5, bool XE5>
__device__ __forceinline__ void mma_sp_f8(float (&c)[4], const uint4& a, const uint32_t (&b)[4], uint32_t e) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 890
  if constexpr (!WE5 && !XE5)
    TAO_MMA_SP_F8("e4m3", "e4m3");
  else if constexpr (!WE5 && XE5)
    TAO_MMA_SP_F8("e4m3", "e5m2");
  else if constexpr (WE5 && !XE5)
    TAO_MMA_SP_F8("e5m2", "e4m3");
  else
    TAO_MMA_SP_F8("e5m2", "e5m2");
#else
  __trap();  // never launched: the host checks the compute capability
#endif
}
#undef TAO_MMA_SP_F8

__device__ __forceinline__ float load_as_float(const void* p, DType t, int64_t i) {
  if (t == DType::BFloat16) return to_float(static_cast<const bf16*>(p)[i]);
  if (t == DType::Float16) return to_float(static_cast<const fp16*>(p)[i]);
  return static_cast<const float*>(p)[i];
}
__device__ __forceinline__ void store_from_float(void* p, DType t, int64_t i, float v) {
  if (t == DType::BFloat16)
    static_cast<bf16*>(p)[i] = from_float<bf16>(v);
  else if (t == DType::Float16)
    static_cast<fp16*>(p)[i] = from_float<fp16>(v);
  else
    static_cast<float*>(p)[i] = v;
}

// U blocks' weight loads of the NT tiles from block b (blocks past b1: zeros, never multiplied).
template <int U, int NT>
__device__ __forceinline__ void load_blocks(uint4 (&v)[U][NT], uint32_t (&e)[U][NT], const uint4* const (&vals)[NT],
                                            const uint32_t* const (&meta)[NT], int b, int b1) {
#pragma unroll
  for (int u = 0; u < U; ++u)
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      const bool in = b + u < b1;
      v[u][t] = in ? load_stream(vals[t] + (b + u) * 32) : make_uint4(0, 0, 0, 0);
      e[u][t] = in ? __ldg(meta[t] + (b + u) * 32) : 0x44444444u;
    }
}

// acc += those blocks times the activations (register i: bytes 16 i + 4 q .. + 3 of the block; zeros past
// M or K, where the weight's padding codes are zeros too).
template <bool WE5, bool XE5, int MT, int NT, int U>
__device__ __forceinline__ void mma_blocks(float (&acc)[NT][MT][4], const uint4 (&v)[U][NT], const uint32_t (&e)[U][NT],
                                           const uint8_t* const (&xrow)[MT], int b, int b1, int kq, int K) {
#pragma unroll
  for (int u = 0; u < U; ++u) {
    if (b + u >= b1) break;
    const int k0 = (b + u) * 64;
    uint32_t x[MT][4];
#pragma unroll
    for (int j = 0; j < MT; ++j)
#pragma unroll
      for (int i = 0; i < 4; ++i)
        x[j][i] = xrow[j] && k0 + 16 * i + kq < K ? __ldg(reinterpret_cast<const uint32_t*>(xrow[j] + k0 + 16 * i))
                                                  : 0u;
#pragma unroll
    for (int t = 0; t < NT; ++t)
#pragma unroll
      for (int j = 0; j < MT; ++j) mma_sp_f8<WE5, XE5>(acc[t][j], v[u][t], x[j], e[u][t]);
  }
}

// One block per NT 16-row tiles; its warps take contiguous runs of 64-wide K
// blocks and are summed through shared memory. Lane (g, q) feeds rows g and
// g + 8 of each tile (A: its 16 bytes a block as stored, no decode) and
// activation row g of each group of 8 (B), one activation load serving the
// NT tiles; tiles past the last repeat it and are dropped. Two sets of U
// blocks' loads alternate, so the next set is in flight during the mma.
template <bool WE5, bool XE5, int MT, int NT>
__global__ void __launch_bounds__(kWarps * 32, MT * NT >= 4 ? 1 : 2) sparse24_float8_gemv(const Sparse24Float8Args a) {
  constexpr int U = NT * MT >= 2 ? 1 : 2;  // two sets of U blocks in flight
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, q = lane % 4;
  const int blocks = int((a.K + 63) / 64), tiles = int((a.N + 15) / 16), K = int(a.K);
  const int b0 = blocks * warp / kWarps, b1 = blocks * (warp + 1) / kWarps;
  const uint4* vals[NT];
  const uint32_t* meta[NT];
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    const int64_t tile = min(int(blockIdx.x) * NT + t, tiles - 1);
    vals[t] = reinterpret_cast<const uint4*>(a.values) + tile * blocks * 32 + lane;
    meta[t] = a.meta + tile * blocks * 32 + lane;
  }
  const uint8_t* xrow[MT];
#pragma unroll
  for (int j = 0; j < MT; ++j) xrow[j] = 8 * j + g < a.M ? a.x + (8 * j + g) * a.K + 4 * q : nullptr;
  float acc[NT][MT][4] = {};
  uint4 va[U][NT], vb[U][NT];
  uint32_t ea[U][NT], eb[U][NT];
  load_blocks(va, ea, vals, meta, b0, b1);
  for (int b = b0; b < b1; b += 2 * U) {
    load_blocks(vb, eb, vals, meta, b + U, b1);
    mma_blocks<WE5, XE5>(acc, va, ea, xrow, b, b1, 4 * q, K);
    load_blocks(va, ea, vals, meta, b + 2 * U, b1);
    mma_blocks<WE5, XE5>(acc, vb, eb, xrow, b + U, b1, 4 * q, K);
  }
  if (!sum_over_warps<kWarps>(acc)) return;
  // float8_linear's epilogue, in its order, unfused.
  for_each_output(acc, int64_t(blockIdx.x) * NT, a.N, a.M, [&](int64_t n, int64_t m, float sum) {
    float v = __fmul_rn(__fmul_rn(sum, a.xs[m * a.xs_stride]), a.ws[n * a.ws_stride]);
    if (a.bias) v = __fadd_rn(v, load_as_float(a.bias, a.out_t, n));
    store_from_float(a.out, a.out_t, m * a.N + n, v);
  });
}

// One thread per (tile, block, lane): its 16 bytes, register r's two groups
// placed by the metadata word of lane 4 g + r, one 4-byte store a group.
__global__ void sparse24_float8_expand_kernel(const uint32_t* values, const uint32_t* meta, int64_t N, int64_t K,
                                              uint8_t* codes) {
  const int64_t blocks = (K + 63) / 64;
  const int64_t id = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (id >= (N + 15) / 16 * blocks * 32) return;
  const int lane = int(id % 32), g = lane / 4, q = lane % 4;
  const int64_t blk = id / 32 % blocks, tile = id / 32 / blocks;
  const uint4 v = reinterpret_cast<const uint4*>(values)[id];
  const uint32_t* quad = meta + (id - lane) + 4 * g;
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    const int64_t n = tile * 16 + g + 8 * (r % 2);
    if (n >= N) continue;
    const uint32_t e = quad[r], w = word(v, r);
#pragma unroll
    for (int h = 0; h < 2; ++h) {  // groups 2q + h (+ 8 for r >= 2)
      const int grp = 2 * q + h + 8 * (r / 2);
      const int64_t col = blk * 64 + 4 * grp;
      if (col >= K) continue;
      const uint32_t nib = e >> (4 * (grp % 8));
      uint32_t four = 0;
#pragma unroll
      for (int j = 0; j < 2; ++j) four |= ((w >> (8 * (2 * h + j))) & 0xFFu) << (8 * ((nib >> (2 * j)) & 3));
      *reinterpret_cast<uint32_t*>(codes + n * K + col) = four;
    }
  }
}

template <int MT, int NT>
void launch(const Sparse24Float8Args& a, unsigned grid, cudaStream_t stream) {
  const bool we5 = a.w_fmt == Float8Format::E5M2, xe5 = a.x_fmt == Float8Format::E5M2;
  const dim3 block(kWarps * 32);
  if (!we5 && !xe5)
    sparse24_float8_gemv<false, false, MT, NT><<<grid, block, 0, stream>>>(a);
  else if (!we5)
    sparse24_float8_gemv<false, true, MT, NT><<<grid, block, 0, stream>>>(a);
  else if (!xe5)
    sparse24_float8_gemv<true, false, MT, NT><<<grid, block, 0, stream>>>(a);
  else
    sparse24_float8_gemv<true, true, MT, NT><<<grid, block, 0, stream>>>(a);
}

}  // namespace

bool sparse24_float8_mma_supported() {
  int dev = 0, major = 0, minor = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev))
    return false;
  return major * 10 + minor >= 89;
}

cudaError_t sparse24_float8_linear(const Sparse24Float8Args& a, cudaStream_t stream) {
  if (a.K <= 0 || a.K % 4 || a.N <= 0 || a.M < 1 || a.M > kSparse24Float8GemvRows) return cudaErrorInvalidValue;
  if (!a.x || !a.values || !a.meta || !a.xs || !a.ws || !a.out) return cudaErrorInvalidValue;
  if ((a.out_t != DType::Float32 && a.out_t != DType::BFloat16 && a.out_t != DType::Float16) ||
      a.tiles_per_block < 0 || a.tiles_per_block > 2)
    return cudaErrorInvalidValue;
  if (reinterpret_cast<uintptr_t>(a.values) % 16 || reinterpret_cast<uintptr_t>(a.meta) % 4 ||
      reinterpret_cast<uintptr_t>(a.x) % 4)
    return cudaErrorMisalignedAddress;
  if (!sparse24_float8_mma_supported()) return cudaErrorNotSupported;
  const int64_t tiles = (a.N + 15) / 16;
  // Up to 8 rows, two tiles a block (sharing the activation loads) where that still leaves 256 blocks and
  // more, else one; 9-16 rows, one. H100, kernel times, one tile / two (test_cuda_kernels --bench-sparse24):
  // M = 1: 8.4 / 10.7, 25.6 / 23.8, 21.1 / 29.0 us; M = 8: 8.9 / 11.1, 27.7 / 24.4, 22.2 / 29.8 us;
  // M = 16: 12.4 / 13.2, 39.0 / 44.1, 32.2 / 33.7 us ((K, N) = (4096, 4096), (4096, 14336), (14336, 4096)).
  const int nt = a.tiles_per_block ? a.tiles_per_block : a.M <= 8 && tiles >= 512 ? 2 : 1;
  const unsigned grid = unsigned((tiles + nt - 1) / nt);
  if (a.M <= 8)
    nt == 1 ? launch<1, 1>(a, grid, stream) : launch<1, 2>(a, grid, stream);
  else
    nt == 1 ? launch<2, 1>(a, grid, stream) : launch<2, 2>(a, grid, stream);
  return cudaGetLastError();
}

cudaError_t sparse24_float8_expand(const uint32_t* values, const uint32_t* meta, int64_t N, int64_t K,
                                   uint8_t* codes, cudaStream_t stream) {
  if (N <= 0 || K <= 0 || K % 4 || !values || !meta || !codes) return cudaErrorInvalidValue;
  if (reinterpret_cast<uintptr_t>(values) % 16 || reinterpret_cast<uintptr_t>(meta) % 4 ||
      reinterpret_cast<uintptr_t>(codes) % 4)
    return cudaErrorMisalignedAddress;
  const int64_t threads = (N + 15) / 16 * ((K + 63) / 64) * 32;
  sparse24_float8_expand_kernel<<<unsigned((threads + 255) / 256), 256, 0, stream>>>(values, meta, N, K, codes);
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace kernels
}  // namespace torchao_cpp
