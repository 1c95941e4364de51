#include "crypto/random.h"

#include <openssl/rand.h>
#include <pthread.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>

#include "crypto/openssl.h"

namespace custos::crypto {

namespace {

void drbg_fill(uint8_t* out, size_t size) {
  constexpr size_t kChunk = 1 << 20;
  for (size_t pos = 0; pos < size; pos += kChunk) {
    size_t n = std::min(kChunk, size - pos);
    if (RAND_bytes(out + pos, static_cast<int>(n)) != 1) ossl::fatal("RAND_bytes");
  }
}

// Small requests (nonces, IVs, keys, UUIDs: most of them) are served from a per-thread buffer of
// DRBG output, refilled 1 KiB at a time. One RAND_bytes call costs several microseconds in
// OpenSSL 3.0 (thread-local DRBG look-up, provider dispatch, locks) whatever its length, which
// was 5% of a KV read's CPU. The buffer is no new exposure: the DRBG's own state, in the same
// memory, determines all of its future output anyway. Bytes are wiped from the buffer as they
// are handed out, and a buffer filled before a fork() is discarded in the child: a pthread_atfork
// child handler moves a fork generation on (glibc's getpid() is a system call, too dear here).
std::atomic<uint64_t> g_fork_generation{1};
void on_fork_child() {
  g_fork_generation.fetch_add(1, std::memory_order_relaxed);
}
const bool g_fork_handler_registered = [] {
  return pthread_atfork(nullptr, nullptr, on_fork_child) == 0;
}();

class RandomBuffer {
 public:
  static constexpr size_t kSize = 1024;
  static constexpr size_t kMaxServed = 64;

  ~RandomBuffer() { secure_wipe(buf_.data(), buf_.size()); }

  void take(uint8_t* out, size_t n) {
    const uint64_t gen = g_fork_generation.load(std::memory_order_relaxed);
    if (gen != generation_ || !g_fork_handler_registered) {
      secure_wipe(buf_.data(), buf_.size());
      pos_ = kSize;
      generation_ = gen;
    }
    if (kSize - pos_ < n) {
      drbg_fill(buf_.data(), kSize);
      pos_ = 0;
    }
    std::memcpy(out, buf_.data() + pos_, n);
    secure_wipe(buf_.data() + pos_, n);
    pos_ += n;
  }

 private:
  std::array<uint8_t, kSize> buf_{};
  size_t pos_ = kSize;
  uint64_t generation_ = 0;  // fork generation the buffer's bytes belong to
};

}  // namespace

void random_fill(std::span<uint8_t> out) {
  if (out.empty()) return;
  if (out.size() > RandomBuffer::kMaxServed) {
    drbg_fill(out.data(), out.size());
    return;
  }
  thread_local RandomBuffer buffer;
  buffer.take(out.data(), out.size());
}

Bytes random_bytes(size_t n) {
  Bytes out(n);
  random_fill(out);
  return out;
}

SecretBytes random_secret(size_t n) {
  SecretBytes out(n);
  random_fill(out.mutable_span());
  return out;
}

std::string random_uuid() {
  uint8_t b[16];
  random_fill(b);
  b[6] = static_cast<uint8_t>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<uint8_t>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    out += kHex[b[i] >> 4];
    out += kHex[b[i] & 15];
  }
  return out;
}

}  // namespace custos::crypto
