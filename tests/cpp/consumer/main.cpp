// A program that only links torchao_cpp::torchao_cpp_ops and calls an op
// through the dispatcher: proves the installed package config is complete.
#include <torch/torch.h>

#include <iostream>

int main() {
  auto op = c10::Dispatcher::singleton().findSchemaOrThrow("torchao_cpp::quantize_affine", "");
  auto x = torch::tensor({-1.25f, 0.0f, 0.75f, 100.0f});
  std::vector<c10::IValue> stack{x,  std::vector<int64_t>{4}, torch::tensor({0.5f}), c10::IValue(), at::kChar,
                                 int64_t(-128), int64_t(127), std::string("NONE")};
  op.callBoxed(&stack);
  auto q = stack[0].toTensor();
  // x / 0.5: -2.5 rounds to even -2, 1.5 to even 2, 200 clamps to 127.
  const bool ok = q[0].item<int>() == -2 && q[1].item<int>() == 0 && q[2].item<int>() == 2 && q[3].item<int>() == 127;
  std::cout << "consumer: " << q << (ok ? " ok" : " WRONG") << std::endl;
  return ok ? 0 : 1;
}
