// Run-time CPU feature detection (CPUID), so one binary picks its kernels on
// the machine it runs on.
#pragma once

#include <cstdlib>
#include <string>

#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif

namespace torchao_cpp {
namespace kernels {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false, bmi2 = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512vnni = false, avx512bf16 = false,
       avx512vbmi = false;
  // AMX tiles with int8 / bfloat16 products, usable: the CPU has them, the
  // OS saves their state and granted this process the permission Linux
  // requires before the first use.
  bool amx_int8 = false, amx_bf16 = false;
};

// Asks Linux for the AMX tile-data state (arch_prctl ARCH_REQ_XCOMP_PERM,
// XFEATURE_XTILEDATA); without it the first tile instruction raises SIGILL.
// The permission holds for every thread of the process.
inline bool request_amx_permission() {
#if defined(__linux__) && defined(__x86_64__)
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

// CPUID leaf 7 EDX bits of the AMX units the OS lets this process use (0
// when tiles are unusable): bit 22 AMX-BF16, 24 AMX-TILE, 25 AMX-INT8.
inline unsigned detect_amx() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !((c >> 27) & 1)) return 0;  // OSXSAVE: xgetbv available
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
  if (!((d >> 24) & 1)) return 0;  // AMX-TILE
  unsigned lo, hi;
  __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  if (((lo >> 17) & 3) != 3) return 0;  // XCR0: XTILECFG and XTILEDATA enabled by the OS
  return request_amx_permission() ? d : 0;
#else
  return 0;
#endif
}

inline CpuFeatures detect_cpu_features() {
  CpuFeatures f;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.bmi2 = __builtin_cpu_supports("bmi2");
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
  f.avx512vnni = __builtin_cpu_supports("avx512vnni");
  f.avx512bf16 = __builtin_cpu_supports("avx512bf16");
  f.avx512vbmi = __builtin_cpu_supports("avx512vbmi");
  f.f16c = f.avx2;  // every AVX2 CPU has F16C
  // The kernels' epilogues and operand conversions use AVX-512 (VNNI, BF16).
  // TORCHAO_CPP_AMX=0 keeps the tiles off (the int8 GEMM is bit-identical
  // either way; bfloat16 weight-only prefill then runs the float kernels).
  const char* amx_env = std::getenv("TORCHAO_CPP_AMX");
  const bool amx_allowed = !(amx_env && std::string(amx_env) == "0");
  const unsigned amx = amx_allowed && f.avx512f && f.avx512bw ? detect_amx() : 0;
  f.amx_int8 = f.avx512vnni && ((amx >> 25) & 1);
  f.amx_bf16 = f.avx512bf16 && ((amx >> 22) & 1);
#endif
  return f;
}

inline const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect_cpu_features();
  return f;
}

}  // namespace kernels
}  // namespace torchao_cpp
