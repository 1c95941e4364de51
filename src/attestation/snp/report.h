// AMD SEV-SNP ATTESTATION_REPORT: layout, bounds-checked parsing, TCB_VERSION decoding.
//
// Reference: AMD "SEV Secure Nested Paging Firmware ABI Specification" (pub. 56860), section
// 7.3 "Attestation", Table "ATTESTATION_REPORT Structure", and section 2.2 "TCB Version"
// (Milan/Genoa layout) plus the Turin (family 1Ah) layout that adds FMC and moves the fields.
// The report is 1184 (0x4A0) bytes, little-endian; the signature covers bytes 0x000..0x29F.
// Report versions 2, 3 (CPUID fields) and 5 (mitigation vectors) are understood; version 4 is
// read like 3. Offsets are pinned below with static_asserts; docs/attestation-snp-tpm.md lists
// the fields this verifier turns into claims.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "base/bytes.h"
#include "base/status.h"

namespace custos::attestation::snp {

// Offsets of ATTESTATION_REPORT fields (Table "ATTESTATION_REPORT Structure").
namespace off {
inline constexpr size_t kVersion = 0x000;
inline constexpr size_t kGuestSvn = 0x004;
inline constexpr size_t kPolicy = 0x008;
inline constexpr size_t kFamilyId = 0x010;
inline constexpr size_t kImageId = 0x020;
inline constexpr size_t kVmpl = 0x030;
inline constexpr size_t kSignatureAlgo = 0x034;
inline constexpr size_t kCurrentTcb = 0x038;
inline constexpr size_t kPlatformInfo = 0x040;
inline constexpr size_t kSignerInfo = 0x048;  // AUTHOR_KEY_EN, MASK_CHIP_KEY, SIGNING_KEY
inline constexpr size_t kReportData = 0x050;
inline constexpr size_t kMeasurement = 0x090;
inline constexpr size_t kHostData = 0x0C0;
inline constexpr size_t kIdKeyDigest = 0x0E0;
inline constexpr size_t kAuthorKeyDigest = 0x110;
inline constexpr size_t kReportId = 0x140;
inline constexpr size_t kReportIdMa = 0x160;
inline constexpr size_t kReportedTcb = 0x180;
inline constexpr size_t kCpuidFamId = 0x188;  // v3+
inline constexpr size_t kCpuidModId = 0x189;  // v3+
inline constexpr size_t kCpuidStep = 0x18A;   // v3+
inline constexpr size_t kChipId = 0x1A0;
inline constexpr size_t kCommittedTcb = 0x1E0;
inline constexpr size_t kCurrentBuild = 0x1E8;
inline constexpr size_t kCurrentMinor = 0x1E9;
inline constexpr size_t kCurrentMajor = 0x1EA;
inline constexpr size_t kCommittedBuild = 0x1EC;
inline constexpr size_t kCommittedMinor = 0x1ED;
inline constexpr size_t kCommittedMajor = 0x1EE;
inline constexpr size_t kLaunchTcb = 0x1F0;
inline constexpr size_t kLaunchMitVector = 0x1F8;   // v5
inline constexpr size_t kCurrentMitVector = 0x200;  // v5
inline constexpr size_t kSignature = 0x2A0;
inline constexpr size_t kSignatureR = kSignature + 0x00;
inline constexpr size_t kSignatureS = kSignature + 0x48;
inline constexpr size_t kReportSize = 0x4A0;
}  // namespace off

inline constexpr size_t kReportSize = off::kReportSize;
inline constexpr size_t kSignedSize = off::kSignature;  // bytes 0x000..0x29F are signed
inline constexpr size_t kSigComponentSize = 72;          // r and s, little-endian, zero padded
inline constexpr uint32_t kSigAlgoEcdsaP384Sha384 = 1;   // SIGNATURE_ALGO (Table "Signature Algorithm")

static_assert(kReportSize == 1184);
static_assert(off::kReportData + 64 == off::kMeasurement);
static_assert(off::kMeasurement + 48 == off::kHostData);
static_assert(off::kHostData + 32 == off::kIdKeyDigest);
static_assert(off::kIdKeyDigest + 48 == off::kAuthorKeyDigest);
static_assert(off::kAuthorKeyDigest + 48 == off::kReportId);
static_assert(off::kReportId + 32 == off::kReportIdMa);
static_assert(off::kReportIdMa + 32 == off::kReportedTcb);
static_assert(off::kChipId + 64 == off::kCommittedTcb);
static_assert(off::kSignatureS + kSigComponentSize == off::kSignature + 144);
static_assert(off::kSignature + 512 == kReportSize);

// GUEST POLICY bits (Table "Guest Policy Structure").
namespace policy_bit {
inline constexpr uint64_t kSmt = 1ull << 16;
inline constexpr uint64_t kReserved1 = 1ull << 17;  // must be 1
inline constexpr uint64_t kMigrateMa = 1ull << 18;
inline constexpr uint64_t kDebug = 1ull << 19;
inline constexpr uint64_t kSingleSocket = 1ull << 20;
inline constexpr uint64_t kCxlAllow = 1ull << 21;
inline constexpr uint64_t kMemAes256Xts = 1ull << 22;
inline constexpr uint64_t kRaplDis = 1ull << 23;
inline constexpr uint64_t kCiphertextHiding = 1ull << 24;
inline constexpr uint64_t kPageSwapDisable = 1ull << 25;
}  // namespace policy_bit

// Which TCB_VERSION layout applies: Milan and Genoa share one; Turin (Zen 5) has another.
enum class TcbLayout { kMilanGenoa, kTurin };

// A decoded TCB_VERSION (security patch levels). `fmc` exists only in the Turin layout.
struct TcbVersion {
  uint8_t bootloader = 0;
  uint8_t tee = 0;
  uint8_t snp = 0;
  uint8_t microcode = 0;
  std::optional<uint8_t> fmc;

