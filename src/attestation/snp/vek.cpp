#include "attestation/snp/vek.h"

#include "base/reader.h"

namespace custos::attestation::snp {
namespace {

// Reads one DER TLV with a short or long (<= 2 length bytes) definite length; the whole input
// must be that TLV.
Result<ByteSpan> der_single(ByteSpan der, uint8_t& tag) {
  ByteReader r(der);
  tag = r.u8();
  uint8_t first = r.u8();
  size_t len = first;
  if (first & 0x80) {
    size_t n = first & 0x7f;
    if (n == 0 || n > 2) return invalid_argument("DER length form not supported");
    len = 0;
    for (size_t i = 0; i < n; ++i) len = (len << 8) | r.u8();
  }
  ByteSpan value = r.bytes(len);
  RETURN_IF_ERROR(r.status("DER value"));
  if (!r.empty()) return invalid_argument("trailing bytes after DER value");
  return value;
}

Result<uint8_t> spl(const crypto::Certificate& cert, const char* oid, const char* name) {
  auto ext = cert.extension(oid);
  if (!ext) return invalid_argument(std::string("VEK certificate lacks the ") + name + " extension");
  ASSIGN_OR_RETURN(uint64_t v, der_small_integer(*ext));
  if (v > 255) return invalid_argument(std::string("VEK ") + name + " out of range");
  return static_cast<uint8_t>(v);
}

}  // namespace

Result<uint64_t> der_small_integer(ByteSpan der) {
  uint8_t tag = 0;
  ASSIGN_OR_RETURN(ByteSpan v, der_single(der, tag));
  if (tag != 0x02) return invalid_argument("expected DER INTEGER");
  if (v.empty()) return invalid_argument("empty DER INTEGER");
  if (v[0] & 0x80) return invalid_argument("negative DER INTEGER");
  // A leading zero is allowed only to keep the sign bit clear.
  size_t start = (v.size() > 1 && v[0] == 0) ? 1 : 0;
  if (v.size() - start > 8) return invalid_argument("DER INTEGER too large");
  uint64_t out = 0;
  for (size_t i = start; i < v.size(); ++i) out = (out << 8) | v[i];
  return out;
}

Result<std::string> der_ia5_or_utf8_string(ByteSpan der) {
  uint8_t tag = 0;
  ASSIGN_OR_RETURN(ByteSpan v, der_single(der, tag));
  if (tag != 0x16 && tag != 0x0c && tag != 0x13) return invalid_argument("expected DER string");
  return to_string(v);
}

Bytes unwrap_hw_id(ByteSpan value) {
  // AMD writes the raw 64 (or 8) bytes; accept a nested OCTET STRING of exactly those sizes too.
  if ((value.size() == 66 || value.size() == 10) && value[0] == 0x04 &&
      static_cast<size_t>(value[1]) == value.size() - 2) {
    return Bytes(value.begin() + 2, value.end());
  }
  return Bytes(value.begin(), value.end());
}

Result<VekExtensions> parse_vek_extensions(const crypto::Certificate& cert) {
  VekExtensions out;
  if (auto name = cert.extension(kOidProductName)) {
    auto s = der_ia5_or_utf8_string(*name);
    if (s.ok()) {
      out.product_name = *s;
    } else {
      out.product_name = to_string(*name);  // some early certificates store the bare string
    }
  }
  ASSIGN_OR_RETURN(out.tcb.bootloader, spl(cert, kOidBlSpl, "blSPL"));
  ASSIGN_OR_RETURN(out.tcb.tee, spl(cert, kOidTeeSpl, "teeSPL"));
  ASSIGN_OR_RETURN(out.tcb.snp, spl(cert, kOidSnpSpl, "snpSPL"));
  ASSIGN_OR_RETURN(out.tcb.microcode, spl(cert, kOidUcodeSpl, "ucodeSPL"));
  if (cert.extension(kOidFmcSpl)) {
    ASSIGN_OR_RETURN(uint8_t fmc, spl(cert, kOidFmcSpl, "fmcSPL"));
    out.tcb.fmc = fmc;
  }
  if (auto hw = cert.extension(kOidHwId)) out.hw_id = unwrap_hw_id(*hw);
  if (auto csp = cert.extension(kOidCspId)) {
    auto s = der_ia5_or_utf8_string(*csp);
    out.csp_id = s.ok() ? *s : to_string(*csp);
  }
  return out;
}

}  // namespace custos::attestation::snp
