// The int8 x int8 linear's wgmma kernel (int8_linear_sm90.cu) bit for bit
// against two other routes: a plain kernel that sums each output's products
// in int32, one thread per output, and the cuBLASLt GEMM + epilogue route the
// op runs elsewhere; tails in M, N and K, odd N, asymmetric activations, bias,
// both tile variants. Then its benchmark against cuBLASLt at M = 2048.
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdio>
#include <algorithm>
#include <array>
#include <cstring>
#include <random>
#include <vector>

#include "cuda_test_util.cuh"
#include "kernels/cuda/int8_linear.cuh"

namespace kc = torchao_cpp::kernels::cuda;

namespace {

template <class T>
__global__ void reference_kernel(kc::Int8LinearArgs<T> p) {
  const int64_t n = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, m = blockIdx.y;
  if (n >= p.N) return;
  int32_t acc = 0;
  for (int64_t k = 0; k < p.K; ++k) acc += int32_t(p.a[m * p.K + k]) * int32_t(p.w[n * p.K + k]);
  if (p.a_zp) acc -= int32_t(p.a_zp[m]) * p.w_sum[n];
  p.out[m * p.N + n] = kc::int8_epilogue(p, p.a_scale[m], n, acc);
}

struct Problem {
  std::vector<int8_t> a, w;
  std::vector<float> a_scale, a_zp, w_scale;
  std::vector<int32_t> w_sum;
  std::vector<uint16_t> bias;
};

Problem make_problem(int64_t M, int64_t N, int64_t K, std::mt19937& rng) {
  Problem q;
  std::uniform_int_distribution<int> code(-128, 127);
  std::uniform_real_distribution<float> scale(1e-4f, 2e-2f);
  q.a.resize(M * K);
  q.w.resize(N * K);
  for (auto& v : q.a) v = int8_t(code(rng));
  for (auto& v : q.w) v = int8_t(code(rng));
  for (int64_t m = 0; m < M; ++m) q.a_scale.push_back(scale(rng)), q.a_zp.push_back(float(code(rng)));
  for (int64_t n = 0; n < N; ++n) {
    q.w_scale.push_back(scale(rng));
    int32_t s = 0;
    for (int64_t k = 0; k < K; ++k) s += q.w[n * K + k];
    q.w_sum.push_back(s);
    q.bias.push_back(uint16_t(0x3C00 + code(rng)));  // about 1, as bf16 or f16 bits
  }
  return q;
}

// Mismatching outputs of the wgmma kernel against the reference and the cuBLASLt route.
template <class T>
int check_case(int64_t M, int64_t N, int64_t K, bool asym, bool bias, int variant, std::mt19937& rng,
               cublasLtHandle_t lt, const char* name) {
  const Problem q = make_problem(M, N, K, rng);
  DeviceBuffer<int8_t> a(q.a), w(q.w);
  DeviceBuffer<float> as(q.a_scale), az(q.a_zp), ws(q.w_scale);
  DeviceBuffer<int32_t> sums(q.w_sum), acc(size_t(M * N));
  DeviceBuffer<uint16_t> b(q.bias), out(size_t(M * N)), ref(size_t(M * N)), lt_out(size_t(M * N));
  DeviceBuffer<uint8_t> workspace(size_t(32) << 20);
  kc::Int8LinearArgs<T> p;
  p.a = a.p;
  p.w = w.p;
  p.a_scale = as.p;
  p.a_zp = asym ? az.p : nullptr;
  p.w_scale = ws.p;
  p.w_sum = sums.p;
  p.bias = bias ? reinterpret_cast<const T*>(b.p) : nullptr;
  p.M = M;
  p.N = N;
  p.K = K;
  p.out = reinterpret_cast<T*>(ref.p);
  reference_kernel<T><<<dim3(unsigned((N + 127) / 128), unsigned(M)), 128>>>(p);
  TAO_CHECK_CUDA(cudaGetLastError());
  p.out = reinterpret_cast<T*>(lt_out.p);
  const bool have_lt =
      kc::int8_gemm_s32(lt, p.a, p.w, acc.p, M, N, K, workspace.p, size_t(32) << 20, 0) == CUBLAS_STATUS_SUCCESS;
  if (have_lt) TAO_CHECK_CUDA(kc::int8_linear_epilogue(p, acc.p, 0, N, 0));
  TAO_CHECK_CUDA(cudaMemset(out.p, 0xFF, M * N * 2));  // NaN bits: an output never written shows
  p.out = reinterpret_cast<T*>(out.p);
  TAO_CHECK_CUDA(kc::int8_linear_wgmma(p, 0, variant));
  TAO_CHECK_CUDA(cudaDeviceSynchronize());
  const auto got = out.host(M * N), want = ref.host(M * N), lt_got = lt_out.host(M * N);
  int bad = 0;
  for (int64_t i = 0; i < M * N; ++i) {
    const bool off = got[i] != want[i] || (have_lt && lt_got[i] != want[i]);
    if (off && bad++ < 3)
      std::fprintf(stderr, "  int8 wgmma %s M=%ld N=%ld K=%ld asym=%d bias=%d variant=%d: out[%ld, %ld] = %04x, "
                   "reference %04x, cuBLASLt route %04x\n", name, long(M), long(N), long(K), int(asym), int(bias),
                   variant, long(i / N), long(i % N), got[i], want[i], lt_got[i]);
  }
  return bad;
}

}  // namespace

