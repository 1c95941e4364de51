#include <gtest/gtest.h>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/encoding.h"
#include "base/reader.h"
#include "base/status.h"

namespace custos {
namespace {

TEST(Encoding, HexRoundTripAndRejects) {
  Bytes b = {0x00, 0xab, 0xff, 0x10};
  EXPECT_EQ(hex_encode(b), "00abff10");
  EXPECT_EQ(*hex_decode("00ABff10"), b);
  EXPECT_FALSE(hex_decode("abc").ok());
  EXPECT_FALSE(hex_decode("zz").ok());
}

TEST(Encoding, Base64RoundTripsEveryLengthAndRejectsBadTails) {
  for (size_t n = 0; n < 70; ++n) {
    Bytes b(n);
    for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(i * 37 + n);
    std::string std_enc = base64_encode(b);
    EXPECT_EQ(std_enc.size() % 4, 0U) << n;
    EXPECT_EQ(*base64_decode(std_enc), b) << n;
    std::string url_enc = base64url_encode(b);
    EXPECT_EQ(url_enc.find('='), std::string::npos) << n;
    EXPECT_EQ(*base64url_decode(url_enc), b) << n;
    if (!std_enc.empty()) {
      std::string bad = std_enc;
      bad[bad.find_first_of("=") == std::string::npos ? bad.size() - 1 : bad.find('=') - 1] = '*';
      EXPECT_FALSE(base64_decode(bad).ok()) << n << " " << bad;
    }
  }
  EXPECT_FALSE(base64_decode("Zm9=").ok());      // 'o' -> '9' leaves stray bits
  EXPECT_FALSE(base64url_decode("Zm+v").ok());   // '+' is not in the URL alphabet
  EXPECT_FALSE(base64_decode("Zm-v").ok());      // '-' is not in the standard alphabet
}

TEST(Encoding, ParseUint64TakesDecimalAndHex) {
  EXPECT_EQ(parse_uint64("0"), std::optional<uint64_t>(0));
  EXPECT_EQ(parse_uint64("4231"), std::optional<uint64_t>(4231));
  EXPECT_EQ(parse_uint64("0x1087"), std::optional<uint64_t>(0x1087));
  EXPECT_EQ(parse_uint64("0X2000000000000001"), std::optional<uint64_t>(0x2000000000000001ULL));
  EXPECT_EQ(parse_uint64("18446744073709551615"), std::optional<uint64_t>(UINT64_MAX));
  for (const char* bad : {"", "0x", "-1", "+1", " 1", "1 ", "12a", "0xg", "18446744073709551616"}) {
    EXPECT_EQ(parse_uint64(bad), std::nullopt) << bad;
  }
}

TEST(Encoding, Utf8ValidationFollowsRfc3629) {
  for (std::string_view ok : {"", "plain ascii", "caf\xc3\xa9", "\xe2\x82\xac", "\xed\x9f\xbf",
                              "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf", "\xef\xbf\xbd"}) {
    EXPECT_TRUE(valid_utf8(ok)) << ok;
  }
  for (std::string_view bad : {"\x80",              // a continuation byte first
                               "\xc3",              // truncated
                               "\xc0\xaf",          // overlong '/'
                               "\xc1\xbf",          // overlong
                               "\xe0\x9f\xbf",      // overlong 3-byte form
                               "\xed\xa0\x80",      // a UTF-16 surrogate
                               "\xf0\x8f\xbf\xbf",  // overlong 4-byte form
                               "\xf4\x90\x80\x80",  // past U+10FFFF
                               "\xf5\x80\x80\x80",  // no such lead byte
                               "\xe2\x82",          // truncated
                               "a\xe2\x28\xa1",     // a bad continuation byte
                               "\xff"}) {
    EXPECT_FALSE(valid_utf8(bad)) << testing::PrintToString(std::string(bad));
  }
}

TEST(Encoding, Base64RfcVectors) {
  // RFC 4648 section 10.
  const char* plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  const char* enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
  for (int i = 0; i < 7; ++i) {
    EXPECT_EQ(base64_encode(as_bytes(plain[i])), enc[i]);
    EXPECT_EQ(to_string(*base64_decode(enc[i])), plain[i]);
  }
  EXPECT_FALSE(base64_decode("Zm9v!").ok());
  EXPECT_FALSE(base64_decode("Z").ok());
  EXPECT_FALSE(base64_decode("Zh==").ok());  // non-zero trailing bits
  EXPECT_EQ(base64url_encode(Bytes{0xfb, 0xff}), "-_8");
  EXPECT_EQ(*base64url_decode("-_8"), (Bytes{0xfb, 0xff}));
}

TEST(Clock, Rfc3339) {
  auto t = parse_rfc3339("2025-07-19T10:01:17Z");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(to_unix_seconds(*t), 1752919277);
  EXPECT_EQ(format_rfc3339(*t), "2025-07-19T10:01:17Z");
  auto off = parse_rfc3339("2025-07-19T12:01:17.5+02:00");
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(to_unix_seconds(*off), 1752919277);
  EXPECT_FALSE(parse_rfc3339("2025-07-19T10:01:17").ok());
  EXPECT_FALSE(parse_rfc3339("2025-13-19T10:01:17Z").ok());
  EXPECT_FALSE(parse_rfc3339("2025-07-19T10:01:17Zjunk").ok());
}

TEST(Clock, Durations) {
  EXPECT_EQ(parse_duration("90")->count(), 90);
  EXPECT_EQ(parse_duration("1h30m")->count(), 5400);
  EXPECT_EQ(parse_duration("768h")->count(), 768 * 3600);
  EXPECT_EQ(parse_duration("2d")->count(), 172800);
  EXPECT_FALSE(parse_duration("").ok());
  EXPECT_FALSE(parse_duration("1x").ok());
  EXPECT_FALSE(parse_duration("h").ok());
  // At most 100 years, in total and not only per number (a fuzzer found "1067494387d").
  EXPECT_EQ(parse_duration("36500d")->count(), 100LL * 365 * 86400);
  EXPECT_FALSE(parse_duration("36501d").ok());
  EXPECT_FALSE(parse_duration("1067494387d").ok());
  EXPECT_FALSE(parse_duration("36500d1s").ok());
}

TEST(Reader, BoundsChecked) {
  Bytes b = {1, 0, 2, 0, 0, 0, 9};
  ByteReader r(b);
  EXPECT_EQ(r.u16le(), 1);
  EXPECT_EQ(r.u32le(), 2u);
  EXPECT_EQ(r.u8(), 9);
  EXPECT_TRUE(r.status("x").ok());
  EXPECT_EQ(r.u8(), 0);
  EXPECT_TRUE(r.failed());
  EXPECT_FALSE(r.status("header").ok());
  EXPECT_EQ(r.status("header").message(), "header: input truncated");
}

TEST(SecretBytes, WipesAndRedacts) {
  SecretBytes s(Bytes{1, 2, 3});
  SecretBytes t = std::move(s);
  EXPECT_TRUE(s.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
  EXPECT_EQ(t.size(), 3u);
  std::ostringstream os;
  os << t;
  EXPECT_EQ(os.str(), "<redacted>");
  EXPECT_TRUE(constant_time_equal(std::string_view("abc"), std::string_view("abc")));
  EXPECT_FALSE(constant_time_equal(std::string_view("abc"), std::string_view("abd")));
  EXPECT_FALSE(constant_time_equal(std::string_view("abc"), std::string_view("ab")));
}

TEST(Status, ResultAndMacros) {
  auto f = [](bool fail) -> Result<int> {
    if (fail) return not_found("nope");
    return 7;
  };
  auto g = [&](bool fail) -> Result<int> {
    ASSIGN_OR_RETURN(int v, f(fail));
    return v + 1;
  };
  EXPECT_EQ(*g(false), 8);
  EXPECT_EQ(g(true).status().code(), Code::kNotFound);
  EXPECT_EQ(not_found("x").with_context("reading").message(), "reading: x");
}

}  // namespace
}  // namespace custos
