// Fuzzes the SEV-SNP report parser, the evidence decoder (raw/hex/base64), the VEK extension
// parsers and the verifier's early checks on untrusted input.
#include <cstddef>
#include <cstdint>

#include "attestation/snp/report.h"
#include "attestation/snp/vek.h"
#include "attestation/snp/verifier.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace custos;
  using namespace custos::attestation;
  using namespace custos::attestation::snp;
  ByteSpan in(data, size);

  if (auto rep = parse_report(in); rep.ok()) {
    (void)decode_tcb(rep->reported_tcb, TcbLayout::kMilanGenoa);
    (void)tcb_to_string(decode_tcb(rep->reported_tcb, TcbLayout::kTurin));
  }
  (void)decode_report_bytes(in);
  (void)der_small_integer(in);
  (void)der_ia5_or_utf8_string(in);
  (void)unwrap_hw_id(in);
  if (auto cert = crypto::Certificate::from_any(in); cert.ok()) (void)parse_vek_extensions(*cert);

  // The verifier on the input as evidence (no collateral) and as the VCEK (for a zero report).
  static const SnpVerifier verifier;
  Evidence e;
  e.tee = TeeType::kSnp;
  e.data.assign(in.begin(), in.end());
  (void)verifier.verify(e, {}, {});
  Evidence zero;
  zero.tee = TeeType::kSnp;
  zero.data.assign(kReportSize, 0);
  zero.data[0] = 2;
  zero.data[off::kSignatureAlgo] = 1;
  zero.data[off::kPolicy + 2] = 0x03;
  (void)verifier.verify(zero, {{"vcek", e.data}, {"ask_ark", e.data}}, {});
  return 0;
}