// Returns the number of mismatching outputs (0: all cases bit-exact), or -1 where the GPU is not sm_90.
int run_int8_linear_tests() {
  int device = 0, major = 0, minor = 0;
  TAO_CHECK_CUDA(cudaGetDevice(&device));
  TAO_CHECK_CUDA(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  TAO_CHECK_CUDA(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  kc::Int8LinearArgs<__nv_bfloat16> none;
  none.M = none.N = 1;
  none.K = 24;  // not a multiple of 16
  const bool refused = kc::int8_linear_wgmma(none, 0) == cudaErrorInvalidValue;
  if (major != 9 || minor != 0) {
    std::printf("int8 wgmma linear: not an sm_90 GPU (%d.%d), the kernel refuses it: %s\n", major, minor,
                kc::int8_linear_wgmma(none, 0) != cudaSuccess ? "yes" : "NO");
    return refused ? 0 : 1;
  }
  cublasLtHandle_t lt;
  if (cublasLtCreate(&lt) != CUBLAS_STATUS_SUCCESS) return 1;
  std::mt19937 rng(7);
  // {M, N, K}: one tile, tails in every dimension, K of one 16-byte chunk, K past a stage by one chunk,
  // odd N (element stores), more row tiles than one band (16) of the grid. The last three have more tiles than
  // an H100's or H200's 132 SMs hold at once (264 for the two-block variant) in every variant, so persistent
  // blocks take several tiles each: one K step a tile; odd N in one short band; K = 16 over a full band and a
  // one-tile band.
  const int64_t shapes[][3] = {{1, 8, 16},       {5, 37, 48},      {64, 256, 128},   {128, 256, 128},
                               {129, 257, 144},  {200, 300, 1040}, {256, 512, 4096}, {300, 131, 272},
                               {33, 1000, 512},  {2176, 384, 256}, {2048, 4224, 128}, {1030, 4097, 256},
                               {2100, 2048, 16}};
  int bad = 0, cases = 0;
  for (const auto& s : shapes)
    for (int variant = 0; variant < 3; ++variant) {
      const bool asym = cases % 2 == 1, bias = (cases / 2) % 2 == 0;
      bad += check_case<__nv_bfloat16>(s[0], s[1], s[2], asym, bias, variant, rng, lt, "bfloat16");
      bad += check_case<__half>(s[0], s[1], s[2], !asym, !bias, variant, rng, lt, "float16");
      cases += 2;
    }
  cublasLtDestroy(lt);
  std::printf("int8 wgmma linear: %d cases, %d outputs unlike the int32 reference or the cuBLASLt route; K %% 16 != 0 "
              "refused: %s\n", cases, bad, refused ? "yes" : "NO");
  return bad == 0 && refused ? 0 : 1;
}

// M = 2048 on the layer benchmark's shapes: the wgmma kernel's variants against cuBLASLt's int8 GEMM alone and
// with the epilogue over its int32 sums (the route it replaces).
int bench_int8_linear() {
  int device = 0, major = 0, minor = 0;
  TAO_CHECK_CUDA(cudaGetDevice(&device));
  TAO_CHECK_CUDA(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  TAO_CHECK_CUDA(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  if (major != 9 || minor != 0) {
    std::printf("int8 wgmma linear: not an sm_90 GPU (%d.%d): nothing to time\n", major, minor);
    return 0;
  }
  cublasLtHandle_t lt;
  if (cublasLtCreate(&lt) != CUBLAS_STATUS_SUCCESS) return 1;
  std::mt19937 rng(1);
  const size_t ws_bytes = size_t(32) << 20;
  DeviceBuffer<uint8_t> workspace(ws_bytes);
  for (int64_t M : {16, 64, 256, 512, 2048, 4096})
    for (const auto& kn : {std::array<int64_t, 2>{4096, 4096}, {4096, 14336}, {14336, 4096}}) {
      const int64_t K = kn[0], N = kn[1];
      const int64_t copies = std::max<int64_t>(2, int64_t(400e6 / double(N * K)));
      DeviceBuffer<int8_t> a(size_t(M * K)), w(size_t(copies * N * K));
      DeviceBuffer<float> as{size_t(M)}, ws{size_t(N)};
      DeviceBuffer<int32_t> acc(size_t(M * N));
      DeviceBuffer<__nv_bfloat16> out(size_t(M * N));
      TAO_CHECK_CUDA(cudaMemset(a.p, 3, M * K));
      TAO_CHECK_CUDA(cudaMemset(w.p, 5, copies * N * K));
      TAO_CHECK_CUDA(cudaMemset(as.p, 0, M * 4));
      TAO_CHECK_CUDA(cudaMemset(ws.p, 0, N * 4));
      kc::Int8LinearArgs<__nv_bfloat16> p;
      p.a = a.p;
      p.a_scale = as.p;
      p.w_scale = ws.p;
      p.M = M;
      p.N = N;
      p.K = K;
      p.out = out.p;
      auto lt_gemm = [&](int64_t c) {
        return kc::int8_gemm_s32(lt, a.p, w.p + c * N * K, acc.p, M, N, K, workspace.p, ws_bytes, 0) ==
                       CUBLAS_STATUS_SUCCESS ? cudaSuccess : cudaErrorUnknown;
      };
      const double gemm = time_calls_us(lt_gemm, int(copies));
      const double route = time_calls_us([&](int64_t c) {
        const cudaError_t e = lt_gemm(c);
        return e != cudaSuccess ? e : kc::int8_linear_epilogue(p, acc.p, 0, N, 0);
      }, int(copies));
      const double ops = 2.0 * M * N * K;
      std::printf("int8 x int8 bf16 M=%ld K=%ld N=%ld: cuBLASLt GEMM %.1f us (%.0f TOP/s), + epilogue %.1f us", long(M),
                  long(K), long(N), gemm, ops / gemm * 1e-6, route);
      for (int variant = -1; variant < 3; ++variant) {
        const double us = time_calls_us([&](int64_t c) {
          p.w = w.p + c * N * K;
          return kc::int8_linear_wgmma(p, 0, variant);
        }, int(copies));
        if (variant < 0)
          std::printf("; wgmma (default) %.1f us (%.0f TOP/s, %.2fx the route)", us, ops / us * 1e-6, route / us);
        else
          std::printf("; v%d %.1f us (%.2fx)", variant, us, route / us);
      }
      std::printf("\n");
    }
  cublasLtDestroy(lt);
  return 0;
}
