// A quantized state_dict entry as torch.load / torch.jit.load rebuild it: the
// unpickler creates an empty object of the class and runs its registered
// __setstate__ on whatever IValue the file holds (any types, any arity).
#include "fuzz_targets.h"

namespace {

template <class T>
c10::intrusive_ptr<T> unpickle(const c10::IValue& state) {
  const auto& type = c10::getCustomClassType<c10::intrusive_ptr<T>>();
  auto obj = c10::ivalue::Object::create(c10::StrongTypePtr(nullptr, type), 1);
  torch::jit::Stack stack{c10::IValue(obj), state};
  type->getMethod("__setstate__").run(stack);
  return c10::IValue(obj).toCustomClass<T>();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace torchao_cpp::fuzz;
  Reader r(data, size);
  const uint8_t which = r.u8(), rows = r.u8();
  const auto state = r.ivalue();
  try {
    if (which % 2 == 0)
      exercise(*unpickle<AffineQuantizedTensor>(state), rows);
    else
      exercise(*unpickle<LinearActivationQuantizedTensor>(state), rows);
  } catch (const std::exception&) {
  }
  return 0;
}
