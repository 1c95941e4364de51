#include "attestation/dcap/quote.h"

#include <cstring>
#include <string>

#include "attestation/dcap/reasons.h"
#include "base/reader.h"

namespace custos::attestation::dcap {
namespace {

uint16_t le16(const std::array<uint8_t, 2>& b) {
  return static_cast<uint16_t>(b[0] | (b[1] << 8));
}
uint32_t le32(const std::array<uint8_t, 4>& b) {
  return static_cast<uint32_t>(b[0]) | (static_cast<uint32_t>(b[1]) << 8) |
         (static_cast<uint32_t>(b[2]) << 16) | (static_cast<uint32_t>(b[3]) << 24);
}

// Copies sizeof(T) bytes into a struct made only of byte arrays (no padding, no alignment).
template <typename T>
bool read_struct(ByteReader& r, T& out) {
  ByteSpan b = r.bytes(sizeof(T));
  if (r.failed()) return false;
  std::memcpy(&out, b.data(), sizeof(T));
  return true;
}

Status truncated(const char* what) { return reason::fail(reason::kQuoteTruncated, what); }

// The QE report certification data (type 6) and the v3 signature data share this tail:
// QE report, its signature, QE auth data, then certification data [QL "Quote Signature Data"].
Status read_qe_report_and_cert_data(ByteReader& r, Quote& q) {
  if (!read_struct(r, q.qe_report)) return truncated("QE report");
  ByteSpan sig = r.bytes(kEcdsaSignatureSize);
  if (r.failed()) return truncated("QE report signature");
  std::memcpy(q.qe_report_signature.data(), sig.data(), sig.size());
  uint16_t auth_size = r.u16le();
  q.qe_auth_data = r.bytes(auth_size);
  if (r.failed()) return truncated("QE authentication data");
  uint16_t type = r.u16le();
  uint32_t size = r.u32le();
  if (r.failed()) return truncated("certification data header");
  q.cert_data = r.bytes(size);
  if (r.failed()) return truncated("certification data");
  if (type < 1 || type > 5) {
    return reason::fail(reason::kCertDataType,
                        "certification data type " + std::to_string(type) +
                            " where a PCK certificate chain or PPID (1-5) is required");
  }
  q.cert_data_type = static_cast<CertDataType>(type);
  return ok_status();
}

}  // namespace

uint32_t EnclaveReport::misc_select_value() const { return le32(misc_select); }
uint16_t EnclaveReport::isv_prod_id_value() const { return le16(isv_prod_id); }
uint16_t EnclaveReport::isv_svn_value() const { return le16(isv_svn); }
uint16_t EnclaveReport::config_svn_value() const { return le16(config_svn); }

const std::array<uint8_t, 64>& Quote::report_data() const {
  return td_body ? td_body->report_data : sgx_body->report_data;
}

Result<Quote> parse_quote(ByteSpan data) {
  Quote q;
  ByteReader r(data);
  if (!read_struct(r, q.header)) return truncated("quote header");
  q.version = le16(q.header.version);
  if (q.version != kQuoteV3 && q.version != kQuoteV4 && q.version != kQuoteV5) {
    return reason::fail(reason::kQuoteVersion, "quote version " + std::to_string(q.version));
  }
  // Only ECDSA-256-with-P-256 attestation keys exist in DCAP quotes in the field (P-384 is
  // reserved by the spec and never produced by Intel's QE).
  uint16_t key_type = le16(q.header.att_key_type);
  if (key_type != kAttKeyTypeEcdsaP256) {
    return reason::fail(reason::kQuoteAttKeyType, "attestation key type " + std::to_string(key_type));
  }
  q.tee_type = le32(q.header.tee_type);
  if (q.version == kQuoteV3 && q.tee_type != kTeeTypeSgx) {
    return reason::fail(reason::kQuoteTeeType, "v3 quotes are SGX only");
  }
  if (q.tee_type != kTeeTypeSgx && q.tee_type != kTeeTypeTdx) {
    return reason::fail(reason::kQuoteTeeType, "TEE type " + std::to_string(q.tee_type));
  }
  // The QE identity collateral describes Intel's QE only; another vendor's QE cannot be appraised.
  if (q.header.qe_vendor_id != kIntelQeVendorId) {
    return reason::fail(reason::kQuoteQeVendor, "QE vendor is not Intel");
  }

  // Body: implied by the TEE type in v3/v4, typed and sized in v5 [TDX DCAP QL "Quote Body"].
  if (q.version == kQuoteV5) {
    size_t body_size = 0;
    uint16_t type = r.u16le();
    uint32_t size = r.u32le();
    if (r.failed()) return truncated("v5 body descriptor");
    switch (type) {
      case 1: q.body_type = BodyType::kSgxEnclave; body_size = sizeof(EnclaveReport); break;
      case 2: q.body_type = BodyType::kTd10; body_size = sizeof(Td10ReportBody); break;
      case 3: q.body_type = BodyType::kTd15; body_size = kTd15BodySize; break;
      default:
        return reason::fail(reason::kQuoteBodyType, "v5 body type " + std::to_string(type));
    }
    if (size != body_size) {
      return reason::fail(reason::kQuoteBodyType, "v5 body size " + std::to_string(size) +
                                                      " does not match its type");
    }
    bool sgx_body = q.body_type == BodyType::kSgxEnclave;
    if (sgx_body != (q.tee_type == kTeeTypeSgx)) {
      return reason::fail(reason::kQuoteBodyType, "v5 body type does not match the TEE type");
    }
  } else {
    q.body_type = q.tee_type == kTeeTypeSgx ? BodyType::kSgxEnclave : BodyType::kTd10;
  }
  if (q.body_type == BodyType::kSgxEnclave) {
    EnclaveReport body;
    if (!read_struct(r, body)) return truncated("enclave report body");
    q.sgx_body = body;
  } else {
    Td10ReportBody body;
    if (!read_struct(r, body)) return truncated("TD report body");
    q.td_body = body;
    if (q.body_type == BodyType::kTd15) {
      Td15Extension ext;
      if (!read_struct(r, ext)) return truncated("TD 1.5 report body");
      q.td15_extension = ext;
    }
  }
  q.signed_data = data.first(r.position());

  // Signature data: its length, then the ECDSA signature, attestation key and the rest.
  uint32_t sig_len = r.u32le();
  ByteSpan sig_data = r.bytes(sig_len);
  if (r.failed()) return truncated("signature data");
  // Bytes after the signature data are not covered by any signature; some quote generators pad
  // quotes to a fixed buffer size, so they are tolerated and reported.
  q.trailing_bytes = r.remaining();

  ByteReader s(sig_data);
  ByteSpan sig = s.bytes(kEcdsaSignatureSize);
  ByteSpan key = s.bytes(kEcdsaKeySize);
  if (s.failed()) return truncated("quote signature or attestation key");
  std::memcpy(q.signature.data(), sig.data(), sig.size());
  std::memcpy(q.attestation_key.data(), key.data(), key.size());

  if (q.version == kQuoteV3) {
    RETURN_IF_ERROR(read_qe_report_and_cert_data(s, q));
    q.qe_report_raw = sig_data.subspan(kEcdsaSignatureSize + kEcdsaKeySize, sizeof(EnclaveReport));
  } else {
    // v4/v5: the outer certification data must be type 6, which wraps the QE report.
    uint16_t type = s.u16le();
    uint32_t size = s.u32le();
    if (s.failed()) return truncated("certification data header");
    ByteSpan outer = s.bytes(size);
    if (s.failed()) return truncated("QE report certification data");
    if (type != static_cast<uint16_t>(CertDataType::kQeReportCertData)) {
      return reason::fail(reason::kCertDataType, "v4/v5 quotes need certification data type 6, got " +
                                                     std::to_string(type));
    }
    ByteReader inner(outer);
    RETURN_IF_ERROR(read_qe_report_and_cert_data(inner, q));
    q.qe_report_raw = outer.first(sizeof(EnclaveReport));
    // [QVL verifyCertificationData]: the declared size must be exactly what was parsed.
    if (!inner.empty()) {
      return reason::fail(reason::kQuoteSigDataSize,
                          "QE report certification data has " + std::to_string(inner.remaining()) +
                              " unparsed bytes");
    }
  }
  if (!s.empty()) {
    return reason::fail(reason::kQuoteSigDataSize, "signature data has " +
                                                       std::to_string(s.remaining()) +
                                                       " unparsed bytes");
  }
  return q;
}

}  // namespace custos::attestation::dcap
