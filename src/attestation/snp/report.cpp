#include "attestation/snp/report.h"

#include <algorithm>
#include <sstream>

#include "base/encoding.h"
#include "base/reader.h"

namespace custos::attestation::snp {
namespace {

template <size_t N>
void read_array(ByteReader& r, std::array<uint8_t, N>& out) {
  ByteSpan b = r.bytes(N);
  if (b.size() == N) std::copy(b.begin(), b.end(), out.begin());
}

// Signature components are little-endian and 72 bytes wide (room for P-521); for P-384 only the
// low 48 bytes may be non-zero (spec Table "ECDSA P-384 with SHA-384 Signature").
Bytes le_component_to_be(ByteSpan le, bool& high_zero) {
  for (size_t i = 48; i < le.size(); ++i) {
    if (le[i] != 0) high_zero = false;
  }
  Bytes be(48);
  for (size_t i = 0; i < 48; ++i) be[i] = le[47 - i];
  return be;
}

}  // namespace

TcbVersion decode_tcb(uint64_t raw, TcbLayout layout) {
  auto byte = [raw](int i) { return static_cast<uint8_t>((raw >> (8 * i)) & 0xff); };
  TcbVersion t;
  if (layout == TcbLayout::kTurin) {
    // Turin: FMC[7:0], BOOT_LOADER[15:8], TEE[23:16], SNP[31:24], reserved, MICROCODE[63:56].
    t.fmc = byte(0);
    t.bootloader = byte(1);
    t.tee = byte(2);
    t.snp = byte(3);
    t.microcode = byte(7);
  } else {
    // Milan/Genoa: BOOT_LOADER[7:0], TEE[15:8], reserved[47:16], SNP[55:48], MICROCODE[63:56].
    t.bootloader = byte(0);
    t.tee = byte(1);
    t.snp = byte(6);
    t.microcode = byte(7);
  }
  return t;
}

std::string tcb_to_string(const TcbVersion& t) {
  std::ostringstream os;
  os << "bl=" << int(t.bootloader) << " tee=" << int(t.tee) << " snp=" << int(t.snp)
     << " ucode=" << int(t.microcode);
  if (t.fmc) os << " fmc=" << int(*t.fmc);
  return os.str();
}

Result<AttestationReport> parse_report(ByteSpan report) {
  if (report.size() != kReportSize) {
    return invalid_argument("SNP report must be " + std::to_string(kReportSize) + " bytes, got " +
                            std::to_string(report.size()));
  }
  ByteReader r(report);
  AttestationReport out;
  out.version = r.u32le();
  if (out.version < 2 || out.version > 5) {
    return invalid_argument("unsupported SNP report version " + std::to_string(out.version));
  }
  out.guest_svn = r.u32le();
  out.policy = r.u64le();
  read_array(r, out.family_id);
  read_array(r, out.image_id);
  out.vmpl = r.u32le();
  out.signature_algo = r.u32le();
  out.current_tcb = r.u64le();
  out.platform_info = r.u64le();
  out.signer_info = r.u32le();
  out.author_key_en = (out.signer_info & 1u) != 0;
  out.mask_chip_id = (out.signer_info & 2u) != 0;
  out.signing_key = (out.signer_info >> 2) & 7u;
  r.skip(4);  // reserved
  if (r.position() != off::kReportData) return internal_error("SNP parser out of step");
  read_array(r, out.report_data);
  read_array(r, out.measurement);
  read_array(r, out.host_data);
  read_array(r, out.id_key_digest);
  read_array(r, out.author_key_digest);
  read_array(r, out.report_id);
  read_array(r, out.report_id_ma);
  out.reported_tcb = r.u64le();
  if (r.position() != off::kCpuidFamId) return internal_error("SNP parser out of step");
  uint8_t fam = r.u8(), mod = r.u8(), step = r.u8();
  if (out.version >= 3) {
    out.cpuid_fam_id = fam;
    out.cpuid_mod_id = mod;
    out.cpuid_step = step;
  }
  r.skip(off::kChipId - off::kCpuidStep - 1);  // reserved
  read_array(r, out.chip_id);
  out.committed_tcb = r.u64le();
  out.current_build = r.u8();
  out.current_minor = r.u8();
  out.current_major = r.u8();
  r.skip(1);
  out.committed_build = r.u8();
  out.committed_minor = r.u8();
  out.committed_major = r.u8();
  r.skip(1);
  out.launch_tcb = r.u64le();
  if (r.position() != off::kLaunchMitVector) return internal_error("SNP parser out of step");
  uint64_t launch_mit = r.u64le();
  uint64_t current_mit = r.u64le();
  if (out.version >= 5) {
    out.launch_mit_vector = launch_mit;
    out.current_mit_vector = current_mit;
  }
  r.skip(off::kSignature - off::kCurrentMitVector - 8);  // reserved
  if (r.position() != off::kSignature) return internal_error("SNP parser out of step");
  ByteSpan sig_r = r.bytes(kSigComponentSize);
  ByteSpan sig_s = r.bytes(kSigComponentSize);
  r.skip(512 - 2 * kSigComponentSize);
  RETURN_IF_ERROR(r.status("SNP attestation report"));
  if (!r.empty()) return internal_error("SNP parser out of step");
  out.sig_r = le_component_to_be(sig_r, out.sig_high_bytes_zero);
  out.sig_s = le_component_to_be(sig_s, out.sig_high_bytes_zero);
  return out;
}

Result<Bytes> decode_report_bytes(ByteSpan data) {
  if (data.size() == kReportSize) return Bytes(data.begin(), data.end());
  std::string text = strip_whitespace(as_string_view(data));
  if (text.size() == 2 * kReportSize) {
    auto hex = hex_decode(text);
    if (hex.ok()) return std::move(hex).value();
  }
  auto b64 = base64_decode(text);
  if (b64.ok() && b64->size() == kReportSize) return std::move(b64).value();
  return invalid_argument("SNP report is neither " + std::to_string(kReportSize) +
                          " raw bytes nor hex/base64 of them (got " +
                          std::to_string(data.size()) + " bytes)");
}

}  // namespace custos::attestation::snp
