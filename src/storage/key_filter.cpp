#include "storage/key_filter.h"

#include <algorithm>
#include <bit>
#include <functional>

namespace custos::storage::internal {
namespace {

// 16 bits per key and 8 probes: a false positive rate of (1 - e^(-8/16))^8, about 0.06% per
// sub-filter when full, 2 bytes of memory per key.
constexpr size_t kBitsPerKey = 16;
constexpr int kProbes = 8;
constexpr size_t kMinCapacity = 4096;

uint64_t mix(uint64_t x) {  // splitmix64's finalizer: a second, independent-enough hash
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

struct Hashes {
  uint64_t h1;
  uint64_t h2;  // odd, so the probes of one key differ from each other
};

Hashes hashes(std::string_view key) {
  const uint64_t h = std::hash<std::string_view>{}(key);
  return {h, mix(h) | 1};
}

}  // namespace

KeyFilter::KeyFilter(size_t expected) {
  filters_.push_back(make_sub(std::max(kMinCapacity, expected)));
}

KeyFilter::Sub KeyFilter::make_sub(size_t capacity) {
  Sub s;
  s.capacity = capacity;
  const size_t bits = std::bit_ceil(capacity * kBitsPerKey);
  s.words.assign(bits / 64, 0);
  s.mask = bits - 1;
  return s;
}

void KeyFilter::add(std::string_view key) {
  if (may_contain(key)) return;  // bits are never cleared: it would answer "maybe" anyway
  if (filters_.back().count >= filters_.back().capacity) {
    filters_.push_back(make_sub(filters_.back().capacity * 2));
  }
  Sub& s = filters_.back();
  const Hashes h = hashes(key);
  for (int i = 0; i < kProbes; ++i) {
    const uint64_t bit = (h.h1 + static_cast<uint64_t>(i) * h.h2) & s.mask;
    s.words[bit >> 6] |= uint64_t{1} << (bit & 63);
  }
  ++s.count;
  ++added_;
}

bool KeyFilter::may_contain(std::string_view key) const {
  const Hashes h = hashes(key);
  // The newest first: recently written keys are the likeliest to be read.
  for (auto it = filters_.rbegin(); it != filters_.rend(); ++it) {
    const Sub& s = *it;
    bool all = true;
    for (int i = 0; i < kProbes && all; ++i) {
      const uint64_t bit = (h.h1 + static_cast<uint64_t>(i) * h.h2) & s.mask;
      all = (s.words[bit >> 6] >> (bit & 63)) & 1;
    }
    if (all) return true;
  }
  return false;
}

size_t KeyFilter::memory_bytes() const {
  size_t n = 0;
  for (const Sub& s : filters_) n += s.words.size() * sizeof(uint64_t);
  return n;
}

}  // namespace custos::storage::internal
