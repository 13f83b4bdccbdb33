// The int8 x int8 linear on Hopper's integer tensor cores (wgmma), with the
// per-token and per-channel scales applied to the int32 sums in registers:
// the epilogue that int8_linear.cu runs over an M x N int32 array written by
// cuBLASLt (8 bytes of traffic per output) happens here before the one store
// of T. Built for sm_90a only (wgmma is an arch-specific feature); the host
// function refuses other GPUs.
//
// Tiles: 128 rows (two warpgroups of 64) x kBN columns, 128 bytes of K per
// stage. Every thread loads with cp.async into the 128-byte-swizzled layout
// wgmma's descriptors read (16-byte chunk c of row r at chunk c ^ (r % 8)
// within 1024-byte atoms), and kStages - 2 stages load while one multiplies
// and the one before drains (wgmma.wait_group 1). Blocks are persistent (one
// per SM): a block's tiles form one stream of K steps, so the next tile's
// first stages load while a tile's epilogue runs.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstring>

#include "async_copy.cuh"
#include "int8_linear.cuh"

namespace torchao_cpp {
namespace kernels {
namespace cuda {
namespace {

constexpr int kBM = 128;  // rows per block: two warpgroups of m64
constexpr int kBK = 128;  // bytes of K per stage: one swizzle row
constexpr int kThreads = 256;

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define TORCHAO_CPP_WGMMA 1
#endif

#ifdef TORCHAO_CPP_WGMMA
// Shared-memory matrix descriptor: K-major, 128-byte swizzle, 8-row atoms
// 1024 bytes apart (the stride offset); the leading offset is unused there.
__device__ __forceinline__ uint64_t smem_desc(uint32_t addr) {
  return uint64_t((addr & 0x3FFFF) >> 4) | (uint64_t(1) << 16) | (uint64_t(1024 >> 4) << 32) | (uint64_t(1) << 62);
}
// cp.async writes through the generic proxy, wgmma reads through the async one.
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int kPending>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPending) : "memory");
}
// The compiler sees wgmma's accumulators as written when it is issued: this
// pins them in place across the asynchronous window (reads only after a wait).
template <int kN>
__device__ __forceinline__ void fence_regs(int32_t (&d)[kN]) {
#pragma unroll
  for (int i = 0; i < kN; ++i) asm volatile("" : "+r"(d[i])::"memory");
}

// d (s32, m64 x kN per warpgroup) = a (m64 x k32, s8) * b (kN x k32, s8)^T
// (+ d where accumulate is nonzero); kN / 2 accumulators a thread.
template <int kN>
struct Wgmma;
// Inline asm needs its registers spelled out: accumulators 0-63 serve both
// widths, 64-127 only n256.
#define TAO_WGMMA_REGS_LO \
  "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15" \
  ",%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31" \
  ",%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47" \
  ",%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63"
#define TAO_WGMMA_REGS_HI \
  ",%64,%65,%66,%67,%68,%69,%70,%71,%72,%73,%74,%75,%76,%77,%78,%79" \
  ",%80,%81,%82,%83,%84,%85,%86,%87,%88,%89,%90,%91,%92,%93,%94,%95" \
  ",%96,%97,%98,%99,%100,%101,%102,%103,%104,%105,%106,%107,%108,%109,%110,%111" \
  ",%112,%113,%114,%115,%116,%117,%118,%119,%120,%121,%122,%123,%124,%125,%126,%127"
#define TAO_WGMMA_OPS_LO \
  "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3]), "+r"(d[4]), "+r"(d[5]), "+r"(d[6]), "+r"(d[7]) \
  ,"+r"(d[8]), "+r"(d[9]), "+r"(d[10]), "+r"(d[11]), "+r"(d[12]), "+r"(d[13]), "+r"(d[14]), "+r"(d[15]) \
  ,"+r"(d[16]), "+r"(d[17]), "+r"(d[18]), "+r"(d[19]), "+r"(d[20]), "+r"(d[21]), "+r"(d[22]), "+r"(d[23]) \
  ,"+r"(d[24]), "+r"(d[25]), "+r"(d[26]), "+r"(d[27]), "+r"(d[28]), "+r"(d[29]), "+r"(d[30]), "+r"(d[31]) \
  ,"+r"(d[32]), "+r"(d[33]), "+r"(d[34]), "+r"(d[35]), "+r"(d[36]), "+r"(d[37]), "+r"(d[38]), "+r"(d[39]) \
  ,"+r"(d[40]), "+r"(d[41]), "+r"(d[42]), "+r"(d[43]), "+r"(d[44]), "+r"(d[45]), "+r"(d[46]), "+r"(d[47]) \
  ,"+r"(d[48]), "+r"(d[49]), "+r"(d[50]), "+r"(d[51]), "+r"(d[52]), "+r"(d[53]), "+r"(d[54]), "+r"(d[55]) \
  ,"+r"(d[56]), "+r"(d[57]), "+r"(d[58]), "+r"(d[59]), "+r"(d[60]), "+r"(d[61]), "+r"(d[62]), "+r"(d[63])
#define TAO_WGMMA_OPS_HI \
  ,"+r"(d[64]), "+r"(d[65]), "+r"(d[66]), "+r"(d[67]), "+r"(d[68]), "+r"(d[69]), "+r"(d[70]), "+r"(d[71]) \
  ,"+r"(d[72]), "+r"(d[73]), "+r"(d[74]), "+r"(d[75]), "+r"(d[76]), "+r"(d[77]), "+r"(d[78]), "+r"(d[79]) \
  ,"+r"(d[80]), "+r"(d[81]), "+r"(d[82]), "+r"(d[83]), "+r"(d[84]), "+r"(d[85]), "+r"(d[86]), "+r"(d[87]) \
  ,"+r"(d[88]), "+r"(d[89]), "+r"(d[90]), "+r"(d[91]), "+r"(d[92]), "+r"(d[93]), "+r"(d[94]), "+r"(d[95]) \
  ,"+r"(d[96]), "+r"(d[97]), "+r"(d[98]), "+r"(d[99]), "+r"(d[100]), "+r"(d[101]), "+r"(d[102]), "+r"(d[103]) \
  ,"+r"(d[104]), "+r"(d[105]), "+r"(d[106]), "+r"(d[107]), "+r"(d[108]), "+r"(d[109]), "+r"(d[110]), "+r"(d[111]) \
  ,"+r"(d[112]), "+r"(d[113]), "+r"(d[114]), "+r"(d[115]), "+r"(d[116]), "+r"(d[117]), "+r"(d[118]), "+r"(d[119]) \
  ,"+r"(d[120]), "+r"(d[121]), "+r"(d[122]), "+r"(d[123]), "+r"(d[124]), "+r"(d[125]), "+r"(d[126]), "+r"(d[127])
// a, b and accumulate are operands A, B and ACC, after the accumulators.
#define TAO_WGMMA(kN, REGS, OPS, A, B, ACC)                                                          \
  template <>                                                                                        \
  struct Wgmma<kN> {                                                                                 \
    static __device__ __forceinline__ void mma(int32_t (&d)[kN / 2], uint64_t a, uint64_t b, int accumulate) { \
      asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %" #ACC ", 0;\n"                                 \
                   "wgmma.mma_async.sync.aligned.m64n" #kN "k32.s32.s8.s8 {" REGS "}, %" #A ", %" #B ", p;\n}\n" \
                   : OPS                                                                             \
                   : "l"(a), "l"(b), "r"(accumulate));                                               \
    }                                                                                                \
  };
TAO_WGMMA(128, TAO_WGMMA_REGS_LO, TAO_WGMMA_OPS_LO, 64, 65, 66)
TAO_WGMMA(256, TAO_WGMMA_REGS_LO TAO_WGMMA_REGS_HI, TAO_WGMMA_OPS_LO TAO_WGMMA_OPS_HI, 128, 129, 130)
#undef TAO_WGMMA
#undef TAO_WGMMA_OPS_HI
#undef TAO_WGMMA_OPS_LO
#undef TAO_WGMMA_REGS_HI
#undef TAO_WGMMA_REGS_LO

// Loads issued where they stand (asm volatile keeps them among the wgmma
// asm): a tile's epilogue operands, read at its first K step and used after
// its last, so their latency hides behind the products.
__device__ __forceinline__ uint32_t ld_early_b32(const void* p) {
  uint32_t v;
  asm volatile("ld.global.nc.b32 %0, [%1];\n" : "=r"(v) : "l"(p));
  return v;
}
__device__ __forceinline__ uint16_t ld_early_b16(const void* p) {
  uint16_t v;
  asm volatile("ld.global.nc.b16 %0, [%1];\n" : "=h"(v) : "l"(p));
  return v;
}

#endif  // TORCHAO_CPP_WGMMA

// A tile's epilogue operands in shared memory, after the stages: per column
// the weight scale, bias and zero-point sum, per row the activation scale and
// zero point.
template <int kBN>
constexpr int kEpilogueBytes = (3 * kBN + 2 * kBM) * 4;

// Two blocks per SM for the 3-stage build (registers capped at 128).
template <class T, int kBN, int kStages>
__global__ void __launch_bounds__(kThreads, kStages == 3 ? 2 : 1) int8_wgmma_kernel(const Int8LinearArgs<T> p, bool pairs) {
#ifdef TORCHAO_CPP_WGMMA
  constexpr int64_t kBand = 16;  // row tiles per band: a band's activations stay in L2 while its blocks sweep N
  static_assert(kStages >= 3, "one stage multiplies, one drains, the rest load");
  constexpr int kABytes = kBM * kBK, kStageBytes = (kBM + kBN) * kBK;
  extern __shared__ uint8_t smem_raw[];
  const uint32_t base = (uint32_t(__cvta_generic_to_shared(smem_raw)) + 1023u) & ~1023u;  // atoms 1024-aligned
  float* const e_ws = reinterpret_cast<float*>(smem_raw + (base - uint32_t(__cvta_generic_to_shared(smem_raw))) +
                                               kStages * kStageBytes);
  float* const e_bias = e_ws + kBN;
  int32_t* const e_wsum = reinterpret_cast<int32_t*>(e_bias + kBN);
  float* const e_as = reinterpret_cast<float*>(e_wsum + kBN);
  float* const e_az = e_as + kBM;
  const bool has_bias = p.bias != nullptr, has_zp = p.a_zp != nullptr;
  const int64_t mt = (p.M + kBM - 1) / kBM, nt = (p.N + kBN - 1) / kBN, tiles = mt * nt;
  // Tile t's first row and column: bands of kBand row tiles, rows fastest within a band.
  auto corner = [&](int64_t t, int64_t& m0, int64_t& n0) {
    const int64_t band = t / (kBand * nt), local = t - band * kBand * nt;
    const int64_t rows = mt - band * kBand < kBand ? mt - band * kBand : kBand;
    m0 = (band * kBand + local % rows) * kBM;
    n0 = (local / rows) * kBN;
  };
  const int tid = threadIdx.x, kt_count = int((p.K + kBK - 1) / kBK);
  // Persistent blocks: tiles blockIdx.x, + gridDim.x, ... as one stream of K
  // steps, so the next tile's first stages load during a tile's epilogue.
  // The loader runs kStages - 2 steps ahead of the products. This thread
  // copies chunk c of rows r0, r0 + 32, ...: the same swizzled column in each
  // (32 rows keep r % 8).
  const int c = tid & 7, r0 = tid >> 3;
  const uint32_t soff = uint32_t(r0 * kBK + ((c ^ (r0 & 7)) << 4));
  const int8_t* a_src[kBM / 32];
  const int8_t* w_src[kBN / 32];
  bool a_in[kBM / 32], w_in[kBN / 32];
  int64_t ld_tile = blockIdx.x;
  int ld_kt = 0, ld_slot = kStages - 2;
  auto aim = [&]() {  // the loader's rows for tile ld_tile
    int64_t m0, n0;
    corner(ld_tile, m0, n0);
#pragma unroll
    for (int i = 0; i < kBM / 32; ++i) {
      const int64_t m = m0 + r0 + 32 * i;
      a_in[i] = m < p.M;
      a_src[i] = p.a + (a_in[i] ? m : 0) * p.K + 16 * c;
    }
#pragma unroll
    for (int i = 0; i < kBN / 32; ++i) {
      const int64_t n = n0 + r0 + 32 * i;
      w_in[i] = n < p.N;
      w_src[i] = p.w + (w_in[i] ? n : 0) * p.K + 16 * c;
    }
  };
  // The loader's next step into `slot` as one cp.async group (empty past the
  // last tile); rows past M or N and chunks past K land as zeros (src-size 0).
  auto load_next = [&](int slot) {
    if (ld_tile < tiles) {
      const int64_t k = int64_t(ld_kt) * kBK;
      const bool kin = k + 16 * c < p.K;
      const uint32_t s = base + uint32_t(slot * kStageBytes) + soff;
#pragma unroll
      for (int i = 0; i < kBM / 32; ++i)
        cp_async16(s + i * 32 * kBK, a_src[i] + (kin ? k : 0), kin && a_in[i] ? 16 : 0);
#pragma unroll
      for (int i = 0; i < kBN / 32; ++i)
        cp_async16(s + kABytes + i * 32 * kBK, w_src[i] + (kin ? k : 0), kin && w_in[i] ? 16 : 0);
      if (++ld_kt == kt_count) {
        ld_kt = 0;
        ld_tile += gridDim.x;
        if (ld_tile < tiles) aim();
      }
    }
    cp_async_commit();
  };
  if (ld_tile < tiles) aim();
#pragma unroll
  for (int s = 0; s < kStages - 2; ++s) load_next(s);
  int32_t acc[kBN / 2];  // written by each tile's first product (no zeroing between tiles: no copies of
                        // registers wgmma may still be writing)
#pragma unroll
  for (int i = 0; i < kBN / 2; ++i) acc[i] = 0;
  const int wg = tid >> 7, warp = (tid >> 5) & 3, lane = tid & 31, g = lane >> 2, t = lane & 3;
  int slot = 0;
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    int64_t m0, n0;
    corner(tile, m0, n0);
    // This thread's share of the tile's epilogue operands (column n0 + tid,
    // row m0 + tid), loaded now and stored to shared memory after the K loop.
    uint32_t r_ws = 0, r_wsum = 0, r_as = 0, r_az = 0;
    uint16_t r_bias = 0;
    if (tid < kBN && n0 + tid < p.N) {
      r_ws = ld_early_b32(p.w_scale + n0 + tid);
      if (has_bias) r_bias = ld_early_b16(p.bias + n0 + tid);
      if (has_zp) r_wsum = ld_early_b32(p.w_sum + n0 + tid);
    }
    if (tid < kBM && m0 + tid < p.M) {
      r_as = ld_early_b32(p.a_scale + m0 + tid);
      if (has_zp) r_az = ld_early_b32(p.a_zp + m0 + tid);
    }
    // One loop per tile, the epilogue after it: a single loop with the
    // epilogue on a branch made ptxas copy the sums at the loop's join and
    // wait for every product there (C7517).
    for (int kt = 0; kt < kt_count; ++kt) {
      cp_async_wait<kStages - 3>();  // this step's stage has landed (this thread's copies)
      fence_proxy_async();
      __syncthreads();  // ... and everyone's; the products of two steps back are done (wait_group 1 below)
      load_next(ld_slot);
      ld_slot = ld_slot + 1 == kStages ? 0 : ld_slot + 1;
      const uint32_t sa = base + uint32_t(slot * kStageBytes + wg * 64 * kBK), sb = sa - wg * 64 * kBK + kABytes;
      const uint64_t da = smem_desc(sa), db = smem_desc(sb);
      slot = slot + 1 == kStages ? 0 : slot + 1;
      fence_regs(acc);
      wgmma_fence();
#pragma unroll
      for (int j = 0; j < kBK / 32; ++j)  // +32 bytes along K; a tile's first product overwrites the sums
        Wgmma<kBN>::mma(acc, da + 2 * j, db + 2 * j, j > 0 || kt > 0);
      wgmma_commit();
      fence_regs(acc);
      wgmma_wait<1>();
    }
    wgmma_wait<0>();
    fence_regs(acc);
    // The operands to shared memory; the previous tile's epilogue has read
    // them (every thread passed this tile's K-step barriers since).
    if (tid < kBN) {
      T b;
      static_assert(sizeof(T) == sizeof(r_bias), "16-bit outputs");
      memcpy(&b, &r_bias, sizeof(b));
      e_ws[tid] = __uint_as_float(r_ws), e_bias[tid] = to_f32(b), e_wsum[tid] = int32_t(r_wsum);
    }
    if (tid < kBM) e_as[tid] = __uint_as_float(r_as), e_az[tid] = __uint_as_float(r_az);
    __syncthreads();
    // Accumulator i of a thread: row 16 warp + g (+ 8 for i % 4 >= 2), column 8 (i / 4) + 2 t + i % 2.
    // Reading the scales from global memory between the stores had made each
    // load wait for the stores before it (they may alias): about 20 us a tile
    // on an H100 (Nsight Compute: L1TEX scoreboard stalls, the tensor pipe idle).
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = wg * 64 + warp * 16 + g + 8 * h;
      const int64_t m = m0 + r;
      if (m >= p.M) continue;
      const float as = e_as[r];
      const int32_t az = int32_t(e_az[r]);
      T* orow = p.out + m * p.N;
#pragma unroll
      for (int i = 0; i < kBN / 8; ++i) {
        const int c = 8 * i + 2 * t;
        const int64_t n = n0 + c;
        const int32_t v0 = acc[4 * i + 2 * h] - az * e_wsum[c], v1 = acc[4 * i + 2 * h + 1] - az * e_wsum[c + 1];
        const T o[2] = {int8_epilogue<T>(as, e_ws[c], has_bias, e_bias[c], v0),
                        int8_epilogue<T>(as, e_ws[c + 1], has_bias, e_bias[c + 1], v1)};
        if (n + 1 < p.N && pairs) {
          *reinterpret_cast<uint32_t*>(orow + n) = *reinterpret_cast<const uint32_t*>(o);
        } else {
          if (n < p.N) orow[n] = o[0];
          if (n + 1 < p.N) orow[n + 1] = o[1];
        }
      }
    }
  }
#endif
}

