#include "base/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>

#include "base/clock.h"

namespace custos::log {
namespace {
std::atomic<Level> g_level{Level::kInfo};
std::mutex g_mu;
const char* name(Level l) {
  switch (l) {
    case Level::kTrace: return "TRACE";
    case Level::kDebug: return "DEBUG";
    case Level::kInfo: return "INFO";
    case Level::kWarn: return "WARN";
    case Level::kError: return "ERROR";
    case Level::kOff: return "OFF";
  }
  return "?";
}
}  // namespace

void set_level(Level l) { g_level = l; }
Level level() { return g_level; }
bool enabled(Level l) { return l >= g_level.load(std::memory_order_relaxed) && l != Level::kOff; }

bool parse_level(std::string_view n, Level& out) {
  if (n == "trace") out = Level::kTrace;
  else if (n == "debug") out = Level::kDebug;
  else if (n == "info") out = Level::kInfo;
  else if (n == "warn" || n == "warning") out = Level::kWarn;
  else if (n == "error" || n == "err") out = Level::kError;
  else if (n == "off") out = Level::kOff;
  else return false;
  return true;
}

void write(Level l, std::string_view component, std::string_view message) {
  std::string line = format_rfc3339(SystemClock::instance().now());
  line += " [";
  line += name(l);
  line += "] ";
  line += component;
  line += ": ";
  // Control characters could forge log lines; escape them.
  for (char c : message) {
    if (static_cast<unsigned char>(c) < 0x20 && c != '\t') {
      line += "\\x";
      const char* hex = "0123456789abcdef";
      line += hex[(c >> 4) & 15];
      line += hex[c & 15];
    } else {
      line += c;
    }
  }
  line += '\n';
  std::lock_guard<std::mutex> lock(g_mu);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace custos::log
