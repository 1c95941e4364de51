#include "hsm/blob.h"

namespace custos::hsm {
namespace {

constexpr uint8_t kMagic0 = 'C';
constexpr uint8_t kMagic1 = 'S';
constexpr uint8_t kVersion = 1;

class Reader {
 public:
  explicit Reader(ByteSpan in) : in_(in) {}
  bool take(size_t n, ByteSpan& out) {
    if (in_.size() - pos_ < n) return false;
    out = in_.subspan(pos_, n);
    pos_ += n;
    return true;
  }
  bool u8(uint64_t& v) { return uint_be(1, v); }
  bool u16(uint64_t& v) { return uint_be(2, v); }
  bool u32(uint64_t& v) { return uint_be(4, v); }
  ByteSpan rest() const { return in_.subspan(pos_); }

 private:
  bool uint_be(size_t n, uint64_t& v) {
    ByteSpan b;
    if (!take(n, b)) return false;
    v = 0;
    for (uint8_t x : b) v = (v << 8) | x;
    return true;
  }
  ByteSpan in_;
  size_t pos_ = 0;
};

void put_be(Bytes& out, uint64_t v, int n) {
  for (int i = n - 1; i >= 0; --i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

}  // namespace

Bytes encode_blob(const SealBlob& b) {
  Bytes out{kMagic0, kMagic1, kVersion};
  put_be(out, b.mechanism, 4);
  put_be(out, b.key_label.size(), 2);
  out.insert(out.end(), b.key_label.begin(), b.key_label.end());
  put_be(out, b.iv.size(), 1);
  out.insert(out.end(), b.iv.begin(), b.iv.end());
  out.insert(out.end(), b.ciphertext.begin(), b.ciphertext.end());
  return out;
}

Result<SealBlob> parse_blob(ByteSpan in) {
  auto bad = [](std::string_view why) { return data_loss("seal blob: " + std::string(why)); };
  Reader r(in);
  ByteSpan magic;
  uint64_t version = 0;
  if (!r.take(2, magic) || magic[0] != kMagic0 || magic[1] != kMagic1)
    return bad("not a seal blob");
  if (!r.u8(version) || version != kVersion) return bad("unknown version");
  SealBlob b;
  uint64_t label_len = 0, iv_len = 0;
  if (!r.u32(b.mechanism) || !r.u16(label_len)) return bad("truncated header");
  ByteSpan label, iv;
  if (label_len == 0 || label_len > kMaxBlobLabel || !r.take(label_len, label)) {
    return bad("bad key label");
  }
  if (!r.u8(iv_len) || iv_len > kMaxBlobIv || !r.take(iv_len, iv)) return bad("bad IV");
  ByteSpan ct = r.rest();
  if (ct.empty() || ct.size() > kMaxBlobCiphertext) return bad("bad ciphertext length");
  b.key_label = to_string(label);
  b.iv.assign(iv.begin(), iv.end());
  b.ciphertext.assign(ct.begin(), ct.end());
  return b;
}

}  // namespace custos::hsm
