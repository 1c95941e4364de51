// RFC 6962 / RFC 9162 Merkle trees (docs/ledger.md): leaf and node hashes, tree heads, and
// inclusion and consistency proofs with their verification.
//
// The tree is never held whole. Its perfect subtrees (2^level leaves starting at index << level)
// are stored as they complete; NodeReader reads one. Any range's hash then needs O(log n) reads,
// and an append stores the leaf plus the subtrees it completes (one more on average).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "base/bytes.h"
#include "base/status.h"

namespace custos::ledger {

using Hash = std::array<uint8_t, 32>;

Hash leaf_hash(ByteSpan data);                        // SHA-256(0x00 || data)
Hash node_hash(const Hash& left, const Hash& right);  // SHA-256(0x01 || left || right)
Hash empty_root();                                    // SHA-256("")

// The stored hash of the perfect subtree (level, index); it must exist.
using NodeReader = std::function<Result<Hash>(int level, uint64_t index)>;

struct Node {
  int level = 0;
  uint64_t index = 0;
  Hash hash{};
};

// The nodes to store when leaf number `index` (whose hash is `leaf`) is appended: the leaf itself
// (level 0) and every perfect subtree it completes, bottom up.
Result<std::vector<Node>> nodes_for_append(const NodeReader& nodes, uint64_t index,
                                           const Hash& leaf);

// MTH of the first `size` leaves (empty_root() for 0).
Result<Hash> root(const NodeReader& nodes, uint64_t size);
// RFC 6962 PATH(index, D[0:size]); index < size.
Result<std::vector<Hash>> inclusion_proof(const NodeReader& nodes, uint64_t index, uint64_t size);
// RFC 6962 PROOF(first, D[0:second]); first <= second (empty when first is 0 or equal).
Result<std::vector<Hash>> consistency_proof(const NodeReader& nodes, uint64_t first,
                                            uint64_t second);

// RFC 9162 section 2.1.3.2 and 2.1.4.2: true only for a proof that is valid in every detail.
bool verify_inclusion(const Hash& leaf, uint64_t index, uint64_t size, std::span<const Hash> proof,
                      const Hash& root);
bool verify_consistency(uint64_t first, uint64_t second, const Hash& first_root,
                        const Hash& second_root, std::span<const Hash> proof);

}  // namespace custos::ledger
