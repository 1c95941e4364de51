#include "attestation/tpm/verifier.h"

#include <algorithm>
#include <exception>
#include <optional>

#include "attestation/tpm/pcrs.h"
#include "base/encoding.h"

namespace custos::attestation::tpm {
namespace {

VerifyResult reject(std::string reason, std::string message) {
  return VerifyResult::reject(std::move(reason), std::move(message));
}

bool is_printable_text(ByteSpan data) {
  return !data.empty() && std::all_of(data.begin(), data.end(), [](uint8_t c) {
    return c == '\n' || c == '\r' || c == '\t' || (c >= 0x20 && c < 0x7f);
  });
}

std::string hex_u64(uint64_t v) {
  static const char* kDigits = "0123456789abcdef";
  std::string s = "0x";
  for (int shift = 60; shift >= 0; shift -= 4) s.push_back(kDigits[(v >> shift) & 0xf]);
  return s;
}

size_t ec_width(crypto::KeyType t) {
  switch (t) {
    case crypto::KeyType::kEcP256: return 32;
    case crypto::KeyType::kEcP384: return 48;
    case crypto::KeyType::kEcP521: return 66;
    default: return 0;
  }
}

Bytes left_pad(const Bytes& v, size_t n) {
  if (v.size() >= n) return v;
  Bytes out(n - v.size(), 0);
  out.insert(out.end(), v.begin(), v.end());
  return out;
}

Result<std::vector<crypto::Certificate>> parse_certs(ByteSpan data) {
  auto pem = crypto::Certificate::chain_from_pem(as_string_view(data));
  if (pem.ok() && !pem->empty()) return std::move(pem).value();
  ASSIGN_OR_RETURN(auto one, crypto::Certificate::from_any(data));
  return std::vector<crypto::Certificate>{std::move(one)};
}

}  // namespace

TpmVerifier::TpmVerifier(VerifierConfig config) : config_(std::move(config)) {}

VerifyResult TpmVerifier::verify(const Evidence& evidence, const Collateral& collateral,
                                 const VerifyOptions& options) const {
  try {
    return verify_impl(evidence, collateral, options);
  } catch (const std::exception& e) {
    return reject("tpm.internal", std::string("internal error: ") + e.what());
  } catch (...) {
    return reject("tpm.internal", "internal error");
  }
}

VerifyResult TpmVerifier::verify_impl(const Evidence& evidence, const Collateral& collateral,
                                      const VerifyOptions& options) const {
  if (evidence.tee != TeeType::kTpm) return reject("tpm.evidence.type", "evidence is not TPM");

  // --- 1. TPMS_ATTEST (Part 2, 10.12.8). The magic proves the TPM produced the structure
  // (a TPM never signs external data starting with TPM_GENERATED_VALUE with a restricted key).
  const Bytes& in = evidence.data;
  bool binary = in.size() >= 4 && in[0] == 0xff && in[1] == 'T' && in[2] == 'C' && in[3] == 'G';
  Bytes attest = decode_flexible(in, binary || !is_printable_text(in));
  if (attest.size() < 6) return reject("tpm.attest.format", "TPMS_ATTEST too short");
  uint32_t magic = (uint32_t{attest[0]} << 24) | (uint32_t{attest[1]} << 16) |
                   (uint32_t{attest[2]} << 8) | attest[3];
  uint16_t type = static_cast<uint16_t>((attest[4] << 8) | attest[5]);
  if (magic != kTpmGeneratedValue) {
    return reject("tpm.attest.magic", "TPMS_ATTEST magic is not TPM_GENERATED_VALUE");
  }
  if (type != kTpmStAttestQuote) {
    return reject("tpm.attest.type", "TPMS_ATTEST type " + hex_u64(type) + " is not a quote");
  }
  auto quote_or = parse_quote_attest(attest);
  if (!quote_or.ok()) return reject("tpm.attest.format", quote_or.status().message());
  const QuoteAttest& quote = *quote_or;

  // --- 2. TPMT_SIGNATURE (Part 2, 11.3.4) and its hash.
  auto sig_it = collateral.find("signature");
  if (sig_it == collateral.end()) {
    return reject("tpm.collateral.missing", "collateral \"signature\" (TPMT_SIGNATURE) is required");
  }
  const Bytes& sig_in = sig_it->second;
  Bytes sig_bytes = decode_flexible(sig_in, !is_printable_text(sig_in));
  auto sig_or = parse_signature(sig_bytes);
  if (!sig_or.ok()) return reject("tpm.signature.format", sig_or.status().message());
  const Signature& sig = *sig_or;
  auto hash = hash_from_tpm(sig.hash);
  if (!hash) {
    return reject("tpm.signature.hash_unsupported",
                  "signature hash algorithm " + hex_u64(sig.hash) + " is not supported");
  }
  if (*hash == crypto::HashAlg::kSha1 && !config_.allow_sha1) {
    return reject("tpm.signature.sha1_forbidden", "quote is signed with SHA-1");
  }

  // --- 3. The attestation key: pinned ("ak_pub") and/or certified ("ak_cert" -> CA).
  std::optional<AkPublic> ak;
  if (auto it = collateral.find("ak_pub"); it != collateral.end()) {
    const Bytes& raw = it->second;
    bool pem = as_string_view(raw).find("-----BEGIN") != std::string_view::npos;
    Bytes ak_bytes = pem ? raw : decode_flexible(raw, !is_printable_text(raw));
    auto parsed = parse_ak_public(ak_bytes);
    if (!parsed.ok()) return reject("tpm.ak.format", parsed.status().message());
    ak = std::move(parsed).value();
    if (config_.require_restricted_ak && ak->object_attributes) {
      uint32_t a = *ak->object_attributes;
      if ((a & kAttrSign) == 0 || (a & kAttrRestricted) == 0) {
        return reject("tpm.ak.attributes", "AK is not a restricted signing key");
      }
    }
  }
  std::optional<SysTime> cert_expiry;
  if (auto it = collateral.find("ak_cert"); it != collateral.end()) {
    auto cert = crypto::Certificate::from_any(it->second);
    if (!cert.ok()) return reject("tpm.ak_cert.parse", cert.status().message());
    std::vector<crypto::Certificate> intermediates;
    std::vector<crypto::Certificate> roots = config_.ak_roots;
    if (auto ca = collateral.find("ak_ca"); ca != collateral.end()) {
      auto certs = parse_certs(ca->second);
      if (!certs.ok()) return reject("tpm.ak_cert.parse", certs.status().message());
      for (auto& c : *certs) {
        bool self_signed = c.subject() == c.issuer();
        if (self_signed && config_.ak_roots.empty()) {
          roots.push_back(std::move(c));
        } else if (!self_signed) {
          intermediates.push_back(std::move(c));
        }
      }
    }
    if (roots.empty()) {
      return reject("tpm.ak_cert.no_root", "no trusted CA is configured for AK certificates");
    }
    crypto::ChainOptions copts;
    copts.at = options.at;
    std::string last_error;
    bool chained = false;
    for (const auto& root : roots) {
      auto path = crypto::verify_chain(*cert, intermediates, root, copts);
      if (path.ok()) {
        chained = true;
        SysTime expiry = path->front().not_after();
        for (const auto& c : *path) expiry = std::min(expiry, c.not_after());
        cert_expiry = expiry;
        break;
      }
      last_error = path.status().message();
    }
    if (!chained) return reject("tpm.ak_cert.chain", "AK certificate does not chain: " + last_error);
    crypto::PublicKey cert_key = cert->public_key();
    if (ak) {
      if (ak->key.to_der() != cert_key.to_der()) {
        return reject("tpm.ak.cert_mismatch", "ak_pub is not the key of ak_cert");
      }
    } else {
      ak = AkPublic{cert_key, std::nullopt, std::nullopt, {}};
    }
  }
  if (!ak) {
    return reject("tpm.collateral.missing", "collateral \"ak_pub\" or \"ak_cert\" is required");
  }

  // --- 4. Signature over the TPMS_ATTEST bytes (Part 3, 18.4 TPM2_Quote).
  crypto::SignOptions sopts;
  sopts.hash = *hash;
  Bytes sig_value;
  crypto::KeyType kt = ak->key.type();
  if (sig.sig_alg == alg::kRsaSsa || sig.sig_alg == alg::kRsaPss) {
    if (kt != crypto::KeyType::kRsa) {
      return reject("tpm.signature.alg_mismatch", "RSA signature but the AK is not RSA");
    }
    sopts.rsa_padding = sig.sig_alg == alg::kRsaSsa ? crypto::SignOptions::RsaPadding::kPkcs1
                                                    : crypto::SignOptions::RsaPadding::kPss;
    sig_value = sig.rsa_sig;
  } else {
    size_t w = ec_width(kt);
    if (w == 0) return reject("tpm.signature.alg_mismatch", "ECDSA signature but the AK is not EC");
    if (sig.ecc_r.size() > w || sig.ecc_s.size() > w) {
      return reject("tpm.signature.invalid", "ECDSA signature components too large");
    }
    sopts.ec_format = crypto::SignOptions::EcFormat::kRaw;
    sig_value = left_pad(sig.ecc_r, w);
    Bytes s = left_pad(sig.ecc_s, w);
    sig_value.insert(sig_value.end(), s.begin(), s.end());
  }
  if (!ak->key.verify(attest, sig_value, sopts).ok()) {
    return reject("tpm.signature.invalid", "quote signature does not verify with the AK");
  }

  // --- 5. Freshness: extraData is the caller's qualifyingData (Part 3, 18.4).
  if (auto it = collateral.find("nonce"); it != collateral.end()) {
    std::string text = strip_whitespace(as_string_view(it->second));
    std::string_view t = text;
    if (t.size() >= 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) t.remove_prefix(2);
    auto nonce = hex_decode(t);
    if (!nonce.ok()) return reject("tpm.nonce.format", "nonce must be hex");
    if (!constant_time_equal(*nonce, quote.extra_data)) {
      return reject("tpm.nonce.mismatch", "quote extraData does not equal the expected nonce");
    }
  }

  // --- 6. pcrDigest = H_sign(selected PCR values in selection order) (Part 2, 10.12.4).
  auto pcr_it = collateral.find("pcrs");
  if (pcr_it == collateral.end()) {
    return reject("tpm.pcrs.missing", "collateral \"pcrs\" (the quoted PCR values) is required");
  }
  auto banks = parse_pcr_values(pcr_it->second, quote.pcr_select);
  if (!banks.ok()) return reject("tpm.pcrs.format", banks.status().message());
  auto concat = concat_selected(*banks, quote.pcr_select);
  if (!concat.ok()) {
    bool missing = concat.status().code() == Code::kNotFound;
    return reject(missing ? "tpm.pcrs.incomplete" : "tpm.pcrs.format", concat.status().message());
  }
  Bytes computed = crypto::digest(*hash, *concat);
  if (!constant_time_equal(computed, quote.pcr_digest)) {
    return reject("tpm.pcr_digest.mismatch",
                  "pcrDigest does not match the supplied PCR values (hashed with " +
                      std::string(crypto::hash_name(*hash)) + ")");
  }

  // --- Claims: only the quoted PCRs.
  Claims claims;
  claims.tee = TeeType::kTpm;
  claims.debug = false;
  claims.tcb_status = TcbStatus::kNotApplicable;
  claims.report_data = quote.extra_data;
  claims.collateral_expiry = cert_expiry;
  boost::json::object pcrs;
  for (const auto& s : quote.pcr_select) {
    auto h = hash_from_tpm(s.hash);
    std::string bank = h ? std::string(crypto::hash_name(*h)) : hex_u64(s.hash);
    boost::json::object values;
    if (auto b = banks->find(s.hash); b != banks->end()) {
      for (uint32_t idx : s.indices) {
        values[std::to_string(idx)] = hex_encode(b->second.at(idx));
      }
    }
    pcrs[bank] = std::move(values);
  }
  auto& f = claims.fields;
  f["pcrs"] = std::move(pcrs);
  f["pcr_digest"] = hex_encode(quote.pcr_digest);
  f["nonce"] = hex_encode(quote.extra_data);
  f["clock"] = quote.clock;
  f["reset_count"] = quote.reset_count;
  f["restart_count"] = quote.restart_count;
  f["safe"] = quote.safe;
  f["firmware_version"] = hex_u64(quote.firmware_version);
  f["qualified_signer"] = hex_encode(quote.qualified_signer);
  f["signature_hash"] = std::string(crypto::hash_name(*hash));
  if (!ak->name.empty()) f["ak_name"] = hex_encode(ak->name);
  return VerifyResult::accept(std::move(claims));
}

}  // namespace custos::attestation::tpm