template <class T, int kBN, int kStages>
cudaError_t launch_wgmma(const Int8LinearArgs<T>& p, cudaStream_t stream) {
  const int64_t blocks = ((p.M + kBM - 1) / kBM) * ((p.N + kBN - 1) / kBN);
  if (blocks >= (int64_t(1) << 31)) return cudaErrorInvalidValue;
  // + the epilogue's operands + the 1024-byte alignment of the atoms
  const int smem = kStages * (kBM + kBN) * kBK + kEpilogueBytes<kBN> + 1024;
  const auto kernel = int8_wgmma_kernel<T, kBN, kStages>;
  if (const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem)) return e;
  const bool pairs = p.N % 2 == 0 && reinterpret_cast<uintptr_t>(p.out) % 4 == 0;
  // As many persistent blocks as fit at once (host queries only: graph-safe).
  int device = 0, sms = 0, per_sm = 0;
  if (const cudaError_t e = cudaGetDevice(&device)) return e;
  if (const cudaError_t e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device)) return e;
  if (const cudaError_t e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, smem)) return e;
  const int64_t grid = std::min<int64_t>(blocks, int64_t(sms) * std::max(per_sm, 1));
  kernel<<<unsigned(grid), kThreads, smem, stream>>>(p, pairs);
  return cudaGetLastError();
}

}  // namespace

