// Fuzzes TCB Info parsing: the PCS body splitter (raw signed substring), the tcbInfo parser, and
// the dcap-qvl bundle reader.
#include <cstddef>
#include <cstdint>

#include "attestation/dcap/collateral.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace dcap = custos::attestation::dcap;
  custos::ByteSpan in(data, size);
  std::string_view text = custos::as_string_view(in);
  auto signed_json = dcap::split_signed_json(text, "tcbInfo");
  if (signed_json.ok()) (void)dcap::parse_tcb_info(signed_json->body);
  (void)dcap::parse_tcb_info(text);
  (void)dcap::collateral_from_bundle(in);
  return 0;
}
