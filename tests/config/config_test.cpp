#include "config/config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

namespace custos::config {
namespace {

// A vault.conf as Vault's documentation writes it, with sqlite in place of raft.
constexpr std::string_view kVaultStyle = R"(ui            = true
cluster_addr  = "https://127.0.0.1:8201"
api_addr      = "https://127.0.0.1:8200"
disable_mlock = true

storage "sqlite" {
  path = "/opt/custos/data/custos.db"
}

listener "tcp" {
  address       = "127.0.0.1:8200"
  tls_cert_file = "/opt/custos/tls/full-chain.pem"
  tls_key_file  = "/opt/custos/tls/private-key.pem"
}

listener "tcp" {
  address         = "0.0.0.0:8300"
  cluster_address = "0.0.0.0:8301"
  tls_disable     = "true"
  max_request_size = 1048576
  max_request_duration = "30s"
}

default_lease_ttl = "1h"
max_lease_ttl     = "768h"
log_level         = "Warn"
)";

ServerConfig must_parse(std::string_view text) {
  auto r = parse_server_config(text);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? std::move(r).value() : ServerConfig{};
}

void expect_error(std::string_view text, std::string_view fragment) {
  auto r = parse_server_config(text);
  ASSERT_FALSE(r.ok()) << "parsed: " << text;
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find(fragment), std::string::npos) << r.status().message();
}

constexpr std::string_view kMinimal =
    "storage \"inmem\" {}\nlistener \"tcp\" {\n  tls_disable = true\n}\n";

TEST(Config, VaultStyleFileParsesUnchanged) {
  ServerConfig c = must_parse(kVaultStyle);
  EXPECT_TRUE(c.ui);
  EXPECT_TRUE(c.disable_mlock);
  EXPECT_EQ(c.api_addr, "https://127.0.0.1:8200");
  EXPECT_EQ(c.cluster_addr, "https://127.0.0.1:8201");
  EXPECT_EQ(c.storage.type, StorageType::kSqlite);
  EXPECT_EQ(storage_type_name(c.storage.type), "sqlite");
  EXPECT_EQ(c.storage.path, "/opt/custos/data/custos.db");
  EXPECT_EQ(c.storage.line, 6);
  ASSERT_EQ(c.listeners.size(), 2u);
  const ListenerConfig& a = c.listeners[0];
  EXPECT_EQ(a.address, "127.0.0.1:8200");
  EXPECT_FALSE(a.tls_disable);
  EXPECT_EQ(a.tls_cert_file, "/opt/custos/tls/full-chain.pem");
  EXPECT_EQ(a.tls_key_file, "/opt/custos/tls/private-key.pem");
  EXPECT_EQ(a.tls_min_version, TlsVersion::kTls12);
  EXPECT_EQ(a.max_request_size, 32 * 1024 * 1024);
  EXPECT_EQ(a.max_request_duration, Seconds(90));
  const ListenerConfig& b = c.listeners[1];
  EXPECT_TRUE(b.tls_disable);
  EXPECT_EQ(b.cluster_address, "0.0.0.0:8301");
  EXPECT_EQ(b.max_request_size, 1048576);
  EXPECT_EQ(b.max_request_duration, Seconds(30));
  EXPECT_EQ(b.line, 16);
  EXPECT_EQ(c.default_lease_ttl, Seconds(3600));
  EXPECT_EQ(c.max_lease_ttl, Seconds(768 * 3600));
  ASSERT_TRUE(c.log_level.has_value());
  EXPECT_EQ(*c.log_level, log::Level::kWarn);
}

