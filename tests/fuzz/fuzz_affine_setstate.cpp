// AffineQuantizedTensor.__setstate__ on arbitrary state, then the object in use.
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace torchao_cpp::fuzz;
  Reader r(data, size);
  const uint8_t rows = r.u8();
  c10::intrusive_ptr<AffineQuantizedTensor> w;
  try {
    w = AffineQuantizedTensor::setstate(read_affine_state(r));
  } catch (const std::exception&) {
    return 0;  // rejected: the right answer to bad state
  }
  exercise(*w, rows);
  return 0;
}
