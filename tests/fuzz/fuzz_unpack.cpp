// The packed-weight unpackers: the checked op (unpack_bits) on arbitrary
// arguments, and the SIMD unpacker of the linear kernels against the portable
// reference on arbitrary bytes (any difference aborts).
#include <cstdlib>

#include "fuzz_targets.h"
#include "kernels/cpu/bitpack.h"
#include "kernels/cpu/simd.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace torchao_cpp;
  fuzz::Reader r(data, size);
  const int64_t bits = int64_t(r.u8() % 10), quant_min = r.i64() % 512, cols = r.i64() % 4096;
  const auto out_dtype = fuzz::dtypes()[r.u8() % fuzz::dtypes().size()];
  const auto packed = r.tensor();
  fuzz::expect_no_crash([&] {
    static const auto op = c10::Dispatcher::singleton()
                               .findSchemaOrThrow("torchao_cpp::unpack_bits", "")
                               .typed<at::Tensor(const at::Tensor&, int64_t, int64_t, int64_t, at::ScalarType)>();
    op.call(packed, bits, quant_min, cols, out_dtype);
  });

  // Kernel level: n codes from exactly the bytes they need.
  if (bits < 1 || bits > 8) return 0;
  const std::vector<uint8_t> rest(data + size - std::min<size_t>(size, 4096), data + size);
  const int64_t n = int64_t(rest.size()) * 8 / bits;
  std::vector<uint8_t> fast(size_t(n) + 1, 0xAA), ref(size_t(n) + 1, 0xAA);
  kernels::unpack_bits_u8(rest.data(), n, int(bits), fast.data());
  kernels::dispatch_bits(int(bits), [&](auto b) {
    kernels::unpack_bits_rows<decltype(b)::value, uint8_t>(rest.data(), 1, n, 0, ref.data());
  });
  if (fast != ref) std::abort();  // includes the guard byte past n
  return 0;
}
