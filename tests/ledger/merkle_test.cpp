#include "ledger/merkle.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "base/encoding.h"

namespace custos::ledger {
namespace {

std::string hex(const Hash& h) {
  return hex_encode(ByteSpan(h));
}

// A tree kept the way the ledger engine keeps it: only the nodes nodes_for_append returns.
class Tree {
 public:
  void append(ByteSpan data) {
    leaves_.push_back(leaf_hash(data));
    auto add = nodes_for_append(reader(), size_, leaves_.back());
    ASSERT_TRUE(add.ok());
    for (const Node& n : *add) nodes_[{n.level, n.index}] = n.hash;
    ++size_;
  }
  NodeReader reader() const {
    return [this](int level, uint64_t index) -> Result<Hash> {
      auto it = nodes_.find({level, index});
      if (it == nodes_.end())
        return not_found("node " + std::to_string(level) + "/" + std::to_string(index));
      return it->second;
    };
  }
  uint64_t size() const { return size_; }
  const std::vector<Hash>& leaves() const { return leaves_; }
  size_t stored() const { return nodes_.size(); }

 private:
  std::map<std::pair<int, uint64_t>, Hash> nodes_;
  std::vector<Hash> leaves_;
  uint64_t size_ = 0;
};

// RFC 6962's definition, straight from the leaf hashes: the reference for everything stored.
Hash reference_root(const std::vector<Hash>& leaves, size_t begin, size_t end) {
  if (end - begin == 1) return leaves[begin];
  size_t k = 1;
  while (k * 2 < end - begin) k *= 2;
  return node_hash(reference_root(leaves, begin, begin + k),
                   reference_root(leaves, begin + k, end));
}

Bytes data_of(uint64_t i) {
  return to_bytes("entry-" + std::to_string(i));
}

// RFC 6962's test leaves (as in the certificate-transparency reference implementation's tests)
// and the roots of their first 1..8 leaves, recomputed independently.
TEST(Merkle, RootsOfTheRfc6962TestVectors) {
  const std::vector<Bytes> leaves = {{},
                                     {0x00},
                                     {0x10},
                                     {0x20, 0x21},
                                     {0x30, 0x31},
                                     {0x40, 0x41, 0x42, 0x43},
                                     {0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57},
                                     {0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
                                      0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f}};
  const char* roots[] = {"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                         "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
                         "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
                         "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                         "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
                         "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
                         "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
                         "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"};
  Tree t;
  EXPECT_EQ(hex(*root(t.reader(), 0)),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  for (size_t i = 0; i < leaves.size(); ++i) {
    t.append(leaves[i]);
    auto r = root(t.reader(), t.size());
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(hex(*r), roots[i]) << "size " << i + 1;
  }
}

TEST(Merkle, StoredSubtreesGiveTheReferenceRootAtEverySize) {
  Tree t;
  for (uint64_t i = 0; i < 300; ++i) {
    t.append(data_of(i));
    auto r = root(t.reader(), t.size());
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    ASSERT_EQ(*r, reference_root(t.leaves(), 0, t.leaves().size())) << "size " << t.size();
    // Older roots stay computable from the same nodes.
    if (i % 37 == 0 && i > 0) {
      EXPECT_EQ(*root(t.reader(), i / 2), reference_root(t.leaves(), 0, i / 2));
    }
  }
  EXPECT_LT(t.stored(), 2 * 300u);  // a leaf and, on average, one completed subtree
}

TEST(Merkle, EveryInclusionProofVerifiesAndNoAlteredOneDoes) {
  Tree t;
  for (uint64_t i = 0; i < 70; ++i) t.append(data_of(i));
  for (uint64_t size = 1; size <= 70; ++size) {
    Hash r = *root(t.reader(), size);
    for (uint64_t index = 0; index < size; ++index) {
      auto proof = inclusion_proof(t.reader(), index, size);
      ASSERT_TRUE(proof.ok());
      const Hash& leaf = t.leaves()[index];
      ASSERT_TRUE(verify_inclusion(leaf, index, size, *proof, r)) << index << " in " << size;
      if (size > 1) {
        EXPECT_FALSE(verify_inclusion(leaf, (index + 1) % size, size, *proof, r));
        EXPECT_FALSE(verify_inclusion(t.leaves()[(index + 1) % size], index, size, *proof, r));
      }
      for (size_t j = 0; j < proof->size(); ++j) {
        auto bad = *proof;
        bad[j][j % 32] ^= 0x80;
        EXPECT_FALSE(verify_inclusion(leaf, index, size, bad, r));
      }
      auto longer = *proof;
      longer.push_back(r);
      EXPECT_FALSE(verify_inclusion(leaf, index, size, longer, r));
      if (!proof->empty()) {
        auto shorter = *proof;
        shorter.pop_back();
        EXPECT_FALSE(verify_inclusion(leaf, index, size, shorter, r));
      }
    }
  }
  EXPECT_FALSE(inclusion_proof(t.reader(), 5, 5).ok());
}

TEST(Merkle, EveryConsistencyProofVerifiesAndNoAlteredOneDoes) {
  Tree t;
  for (uint64_t i = 0; i < 48; ++i) t.append(data_of(i));
  for (uint64_t second = 1; second <= 48; ++second) {
    Hash r2 = *root(t.reader(), second);
    for (uint64_t first = 0; first <= second; ++first) {
      Hash r1 = *root(t.reader(), first);
      auto proof = consistency_proof(t.reader(), first, second);
      ASSERT_TRUE(proof.ok());
      ASSERT_TRUE(verify_consistency(first, second, r1, r2, *proof)) << first << " -> " << second;
      if (first == 0) continue;
      for (size_t j = 0; j < proof->size(); ++j) {
        auto bad = *proof;
        bad[j][0] ^= 1;
        EXPECT_FALSE(verify_consistency(first, second, r1, r2, bad)) << first << " -> " << second;
      }
      Hash other = r1;
      other[31] ^= 1;
      EXPECT_FALSE(verify_consistency(first, second, other, r2, *proof));
      if (first < second) {
        Hash wrong2 = r2;
        wrong2[0] ^= 1;
        EXPECT_FALSE(verify_consistency(first, second, r1, wrong2, *proof));
        if (!proof->empty()) {
          auto shorter = *proof;
          shorter.pop_back();
          EXPECT_FALSE(verify_consistency(first, second, r1, r2, shorter));
        }
        auto longer = *proof;
        longer.push_back(r2);
        EXPECT_FALSE(verify_consistency(first, second, r1, r2, longer));
      }
    }
  }
  EXPECT_FALSE(consistency_proof(t.reader(), 5, 4).ok());
  EXPECT_FALSE(verify_consistency(5, 4, Hash{}, Hash{}, {}));
}

TEST(Merkle, AMissingNodeIsAnErrorNotAWrongHash) {
  Tree t;
  for (uint64_t i = 0; i < 4; ++i) t.append(data_of(i));
  EXPECT_EQ(root(t.reader(), 6).status().code(), Code::kNotFound);
  EXPECT_FALSE(inclusion_proof(t.reader(), 1, 6).ok());
}

}  // namespace
}  // namespace custos::ledger
