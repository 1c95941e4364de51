#include "base/clock.h"

#include <cstdio>
#include <ctime>

namespace custos {

const SystemClock& SystemClock::instance() {
  // Never destroyed: threads that outlive main() (a lease scheduler in a leaked server, as the
  // api_request fuzz target keeps one) may still read the time during exit.
  static const SystemClock* clock = new SystemClock;
  return *clock;
}

namespace {

bool read_digits(std::string_view s, size_t& pos, size_t n, int& out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = 0; i < n; ++i) {
    char c = s[pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  pos += n;
  out = v;
  return true;
}

bool expect(std::string_view s, size_t& pos, char c) {
  if (pos >= s.size() || (s[pos] != c && !(c == 'T' && (s[pos] == 't' || s[pos] == ' ')))) {
    return false;
  }
  ++pos;
  return true;
}

// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3u : 9u)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

}  // namespace

Result<SysTime> parse_rfc3339(std::string_view s) {
  size_t pos = 0;
  int year, month, day, hour, minute, second;
  if (!read_digits(s, pos, 4, year) || !expect(s, pos, '-') || !read_digits(s, pos, 2, month) ||
      !expect(s, pos, '-') || !read_digits(s, pos, 2, day) || !expect(s, pos, 'T') ||
      !read_digits(s, pos, 2, hour) || !expect(s, pos, ':') || !read_digits(s, pos, 2, minute) ||
      !expect(s, pos, ':') || !read_digits(s, pos, 2, second)) {
    return invalid_argument("invalid RFC 3339 time");
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    return invalid_argument("RFC 3339 time out of range");
  }
  int64_t nanos = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int64_t scale = 100000000;
    size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (scale > 0) {
        nanos += (s[pos] - '0') * scale;
        scale /= 10;
      }
      ++pos;
    }
    if (pos == start) return invalid_argument("invalid RFC 3339 fraction");
  }
  int64_t offset = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int sign = s[pos] == '-' ? -1 : 1;
    ++pos;
    int oh, om;
    if (!read_digits(s, pos, 2, oh) || !expect(s, pos, ':') || !read_digits(s, pos, 2, om)) {
      return invalid_argument("invalid RFC 3339 offset");
    }
    offset = sign * (oh * 3600 + om * 60);
  } else {
    return invalid_argument("RFC 3339 time needs a zone (Z or +hh:mm)");
  }
  if (pos != s.size()) return invalid_argument("trailing characters after RFC 3339 time");
  int64_t days = days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  int64_t secs = days * 86400 + hour * 3600 + minute * 60 + second - offset;
  return SysTime(std::chrono::duration_cast<SysTime::duration>(std::chrono::seconds(secs) +
                                                               std::chrono::nanoseconds(nanos)));
}

static std::string format_impl(SysTime t, bool nanos) {
  auto since = t.time_since_epoch();
  auto secs = std::chrono::floor<std::chrono::seconds>(since);
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(since - secs).count();
  time_t tt = static_cast<time_t>(secs.count());
  struct tm tm {};
  gmtime_r(&tt, &tm);
  char buf[64];
  if (nanos) {
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<long long>(ns));
  } else {
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  }
  return buf;
}

std::string format_rfc3339(SysTime t) { return format_impl(t, false); }
std::string format_rfc3339_nanos(SysTime t) { return format_impl(t, true); }

int64_t to_unix_seconds(SysTime t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}
SysTime from_unix_seconds(int64_t s) {
  return SysTime(std::chrono::duration_cast<SysTime::duration>(std::chrono::seconds(s)));
}

namespace {
constexpr int64_t kMaxDuration = 100LL * 365 * 86400;  // 100 years, in seconds
}  // namespace

Result<Seconds> parse_duration(std::string_view s) {
  if (s.empty()) return invalid_argument("empty duration");
  int64_t total = 0;
  size_t pos = 0;
  bool any_unit = false;
  while (pos < s.size()) {
    size_t start = pos;
    int64_t v = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      v = v * 10 + (s[pos] - '0');
      if (v > kMaxDuration) return invalid_argument("duration too large");
      ++pos;
    }
    if (pos == start) return invalid_argument("invalid duration \"" + std::string(s) + "\"");
    if (pos == s.size()) {
      if (any_unit) return invalid_argument("duration is missing a unit");
      total += v;
      break;
    }
    char u = s[pos++];
    any_unit = true;
    switch (u) {
      case 's': total += v; break;
      case 'm':
        if (pos < s.size() && s[pos] == 's') return invalid_argument("sub-second durations are not supported");
        total += v * 60;
        break;
      case 'h': total += v * 3600; break;
      case 'd': total += v * 86400; break;
      default: return invalid_argument("invalid duration unit in \"" + std::string(s) + "\"");
    }
    // The bound holds for the whole duration, not only for each number ("1067494387d" is
    // 2.9 million years): everything that stores or prints a duration may rely on it.
    if (total > kMaxDuration) return invalid_argument("duration too large");
  }
  return Seconds(total);
}

}  // namespace custos
