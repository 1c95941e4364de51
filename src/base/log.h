// Leveled logging to stderr. Never log secrets or raw untrusted input: log lengths, ids, digests.
#pragma once

#include <sstream>
#include <string>
#include <string_view>

namespace custos::log {

enum class Level { kTrace = 0, kDebug, kInfo, kWarn, kError, kOff };

void set_level(Level level);
Level level();
bool parse_level(std::string_view name, Level& out);  // trace|debug|info|warn|error|off
void write(Level level, std::string_view component, std::string_view message);
bool enabled(Level l);

}  // namespace custos::log

#define CUSTOS_LOG(lvl, component, expr)                                             \
  do {                                                                               \
    if (::custos::log::enabled(::custos::log::Level::lvl)) {                         \
      std::ostringstream _os;                                                        \
      _os << expr;                                                                   \
      ::custos::log::write(::custos::log::Level::lvl, component, _os.str());         \
    }                                                                                \
  } while (0)

#define LOG_DEBUG(component, expr) CUSTOS_LOG(kDebug, component, expr)
#define LOG_INFO(component, expr) CUSTOS_LOG(kInfo, component, expr)
#define LOG_WARN(component, expr) CUSTOS_LOG(kWarn, component, expr)
#define LOG_ERROR(component, expr) CUSTOS_LOG(kError, component, expr)
