// Byte containers. Bytes is plain data; SecretBytes holds key material and is wiped on
// destruction, move-only, and never printed (cf. CCF's scoped_cleanse).
#pragma once

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace custos {

using Bytes = std::vector<uint8_t>;
using ByteSpan = std::span<const uint8_t>;

inline ByteSpan as_bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
inline std::string_view as_string_view(ByteSpan b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}
inline Bytes to_bytes(std::string_view s) { return Bytes(s.begin(), s.end()); }
inline std::string to_string(ByteSpan b) { return std::string(as_string_view(b)); }

// Overwrites memory in a way the optimizer may not elide.
void secure_wipe(void* p, size_t n);

// Constant-time equality of two byte strings (length leaks, contents do not).
bool constant_time_equal(ByteSpan a, ByteSpan b);
inline bool constant_time_equal(std::string_view a, std::string_view b) {
  return constant_time_equal(as_bytes(a), as_bytes(b));
}

class SecretBytes {
 public:
  SecretBytes() = default;
  explicit SecretBytes(size_t n) : data_(n) {}
  explicit SecretBytes(ByteSpan b) : data_(b.begin(), b.end()) {}
  explicit SecretBytes(Bytes&& b) : data_(std::move(b)) {}
  ~SecretBytes() { wipe(); }

  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;
  SecretBytes(SecretBytes&& o) noexcept : data_(std::move(o.data_)) { o.data_.clear(); }
  SecretBytes& operator=(SecretBytes&& o) noexcept {
    if (this != &o) {
      wipe();
      data_ = std::move(o.data_);
      o.data_.clear();
    }
    return *this;
  }

  // An explicit copy, so copies of secrets are visible in review.
  SecretBytes clone() const { return SecretBytes(ByteSpan(data_)); }

  uint8_t* data() { return data_.data(); }
  const uint8_t* data() const { return data_.data(); }
  size_t size() const { return data_.size(); }
  bool empty() const { return data_.empty(); }
  ByteSpan span() const { return data_; }
  std::span<uint8_t> mutable_span() { return data_; }
  std::string_view view() const { return as_string_view(data_); }

  void wipe() {
    if (!data_.empty()) secure_wipe(data_.data(), data_.size());
    data_.clear();
  }

  friend bool operator==(const SecretBytes& a, const SecretBytes& b) {
    return constant_time_equal(a.span(), b.span());
  }
  friend std::ostream& operator<<(std::ostream& os, const SecretBytes&) {
    return os << "<redacted>";
  }

 private:
  Bytes data_;
};

// A std::string that wipes itself: for secrets that must travel as text (tokens, passwords).
class SecretString {
 public:
  SecretString() = default;
  explicit SecretString(std::string s) : s_(std::move(s)) {}
  ~SecretString() { wipe(); }
  SecretString(const SecretString&) = delete;
  SecretString& operator=(const SecretString&) = delete;
  // A short string lives inside the object (small-string buffer) and a move copies it: the
  // source's buffer is wiped whole, not just emptied.
  SecretString(SecretString&& o) noexcept : s_(std::move(o.s_)) { o.wipe_buffer(); }
  SecretString& operator=(SecretString&& o) noexcept {
    if (this != &o) {
      wipe();
      s_ = std::move(o.s_);
      o.wipe_buffer();
    }
    return *this;
  }
  const std::string& str() const { return s_; }
  bool empty() const { return s_.empty(); }
  void wipe() {
    if (!s_.empty()) secure_wipe(s_.data(), s_.size());
    s_.clear();
  }
  friend std::ostream& operator<<(std::ostream& os, const SecretString&) {
    return os << "<redacted>";
  }

 private:
  void wipe_buffer() {
    secure_wipe(s_.data(), s_.capacity());
    s_.clear();
  }
  std::string s_;
};

}  // namespace custos
