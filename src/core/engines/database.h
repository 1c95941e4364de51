// The database secrets engine (PostgreSQL): connection configs with a connection pool each,
// dynamic roles whose credentials are leased (creation/renew/revocation statements), static
// roles whose password rotates, root credential rotation. API and storage: docs/engines/database.md.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "core/engine.h"

namespace custos::core {

Result<std::unique_ptr<Engine>> make_database_engine(EngineContext ctx, const MountEntry& entry);

namespace database_internal {

// Vault-style templating of one SQL statement with SQL-safe substitution: "{{name}}" (in double
// quotes) and bare {{name}}/{{username}} become a quoted identifier, '{{password}}' and
// '{{expiration}}' (in single quotes) and their bare forms become a quoted literal. The values
// are escaped by the given functions (PQescapeIdentifier/PQescapeLiteral in the engine), so no
// value can end a quote. Exposed for tests.
struct TemplateValues {
  std::string name;
  std::string password;
  std::string expiration;
};
using Escaper = std::string (*)(void* ctx, std::string_view value, bool identifier);
Result<std::string> render_statement(std::string_view stmt, const TemplateValues& values,
                                     Escaper escape, void* escape_ctx);

// "v-<display>-<role>-<random 20>-<unix>", at most 63 characters, [A-Za-z0-9_-] only.
std::string make_username(std::string_view display_name, std::string_view role, int64_t unix_time);
// 24 characters from [A-Za-z0-9], starting with a letter, with upper, lower and digit.
std::string make_password();

}  // namespace database_internal
}  // namespace custos::core
