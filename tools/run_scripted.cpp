// torchao_cpp_run: loads a TorchScript model (e.g. from torchao_cpp.script)
// with only LibTorch and the torchao_cpp ops library, runs it on an input
// saved with torch.save, and writes the output with torch::pickle_save
// (readable by torch.load).
//
//   torchao_cpp_run model.ts input.pt output.pt
#include <torch/script.h>
#include <torch/serialize.h>

#include <fstream>
#include <iostream>
#include <iterator>

namespace {

std::vector<char> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  return std::vector<char>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: " << argv[0] << " model.ts input.pt output.pt\n";
    return 2;
  }
  try {
    torch::jit::Module model = torch::jit::load(argv[1]);
    model.eval();
    c10::IValue input = torch::pickle_load(read_file(argv[2]));
    torch::NoGradGuard no_grad;
    c10::IValue output = model.forward({input});
    const std::vector<char> bytes = torch::pickle_save(output);
    std::ofstream out(argv[3], std::ios::binary);
    out.write(bytes.data(), std::streamsize(bytes.size()));
    if (!out) throw std::runtime_error(std::string("cannot write ") + argv[3]);
  } catch (const std::exception& e) {
    std::cerr << "torchao_cpp_run: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
