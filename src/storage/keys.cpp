#include "storage/keys.h"

namespace custos::storage::internal {

Status validate_key(std::string_view key) {
  if (key.empty()) return invalid_argument("storage: empty key");
  return ok_status();
}

std::optional<std::string> prefix_successor(std::string_view prefix) {
  std::string s(prefix);
  while (!s.empty() && static_cast<unsigned char>(s.back()) == 0xff) s.pop_back();
  if (s.empty()) return std::nullopt;
  s.back() = static_cast<char>(static_cast<unsigned char>(s.back()) + 1);
  return s;
}

Child immediate_child(std::string_view key, std::string_view prefix) {
  std::string_view rest = key.substr(prefix.size());
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return {rest, false};
  return {rest.substr(0, slash + 1), true};
}

std::string skip_past_folder(std::string_view prefix, std::string_view folder_child) {
  std::string next;
  next.reserve(prefix.size() + folder_child.size());
  next.append(prefix);
  next.append(folder_child.substr(0, folder_child.size() - 1));
  next.push_back(static_cast<char>('/' + 1));
  return next;
}

}  // namespace custos::storage::internal
