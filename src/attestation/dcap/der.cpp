#include "attestation/dcap/der.h"

namespace custos::attestation::dcap::der {

std::optional<Element> Reader::next() {
  if (data_.size() - pos_ < 2) return std::nullopt;
  uint8_t tag = data_[pos_];
  // Multi-byte (high) tag numbers do not occur in the structures we read.
  if ((tag & 0x1f) == 0x1f) return std::nullopt;
  uint8_t first = data_[pos_ + 1];
  size_t p = pos_ + 2;
  size_t len = 0;
  if (first < 0x80) {
    len = first;
  } else {
    size_t n = first & 0x7f;
    if (n == 0 || n > 4 || data_.size() - p < n) return std::nullopt;  // indefinite or huge
    for (size_t i = 0; i < n; ++i) len = (len << 8) | data_[p + i];
    p += n;
  }
  if (len > data_.size() - p) return std::nullopt;
  Element e{tag, data_.subspan(p, len), data_.subspan(pos_, p + len - pos_)};
  pos_ = p + len;
  return e;
}

std::optional<Element> Reader::expect(uint8_t tag) {
  auto e = next();
  if (!e || e->tag != tag) return std::nullopt;
  return e;
}

Bytes tlv(uint8_t tag, const Bytes& content) {
  Bytes out{tag};
  const size_t n = content.size();
  if (n < 0x80) {
    out.push_back(static_cast<uint8_t>(n));
  } else {
    size_t bytes = 0;
    for (size_t v = n; v != 0; v >>= 8) ++bytes;
    out.push_back(static_cast<uint8_t>(0x80 | bytes));
    for (size_t i = bytes; i-- > 0;) out.push_back(static_cast<uint8_t>(n >> (8 * i)));
  }
  out.insert(out.end(), content.begin(), content.end());
  return out;
}

std::optional<uint32_t> to_uint(const Element& e) {
  if (e.tag != kInteger && e.tag != kEnumerated) return std::nullopt;
  ByteSpan v = e.value;
  if (v.empty() || (v[0] & 0x80) != 0) return std::nullopt;  // empty or negative
  if (v.size() > 1 && v[0] == 0) v = v.subspan(1);
  if (v.size() > 4) return std::nullopt;
  uint32_t out = 0;
  for (uint8_t b : v) out = (out << 8) | b;
  return out;
}

}  // namespace custos::attestation::dcap::der
