#include "ledger/merkle.h"

#include <algorithm>
#include <bit>

#include "crypto/hash.h"

namespace custos::ledger {
namespace {

Hash to_hash(const Bytes& b) {
  Hash h{};
  std::copy_n(b.begin(), std::min(b.size(), h.size()), h.begin());
  return h;
}

// The largest power of two smaller than n (n >= 2).
uint64_t split_point(uint64_t n) {
  return std::bit_floor(n - 1);
}

// MTH(D[begin:end]), end > begin: a stored node when the range is a perfect aligned subtree,
// otherwise split as RFC 6962 does.
Result<Hash> range_hash(const NodeReader& nodes, uint64_t begin, uint64_t end) {
  uint64_t n = end - begin;
  if (std::has_single_bit(n) && begin % n == 0) {
    return nodes(std::countr_zero(n), begin / n);
  }
  uint64_t k = split_point(n);
  ASSIGN_OR_RETURN(Hash left, range_hash(nodes, begin, begin + k));
  ASSIGN_OR_RETURN(Hash right, range_hash(nodes, begin + k, end));
  return node_hash(left, right);
}

// PATH(m, D[begin:end]), appended to `out` bottom-up.
Status path(const NodeReader& nodes, uint64_t m, uint64_t begin, uint64_t end,
            std::vector<Hash>& out) {
  uint64_t n = end - begin;
  if (n <= 1) return ok_status();
  uint64_t k = split_point(n);
  if (m < k) {
    RETURN_IF_ERROR(path(nodes, m, begin, begin + k, out));
    ASSIGN_OR_RETURN(Hash h, range_hash(nodes, begin + k, end));
    out.push_back(h);
  } else {
    RETURN_IF_ERROR(path(nodes, m - k, begin + k, end, out));
    ASSIGN_OR_RETURN(Hash h, range_hash(nodes, begin, begin + k));
    out.push_back(h);
  }
  return ok_status();
}

// SUBPROOF(m, D[begin:end], b).
Status subproof(const NodeReader& nodes, uint64_t m, uint64_t begin, uint64_t end, bool b,
                std::vector<Hash>& out) {
  uint64_t n = end - begin;
  if (m == n) {
    if (!b) {
      ASSIGN_OR_RETURN(Hash h, range_hash(nodes, begin, end));
      out.push_back(h);
    }
    return ok_status();
  }
  uint64_t k = split_point(n);
  if (m <= k) {
    RETURN_IF_ERROR(subproof(nodes, m, begin, begin + k, b, out));
    ASSIGN_OR_RETURN(Hash h, range_hash(nodes, begin + k, end));
    out.push_back(h);
  } else {
    RETURN_IF_ERROR(subproof(nodes, m - k, begin + k, end, false, out));
    ASSIGN_OR_RETURN(Hash h, range_hash(nodes, begin, begin + k));
    out.push_back(h);
  }
  return ok_status();
}

}  // namespace

Hash leaf_hash(ByteSpan data) {
  Bytes in;
  in.reserve(data.size() + 1);
  in.push_back(0x00);
  in.insert(in.end(), data.begin(), data.end());
  return to_hash(crypto::sha256(in));
}

Hash node_hash(const Hash& left, const Hash& right) {
  uint8_t in[65];
  in[0] = 0x01;
  std::copy(left.begin(), left.end(), in + 1);
  std::copy(right.begin(), right.end(), in + 33);
  return to_hash(crypto::sha256(ByteSpan(in, sizeof(in))));
}

Hash empty_root() {
  return to_hash(crypto::sha256(ByteSpan()));
}

Result<std::vector<Node>> nodes_for_append(const NodeReader& nodes, uint64_t index,
                                           const Hash& leaf) {
  std::vector<Node> out{{0, index, leaf}};
  Hash cur = leaf;
  int level = 0;
  uint64_t i = index;
  while (i % 2 == 1) {
    ASSIGN_OR_RETURN(Hash left, nodes(level, i - 1));
    cur = node_hash(left, cur);
    ++level;
    i /= 2;
    out.push_back({level, i, cur});
  }
  return out;
}

Result<Hash> root(const NodeReader& nodes, uint64_t size) {
  if (size == 0) return empty_root();
  return range_hash(nodes, 0, size);
}

Result<std::vector<Hash>> inclusion_proof(const NodeReader& nodes, uint64_t index, uint64_t size) {
  if (index >= size)
    return invalid_argument("leaf index " + std::to_string(index) + " is not in a tree of size " +
                            std::to_string(size));
  std::vector<Hash> out;
  RETURN_IF_ERROR(path(nodes, index, 0, size, out));
  return out;
}

Result<std::vector<Hash>> consistency_proof(const NodeReader& nodes, uint64_t first,
                                            uint64_t second) {
  if (first > second) {
    return invalid_argument("first tree size " + std::to_string(first) +
                            " is larger than the second, " + std::to_string(second));
  }
  std::vector<Hash> out;
  if (first == 0 || first == second) return out;
  RETURN_IF_ERROR(subproof(nodes, first, 0, second, true, out));
  return out;
}

bool verify_inclusion(const Hash& leaf, uint64_t index, uint64_t size, std::span<const Hash> proof,
                      const Hash& root_hash) {
  if (index >= size) return false;
  uint64_t fn = index;
  uint64_t sn = size - 1;
  Hash r = leaf;
  for (const Hash& p : proof) {
    if (sn == 0) return false;
    if ((fn & 1) == 1 || fn == sn) {
      r = node_hash(p, r);
      while ((fn & 1) == 0 && fn != 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else {
      r = node_hash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return sn == 0 && r == root_hash;
}

bool verify_consistency(uint64_t first, uint64_t second, const Hash& first_root,
                        const Hash& second_root, std::span<const Hash> proof) {
  if (first > second) return false;
  if (first == second) return proof.empty() && first_root == second_root;
  if (first == 0) return proof.empty();  // every tree extends the empty one
  std::vector<Hash> path(proof.begin(), proof.end());
  if (std::has_single_bit(first)) path.insert(path.begin(), first_root);
  if (path.empty()) return false;
  uint64_t fn = first - 1;
  uint64_t sn = second - 1;
  while ((fn & 1) == 1) {
    fn >>= 1;
    sn >>= 1;
  }
  Hash fr = path[0];
  Hash sr = path[0];
  for (size_t i = 1; i < path.size(); ++i) {
    const Hash& c = path[i];
    if (sn == 0) return false;
    if ((fn & 1) == 1 || fn == sn) {
      fr = node_hash(c, fr);
      sr = node_hash(c, sr);
      while ((fn & 1) == 0 && fn != 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else {
      sr = node_hash(sr, c);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return fr == first_root && sr == second_root && sn == 0;
}

}  // namespace custos::ledger
