// TPM 2.0 wire structures used by quote verification, parsed with a bounds-checked reader.
// References are to TCG "TPM 2.0 Library, Part 2: Structures" (rev. 1.59); all integers are
// big-endian on the wire.
//   10.12.8 TPMS_ATTEST, 10.12.1 TPMS_CLOCK_INFO, 10.12.4 TPMS_QUOTE_INFO
//   10.9.7  TPML_PCR_SELECTION / 10.6.2 TPMS_PCR_SELECTION
//   11.3.4  TPMT_SIGNATURE (RSASSA, RSAPSS, ECDSA)
//   12.2.4  TPMT_PUBLIC, 12.2.5 TPM2B_PUBLIC, 12.2.3.5 TPMS_RSA_PARMS, 12.2.3.6 TPMS_ECC_PARMS
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/bytes.h"
#include "base/status.h"
#include "crypto/hash.h"
#include "crypto/pkey.h"

namespace custos::attestation::tpm {

// Part 2, 6.2 TPM_GENERATED and 6.9 TPM_ST.
inline constexpr uint32_t kTpmGeneratedValue = 0xff544347;  // "\xffTCG"
inline constexpr uint16_t kTpmStAttestQuote = 0x8018;

// Part 2, 6.3 TPM_ALG_ID (the ones this verifier knows).
namespace alg {
inline constexpr uint16_t kRsa = 0x0001;
inline constexpr uint16_t kSha1 = 0x0004;
inline constexpr uint16_t kNull = 0x0010;
inline constexpr uint16_t kSha256 = 0x000B;
inline constexpr uint16_t kSha384 = 0x000C;
inline constexpr uint16_t kSha512 = 0x000D;
inline constexpr uint16_t kRsaSsa = 0x0014;
inline constexpr uint16_t kRsaPss = 0x0016;
inline constexpr uint16_t kEcdsa = 0x0018;
inline constexpr uint16_t kEcc = 0x0023;
}  // namespace alg

// Part 2, 6.4 TPM_ECC_CURVE.
inline constexpr uint16_t kEccNistP256 = 0x0003;
inline constexpr uint16_t kEccNistP384 = 0x0004;
inline constexpr uint16_t kEccNistP521 = 0x0005;

// Part 2, 8.3 TPMA_OBJECT bits relevant to an attestation key.
inline constexpr uint32_t kAttrFixedTpm = 1u << 1;
inline constexpr uint32_t kAttrSensitiveDataOrigin = 1u << 5;
inline constexpr uint32_t kAttrRestricted = 1u << 16;
inline constexpr uint32_t kAttrSign = 1u << 18;

// The TPM hash algorithm id -> our HashAlg; nullopt for unknown algorithms (e.g. SM3).
std::optional<crypto::HashAlg> hash_from_tpm(uint16_t alg_id);
uint16_t tpm_from_hash(crypto::HashAlg h);
// "sha1", "sha256", ... -> TPM_ALG_ID; 0 if unknown.
uint16_t tpm_hash_from_name(std::string_view name);

struct PcrSelection {
  uint16_t hash = 0;              // TPM_ALG_ID of the bank
  std::vector<uint32_t> indices;  // ascending, as the TPM orders them in the digest
};

struct QuoteAttest {
  uint32_t magic = 0;
  uint16_t type = 0;
  Bytes qualified_signer;  // TPM2B_NAME
  Bytes extra_data;        // TPM2B_DATA: the caller's nonce (qualifyingData)
  uint64_t clock = 0;
  uint32_t reset_count = 0;
  uint32_t restart_count = 0;
  bool safe = false;
  uint64_t firmware_version = 0;
  std::vector<PcrSelection> pcr_select;  // in quote order
  Bytes pcr_digest;
};

// Parses a TPMS_ATTEST of type TPM_ST_ATTEST_QUOTE; rejects trailing bytes, other types, and a
// wrong magic (a TPM signs only structures that start with TPM_GENERATED_VALUE).
Result<QuoteAttest> parse_quote_attest(ByteSpan data);

struct Signature {
  uint16_t sig_alg = 0;  // kRsaSsa, kRsaPss or kEcdsa
  uint16_t hash = 0;     // TPM_ALG_ID
  Bytes rsa_sig;         // RSA: the signature, big-endian
  Bytes ecc_r, ecc_s;    // ECDSA: big-endian, unpadded as the TPM returns them
};
Result<Signature> parse_signature(ByteSpan data);

struct AkPublic {
  crypto::PublicKey key;
  std::optional<uint32_t> object_attributes;  // set when parsed from TPMT_PUBLIC
  std::optional<uint16_t> name_alg;
  Bytes name;  // TPM name (nameAlg || H(TPMT_PUBLIC)) when parsed from TPMT_PUBLIC
};
// Accepts TPM2B_PUBLIC, bare TPMT_PUBLIC, PEM SubjectPublicKeyInfo or DER SubjectPublicKeyInfo.
Result<AkPublic> parse_ak_public(ByteSpan data);

// The binary form of evidence or collateral that may come as raw bytes, hex text or base64 text.
// `looks_binary` decides whether the input is taken as is.
Bytes decode_flexible(ByteSpan data, bool looks_binary);

}  // namespace custos::attestation::tpm
