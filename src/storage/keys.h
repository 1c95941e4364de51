// Key rules and Vault list folding shared by every backend, so they cannot drift apart.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"

namespace custos::storage::internal {

// Keys are arbitrary non-empty byte strings. An empty key has no place in Vault's path space and
// would list as an empty child, so it is rejected up front (and a transaction holding one is
// rejected as a whole, before anything is applied).
Status validate_key(std::string_view key);

// The smallest string greater than every string that starts with `prefix`, or nullopt when no
// such string exists (the prefix is empty or all 0xff bytes): the exclusive upper bound of a
// prefix range query.
std::optional<std::string> prefix_successor(std::string_view prefix);

// One key seen while listing `prefix`: the immediate child it contributes. `folder` is set when
// the child has children of its own (its name then ends with '/').
struct Child {
  std::string_view name;
  bool folder = false;
};
// Precondition: `key` starts with `prefix`.
Child immediate_child(std::string_view key, std::string_view prefix);

// The first key after every key under folder `folder_child` (which ends with '/'): '/' + 1 is
// '0', so prefix + "name0" sorts after every "prefix + name/...". Seeking there skips the whole
// sub-tree in one step.
std::string skip_past_folder(std::string_view prefix, std::string_view folder_child);

}  // namespace custos::storage::internal
