#!/usr/bin/env bash
# Reliability checks (run by .ci/run after scripts/test.sh):
#   1. AddressSanitizer + UndefinedBehaviorSanitizer build (clang) of the library,
#      its C++ tests and the libFuzzer targets; CTest there;
#   2. every fuzz target for FUZZ_SECONDS (default 60) on its committed corpus;
#   3. the Python tests against the sanitized library (ASan runtime preloaded);
#   4. the kernels' concurrency test under ThreadSanitizer;
#   5. the torch-free kernel tests under valgrind memcheck.
# Build directories: build/sanitize, build/tsan. Needs scripts/test.sh's set-up (.venv, build/main).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
bash scripts/bootstrap.sh
FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
VENV="$REPO/.venv"
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
CLANG_ARGS=(-GNinja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug
  "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -g -Wno-pass-failed" -DTORCHAO_CPP_BUILD_PYTHON=OFF -DTORCHAO_CPP_BUILD_BENCHMARKS=OFF
  -DTORCHAO_CPP_BUILD_CUDA=OFF)
ASAN_RT="$(clang -print-file-name=libclang_rt.asan-x86_64.so)"
# Leaks: torch's and Python's own allocations at exit would drown ours; the C++ tests check leaks.
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

echo "== ASan + UBSan build =="
cmake -S . -B build/sanitize "${CLANG_ARGS[@]}" -DTORCHAO_CPP_SANITIZE=address,undefined \
  -DTORCHAO_CPP_BUILD_FUZZERS=ON >build/sanitize-configure.log
cmake --build build/sanitize --parallel "$(nproc)"
echo "== CTest (ASan + UBSan) =="
ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build/sanitize --output-on-failure -E package_config_consumer

echo "== fuzzing (${FUZZ_SECONDS} s per target) =="
for target in fuzz_affine_setstate fuzz_activation_setstate fuzz_state_dict_entry fuzz_unpack; do
  # New inputs go to a scratch directory; the committed corpus (tests/fuzz/corpus) is read only.
  scratch="$(mktemp -d)"
  ASAN_OPTIONS=detect_leaks=0 "build/sanitize/tests/fuzz/$target" "$scratch" "tests/fuzz/corpus/$target" \
    -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=4096 -timeout=30 -print_final_stats=1 \
    -artifact_prefix="build/sanitize/$target-" 2>"build/sanitize/$target.log" || {
    tail -n 60 "build/sanitize/$target.log"
    echo "reliability: $target found a crash (input saved as build/sanitize/$target-*)"
    exit 1
  }
  runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "build/sanitize/$target.log" | grep -o '[0-9]*$')"
  echo "$target: $runs executions, no crash"
  rm -rf "$scratch"
done

echo "== pytest against the sanitized library =="
# LD_LIBRARY_PATH (searched before the runner's RUNPATH) hands the sanitized library to the C++ runner of
# the TorchScript tests too: it must reproduce that library's outputs bit for bit.
LD_PRELOAD="$ASAN_RT" ASAN_OPTIONS=detect_leaks=0 TORCHAO_CPP_LIBRARY="$REPO/build/sanitize/libtorchao_cpp_ops.so" \
  LD_LIBRARY_PATH="$REPO/build/sanitize${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  "$VENV/bin/python" -m pytest tests/python -q -p no:cacheprovider

echo "== ThreadSanitizer: kernels from 2, 4 and 8 threads =="
cmake -S . -B build/tsan "${CLANG_ARGS[@]}" -DTORCHAO_CPP_SANITIZE=thread >build/tsan-configure.log
cmake --build build/tsan --parallel "$(nproc)" --target test_concurrency
# libomp's archer tool tells TSan about OpenMP's own synchronisation.
OMP_TOOL_LIBRARIES="$(dirname "$(readlink -f "$(command -v clang)")")/../lib/libarcher.so" \
  TSAN_OPTIONS="halt_on_error=1 ignore_noninstrumented_modules=1" build/tsan/tests/cpp/test_concurrency

echo "== valgrind memcheck: the C++ tests =="
# libtorch pulls in libhwy, whose load-time calibration runs rdtscp, which valgrind cannot execute: a shim
# replaces that one function (tests/valgrind/); third_party.supp silences a report inside libcpuinfo.
mkdir -p build/valgrind
g++ -shared -fPIC -O1 -o build/valgrind/libhwy_timer_shim.so tests/valgrind/hwy_timer_shim.cpp
for t in test_kernels test_concurrency test_ops_classes; do
  LD_PRELOAD="$REPO/build/valgrind/libhwy_timer_shim.so" valgrind --tool=memcheck --error-exitcode=1 \
    --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite \
    --suppressions=tests/valgrind/third_party.supp -q "${TORCHAO_CPP_BUILD_DIR:-build/main}/tests/cpp/$t" \
    --gtest_brief=1
done
echo "reliability: all checks passed"
