// Fuzzes Enclave Identity (QE Identity) parsing: the PCS body splitter and the identity parser.
#include <cstddef>
#include <cstdint>

#include "attestation/dcap/collateral.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace dcap = custos::attestation::dcap;
  std::string_view text = custos::as_string_view(custos::ByteSpan(data, size));
  auto signed_json = dcap::split_signed_json(text, "enclaveIdentity");
  if (signed_json.ok()) (void)dcap::parse_enclave_identity(signed_json->body);
  (void)dcap::parse_enclave_identity(text);
  return 0;
}
