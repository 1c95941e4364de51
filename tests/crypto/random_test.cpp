#include "crypto/random.h"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <set>

namespace custos::crypto {
namespace {

TEST(Random, SizesAndDistinct) {
  EXPECT_TRUE(random_bytes(0).empty());
  Bytes a = random_bytes(32);
  Bytes b = random_bytes(32);
  EXPECT_EQ(a.size(), 32u);
  EXPECT_NE(a, b);
  SecretBytes s = random_secret(64);
  EXPECT_EQ(s.size(), 64u);
  EXPECT_FALSE(s == random_secret(64));
}

TEST(Random, FillCoversEveryByte) {
  // With 4096 random bytes, every byte position being zero by chance is essentially impossible;
  // this catches a fill that writes only a prefix.
  Bytes buf(4096, 0);
  random_fill(buf);
  size_t zeros_in_tail = 0;
  for (size_t i = 2048; i < buf.size(); ++i) zeros_in_tail += buf[i] == 0;
  EXPECT_LT(zeros_in_tail, 100u);
}

// 8-4-4-4-12 lowercase hex, version nibble 4, variant 10xx. (Checked by hand: GCC 12's
// std::regex trips -Wmaybe-uninitialized under the sanitizer build.)
bool is_uuid_v4(const std::string& u) {
  if (u.size() != 36) return false;
  for (size_t i = 0; i < u.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    char c = u[i];
    if (dash != (c == '-')) return false;
    if (!dash && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return u[14] == '4' && std::string_view("89ab").find(u[19]) != std::string_view::npos;
}

TEST(Random, UuidV4Layout) {
  EXPECT_FALSE(is_uuid_v4("00000000-0000-0000-0000-000000000000"));
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    std::string u = random_uuid();
    EXPECT_TRUE(is_uuid_v4(u)) << u;
    seen.insert(u);
  }
  EXPECT_EQ(seen.size(), 100u);
}

}  // namespace
}  // namespace custos::crypto

namespace custos::crypto {
namespace {

// Small requests come from a per-thread buffer: a forked child must not hand out the bytes its
// parent's buffer still holds (they would repeat in both processes).
TEST(Random, ForkedChildDoesNotRepeatTheParentsBufferedBytes) {
  (void)random_bytes(16);  // the parent's buffer is now filled
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    Bytes b = random_bytes(32);
    ssize_t w = write(fds[1], b.data(), b.size());
    _exit(w == 32 ? 0 : 1);
  }
  close(fds[1]);
  Bytes from_child(32);
  ASSERT_EQ(read(fds[0], from_child.data(), from_child.size()), 32);
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  Bytes mine = random_bytes(32);
  EXPECT_NE(mine, from_child);
}

TEST(Random, BufferedAndDirectSizesAllDiffer) {
  std::set<Bytes> seen;
  for (size_t n : std::initializer_list<size_t>{8, 15, 16, 32, 63, 64, 65, 200, 1024, 1500}) {
    for (int i = 0; i < 40; ++i) EXPECT_TRUE(seen.insert(random_bytes(n)).second) << n;
  }
}

}  // namespace
}  // namespace custos::crypto
