// Time as an injected dependency, so tests and attestation replays choose "now".
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace custos {

using SysTime = std::chrono::system_clock::time_point;
using Seconds = std::chrono::seconds;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual SysTime now() const = 0;
};

class SystemClock final : public Clock {
 public:
  SysTime now() const override { return std::chrono::system_clock::now(); }
  static const SystemClock& instance();
};

// A clock tests move by hand.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(SysTime t) : t_(t.time_since_epoch().count()) {}
  SysTime now() const override { return SysTime(SysTime::duration(t_.load())); }
  void set(SysTime t) { t_ = t.time_since_epoch().count(); }
  void advance(std::chrono::nanoseconds d) {
    t_ += std::chrono::duration_cast<SysTime::duration>(d).count();
  }

 private:
  std::atomic<SysTime::rep> t_;
};

// RFC 3339 in UTC: "2025-07-19T10:01:17Z", with optional fractional seconds and offsets on input.
Result<SysTime> parse_rfc3339(std::string_view s);
std::string format_rfc3339(SysTime t);             // seconds precision, Z
std::string format_rfc3339_nanos(SysTime t);       // Vault's style: 2024-01-01T00:00:00.123456789Z
int64_t to_unix_seconds(SysTime t);
SysTime from_unix_seconds(int64_t s);

// Vault durations: "90", "90s", "15m", "1h30m", "2d" (a bare number is seconds), at most 100
// years in all.
Result<Seconds> parse_duration(std::string_view s);

}  // namespace custos
