// Bounds-checked cursor over untrusted binary input (cf. Intel QVL's Quote.cpp parsing).
// Every read checks the remaining length; a failed read leaves the reader in a failed state so
// a parser can do several reads and check once.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>

#include "base/bytes.h"
#include "base/status.h"

namespace custos {

class ByteReader {
 public:
  explicit ByteReader(ByteSpan data) : data_(data) {}

  size_t remaining() const { return failed_ ? 0 : data_.size() - pos_; }
  size_t position() const { return pos_; }
  bool failed() const { return failed_; }
  bool empty() const { return remaining() == 0; }

  // Reads n bytes as a view into the input; an empty span and failed() on overrun.
  ByteSpan bytes(size_t n) {
    if (failed_ || n > data_.size() - pos_) {
      failed_ = true;
      return {};
    }
    ByteSpan out = data_.subspan(pos_, n);
    pos_ += n;
    return out;
  }
  ByteSpan rest() { return bytes(remaining()); }
  bool skip(size_t n) { return !bytes(n).empty() || n == 0; }

  uint8_t u8() { return read_le<uint8_t>(); }
  uint16_t u16le() { return read_le<uint16_t>(); }
  uint32_t u32le() { return read_le<uint32_t>(); }
  uint64_t u64le() { return read_le<uint64_t>(); }
  uint16_t u16be() { return read_be<uint16_t>(); }
  uint32_t u32be() { return read_be<uint32_t>(); }
  uint64_t u64be() { return read_be<uint64_t>(); }

  // OK, or an InvalidArgument naming what was being read.
  Status status(const char* what) const {
    if (!failed_) return ok_status();
    return invalid_argument(std::string(what) + ": input truncated");
  }

 private:
  template <typename T>
  T read_le() {
    ByteSpan b = bytes(sizeof(T));
    if (b.empty()) return 0;
    T v = 0;
    for (size_t i = 0; i < sizeof(T); ++i) v = static_cast<T>(v | (T(b[i]) << (8 * i)));
    return v;
  }
  template <typename T>
  T read_be() {
    ByteSpan b = bytes(sizeof(T));
    if (b.empty()) return 0;
    T v = 0;
    for (size_t i = 0; i < sizeof(T); ++i) v = static_cast<T>((v << 8) | T(b[i]));
    return v;
  }

  ByteSpan data_;
  size_t pos_ = 0;
  bool failed_ = false;
};

}  // namespace custos