TEST(Config, PhysicalCacheKeys) {
  ServerConfig c = must_parse(std::string(kMinimal) + "cache_size = 1000\ndisable_cache = true\n");
  EXPECT_EQ(c.cache_size, 1000);
  EXPECT_TRUE(c.disable_cache);
  auto bad = parse_server_config(std::string(kMinimal) + "cache_size = -1\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("cache_size"), std::string::npos);
}

TEST(Config, Defaults) {
  ServerConfig c = must_parse(kMinimal);
  EXPECT_EQ(c.cache_size, 131072);  // Vault's default
  EXPECT_FALSE(c.disable_cache);
  EXPECT_EQ(c.storage.type, StorageType::kInmem);
  EXPECT_FALSE(c.ui);
  EXPECT_FALSE(c.disable_mlock);
  EXPECT_EQ(c.default_lease_ttl, Seconds(768 * 3600));
  EXPECT_EQ(c.max_lease_ttl, Seconds(768 * 3600));
  EXPECT_FALSE(c.log_level.has_value());
  EXPECT_EQ(c.listeners[0].address, "127.0.0.1:8200");
}

TEST(Config, TlsSettings) {
  ServerConfig c = must_parse(R"(storage "inmem" {}
listener "tcp" {
  tls_cert_file = "c.pem"
  tls_key_file = "k.pem"
  tls_min_version = "tls13"
  tls_client_ca_file = "ca.pem"
  tls_disable = 0
}
)");
  EXPECT_EQ(c.listeners[0].tls_min_version, TlsVersion::kTls13);
  EXPECT_EQ(c.listeners[0].tls_client_ca_file, "ca.pem");
  EXPECT_FALSE(c.listeners[0].tls_disable);
}

TEST(Config, BooleanSpellings) {
  for (std::string_view t : {"true", "\"true\"", "\"1\"", "1", "\"T\""}) {
    std::string text = std::string(kMinimal) + "ui = " + std::string(t) + "\n";
    EXPECT_TRUE(must_parse(text).ui) << t;
  }
  for (std::string_view f : {"false", "\"false\"", "\"0\"", "0"}) {
    std::string text = std::string(kMinimal) + "ui = " + std::string(f) + "\n";
    EXPECT_FALSE(must_parse(text).ui) << f;
  }
  expect_error(std::string(kMinimal) + "ui = \"yes\"\n", "line 5: \"ui\" must be a boolean");
  expect_error(std::string(kMinimal) + "ui = 2\n", "must be a boolean");
}

TEST(Config, DurationsAndSizes) {
  ServerConfig c = must_parse(std::string(kMinimal) +
                              "default_lease_ttl = 600\nmax_lease_ttl = \"2h30m\"\n");
  EXPECT_EQ(c.default_lease_ttl, Seconds(600));
  EXPECT_EQ(c.max_lease_ttl, Seconds(9000));
  expect_error(std::string(kMinimal) + "default_lease_ttl = \"soon\"\n",
               "line 5: \"default_lease_ttl\" is not a duration");
  expect_error(std::string(kMinimal) + "max_lease_ttl = \"1h\"\n",
               "default_lease_ttl is greater than max_lease_ttl");
  expect_error(std::string(kMinimal) + "default_lease_ttl = 24h\n", "malformed number");
  ServerConfig unlimited = must_parse(
      "storage \"inmem\" {}\nlistener \"tcp\" {\n tls_disable = true\n max_request_size = -1\n}\n");
  EXPECT_EQ(unlimited.listeners[0].max_request_size, -1);
  expect_error("storage \"inmem\" {}\nlistener \"tcp\" {\n tls_disable = true\n"
               " max_request_size = \"big\"\n}\n",
               "line 4: \"max_request_size\" must be an integer");
}

TEST(Config, LogLevels) {
  for (auto [text, level] : std::initializer_list<std::pair<std::string_view, log::Level>>{
           {"trace", log::Level::kTrace},
           {"DEBUG", log::Level::kDebug},
           {"info", log::Level::kInfo},
           {"warning", log::Level::kWarn},
           {"err", log::Level::kError}}) {
    ServerConfig c =
        must_parse(std::string(kMinimal) + "log_level = \"" + std::string(text) + "\"\n");
    EXPECT_EQ(c.log_level, level) << text;
  }
  expect_error(std::string(kMinimal) + "log_level = \"loud\"\n", "line 5: log_level must be one of");
}

// Reject twins.
TEST(Config, UnknownStanzasAndKeysNameTheLine) {
  expect_error(std::string(kMinimal) + "\nha_storage \"etcd\" {\n}\n",
               "line 6: unknown stanza \"ha_storage\"");
  expect_error(std::string(kMinimal) + "service_registration \"consul\" {}\n",
               "line 5: unknown stanza \"service_registration\"");
  expect_error(std::string(kMinimal) + "cluster_name = \"x\"\n", "line 5: unknown key \"cluster_name\"");
  expect_error("storage \"inmem\" {}\nlistener \"tcp\" {\n  tls_disable = true\n  adress = \"x\"\n}\n",
               "line 4: unknown key \"adress\" in listener \"tcp\"");
  expect_error("storage \"sqlite\" {\n  path = \"/x\"\n  node_id = \"n1\"\n}\nlistener \"tcp\" {}\n",
               "line 3: unknown key \"node_id\" in storage \"sqlite\"");
  expect_error("storage \"inmem\" {\n  path = \"/x\"\n}\n", "line 2: unknown key \"path\" in storage \"inmem\"");
  expect_error("storage \"inmem\" {}\nlistener \"tcp\" {\n  tls_disable = true\n  profiling {}\n}\n",
               "line 4: unexpected block \"profiling\" inside \"listener\"");
  expect_error("storage = \"inmem\"\n", "line 1: \"storage\" is a stanza");
}

TEST(Config, UnknownBackendsNameTheAvailableOnes) {
  expect_error(
      "storage \"raft\" {\n  path = \"/opt/vault/data\"\n  node_id = \"node1\"\n}\n",
      "line 1: unknown storage backend \"raft\" (available: \"inmem\", \"sqlite\", \"etcd\")");
  expect_error("storage \"consul\" {}\n", "available: \"inmem\", \"sqlite\", \"etcd\"");
  expect_error("storage {}\n", "storage takes one label");
  expect_error("storage \"inmem\" {}\nlistener \"unix\" {}\n",
               "line 2: unknown listener type \"unix\" (available: \"tcp\")");
  expect_error("storage \"inmem\" {}\nlistener {}\n", "listener takes one label");
}

TEST(Config, EtcdStorageStanza) {
  const std::string listener = "listener \"tcp\" {\n  tls_disable = true\n}\n";
  ServerConfig d = must_parse("storage \"etcd\" {}\n" + listener);
  EXPECT_EQ(d.storage.type, StorageType::kEtcd);
  EXPECT_EQ(d.storage.etcd_endpoints, std::vector<std::string>{"http://127.0.0.1:2379"});
  EXPECT_EQ(d.storage.path, "/custos/");
  EXPECT_EQ(storage_type_name(d.storage.type), "etcd");

  // As Vault's etcd stanza is written, with our keys.
  ServerConfig c = must_parse(
      "storage \"etcd\" {\n"
      "  address = \"https://10.0.0.1:2379/, https://10.0.0.2:2379\"\n"
      "  path = \"/vault\"\n  etcd_api = \"v3\"\n  ha_enabled = \"false\"\n"
      "  username = \"custos\"\n  password = \"pw\"\n"
      "  tls_ca_file = \"/ca.pem\"\n  tls_cert_file = \"/c.pem\"\n  tls_key_file = \"/k.pem\"\n"
      "  request_timeout = \"5s\"\n  lock_timeout = \"30s\"\n  max_txn_ops = 256\n}\n" +
      listener);
  EXPECT_EQ(c.storage.etcd_endpoints,
            (std::vector<std::string>{"https://10.0.0.1:2379", "https://10.0.0.2:2379"}));
  EXPECT_EQ(c.storage.path, "/vault/");
  EXPECT_EQ(c.storage.etcd_username, "custos");
  EXPECT_EQ(c.storage.etcd_password, "pw");
  EXPECT_EQ(c.storage.etcd_tls_ca_file, "/ca.pem");
  EXPECT_EQ(c.storage.etcd_tls_key_file, "/k.pem");
  EXPECT_EQ(c.storage.etcd_request_timeout, 5);
  EXPECT_EQ(c.storage.etcd_lock_ttl, 30);
  EXPECT_EQ(c.storage.etcd_max_txn_ops, 256);

  EXPECT_FALSE(c.storage.ha_enabled);
  // High availability (docs/ha.md), with the CA a standby trusts when forwarding.
  ServerConfig ha = must_parse("storage \"etcd\" {\n  ha_enabled = \"true\"\n}\n" + listener +
                               "api_addr = \"https://a.example:8200\"\n"
                               "ha_tls_ca_file = \"/etc/custos/ca.pem\"\n");
  EXPECT_TRUE(ha.storage.ha_enabled);
  EXPECT_EQ(ha.api_addr, "https://a.example:8200");
  EXPECT_EQ(ha.ha_tls_ca_file, "/etc/custos/ca.pem");
  expect_error("storage \"etcd\" {\n  ha_enabled = \"maybe\"\n}\n" + listener, "line 2");
  expect_error("storage \"sqlite\" {\n  path = \"/x\"\n  ha_enabled = true\n}\n" + listener,
               "line 3");
  expect_error("storage \"etcd\" {\n  etcd_api = \"v2\"\n}\n" + listener, "only \"v3\"");
  expect_error("storage \"etcd\" {\n  sync = \"true\"\n}\n" + listener,
               "\"sync\" is not supported");
  expect_error("storage \"etcd\" {\n  address = \"10.0.0.1:2379\"\n}\n" + listener,
               "etcd client URLs");
  expect_error("storage \"etcd\" {\n  lock_timeout = \"0s\"\n}\n" + listener, "at least 1s");
  expect_error("storage \"etcd\" {\n  node_id = \"n\"\n}\n" + listener,
               "unknown key \"node_id\" in storage \"etcd\"");
  expect_error("storage \"etcd\" {\n  tls_ca_file = \"/ca.pem\"\n}\n" + listener,
               "tls_* settings need https:// addresses");
  expect_error("storage \"etcd\" {\n  address = \"https://u:p@h:2379\"\n}\n" + listener,
               "not in the URL");
  expect_error("storage \"etcd\" {\n  address = \"https://h:2379\"\n  tls_cert_file = \"/c\"\n}\n" +
                   listener,
               "go together");
}

TEST(Config, EtcdEnvironmentOverridesTheFile) {
  ServerConfig c = must_parse(
      "storage \"etcd\" {\n  address = \"http://10.0.0.1:2379\"\n  username = \"file\"\n}\n"
      "listener \"tcp\" {\n  tls_disable = true\n}\n");
  std::map<std::string, std::string> env{{"ETCD_ADDR", "http://a:2379,http://b:2379"},
                                         {"ETCD_USERNAME", "custos"},
                                         {"ETCD_PASSWORD", "from-env"}};
  auto getenv = [&](const char* n) -> const char* {
    auto it = env.find(n);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  ASSERT_TRUE(apply_storage_environment(c, getenv).ok());
  EXPECT_EQ(c.storage.etcd_endpoints, (std::vector<std::string>{"http://a:2379", "http://b:2379"}));
  EXPECT_EQ(c.storage.etcd_username, "custos");
  EXPECT_EQ(c.storage.etcd_password, "from-env");
  env["ETCD_ADDR"] = "a:2379";
  Status bad = apply_storage_environment(c, getenv);
  EXPECT_NE(bad.message().find("ETCD_ADDR: "), std::string::npos) << bad.message();
  // Other backends ignore them.
  ServerConfig other = must_parse(std::string(kMinimal));
  EXPECT_TRUE(apply_storage_environment(other, getenv).ok());
}

TEST(Config, MigrationFile) {
  auto m = parse_migration_config(
      "storage_source \"sqlite\" {\n  path = \"/var/lib/custos/custos.db\"\n}\n"
      "storage_destination \"etcd\" {\n  address = \"http://10.0.0.1:2379\"\n}\n");
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  EXPECT_EQ(m->source.type, StorageType::kSqlite);
  EXPECT_EQ(m->source.path, "/var/lib/custos/custos.db");
  EXPECT_EQ(m->destination.type, StorageType::kEtcd);
  EXPECT_EQ(m->destination.etcd_endpoints, std::vector<std::string>{"http://10.0.0.1:2379"});
  auto err = [](std::string_view text) {
    auto r = parse_migration_config(text);
    return r.ok() ? std::string() : r.status().message();
  };
  EXPECT_NE(err("storage_source \"sqlite\" {\n  path = \"/a\"\n}\n")
                .find("needs a storage_source and a storage_destination"),
            std::string::npos);
  EXPECT_NE(
      err("storage_source \"inmem\" {}\nstorage_destination \"sqlite\" {\n  path = \"/b\"\n}\n")
          .find("line 1: storage_source \"inmem\" holds nothing"),
      std::string::npos);
  EXPECT_NE(err("storage \"sqlite\" {\n  path = \"/a\"\n}\n").find("unknown stanza \"storage\""),
            std::string::npos);
  EXPECT_NE(err("cluster_addr = \"x\"\n").find("unknown key \"cluster_addr\""), std::string::npos);
  EXPECT_NE(err("storage_source \"raft\" {}\n").find("unknown storage backend \"raft\""),
            std::string::npos);
}

TEST(Config, StructuralRequirements) {
  expect_error("listener \"tcp\" { tls_disable = true }\n", "a storage stanza is required");
  expect_error("storage \"inmem\" {}\n", "at least one listener stanza is required");
  expect_error(std::string(kMinimal) + "storage \"inmem\" {}\n",
               "line 5: only one storage stanza is allowed (first on line 1)");
  expect_error(std::string(kMinimal) + "ui = true\nui = false\n",
               "line 6: \"ui\" is set twice (first on line 5)");
  expect_error("storage \"sqlite\" {}\nlistener \"tcp\" { tls_disable = true }\n",
               "line 1: storage \"sqlite\" needs a path");
  expect_error("storage \"sqlite\" { path = \"\" }\nlistener \"tcp\" { tls_disable = true }\n",
               "\"path\" must not be empty");
  expect_error("storage \"sqlite\" { path = 5 }\nlistener \"tcp\" { tls_disable = true }\n",
               "\"path\" must be a string, not a number");
}

TEST(Config, TlsRejects) {
  expect_error("storage \"inmem\" {}\nlistener \"tcp\" {\n  address = \"0.0.0.0:8200\"\n}\n",
               "line 2: listener \"tcp\" needs tls_cert_file and tls_key_file");
  expect_error("storage \"inmem\" {}\nlistener \"tcp\" {\n  tls_cert_file = \"c\"\n}\n",
               "needs tls_cert_file and tls_key_file");
  expect_error("storage \"inmem\" {}\nlistener \"tcp\" {\n  tls_cert_file = \"c\"\n"
               "  tls_key_file = \"k\"\n  tls_min_version = \"tls10\"\n}\n",
               "line 5: tls_min_version \"tls10\" is not supported");
  expect_error("storage \"inmem\" {}\nlistener \"tcp\" {\n  tls_cert_file = \"c\"\n"
               "  tls_key_file = \"k\"\n  tls_min_version = \"ssl3\"\n}\n",
               "tls_min_version must be");
  expect_error("storage \"inmem\" {}\nlistener \"tcp\" {\n  tls_disable = true\n"
               "  tls_client_ca_file = \"ca.pem\"\n}\n",
               "sets tls_client_ca_file but disables TLS");
}

TEST(Config, SyntaxErrorsCarryTheLine) {
  expect_error("storage \"inmem\" {}\nlistener \"tcp\" {\n  tls_disable = true\n", "line 4:");
  expect_error("ui = true\napi_addr = \"http://x\n", "line 2: string is not terminated");
}

TEST(Config, LoadFromFile) {
  auto dir = std::filesystem::temp_directory_path() /
             ("custos_config_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()));
  std::filesystem::create_directories(dir);
  auto good = dir / "vault.conf";
  {
    std::ofstream(good) << kVaultStyle;
  }
  auto c = load_server_config(good);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->listeners.size(), 2u);

  auto bad = dir / "bad.conf";
  {
    std::ofstream(bad) << "storage \"raft\" {}\n";
  }
  auto b = load_server_config(bad);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("bad.conf: line 1: unknown storage backend"),
            std::string::npos)
      << b.status().message();

  auto missing = load_server_config(dir / "missing.conf");
  EXPECT_EQ(missing.status().code(), Code::kNotFound);

  auto big = dir / "big.conf";
  {
    std::ofstream out(big);
    out << std::string(kMaxConfigFileSize + 1, '#');
  }
  auto too_big = load_server_config(big);
  ASSERT_FALSE(too_big.ok());
  EXPECT_NE(too_big.status().message().find("larger than"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(Config, SeedCorpusValidFilesParse) {
  const std::filesystem::path dir = std::filesystem::path(CUSTOS_SOURCE_DIR) / "fuzz/corpus/config";
  int good = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    bool bad = e.path().filename().string().starts_with("bad_");
    auto c = load_server_config(e.path());
    EXPECT_EQ(c.ok(), !bad) << e.path() << ": " << c.status().to_string();
    if (!bad) ++good;
  }
  EXPECT_GE(good, 3);
}

}  // namespace
}  // namespace custos::config

namespace custos::config {
namespace {

// Vault's telemetry stanza: accepted so a vault.conf starts; push sinks and the listener's
// unauthenticated access are refused with a reason, not ignored.
TEST(Config, TelemetryStanza) {
  const std::string base(kMinimal);
  EXPECT_TRUE(parse_server_config(base + "telemetry {\n  prometheus_retention_time = \"30s\"\n"
                                         "  disable_hostname = true\n}\n")
                  .ok());
  expect_error(base + "telemetry {\n  statsd_address = \"127.0.0.1:8125\"\n}\n",
               "line 6: \"statsd_address\": metrics sinks are not supported");
  expect_error(base + "telemetry {\n  colour = 1\n}\n", "unknown telemetry key \"colour\"");
  expect_error(base + "telemetry {}\ntelemetry {}\n", "only one telemetry stanza");
  expect_error(
      "storage \"inmem\" {}\nlistener \"tcp\" {\n  tls_disable = true\n"
      "  telemetry {\n    unauthenticated_metrics_access = true\n  }\n}\n",
      "line 4: listener telemetry (unauthenticated_metrics_access) is not supported");
}

TEST(Config, SealPkcs11Stanza) {
  ServerConfig c = must_parse(std::string(kMinimal) + R"(seal "pkcs11" {
  lib            = "/usr/lib/softhsm/libsofthsm2.so"
  slot           = "0x2000000000000001"
  pin            = "AAAA-BBBB-CCCC-DDDD"
  key_label      = "vault-hsm-key"
  hmac_key_label = "vault-hsm-hmac-key"
  mechanism      = "0x1087"
  generate_key   = "true"
}
)");
  ASSERT_TRUE(c.seal.has_value());
  EXPECT_EQ(c.seal->lib, "/usr/lib/softhsm/libsofthsm2.so");
  EXPECT_EQ(c.seal->slot, std::optional<uint64_t>(0x2000000000000001ULL));
  EXPECT_EQ(c.seal->pin.str(), "AAAA-BBBB-CCCC-DDDD");
  EXPECT_EQ(c.seal->key_label, "vault-hsm-key");
  EXPECT_TRUE(c.seal->generate_key);
  EXPECT_EQ(c.seal->line, 5);
  auto no_env = [](const char*) -> const char* { return nullptr; };
  EXPECT_TRUE(apply_seal_environment(c, no_env).ok());

  std::string base(kMinimal);
  expect_error(base + "seal \"awskms\" {}\n", "line 5: seal type \"awskms\" is not supported");
  expect_error(base + "seal \"pkcs11\" {\n  disabled = true\n}\n", "line 6: seal migration");
  expect_error(base + "seal \"pkcs11\" {\n  slot = \"zero\"\n}\n", "line 6: slot must be");
  expect_error(base + "seal \"pkcs11\" {\n  rsa_encrypt_local = true\n}\n",
               "not supported by Custos");
  expect_error(base + "seal \"pkcs11\" {\n  colour = 1\n}\n", "unknown key \"colour\" in seal");
  expect_error(base + "seal \"pkcs11\" {}\nseal \"pkcs11\" {}\n", "only one seal stanza");
  // A PIN of the wrong type is reported without its value.
  auto r = parse_server_config(base + "seal \"pkcs11\" {\n  pin = 987654\n}\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().find("987654"), std::string::npos) << r.status().message();
}

TEST(Config, SealEnvironmentOverridesAndRequirements) {
  std::map<std::string, std::string> env;
  auto getenv = [&](const char* n) -> const char* {
    auto it = env.find(n);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  // No stanza and no VAULT_SEAL_TYPE: Shamir.
  ServerConfig c = must_parse(kMinimal);
  ASSERT_TRUE(apply_seal_environment(c, getenv).ok());
  EXPECT_FALSE(c.seal.has_value());

  // The environment alone enables the seal, as in Vault.
  env = {{"VAULT_SEAL_TYPE", "pkcs11"},    {"VAULT_HSM_LIB", "/lib/p11.so"},
         {"VAULT_HSM_TOKEN_LABEL", "tok"}, {"VAULT_HSM_PIN", "1234"},
         {"VAULT_HSM_KEY_LABEL", "key"},   {"VAULT_HSM_GENERATE_KEY", "true"}};
  ASSERT_TRUE(apply_seal_environment(c, getenv).ok());
  ASSERT_TRUE(c.seal.has_value());
  EXPECT_EQ(c.seal->token_label, "tok");
  EXPECT_EQ(c.seal->pin.str(), "1234");
  EXPECT_TRUE(c.seal->generate_key);

  // VAULT_HSM_PIN overrides the file, which can then leave the PIN out.
  c = must_parse(std::string(kMinimal) +
                 "seal \"pkcs11\" {\n  lib = \"/l.so\"\n  slot = 3\n  key_label = \"k\"\n}\n");
  env = {};
  Status st = apply_seal_environment(c, getenv);
  EXPECT_EQ(st.message(), "line 5: seal \"pkcs11\" needs pin (or VAULT_HSM_PIN)");
  env = {{"VAULT_HSM_PIN", "from-env"}, {"VAULT_HSM_SLOT", "7"}};
  ASSERT_TRUE(apply_seal_environment(c, getenv).ok());
  EXPECT_EQ(c.seal->pin.str(), "from-env");
  EXPECT_EQ(c.seal->slot, std::optional<uint64_t>(7));

  ServerConfig d = must_parse(kMinimal);
  env = {{"VAULT_SEAL_TYPE", "awskms"}};
  EXPECT_NE(apply_seal_environment(d, getenv).message().find("not supported"), std::string::npos);
  env = {{"VAULT_SEAL_TYPE", "pkcs11"}, {"VAULT_HSM_LIB", "/l.so"}, {"VAULT_HSM_PIN", "1"}};
  EXPECT_NE(apply_seal_environment(d, getenv).message().find("needs slot or token_label"),
            std::string::npos);
}

}  // namespace
}  // namespace custos::config
