// torchao_cpp._C: build information and CPU feature queries. The ops and
// classes themselves are registered with torch by the ops library.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <map>
#include <string>

#include "../csrc/kernels/cpu/cpu_features.h"

#ifndef TORCHAO_CPP_VERSION
#define TORCHAO_CPP_VERSION "0.0.0"
#endif
#ifndef TORCHAO_CPP_TORCH_VERSION
#define TORCHAO_CPP_TORCH_VERSION "unknown"
#endif

namespace py = pybind11;

PYBIND11_MODULE(_C, m) {
  m.doc() = "torchao_cpp native helpers (build info, CPU features)";
  m.def(
      "build_info",
      []() {
        std::map<std::string, std::string> info;
        info["version"] = TORCHAO_CPP_VERSION;
        info["torch_version"] = TORCHAO_CPP_TORCH_VERSION;
#ifdef _OPENMP
        info["openmp"] = "yes";
#else
        info["openmp"] = "no";
#endif
#ifdef TORCHAO_CPP_WITH_CUDA
        info["cuda"] = "yes";
#else
        info["cuda"] = "no";
#endif
        info["compiler"] = __VERSION__;
        return info;
      },
      "Versions and options this build was made with.\n\nExample:\n  >>> torchao_cpp._C.build_info()['version']");
  m.def(
      "cpu_features",
      []() {
        const auto& f = torchao_cpp::kernels::cpu_features();
        return std::map<std::string, bool>{{"avx2", f.avx2},          {"fma", f.fma},
                                           {"f16c", f.f16c},          {"avx512f", f.avx512f},
                                           {"avx512bw", f.avx512bw},  {"avx512vl", f.avx512vl},
                                           {"avx512vnni", f.avx512vnni}, {"avx512bf16", f.avx512bf16},
                                           {"amx_int8", f.amx_int8}, {"amx_bf16", f.amx_bf16}};
      },
      "CPU features detected at run time (CPUID).\n\nExample:\n  >>> torchao_cpp._C.cpu_features()['avx2']");
}
