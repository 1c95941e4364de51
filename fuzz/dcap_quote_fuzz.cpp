// Fuzzes the DCAP quote parser (SGX v3/v4/v5, TDX v4/v5) and the PCK SGX-extension DER parser.
#include <cstddef>
#include <cstdint>

#include "attestation/dcap/pck.h"
#include "attestation/dcap/quote.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  custos::ByteSpan in(data, size);
  auto q = custos::attestation::dcap::parse_quote(in);
  if (q.ok()) {
    // Touch every span the parser handed out: they must lie inside the input.
    volatile uint8_t sink = 0;
    for (custos::ByteSpan s : {q->signed_data, q->qe_report_raw, q->qe_auth_data, q->cert_data}) {
      if (!s.empty()) sink = static_cast<uint8_t>(sink ^ s.front() ^ s.back());
    }
    (void)q->report_data();
    (void)sink;
  }
  (void)custos::attestation::dcap::parse_pck_extensions(in);
  return 0;
}
