// Fuzzes the TPM structure parsers (TPMS_ATTEST, TPMT_SIGNATURE, TPM2B/TPMT_PUBLIC), the PCR
// input formats and the verifier's handling of untrusted evidence and collateral.
#include <cstddef>
#include <cstdint>

#include "attestation/tpm/pcrs.h"
#include "attestation/tpm/structures.h"
#include "attestation/tpm/verifier.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace custos;
  using namespace custos::attestation;
  using namespace custos::attestation::tpm;
  ByteSpan in(data, size);

  std::vector<PcrSelection> selection{{alg::kSha256, {0, 1, 16}}, {alg::kSha1, {7}}};
  if (auto q = parse_quote_attest(in); q.ok()) selection = q->pcr_select;
  (void)parse_signature(in);
  (void)parse_ak_public(in);
  if (auto banks = parse_pcr_values(in, selection); banks.ok()) {
    (void)concat_selected(*banks, selection);
  }
  (void)decode_flexible(in, false);

  static const TpmVerifier verifier;
  Evidence e;
  e.tee = TeeType::kTpm;
  e.data.assign(in.begin(), in.end());
  Bytes b(in.begin(), in.end());
  (void)verifier.verify(e, {{"signature", b}, {"ak_pub", b}, {"pcrs", b}, {"nonce", b}}, {});
  return 0;
}