  friend bool operator==(const TcbVersion&, const TcbVersion&) = default;
};
TcbVersion decode_tcb(uint64_t raw, TcbLayout layout);
std::string tcb_to_string(const TcbVersion& t);  // "bl=3 tee=0 snp=8 ucode=115[ fmc=0]"

enum class SigningKey { kVcek = 0, kVlek = 1 };

struct AttestationReport {
  uint32_t version = 0;
  uint32_t guest_svn = 0;
  uint64_t policy = 0;
  std::array<uint8_t, 16> family_id{};
  std::array<uint8_t, 16> image_id{};
  uint32_t vmpl = 0;
  uint32_t signature_algo = 0;
  uint64_t current_tcb = 0;
  uint64_t platform_info = 0;
  uint32_t signer_info = 0;
  bool author_key_en = false;
  bool mask_chip_id = false;
  uint32_t signing_key = 0;  // 0 VCEK, 1 VLEK, 7 none; others reserved
  std::array<uint8_t, 64> report_data{};
  std::array<uint8_t, 48> measurement{};
  std::array<uint8_t, 32> host_data{};
  std::array<uint8_t, 48> id_key_digest{};
  std::array<uint8_t, 48> author_key_digest{};
  std::array<uint8_t, 32> report_id{};
  std::array<uint8_t, 32> report_id_ma{};
  uint64_t reported_tcb = 0;
  std::optional<uint8_t> cpuid_fam_id;  // v3+
  std::optional<uint8_t> cpuid_mod_id;
  std::optional<uint8_t> cpuid_step;
  std::array<uint8_t, 64> chip_id{};
  uint64_t committed_tcb = 0;
  uint8_t current_build = 0, current_minor = 0, current_major = 0;
  uint8_t committed_build = 0, committed_minor = 0, committed_major = 0;
  uint64_t launch_tcb = 0;
  std::optional<uint64_t> launch_mit_vector;   // v5
  std::optional<uint64_t> current_mit_vector;  // v5
  // Signature components converted to big-endian, 48 bytes each (P-384).
  Bytes sig_r;
  Bytes sig_s;
  bool sig_high_bytes_zero = true;  // bytes 48..71 of each LE component are zero, as they must be
};

// Parses exactly kReportSize bytes. Rejects other sizes and versions outside 2..5.
Result<AttestationReport> parse_report(ByteSpan report);

// Evidence files come as raw binary, hex text or base64 text; returns the 1184 raw bytes.
Result<Bytes> decode_report_bytes(ByteSpan data);

}  // namespace custos::attestation::snp
