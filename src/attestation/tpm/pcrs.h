// PCR values supplied beside a quote, in the formats tools produce, and the pcrDigest check.
//
// Accepted inputs (detected):
//   - JSON by bank: {"sha256": {"0": "hex", "16": "0xhex"}, "sha1": {...}}
//   - JSON flat: {"0": "hex", ...} (bank inferred from the digest length)
//   - JSON array or lines of hex values, in the quote's selection order
//   - tpm2-tools YAML (tpm2_pcrread / tpm2_quote stdout): "sha256:\n  0 : 0x..."
//   - tpm2-tools binary "values" (-F values): the digests concatenated in selection order
//   - tpm2-tools binary "serialized" (-F serialized, and the legacy quotepcr.out): a C struct
//     TPML_PCR_SELECTION (u32 count + 16 x {u16 hash, u8 sizeofSelect, u8 select[4], pad}),
//     u32 n, then n x TPML_DIGEST (u32 count + 8 x {u16 size, u8 buffer[64]}), little-endian.
//
// pcrDigest (Part 2, 10.12.4 TPMS_QUOTE_INFO; Part 3, 18.4 TPM2_Quote) is the digest, with the
// hash of the SIGNING scheme, of the selected PCR values concatenated in selection order (banks in
// TPML order, indices ascending) — not the hash of the PCR bank.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "attestation/tpm/structures.h"
#include "base/bytes.h"
#include "base/status.h"

namespace custos::attestation::tpm {

// bank (TPM_ALG_ID) -> PCR index -> value.
using PcrBanks = std::map<uint16_t, std::map<uint32_t, Bytes>>;

// Parses `data` and assigns values to the quote's `selection` where the input has no indices.
Result<PcrBanks> parse_pcr_values(ByteSpan data, const std::vector<PcrSelection>& selection);

// The selected values concatenated in selection order; NotFound naming the first missing PCR,
// InvalidArgument if a value has the wrong length for its bank.
Result<Bytes> concat_selected(const PcrBanks& banks, const std::vector<PcrSelection>& selection);

}  // namespace custos::attestation::tpm
