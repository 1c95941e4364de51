// The ledger engine through Core: appends, proofs a client can check on its own (RFC 9162
// verification), signed tree heads, and the log surviving a seal.
#include "core/engines/ledger.h"

#include <gtest/gtest.h>

#include "base/encoding.h"
#include "core_fixture.h"
#include "crypto/pkey.h"
#include "ledger/merkle.h"

namespace custos::core {
namespace {

using ledger::Hash;

Hash from_hex(boost::json::string_view s) {
  auto b = hex_decode(std::string_view(s.data(), s.size()));
  Hash h{};
  if (b.ok() && b->size() == 32) std::copy(b->begin(), b->end(), h.begin());
  return h;
}

std::vector<Hash> hashes(const boost::json::value& v) {
  std::vector<Hash> out;
  for (const auto& x : v.as_array()) out.push_back(from_hex(x.as_string()));
  return out;
}

class LedgerTest : public CoreTest {
 protected:
  void SetUp() override {
    init_unseal();
    ASSERT_TRUE(call(Operation::kUpdate, "sys/mounts/supply", object{{"type", "ledger"}}).ok());
  }

  object append(const std::string& data) {
    auto r = call(Operation::kUpdate, "supply/entries",
                  object{{"data", base64_encode(as_bytes(data))}, {"content_type", "text/plain"}});
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return r.ok() ? *r->data : object{};
  }

  // Checks an STH's signature with the log's public key, as a client would.
  void expect_signed(const object& sth) {
    auto pk = call(Operation::kRead, "supply/public-key");
    ASSERT_TRUE(pk.ok());
    auto key = crypto::PublicKey::from_pem(std::string(pk->data->at("public_key").as_string()));
    ASSERT_TRUE(key.ok());
    EXPECT_EQ(pk->data->at("log_id").as_string(), sth.at("log_id").as_string());
    std::string msg = sth_message(std::string(sth.at("log_id").as_string()),
                                  static_cast<uint64_t>(sth.at("tree_size").to_number<int64_t>()),
                                  std::string(sth.at("root_hash").as_string()),
                                  sth.at("timestamp").to_number<int64_t>());
    auto sig = base64_decode(std::string(sth.at("signature").as_string()));
    ASSERT_TRUE(sig.ok());
    EXPECT_TRUE(key->verify(as_bytes(msg), *sig).ok());
    std::string forged = msg;
    forged[forged.size() - 2] ^= 1;
    EXPECT_FALSE(key->verify(as_bytes(forged), *sig).ok());
  }
};

TEST_F(LedgerTest, EveryAppendComesWithAProofAndASignedHead) {
  for (int i = 0; i < 20; ++i) {
    std::string data = "artifact sha256:" + std::to_string(i * 7919);
    object r = append(data);
    ASSERT_EQ(r.at("index").to_number<int64_t>(), i);
    const object& sth = r.at("signed_tree_head").as_object();
    EXPECT_EQ(sth.at("tree_size").to_number<int64_t>(), i + 1);
    Hash leaf = ledger::leaf_hash(as_bytes(data));
    EXPECT_EQ(from_hex(r.at("leaf_hash").as_string()), leaf);
    EXPECT_TRUE(ledger::verify_inclusion(
        leaf, static_cast<uint64_t>(i), static_cast<uint64_t>(i + 1),
        hashes(r.at("inclusion_proof")), from_hex(sth.at("root_hash").as_string())));
    // Other data does not verify with that proof.
    EXPECT_FALSE(ledger::verify_inclusion(ledger::leaf_hash(as_bytes(data + "x")),
                                          static_cast<uint64_t>(i), static_cast<uint64_t>(i + 1),
                                          hashes(r.at("inclusion_proof")),
                                          from_hex(sth.at("root_hash").as_string())));
    if (i == 0 || i == 19) expect_signed(sth);
  }
  // An entry read back, proven against an older tree size.
  auto e = call(Operation::kRead, "supply/entries/3", object{{"tree_size", "9"}});
  ASSERT_TRUE(e.ok()) << e.status().to_string();
  auto data = base64_decode(std::string(e->data->at("data").as_string()));
  ASSERT_TRUE(data.ok());
  EXPECT_EQ(to_string(*data), "artifact sha256:" + std::to_string(3 * 7919));
  EXPECT_EQ(e->data->at("content_type").as_string(), "text/plain");
  EXPECT_TRUE(ledger::verify_inclusion(ledger::leaf_hash(*data), 3, 9,
                                       hashes(e->data->at("inclusion_proof")),
                                       from_hex(e->data->at("root_hash").as_string())));
}

TEST_F(LedgerTest, TheLogOnlyGrowsAcrossASeal) {
  for (int i = 0; i < 5; ++i) append("a" + std::to_string(i));
  auto head5 = call(Operation::kRead, "supply/sth");
  ASSERT_TRUE(head5.ok());
  object sth5 = *head5->data;
  expect_signed(sth5);

  ASSERT_TRUE(core_->seal().ok());
  for (const auto& k : keys_) ASSERT_TRUE(core_->unseal(k, false).ok());
  for (int i = 5; i < 13; ++i) append("a" + std::to_string(i));
  auto head13 = call(Operation::kRead, "supply/sth");
  ASSERT_TRUE(head13.ok());
  object sth13 = *head13->data;
  expect_signed(sth13);  // the same key after unseal
  EXPECT_EQ(sth13.at("log_id").as_string(), sth5.at("log_id").as_string());

  auto proof =
      call(Operation::kRead, "supply/proof/consistency", object{{"first", "5"}, {"second", "13"}});
  ASSERT_TRUE(proof.ok()) << proof.status().to_string();
  Hash r5 = from_hex(sth5.at("root_hash").as_string());
  Hash r13 = from_hex(sth13.at("root_hash").as_string());
  EXPECT_TRUE(ledger::verify_consistency(5, 13, r5, r13, hashes(proof->data->at("proof"))));
  // A head from a rewritten history would not be consistent with it.
  Hash other = r5;
  other[0] ^= 1;
  EXPECT_FALSE(ledger::verify_consistency(5, 13, other, r13, hashes(proof->data->at("proof"))));
}

TEST_F(LedgerTest, BadRequestsGetClearErrors) {
  append("one");
  auto r = call(Operation::kUpdate, "supply/entries", object{});
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  r = call(Operation::kUpdate, "supply/entries", object{{"data", "***"}});
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  r = call(Operation::kRead, "supply/entries/1");
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  r = call(Operation::kRead, "supply/entries/x");
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  r = call(Operation::kRead, "supply/entries/0", object{{"tree_size", "5"}});
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  r = call(Operation::kRead, "supply/proof/consistency", object{{"first", "2"}, {"second", "1"}});
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  r = call(Operation::kRead, "supply/proof/consistency", object{{"second", "2"}});
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  r = call(Operation::kDelete, "supply/entries/0");
  EXPECT_EQ(r.status().code(), Code::kUnimplemented);
  // No entry can be rewritten: there is no path that does it.
  r = call(Operation::kUpdate, "supply/entries/0", object{{"data", "eA=="}});
  EXPECT_EQ(r.status().code(), Code::kUnimplemented);
}

}  // namespace
}  // namespace custos::core
