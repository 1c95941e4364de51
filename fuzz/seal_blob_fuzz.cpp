// Fuzzes the parser of values stored by the PKCS#11 seal (src/hsm/blob.h): the root key and the
// recovery key as read back from storage.
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "hsm/blob.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  custos::ByteSpan in(data, size);
  auto blob = custos::hsm::parse_blob(in);
  if (blob.ok()) {
    // Accepted blobs respect the bounds, and encode back to the same bytes.
    if (blob->key_label.empty() || blob->key_label.size() > custos::hsm::kMaxBlobLabel ||
        blob->iv.size() > custos::hsm::kMaxBlobIv || blob->ciphertext.empty() ||
        blob->ciphertext.size() > custos::hsm::kMaxBlobCiphertext) {
      __builtin_trap();
    }
    custos::Bytes again = custos::hsm::encode_blob(*blob);
    if (again.size() != size || !std::equal(again.begin(), again.end(), data)) __builtin_trap();
  }
  return 0;
}
