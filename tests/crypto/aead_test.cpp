#include "crypto/aead.h"

#include <gtest/gtest.h>

#include "crypto/random.h"
#include "crypto/test_util.h"

namespace custos::crypto {
namespace {

using testing::hex;
using testing::unhex;

constexpr AeadAlg kAllAlgs[] = {AeadAlg::kAes256Gcm, AeadAlg::kAes128Gcm,
                                AeadAlg::kChaCha20Poly1305};

// McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 2, 3 and 16.
TEST(Aead, AesGcmTestCase2) {
  Bytes key(16, 0);
  Bytes iv(12, 0);
  Bytes pt(16, 0);
  auto ct = aead_seal(AeadAlg::kAes128Gcm, key, iv, pt, {});
  ASSERT_TRUE(ct.ok()) << ct.status().to_string();
  EXPECT_EQ(hex(*ct), "0388dace60b6a392f328c2b971b2fe78ab6e47d42cec13bdf53a67b21257bddf");
}

TEST(Aead, AesGcmTestCase3) {
  Bytes key = unhex("feffe9928665731c6d6a8f9467308308");
  Bytes iv = unhex("cafebabefacedbaddecaf888");
  Bytes pt = unhex(
      "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
      "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255");
  auto ct = aead_seal(AeadAlg::kAes128Gcm, key, iv, pt, {});
  ASSERT_TRUE(ct.ok());
  EXPECT_EQ(hex(*ct),
            "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
            "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985"
            "4d5c2af327cd64a62cf35abd2ba6fab4");
  auto back = aead_open(AeadAlg::kAes128Gcm, key, iv, *ct, {});
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(hex(back->span()), hex(pt));
}

TEST(Aead, AesGcm256TestCase16WithAad) {
  Bytes key = unhex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
  Bytes iv = unhex("cafebabefacedbaddecaf888");
  Bytes pt = unhex(
      "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
      "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39");
  Bytes aad = unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
  auto ct = aead_seal(AeadAlg::kAes256Gcm, key, iv, pt, aad);
  ASSERT_TRUE(ct.ok());
  EXPECT_EQ(hex(*ct),
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
            "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
            "76fc6ece0f4e1768cddf8853bb2d551b");
  auto back = aead_open(AeadAlg::kAes256Gcm, key, iv, *ct, aad);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(hex(back->span()), hex(pt));
}

TEST(Aead, RoundTripEveryAlgorithm) {
  for (AeadAlg alg : kAllAlgs) {
    Bytes key = random_bytes(aead_key_size(alg));
    Bytes nonce = random_bytes(kAeadNonceSize);
    for (size_t len : {size_t{0}, size_t{1}, size_t{15}, size_t{16}, size_t{1000}}) {
      Bytes pt = random_bytes(len);
      auto ct = aead_seal(alg, key, nonce, pt, as_bytes("aad"));
      ASSERT_TRUE(ct.ok());
      EXPECT_EQ(ct->size(), len + kAeadTagSize);
      auto back = aead_open(alg, key, nonce, *ct, as_bytes("aad"));
      ASSERT_TRUE(back.ok()) << back.status().to_string();
      EXPECT_EQ(Bytes(back->span().begin(), back->span().end()), pt);
    }
  }
}

TEST(Aead, TamperingIsDataLoss) {
  for (AeadAlg alg : kAllAlgs) {
    Bytes key = random_bytes(aead_key_size(alg));
    Bytes nonce = random_bytes(kAeadNonceSize);
    auto ct = aead_seal(alg, key, nonce, as_bytes("attack at dawn"), as_bytes("hdr"));
    ASSERT_TRUE(ct.ok());

    Bytes bad_tag = *ct;
    bad_tag.back() ^= 1;
    EXPECT_EQ(aead_open(alg, key, nonce, bad_tag, as_bytes("hdr")).status().code(),
              Code::kDataLoss);
    Bytes bad_body = *ct;
    bad_body[0] ^= 0x80;
    EXPECT_EQ(aead_open(alg, key, nonce, bad_body, as_bytes("hdr")).status().code(),
              Code::kDataLoss);
    Bytes wrong_key = key;
    wrong_key[3] ^= 1;
    EXPECT_EQ(aead_open(alg, wrong_key, nonce, *ct, as_bytes("hdr")).status().code(),
              Code::kDataLoss);
    Bytes wrong_nonce = nonce;
    wrong_nonce[11] ^= 1;
    EXPECT_EQ(aead_open(alg, key, wrong_nonce, *ct, as_bytes("hdr")).status().code(),
              Code::kDataLoss);
    EXPECT_EQ(aead_open(alg, key, nonce, *ct, as_bytes("hdx")).status().code(), Code::kDataLoss);
    EXPECT_EQ(aead_open(alg, key, nonce, *ct, {}).status().code(), Code::kDataLoss);
    Bytes truncated(ct->begin(), ct->begin() + 10);
    EXPECT_EQ(aead_open(alg, key, nonce, truncated, as_bytes("hdr")).status().code(),
              Code::kDataLoss);
  }
}

TEST(Aead, MisuseIsInvalidArgument) {
  Bytes key(32, 1);
  Bytes nonce(12, 2);
  EXPECT_EQ(aead_seal(AeadAlg::kAes256Gcm, Bytes(16, 1), nonce, {}, {}).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(aead_seal(AeadAlg::kAes128Gcm, key, nonce, {}, {}).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(aead_seal(AeadAlg::kAes256Gcm, key, Bytes(16, 2), {}, {}).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(aead_open(AeadAlg::kChaCha20Poly1305, key, Bytes(8, 2), Bytes(32, 0), {})
                .status()
                .code(),
            Code::kInvalidArgument);
  EXPECT_EQ(aead_key_size(AeadAlg::kAes256Gcm), 32u);
  EXPECT_EQ(aead_key_size(AeadAlg::kAes128Gcm), 16u);
  EXPECT_EQ(aead_key_size(AeadAlg::kChaCha20Poly1305), 32u);
}

// RFC 5649 section 6 examples.
TEST(KeyWrap, Rfc5649Vectors) {
  Bytes kek = unhex("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8");
  Bytes key20 = unhex("c37b7e6492584340bed12207808941155068f738");
  auto w = aes_key_wrap_pad(kek, key20);
  ASSERT_TRUE(w.ok()) << w.status().to_string();
  EXPECT_EQ(hex(*w), "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a");
  auto u = aes_key_unwrap_pad(kek, *w);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(hex(u->span()), hex(key20));

  Bytes key7 = unhex("466f7250617369");
  auto w7 = aes_key_wrap_pad(kek, key7);
  ASSERT_TRUE(w7.ok());
  EXPECT_EQ(hex(*w7), "afbeb0f07dfbf5419200f2ccb50bb24f");
  auto u7 = aes_key_unwrap_pad(kek, *w7);
  ASSERT_TRUE(u7.ok());
  EXPECT_EQ(hex(u7->span()), "466f7250617369");
}

// RFC 3394 section 4.6 (256-bit KEK, 256-bit key) and 4.1 (128-bit KEK and key).
TEST(KeyWrap, Rfc3394Vectors) {
  Bytes kek = unhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
  Bytes key = unhex("00112233445566778899aabbccddeeff000102030405060708090a0b0c0d0e0f");
  auto w = aes_key_wrap(kek, key);
  ASSERT_TRUE(w.ok()) << w.status().to_string();
  EXPECT_EQ(hex(*w),
            "28c9f404c4b810f4cbccb35cfb87f8263f5786e2d80ed326cbc7f0e71a99f43bfb988b9b7a02dd21");
  auto u = aes_key_unwrap(kek, *w);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(hex(u->span()), hex(key));

  Bytes kek128 = unhex("000102030405060708090a0b0c0d0e0f");
  auto w128 = aes_key_wrap(kek128, unhex("00112233445566778899aabbccddeeff"));
  ASSERT_TRUE(w128.ok());
  EXPECT_EQ(hex(*w128), "1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5");

  // Reject twins: a flipped bit, the wrong KEK, a truncation, sizes RFC 3394 cannot wrap.
  Bytes tampered = *w;
  tampered[9] ^= 0x80;
  EXPECT_EQ(aes_key_unwrap(kek, tampered).status().code(), Code::kDataLoss);
  Bytes wrong = kek;
  wrong[31] ^= 1;
  EXPECT_EQ(aes_key_unwrap(wrong, *w).status().code(), Code::kDataLoss);
  EXPECT_EQ(aes_key_unwrap(kek, Bytes(w->begin(), w->begin() + 16)).status().code(),
            Code::kDataLoss);
  EXPECT_EQ(aes_key_wrap(kek, Bytes(20, 1)).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(aes_key_wrap(kek, Bytes(8, 1)).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(aes_key_wrap(Bytes(20, 1), key).status().code(), Code::kInvalidArgument);
  // The padded and unpadded forms are different algorithms: neither unwraps the other.
  auto padded = aes_key_wrap_pad(kek, key);
  ASSERT_TRUE(padded.ok());
  EXPECT_NE(hex(*padded), hex(*w));
  EXPECT_EQ(aes_key_unwrap(kek, *padded).status().code(), Code::kDataLoss);
}

TEST(KeyWrap, RejectsTamperingAndWrongKek) {
  Bytes kek = random_bytes(32);
  Bytes key = random_bytes(32);
  auto w = aes_key_wrap_pad(kek, key);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->size(), 40u);
  auto good = aes_key_unwrap_pad(kek, *w);
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(Bytes(good->span().begin(), good->span().end()), key);

  Bytes tampered = *w;
  tampered[5] ^= 1;
  EXPECT_EQ(aes_key_unwrap_pad(kek, tampered).status().code(), Code::kDataLoss);
  Bytes wrong = kek;
  wrong[0] ^= 1;
  EXPECT_EQ(aes_key_unwrap_pad(wrong, *w).status().code(), Code::kDataLoss);
  EXPECT_EQ(aes_key_unwrap_pad(kek, Bytes(w->begin(), w->end() - 8)).status().code(),
            Code::kDataLoss);
  EXPECT_EQ(aes_key_unwrap_pad(kek, Bytes(7, 0)).status().code(), Code::kDataLoss);
  EXPECT_EQ(aes_key_wrap_pad(Bytes(10, 0), key).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(aes_key_wrap_pad(kek, {}).status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace custos::crypto
