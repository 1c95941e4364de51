#include "crypto/hash.h"

#include <gtest/gtest.h>

#include "crypto/test_util.h"

namespace custos::crypto {
namespace {

using testing::hex;
using testing::unhex;

TEST(Hash, KnownAnswersAbc) {
  // FIPS 180-2 / 180-4 examples for the message "abc".
  EXPECT_EQ(hex(digest(HashAlg::kSha1, as_bytes("abc"))), "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(hex(sha256(as_bytes("abc"))),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hex(sha384(as_bytes("abc"))),
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed"
            "8086072ba1e7cc2358baeca134c825a7");
  EXPECT_EQ(hex(digest(HashAlg::kSha512, as_bytes("abc"))),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
            "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f");
}

TEST(Hash, EmptyInput) {
  EXPECT_EQ(hex(sha256({})), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Hash, SizesAndNames) {
  EXPECT_EQ(hash_size(HashAlg::kSha1), 20u);
  EXPECT_EQ(hash_size(HashAlg::kSha256), 32u);
  EXPECT_EQ(hash_size(HashAlg::kSha384), 48u);
  EXPECT_EQ(hash_size(HashAlg::kSha512), 64u);
  EXPECT_EQ(hash_name(HashAlg::kSha384), "sha384");
  for (HashAlg a : {HashAlg::kSha1, HashAlg::kSha256, HashAlg::kSha384, HashAlg::kSha512}) {
    EXPECT_EQ(digest(a, as_bytes("x")).size(), hash_size(a));
  }
}

TEST(Hash, IncrementalMatchesOneShot) {
  std::string msg(10000, 'q');
  for (size_t i = 0; i < msg.size(); ++i) msg[i] = static_cast<char>('a' + i % 26);
  for (HashAlg a : {HashAlg::kSha1, HashAlg::kSha256, HashAlg::kSha384, HashAlg::kSha512}) {
    Hasher h(a);
    for (size_t pos = 0; pos < msg.size(); pos += 333) {
      h.update(as_bytes(std::string_view(msg).substr(pos, 333)));
    }
    EXPECT_EQ(h.finish(), digest(a, as_bytes(msg)));
  }
}

TEST(Hash, HasherMove) {
  Hasher a(HashAlg::kSha256);
  a.update(as_bytes("ab"));
  Hasher b(std::move(a));
  b.update(as_bytes("c"));
  EXPECT_EQ(hex(b.finish()), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_TRUE(b.finish().empty());  // finished: no second digest
}

TEST(Hmac, Rfc4231Case1) {
  Bytes key(20, 0x0b);
  auto data = as_bytes("Hi There");
  EXPECT_EQ(hex(hmac_sha256(key, data)),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  EXPECT_EQ(hex(hmac(HashAlg::kSha384, key, data)),
            "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c"
            "faea9ea9076ede7f4af152e8b2fa9cb6");
  EXPECT_EQ(hex(hmac(HashAlg::kSha512, key, data)),
            "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"
            "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854");
}

TEST(Hmac, Rfc4231Case2) {
  EXPECT_EQ(hex(hmac_sha256(as_bytes("Jefe"), as_bytes("what do ya want for nothing?"))),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(Hmac, WrongKeyOrDataDiffers) {
  Bytes key(20, 0x0b);
  Bytes good = hmac_sha256(key, as_bytes("Hi There"));
  Bytes other_key = key;
  other_key[0] ^= 1;
  EXPECT_NE(hmac_sha256(other_key, as_bytes("Hi There")), good);
  EXPECT_NE(hmac_sha256(key, as_bytes("Hi there")), good);
  EXPECT_EQ(hmac_sha256({}, {}).size(), 32u);  // empty key and message are legal
}

TEST(Hkdf, Rfc5869Case1) {
  Bytes ikm(22, 0x0b);
  Bytes salt = unhex("000102030405060708090a0b0c");
  Bytes info = unhex("f0f1f2f3f4f5f6f7f8f9");
  SecretBytes okm = hkdf_sha256(ikm, salt, info, 42);
  EXPECT_EQ(hex(okm.span()),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
            "34007208d5b887185865");
}

TEST(Hkdf, Rfc5869Case3EmptySaltAndInfo) {
  Bytes ikm(22, 0x0b);
  SecretBytes okm = hkdf_sha256(ikm, {}, {}, 42);
  EXPECT_EQ(hex(okm.span()),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
            "9d201395faa4b61a96c8");
}

TEST(Hkdf, LengthsAndSeparation) {
  Bytes ikm(32, 7);
  EXPECT_EQ(hkdf_sha256(ikm, {}, as_bytes("a"), 1).size(), 1u);
  EXPECT_EQ(hkdf_sha256(ikm, {}, as_bytes("a"), 255 * 32).size(), 255u * 32);
  // A prefix property: shorter outputs are prefixes of longer ones.
  SecretBytes long_okm = hkdf_sha256(ikm, {}, as_bytes("a"), 100);
  SecretBytes short_okm = hkdf_sha256(ikm, {}, as_bytes("a"), 40);
  EXPECT_TRUE(std::equal(short_okm.span().begin(), short_okm.span().end(),
                         long_okm.span().begin()));
  // Reject twin: another info string gives an unrelated key.
  EXPECT_FALSE(hkdf_sha256(ikm, {}, as_bytes("b"), 40) == short_okm);
  EXPECT_EQ(hkdf_sha256({}, {}, {}, 16).size(), 16u);  // empty IKM is legal in RFC 5869
}

}  // namespace
}  // namespace custos::crypto
