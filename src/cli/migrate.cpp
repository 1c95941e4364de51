// `custos operator migrate -config FILE`: copies a stopped server's whole store to another
// backend (Vault's `vault operator migrate`). See docs/configuration.md, "Migrating storage".
#include "cli/migrate.h"

#include <cstdio>
#include <memory>
#include <string>

#include "cli/output.h"
#include "server/server.h"
#include "storage/migrate.h"

namespace custos::cli {

void register_migrate_command(CLI::App& op, Globals& g) {
  auto path = std::make_shared<std::string>();
  auto* m = op.add_subcommand(
      "migrate",
      "Copy the whole store of a stopped server to another backend (storage_source and "
      "storage_destination stanzas in -config, e.g. sqlite to etcd). Values are copied encrypted: "
      "the same unseal keys open the copy. The destination must be empty");
  m->add_option("--config", *path, "Migration configuration (HCL)")->required();
  m->callback([&g, path] {
    auto cfg = config::load_migration_config(*path);
    if (!cfg.ok()) {
      g.exit_code = fail(cfg.status());
      return;
    }
    // Both backends take their locks (SQLite's file lock, etcd's lease-bound lock): a server
    // still running on either makes this fail instead of copying a store that is changing.
    auto from = server::open_storage(cfg->source);
    if (!from.ok()) {
      g.exit_code = fail(from.status().with_context("opening storage_source"));
      return;
    }
    auto to = server::open_storage(cfg->destination);
    if (!to.ok()) {
      g.exit_code = fail(to.status().with_context("opening storage_destination"));
      return;
    }
    auto stats = storage::migrate(**from, **to, [](uint64_t keys) {
      std::fprintf(stderr, "copied %llu keys\n", static_cast<unsigned long long>(keys));
    });
    if (!stats.ok()) {
      g.exit_code = fail(stats.status().with_context("migration"));
      return;
    }
    std::printf(
        "Success! Migrated %llu keys (%llu bytes of values) from %s to %s, each read back "
        "and compared.\n",
        static_cast<unsigned long long>(stats->keys), static_cast<unsigned long long>(stats->bytes),
        std::string(config::storage_type_name(cfg->source.type)).c_str(),
        std::string(config::storage_type_name(cfg->destination.type)).c_str());
    g.exit_code = 0;
  });
}

}  // namespace custos::cli