template <class T>
cudaError_t int8_linear_wgmma(const Int8LinearArgs<T>& p, cudaStream_t stream, int variant) {
  if (!p.a || !p.w || !p.a_scale || !p.w_scale || !p.out || p.M < 0 || p.N < 0 || p.K <= 0 || p.K % 16 != 0 ||
      reinterpret_cast<uintptr_t>(p.a) % 16 != 0 || reinterpret_cast<uintptr_t>(p.w) % 16 != 0 || (p.a_zp && !p.w_sum))
    return cudaErrorInvalidValue;
  int device = 0, major = 0, minor = 0;
  if (const cudaError_t e = cudaGetDevice(&device)) return e;
  if (const cudaError_t e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device)) return e;
  if (const cudaError_t e = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device)) return e;
#ifndef TORCHAO_CPP_HAVE_SM90A
  if (major == 9) return cudaErrorNotSupported;  // built without sm_90a code (the standalone test defines it)
#endif
  if (major != 9 || minor != 0) return cudaErrorNotSupported;
  if (p.M == 0 || p.N == 0) return cudaSuccess;
  if (variant < 0) {  // 128 x 256 tiles where they fill the GPU, else 128 x 128 (twice the blocks)
    int sms = 0;
    if (const cudaError_t e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device)) return e;
    variant = ((p.M + kBM - 1) / kBM) * ((p.N + 255) / 256) >= sms ? 0 : 1;
  }
  switch (variant) {
    case 1:
      return launch_wgmma<T, 128, 5>(p, stream);
    case 2:
      return launch_wgmma<T, 128, 3>(p, stream);  // two blocks per SM
    default:
      return launch_wgmma<T, 256, 4>(p, stream);
  }
}

template cudaError_t int8_linear_wgmma<__nv_bfloat16>(const Int8LinearArgs<__nv_bfloat16>&, cudaStream_t, int);
template cudaError_t int8_linear_wgmma<__half>(const Int8LinearArgs<__half>&, cudaStream_t, int);

}  // namespace cuda
}  // namespace kernels
}  // namespace torchao_cpp
