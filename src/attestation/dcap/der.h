// A minimal bounds-checked DER reader (X.690 definite-length encodings only), enough for PCS
// certificates and the SGX extensions of PCK certificates. Never reads past its span; every
// accessor reports failure. And its writing counterpart, one TLV at a time (the sim TEE's PCK
// extensions, test certificates).
#pragma once

#include <cstdint>
#include <optional>

#include "base/bytes.h"

namespace custos::attestation::dcap::der {

inline constexpr uint8_t kBoolean = 0x01;
inline constexpr uint8_t kInteger = 0x02;
inline constexpr uint8_t kOctetString = 0x04;
inline constexpr uint8_t kOid = 0x06;
inline constexpr uint8_t kEnumerated = 0x0a;
inline constexpr uint8_t kSequence = 0x30;

struct Element {
  uint8_t tag = 0;
  ByteSpan value;
  ByteSpan raw;  // the whole TLV
};

class Reader {
 public:
  explicit Reader(ByteSpan data) : data_(data) {}
  bool empty() const { return pos_ >= data_.size(); }
  // The next TLV; nullopt on malformed or truncated input (single-byte tags, lengths < 2^32).
  std::optional<Element> next();
  // The next TLV if it has `tag`.
  std::optional<Element> expect(uint8_t tag);

 private:
  ByteSpan data_;
  size_t pos_ = 0;
};

// One TLV with a single-byte tag and the minimal definite length (contents below 4 GiB).
Bytes tlv(uint8_t tag, const Bytes& content);

// A non-negative INTEGER or ENUMERATED value that fits in 32 bits (minimal encoding not enforced
// beyond a single leading zero).
std::optional<uint32_t> to_uint(const Element& e);

}  // namespace custos::attestation::dcap::der
