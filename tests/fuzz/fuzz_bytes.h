// A byte format for structure-aware fuzzing of untrusted quantized-tensor
// state: a Reader turns fuzz bytes into ints, strings, tensors and whole
// IValue trees; the Writer is its inverse, so the seed corpus is written from
// real, valid objects (fuzz_seeds.cpp). Sizes are capped so the harness never
// allocates more than a few MB itself: anything larger a state claims (its
// `shape`, block sizes, ...) is metadata the library must check.
#pragma once

#include <torch/script.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace torchao_cpp {
namespace fuzz {

constexpr int64_t kMaxDims = 4;
constexpr int64_t kMaxElements = 1 << 16;
constexpr int kMaxDepth = 4;

// Tensor dtypes a state may carry, by tag.
inline const std::vector<at::ScalarType>& dtypes() {
  static const std::vector<at::ScalarType> d{at::kFloat, at::kBFloat16, at::kHalf, at::kByte, at::kChar,
                                             at::kInt,   at::kLong,     at::kBool, at::kDouble};
  return d;
}

class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : p_(data), end_(data + size) {}
  bool empty() const { return p_ >= end_; }

  uint8_t u8() { return p_ < end_ ? *p_++ : 0; }
  int64_t i64() {
    uint64_t v = 0;
    const size_t n = std::min<size_t>(8, size_t(end_ - p_));
    if (n) std::memcpy(&v, p_, n);  // little-endian; short input reads as zeros
    p_ += n;
    return int64_t(v);
  }
  std::string str() {
    const size_t n = std::min<size_t>(u8(), size_t(end_ - p_));
    std::string s(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return s;
  }
  std::vector<int64_t> ints() {
    std::vector<int64_t> v(u8() % 8);
    for (auto& x : v) x = i64();
    return v;
  }
  // dtype tag, rank, sizes (one byte each), then the raw element bytes.
  at::Tensor tensor() {
    const auto dt = dtypes()[u8() % dtypes().size()];
    std::vector<int64_t> sizes(u8() % (kMaxDims + 1));
    int64_t numel = 1;
    for (auto& s : sizes) {
      s = u8();
      numel *= s;
    }
    if (numel > kMaxElements) {
      sizes.assign(1, 0);
      numel = 0;
    }
    auto t = at::zeros(sizes, at::TensorOptions().dtype(dt));
    const size_t nbytes = size_t(numel) * t.element_size();
    const size_t n = std::min(nbytes, size_t(end_ - p_));
    if (n) std::memcpy(t.data_ptr(), p_, n);  // an empty tensor has no storage
    p_ += n;
    if (dt == at::kBool) t = t.view(at::kByte).bitwise_and(1).view(at::kBool);  // only 0/1 bytes are valid bools
    return t;
  }
  c10::optional<at::Tensor> opt_tensor() { return u8() % 2 ? c10::optional<at::Tensor>(tensor()) : c10::nullopt; }

  // Any IValue a pickle could hold where a state is expected.
  c10::IValue ivalue(int depth = 0) {
    switch (u8() % 9) {
      case 0: return c10::IValue();
      case 1: return i64();
      case 2: return double(i64()) / 65536.0;
      case 3: return bool(u8() % 2);
      case 4: return str();
      case 5: return tensor();
      case 6: return c10::IValue(ints());
      case 7:
      case 8: {
        std::vector<c10::IValue> items(depth < kMaxDepth ? u8() % 16 : 0);
        for (auto& it : items) it = ivalue(depth + 1);
        return c10::ivalue::Tuple::create(std::move(items));
      }
    }
    return c10::IValue();
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

class Writer {
 public:
  void u8(uint8_t v) { out_.push_back(v); }
  void i64(int64_t v) {
    uint8_t b[8];
    std::memcpy(b, &v, 8);
    out_.insert(out_.end(), b, b + 8);
  }
  void str(const std::string& s) {
    u8(uint8_t(s.size()));
    out_.insert(out_.end(), s.begin(), s.end());
  }
  void ints(const std::vector<int64_t>& v) {
    u8(uint8_t(v.size()));
    for (auto x : v) i64(x);
  }
  void tensor(const at::Tensor& t0) {
    const auto t = t0.contiguous();
    const auto& d = dtypes();
    u8(uint8_t(std::find(d.begin(), d.end(), t.scalar_type()) - d.begin()));
    u8(uint8_t(t.dim()));
    for (auto s : t.sizes()) u8(uint8_t(s));  // seeds keep every dim < 256
    const auto* b = static_cast<const uint8_t*>(t.data_ptr());
    out_.insert(out_.end(), b, b + t.numel() * t.element_size());
  }
  void opt_tensor(const c10::optional<at::Tensor>& t) {
    u8(t.has_value() ? 1 : 0);
    if (t.has_value()) tensor(*t);
  }
  void ivalue(const c10::IValue& v) {
    if (v.isNone()) return u8(0);
    if (v.isInt()) return u8(1), i64(v.toInt());
    if (v.isDouble()) return u8(2), i64(int64_t(v.toDouble() * 65536.0));
    if (v.isBool()) return u8(3), u8(v.toBool());
    if (v.isString()) return u8(4), str(v.toStringRef());
    if (v.isTensor()) return u8(5), tensor(v.toTensor());
    if (v.isIntList()) return u8(6), ints(v.toIntVector());
    if (v.isTuple()) {
      u8(7);
      const auto& e = v.toTupleRef().elements();
      u8(uint8_t(e.size()));
      for (const auto& x : e) ivalue(x);
      return;
    }
    throw std::runtime_error("fuzz::Writer: unsupported IValue " + v.tagKind());
  }
  const std::vector<uint8_t>& bytes() const { return out_; }

 private:
  std::vector<uint8_t> out_;
};

}  // namespace fuzz
}  // namespace torchao_cpp
