// `custos operator migrate -config FILE`: copies a stopped server's whole store to another
// backend (Vault's `vault operator migrate`). See docs/configuration.md, "Migrating storage".
#include "cli/migrate.h"

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "cli/output.h"
#include "server/server.h"
#include "storage/migrate.h"

namespace custos::cli {

namespace {

// Mistakes the copy itself cannot see: a SQLite source that does not exist (opening would make
// an empty one), and etcd prefixes inside one another on the same cluster (the copy and the
// destination's lock would land inside the source).
Status check_sides(const config::MigrationConfig& m) {
  if (m.source.type == config::StorageType::kSqlite && !std::filesystem::exists(m.source.path)) {
    return not_found("storage_source \"sqlite\": " + m.source.path + " does not exist");
  }
  if (m.source.type == config::StorageType::kEtcd &&
      m.destination.type == config::StorageType::kEtcd) {
    bool shared = false;
    for (const auto& a : m.source.etcd_endpoints) {
      for (const auto& b : m.destination.etcd_endpoints) shared = shared || a == b;
    }
    const std::string& s = m.source.path;
    const std::string& d = m.destination.path;
    if (shared && (s.rfind(d, 0) == 0 || d.rfind(s, 0) == 0)) {
      return invalid_argument(
          "storage_source and storage_destination use the same etcd with "
          "prefixes inside one another (" +
          s + ", " + d + ")");
    }
  }
  return ok_status();
}

}  // namespace

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
    if (Status st = check_sides(*cfg); !st.ok()) {
      g.exit_code = fail(st);
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
