#include "cli/output.h"

#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cstdio>
#include <iostream>
#include <vector>

namespace custos::cli {
namespace json = boost::json;

std::string scalar(const json::value& v) {
  if (v.is_string()) return std::string(v.as_string());
  if (v.is_null()) return "n/a";
  return json::serialize(v);
}

void print_table(const json::object& o) {
  size_t w = 3;
  for (const auto& [k, v] : o) w = std::max(w, k.size());
  std::printf("%-*s    %s\n", static_cast<int>(w), "Key", "Value");
  std::printf("%-*s    %s\n", static_cast<int>(w), "---", "-----");
  std::vector<std::string> keys;
  for (const auto& [k, v] : o) keys.emplace_back(k);
  std::sort(keys.begin(), keys.end());
  for (const auto& k : keys) {
    std::printf("%-*s    %s\n", static_cast<int>(w), k.c_str(), scalar(o.at(k)).c_str());
  }
}

int fail(const Status& st) {
  std::fprintf(stderr, "%s\n", st.message().c_str());
  return 2;
}

std::string read_stdin_line(const char* prompt) {
  std::string line;
  if (!isatty(0)) {
    std::getline(std::cin, line);
    return line;
  }
  // A terminal: what is typed (a key share) is not echoed.
  std::fprintf(stderr, "%s", prompt);
  termios saved{};
  bool hidden = tcgetattr(0, &saved) == 0;
  if (hidden) {
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    hidden = tcsetattr(0, TCSAFLUSH, &quiet) == 0;
  }
  std::getline(std::cin, line);
  if (hidden) {
    tcsetattr(0, TCSAFLUSH, &saved);
    std::fprintf(stderr, "\n");
  }
  return line;
}

}  // namespace custos::cli
