#include "cli/commands.h"

#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "base/encoding.h"
#include "cli/client.h"
#include "cli/migrate.h"
#include "cli/output.h"
#include "cli/quorum.h"

namespace custos::cli {
namespace {

namespace json = boost::json;

// Output for commands that read data: json prints the whole response, table the data.
int output(const Globals& g, const json::value& body, const char* field = nullptr) {
  if (g.format == "json") {
    std::printf("%s\n", json::serialize(body).c_str());
    return 0;
  }
  if (!body.is_object()) return 0;
  const json::object& o = body.as_object();
  const json::value* data = o.if_contains("data");
  const json::value* auth = o.if_contains("auth");
  if (const json::value* wrap = o.if_contains("wrap_info"); wrap && wrap->is_object()) {
    // Vault's table for a wrapped response.
    const auto& w = wrap->as_object();
    json::object t;
    t["wrapping_token:"] = w.at("token");
    t["wrapping_accessor:"] = w.at("accessor");
    t["wrapping_token_ttl:"] = w.at("ttl");
    t["wrapping_token_creation_time:"] = w.at("creation_time");
    t["wrapping_token_creation_path:"] = w.at("creation_path");
    if (const auto* wa = w.if_contains("wrapped_accessor")) t["wrapped_accessor:"] = *wa;
    print_table(t);
    return 0;
  }
  if (auth && auth->is_object()) {
    json::object t;
    const auto& a = auth->as_object();
    t["token"] = a.at("client_token");
    t["token_accessor"] = a.at("accessor");
    t["token_duration"] = a.at("lease_duration");
    t["token_renewable"] = a.at("renewable");
    t["token_policies"] = a.at("policies");
    print_table(t);
    return 0;
  }
  if (data && data->is_object()) {
    const auto& d = data->as_object();
    if (field) {
      const auto* f = d.if_contains(field);
      if (!f) {
        std::fprintf(stderr, "Field \"%s\" not present in secret\n", field);
        return 1;
      }
      std::printf("%s\n", scalar(*f).c_str());
      return 0;
    }
    if (d.size() == 1 && d.contains("keys") && d.at("keys").is_array()) {
      std::printf("Keys\n----\n");
      for (const auto& k : d.at("keys").as_array()) std::printf("%s\n", scalar(k).c_str());
      return 0;
    }
    print_table(d);
    return 0;
  }
  print_table(o);
  return 0;
}

// k=v arguments: v may be @file (contents) or - (stdin).
Result<json::object> parse_kv_args(const std::vector<std::string>& args) {
  json::object out;
  for (const auto& a : args) {
    size_t eq = a.find('=');
    if (eq == std::string::npos || eq == 0) {
      return invalid_argument("invalid argument \"" + a + "\": expected key=value");
    }
    std::string key = a.substr(0, eq);
    std::string val = a.substr(eq + 1);
    if (val == "-") {
      std::stringstream ss;
      ss << std::cin.rdbuf();
      val = ss.str();
    } else if (!val.empty() && val[0] == '@') {
      std::ifstream in(val.substr(1), std::ios::binary);
      if (!in) return invalid_argument("cannot read " + val.substr(1));
      std::stringstream ss;
      ss << in.rdbuf();
      val = ss.str();
    }
    out[key] = val;
  }
  return out;
}

// kv helpers: find the mount and its version via sys/internal/ui/mounts/<path>.
struct KvPath {
  std::string mount;  // "secret/"
  std::string rel;    // "app/db"
  int version = 1;
};

Result<KvPath> resolve_kv(Client& c, const std::string& mount_flag, const std::string& path) {
  std::string full = mount_flag.empty() ? path : mount_flag + "/" + path;
  while (!full.empty() && full.front() == '/') full.erase(0, 1);
  ASSIGN_OR_RETURN(ApiReply r, c.call("GET", "sys/internal/ui/mounts/" + full));
  const auto& d = r.body.as_object().at("data").as_object();
  KvPath kp;
  kp.mount = std::string(d.at("path").as_string());
  kp.rel = full.size() >= kp.mount.size() ? full.substr(kp.mount.size()) : "";
  if (const auto* o = d.if_contains("options"); o && o->is_object()) {
    if (const auto* v = o->as_object().if_contains("version"); v && v->is_string() && v->as_string() == "2") {
      kp.version = 2;
    }
  }
  return kp;
}

std::string versions_csv_to_json(const std::string& csv, json::array& out) {
  std::stringstream ss(csv);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.emplace_back(std::stoll(item));
  }
  return {};
}

}  // namespace

void register_client_commands(CLI::App& app, Globals& g) {
  auto call = [&g](auto fn) {
    return [&g, fn]() {
      try {
        Client c;
        if (!g.wrap_ttl.empty()) c.set_wrap_ttl(g.wrap_ttl);
        g.exit_code = fn(c);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        g.exit_code = 2;
      }
    };
  };

  // status
  app.add_subcommand("status", "Print the seal status (exit 0 unsealed, 2 sealed, 1 error)")
      ->callback(call([&g](Client& c) {
        auto r = c.call_any("GET", "sys/seal-status");
        if (!r.ok()) {
          std::fprintf(stderr, "Error checking seal status: %s\n", r.status().message().c_str());
          return 1;
        }
        const auto& o = r->body.as_object();
        if (g.format == "json") {
          std::printf("%s\n", json::serialize(r->body).c_str());
        } else {
          json::object t{{"Seal Type", o.at("type")},          {"Initialized", o.at("initialized")},
                         {"Sealed", o.at("sealed")},           {"Total Shares", o.at("n")},
                         {"Threshold", o.at("t")},             {"Unseal Progress", o.at("progress")},
                         {"Version", o.at("version")},         {"Storage Type", o.at("storage_type")},
                         {"HA Enabled", false}};
          if (const auto* rst = o.if_contains("recovery_seal_type")) t["Recovery Seal Type"] = *rst;
          // As `vault status`: with HA (docs/ha.md), this server's mode and the active one.
          if (!o.at("sealed").as_bool()) {
            auto l = c.call_any("GET", "sys/leader");
            const json::object* lo = l.ok() && l->body.is_object() ? &l->body.as_object() : nullptr;
            const auto* ha = lo ? lo->if_contains("ha_enabled") : nullptr;
            if (ha && ha->is_bool() && ha->as_bool()) {
              t["HA Enabled"] = true;
              const auto* self = lo->if_contains("is_self");
              const bool active = self && self->is_bool() && self->as_bool();
              t["HA Mode"] = active ? "active" : "standby";
              if (const auto* a = lo->if_contains("leader_address")) t["Active Node Address"] = *a;
              if (const auto* at = lo->if_contains("active_time"); active && at) {
                t["Active Since"] = *at;
              }
            }
          }
          print_table(t);
        }
        return o.at("sealed").as_bool() ? 2 : 0;
      }));

  // operator
  auto* op = app.add_subcommand(
      "operator",
      "Init, unseal, seal, step-down, rotate, key-status, generate-root, rekey, migrate");
  op->require_subcommand(1);
  auto* init = op->add_subcommand(
      "init",
      "Initialize the server: Shamir unseal key shares, or recovery key shares when the "
      "server has an auto-unseal seal (HSM)");
  static int shares = 5, threshold = 3, recovery_shares = 5, recovery_threshold = 3;
  init->add_option("--key-shares", shares, "Number of key shares")->default_val(5);
  init->add_option("--key-threshold", threshold, "Shares needed to unseal")->default_val(3);
  init->add_option("--recovery-shares", recovery_shares,
                   "Number of recovery key shares (auto seal)")
      ->default_val(5);
  init->add_option("--recovery-threshold", recovery_threshold,
                   "Recovery shares needed to authorise an unseal (auto seal)")
      ->default_val(3);
  init->callback(call([&g](Client& c) {
    // As the vault CLI does: an auto-sealed server takes recovery shares instead of key shares.
    auto st = c.call_any("GET", "sys/seal-status");
    if (!st.ok()) return fail(st.status());
    const auto* rs =
        st->body.is_object() ? st->body.as_object().if_contains("recovery_seal") : nullptr;
    bool recovery = rs && rs->is_bool() && rs->as_bool();
    json::value body =
        recovery ? json::object{{"recovery_shares", recovery_shares},
                                {"recovery_threshold", recovery_threshold}}
                 : json::object{{"secret_shares", shares}, {"secret_threshold", threshold}};
    auto r = c.call("PUT", "sys/init", &body);
    if (!r.ok()) return fail(r.status());
    if (g.format == "json") {
      std::printf("%s\n", json::serialize(r->body).c_str());
      return 0;
    }
    const auto& o = r->body.as_object();
    int i = 1;
    for (const auto& k : o.at(recovery ? "recovery_keys_base64" : "keys_base64").as_array()) {
      std::printf("%s Key %d: %s\n", recovery ? "Recovery" : "Unseal", i++,
                  std::string(k.as_string()).c_str());
    }
    std::printf("\nInitial Root Token: %s\n\n",
                std::string(o.at("root_token").as_string()).c_str());
    if (recovery) {
      std::printf(
          "Success! Vault is initialized\n\nRecovery key initialized with %d key shares and a "
          "key threshold of %d.\n",
          recovery_shares, recovery_threshold);
    } else {
      std::printf("Vault initialized with %d key shares and a key threshold of %d.\n", shares,
                  threshold);
    }
    return 0;
  }));
  static std::string unseal_key;
  static bool unseal_reset = false;
  auto* unseal = op->add_subcommand("unseal", "Submit one unseal key share (prompts if omitted)");
  unseal->add_option("key", unseal_key, "Unseal key share (hex or base64)");
  unseal->add_flag("--reset", unseal_reset, "Discard the shares submitted so far");
  unseal->callback(call([&g](Client& c) {
    if (unseal_key.empty() && !unseal_reset) unseal_key = read_stdin_line("Unseal Key (will be hidden): ");
    json::value body = unseal_reset ? json::object{{"reset", true}} : json::object{{"key", unseal_key}};
    auto r = c.call("PUT", "sys/unseal", &body);
    if (!r.ok()) return fail(r.status());
    const auto& o = r->body.as_object();
    if (g.format == "json") {
      std::printf("%s\n", json::serialize(r->body).c_str());
    } else {
      print_table(json::object{{"Sealed", o.at("sealed")},
                               {"Unseal Progress", json::serialize(o.at("progress")) + "/" + json::serialize(o.at("t"))},
                               {"Total Shares", o.at("n")},
                               {"Threshold", o.at("t")}});
    }
    return 0;
  }));
  register_quorum_commands(*op, g);
  register_migrate_command(*op, g);
  op->add_subcommand("seal", "Seal the server")->callback(call([](Client& c) {
    auto r = c.call("PUT", "sys/seal");
    if (!r.ok()) return fail(r.status());
    std::printf("Success! Vault is sealed.\n");
    return 0;
  }));
  op->add_subcommand("step-down",
                     "HA (docs/ha.md): the active server gives its lock up so that a standby "
                     "takes over (sent to a standby, it reaches the active server)")
      ->callback(call([](Client& c) {
        auto r = c.call("PUT", "sys/step-down");
        if (!r.ok()) return fail(r.status());
        std::printf("Success! Stepped down: %s\n", "the active server gave up its lock");
        return 0;
      }));
  op->add_subcommand("rotate", "Add a new encryption key term to the keyring")->callback(call([](Client& c) {
    auto r = c.call("PUT", "sys/rotate");
    if (!r.ok()) return fail(r.status());
    auto ks = c.call("GET", "sys/key-status");
    if (!ks.ok()) return fail(ks.status());
    std::printf("Success! Rotated key\n\nKey Term        %s\n",
                json::serialize(ks->body.as_object().at("term")).c_str());
    return 0;
  }));
  op->add_subcommand("key-status", "Show the active keyring term")->callback(call([&g](Client& c) {
    auto r = c.call("GET", "sys/key-status");
    if (!r.ok()) return fail(r.status());
    return output(g, r->body);
  }));

  // Generic read/write/delete/list.
  static std::string gpath;
  static std::vector<std::string> gargs;
  static std::string gfield;
  auto* rd = app.add_subcommand("read", "Read data at a path");
  rd->add_option("path", gpath)->required();
  rd->add_option("--field", gfield, "Print only this field");
  rd->callback(call([&g](Client& c) {
    auto r = c.call("GET", gpath);
    if (!r.ok()) return fail(r.status());
    return output(g, r->body, gfield.empty() ? nullptr : gfield.c_str());
  }));
  auto* wr = app.add_subcommand("write", "Write data (key=value ...) to a path");
  wr->add_option("path", gpath)->required();
  wr->add_option("data", gargs, "key=value pairs (value @file or - for stdin)");
  wr->add_option("--field", gfield, "Print only this field of the response");
  wr->callback(call([&g](Client& c) {
    auto body = parse_kv_args(gargs);
    if (!body.ok()) return fail(body.status());
    json::value b = *body;
    auto r = c.call("PUT", gpath, &b);
    if (!r.ok()) return fail(r.status());
    if (r->status == 204 || r->body.is_null()) {
      std::printf("Success! Data written to: %s\n", gpath.c_str());
      return 0;
    }
    return output(g, r->body, gfield.empty() ? nullptr : gfield.c_str());
  }));
  auto* del = app.add_subcommand("delete", "Delete data at a path");
  del->add_option("path", gpath)->required();
  del->callback(call([](Client& c) {
    auto r = c.call("DELETE", gpath);
    if (!r.ok()) return fail(r.status());
    std::printf("Success! Data deleted (if it existed) at: %s\n", gpath.c_str());
    return 0;
  }));
  auto* ls = app.add_subcommand("list", "List keys under a path");
  ls->add_option("path", gpath)->required();
  ls->callback(call([&g](Client& c) {
    auto r = c.call("LIST", gpath);
    if (!r.ok()) return fail(r.status());
    return output(g, r->body);
  }));

  // kv
  auto* kv = app.add_subcommand("kv", "Key/value secrets (v1 and v2, detected per mount)");
  kv->require_subcommand(1);
  static std::string kv_mount;
  static int64_t kv_version = 0;
  static std::string kv_versions;
  static int64_t kv_cas = -1;
  kv->add_option("--mount", kv_mount, "Mount path (otherwise the first path segment)");
  auto kv_cmd = [&](const char* name, const char* help, auto fn) {
    auto* s = kv->add_subcommand(name, help);
    s->add_option("path", gpath)->required();
    s->add_option("--mount", kv_mount, "Mount path");
    s->callback(call([fn](Client& c) {
      auto kp = resolve_kv(c, kv_mount, gpath);
      if (!kp.ok()) return fail(kp.status());
      return fn(c, *kp);
    }));
    return s;
  };
  auto* kvput = kv_cmd("put", "Write a secret (replaces it; v2 adds a version)", [&g](Client& c, const KvPath& kp) {
    auto data = parse_kv_args(gargs);
    if (!data.ok()) return fail(data.status());
    json::value body = *data;
    std::string path = kp.mount + kp.rel;
    if (kp.version == 2) {
      json::object b{{"data", *data}};
      if (kv_cas >= 0) b["options"] = json::object{{"cas", kv_cas}};
      body = b;
      path = kp.mount + "data/" + kp.rel;
    }
    auto r = c.call("PUT", path, &body);
    if (!r.ok()) return fail(r.status());
    if (r->body.is_null()) {
      std::printf("Success! Data written to: %s\n", path.c_str());
      return 0;
    }
    return output(g, r->body);
  });
  kvput->add_option("data", gargs, "key=value pairs");
  kvput->add_option("--cas", kv_cas, "Check-and-set version (v2)");
  auto* kvpatch = kv_cmd("patch", "Merge key=value pairs into the latest version (v2)", [&g](Client& c, const KvPath& kp) {
    if (kp.version != 2) return fail(invalid_argument("kv patch needs a kv version 2 mount"));
    auto data = parse_kv_args(gargs);
    if (!data.ok()) return fail(data.status());
    json::value body = json::object{{"data", *data}};
    auto r = c.call("PATCH", kp.mount + "data/" + kp.rel, &body);
    if (!r.ok()) return fail(r.status());
    return output(g, r->body);
  });
  kvpatch->add_option("data", gargs, "key=value pairs");
  auto* kvget = kv_cmd("get", "Read a secret", [&g](Client& c, const KvPath& kp) {
    std::string path = kp.version == 2 ? kp.mount + "data/" + kp.rel : kp.mount + kp.rel;
    if (kp.version == 2 && kv_version > 0) path += "?version=" + std::to_string(kv_version);
    auto r = c.call("GET", path);
    if (!r.ok()) {
      if (r.status().code() == Code::kNotFound) {
        std::fprintf(stderr, "No value found at %s\n", path.c_str());
        return 2;
      }
      return fail(r.status());
    }
    json::value body = r->body;
    if (kp.version == 2 && g.format != "json") {
      json::object d = body.as_object().at("data").as_object().at("data").as_object();
      body = json::object{{"data", d}};
    }
    return output(g, body, gfield.empty() ? nullptr : gfield.c_str());
  });
  kvget->add_option("--version", kv_version, "Version to read (v2)");
  kvget->add_option("--field", gfield, "Print only this field");
  auto* kvdel = kv_cmd("delete", "Delete a secret (v2: soft-delete the latest or -versions)", [](Client& c, const KvPath& kp) {
    Result<ApiReply> r = invalid_argument("");
    if (kp.version == 2 && !kv_versions.empty()) {
      json::array v;
      versions_csv_to_json(kv_versions, v);
      json::value body = json::object{{"versions", v}};
      r = c.call("PUT", kp.mount + "delete/" + kp.rel, &body);
    } else {
      r = c.call("DELETE", kp.version == 2 ? kp.mount + "data/" + kp.rel : kp.mount + kp.rel);
    }
    if (!r.ok()) return fail(r.status());
    std::printf("Success! Data deleted (if it existed) at: %s%s\n", kp.mount.c_str(), kp.rel.c_str());
    return 0;
  });
  kvdel->add_option("--versions", kv_versions, "Comma-separated versions (v2)");
  auto versions_cmd = [&](const char* name, const char* help, const char* endpoint) {
    auto* s = kv_cmd(name, help, [endpoint](Client& c, const KvPath& kp) {
      if (kp.version != 2) return fail(invalid_argument(std::string("kv ") + endpoint + " needs a kv version 2 mount"));
      json::array v;
      versions_csv_to_json(kv_versions, v);
      if (v.empty()) return fail(invalid_argument("-versions is required"));
      json::value body = json::object{{"versions", v}};
      auto r = c.call("PUT", kp.mount + endpoint + "/" + kp.rel, &body);
      if (!r.ok()) return fail(r.status());
      std::printf("Success! Data written to: %s%s/%s\n", kp.mount.c_str(), endpoint, kp.rel.c_str());
      return 0;
    });
    s->add_option("--versions", kv_versions, "Comma-separated versions")->required();
  };
  versions_cmd("undelete", "Undelete versions (v2)", "undelete");
  versions_cmd("destroy", "Permanently destroy versions (v2)", "destroy");
  kv_cmd("list", "List secrets", [&g](Client& c, const KvPath& kp) {
    std::string path = kp.version == 2 ? kp.mount + "metadata/" + kp.rel : kp.mount + kp.rel;
    auto r = c.call("LIST", path);
    if (!r.ok()) return fail(r.status());
    return output(g, r->body);
  });
  auto* meta = kv->add_subcommand("metadata", "Secret metadata (v2)");
  meta->require_subcommand(1);
  auto* mget = meta->add_subcommand("get", "Read a secret's metadata");
  mget->add_option("path", gpath)->required();
  mget->add_option("--mount", kv_mount, "Mount path");
  mget->callback(call([&g](Client& c) {
    auto kp = resolve_kv(c, kv_mount, gpath);
    if (!kp.ok()) return fail(kp.status());
    auto r = c.call("GET", kp->mount + "metadata/" + kp->rel);
    if (!r.ok()) return fail(r.status());
    return output(g, r->body);
  }));

  // secrets
  auto* sec = app.add_subcommand("secrets", "Enable, disable and list secrets engines");
  sec->require_subcommand(1);
  static std::string s_path, s_desc, s_type;
  static int s_version = 0;
  auto* en = sec->add_subcommand("enable", "Enable a secrets engine (kv, kv-v2, transit)");
  en->add_option("type", s_type)->required();
  en->add_option("--path", s_path, "Mount path (default: the type)");
  en->add_option("--description", s_desc);
  en->add_option("--version", s_version, "kv version");
  en->callback(call([](Client& c) {
    json::object body{{"type", s_type}, {"description", s_desc}};
    if (s_version > 0) body["options"] = json::object{{"version", std::to_string(s_version)}};
    std::string path = s_path.empty() ? s_type : s_path;
    json::value b = body;
    auto r = c.call("POST", "sys/mounts/" + path, &b);
    if (!r.ok()) return fail(r.status());
    std::printf("Success! Enabled the %s secrets engine at: %s/\n", s_type.c_str(), path.c_str());
    return 0;
  }));
  auto* dis = sec->add_subcommand("disable", "Disable a secrets engine (deletes its data)");
  dis->add_option("path", s_path)->required();
  dis->callback(call([](Client& c) {
    auto r = c.call("DELETE", "sys/mounts/" + s_path);
    if (!r.ok()) return fail(r.status());
    std::printf("Success! Disabled the secrets engine (if it existed) at: %s/\n", s_path.c_str());
    return 0;
  }));
  sec->add_subcommand("list", "List secrets engines")->callback(call([&g](Client& c) {
    auto r = c.call("GET", "sys/mounts");
    if (!r.ok()) return fail(r.status());
    if (g.format == "json") return output(g, r->body);
    std::printf("%-20s %-12s %-20s %s\n", "Path", "Type", "Accessor", "Description");
    std::printf("%-20s %-12s %-20s %s\n", "----", "----", "--------", "-----------");
    for (const auto& [k, v] : r->body.as_object().at("data").as_object()) {
      const auto& o = v.as_object();
      std::printf("%-20s %-12s %-20s %s\n", std::string(k).c_str(), scalar(o.at("type")).c_str(),
                  scalar(o.at("accessor")).c_str(), scalar(o.at("description")).c_str());
    }
    return 0;
  }));

  // policy
  auto* pol = app.add_subcommand("policy", "Write, read, list and delete ACL policies");
  pol->require_subcommand(1);
  static std::string p_name, p_file;
  auto* pw = pol->add_subcommand("write", "Write a policy from a file (or - for stdin)");
  pw->add_option("name", p_name)->required();
  pw->add_option("file", p_file)->required();
  pw->callback(call([](Client& c) {
    std::stringstream ss;
    if (p_file == "-") {
      ss << std::cin.rdbuf();
    } else {
      std::ifstream in(p_file);
      if (!in) return fail(invalid_argument("cannot read " + p_file));
      ss << in.rdbuf();
    }
    json::value body = json::object{{"policy", ss.str()}};
    auto r = c.call("PUT", "sys/policies/acl/" + p_name, &body);
    if (!r.ok()) return fail(r.status());
    std::printf("Success! Uploaded policy: %s\n", p_name.c_str());
    return 0;
  }));
  auto* pr = pol->add_subcommand("read", "Print a policy");
  pr->add_option("name", p_name)->required();
  pr->callback(call([&g](Client& c) {
    auto r = c.call("GET", "sys/policies/acl/" + p_name);
    if (!r.ok()) return fail(r.status());
    if (g.format == "json") return output(g, r->body);
    std::printf("%s\n", scalar(r->body.as_object().at("data").as_object().at("policy")).c_str());
    return 0;
  }));
  pol->add_subcommand("list", "List policies")->callback(call([&g](Client& c) {
    auto r = c.call("LIST", "sys/policies/acl");
    if (!r.ok()) return fail(r.status());
    if (g.format == "json") return output(g, r->body);
    for (const auto& k : r->body.as_object().at("data").as_object().at("keys").as_array()) {
      std::printf("%s\n", scalar(k).c_str());
    }
    return 0;
  }));
  auto* pd = pol->add_subcommand("delete", "Delete a policy");
  pd->add_option("name", p_name)->required();
  pd->callback(call([](Client& c) {
    auto r = c.call("DELETE", "sys/policies/acl/" + p_name);
    if (!r.ok()) return fail(r.status());
    std::printf("Success! Deleted policy: %s\n", p_name.c_str());
    return 0;
  }));

  // unwrap, as `vault unwrap`: a token given while another is in use is sent in the body;
  // otherwise the wrapping token is the client token.
  static std::string u_token;
  auto* uw = app.add_subcommand("unwrap", "Unwrap a wrapped response (default: the current token)");
  uw->add_option("token", u_token, "The wrapping token");
  uw->add_option("--field", gfield, "Print only this field of the unwrapped data");
  uw->callback(call([&g](Client& c) {
    Result<ApiReply> r = invalid_argument("");
    if (!u_token.empty() && !c.token().empty() && u_token != c.token()) {
      json::value b = json::object{{"token", u_token}};
      r = c.call("POST", "sys/wrapping/unwrap", &b);
    } else {
      if (!u_token.empty()) c.set_token(u_token);
      r = c.call("POST", "sys/wrapping/unwrap");
    }
    if (!r.ok()) return fail(r.status());
    return output(g, r->body, gfield.empty() ? nullptr : gfield.c_str());
  }));

  // token
  auto* tok = app.add_subcommand("token", "Create, look up, renew and revoke tokens");
  tok->require_subcommand(1);
  static std::vector<std::string> t_policies;
  static std::string t_ttl, t_period, t_display, t_type, t_increment, t_token, t_role;
  static bool t_orphan = false, t_accessor = false, t_self = false;
  static int64_t t_uses = 0;
  auto* tc = tok->add_subcommand("create", "Create a token");
  tc->add_option("--policy", t_policies, "Policy (repeatable)");
  tc->add_option("--ttl", t_ttl);
  tc->add_option("--period", t_period);
  tc->add_option("--display-name", t_display);
  tc->add_option("--type", t_type, "service or batch");
  tc->add_option("--use-limit", t_uses);
  tc->add_flag("--orphan", t_orphan);
  tc->add_option("--role", t_role, "Create against this token role (auth/token/roles/NAME)");
  tc->callback(call([&g](Client& c) {
    json::object body;
    json::array p;
    for (const auto& x : t_policies) p.emplace_back(x);
    if (!p.empty()) body["policies"] = p;
    if (!t_ttl.empty()) body["ttl"] = t_ttl;
    if (!t_period.empty()) body["period"] = t_period;
    if (!t_display.empty()) body["display_name"] = t_display;
    if (!t_type.empty()) body["type"] = t_type;
    if (t_uses > 0) body["num_uses"] = t_uses;
    json::value b = body;
    if (!t_role.empty() && t_orphan) {
      return fail(invalid_argument("--orphan and --role do not combine: the role decides"));
    }
    const std::string path = !t_role.empty() ? "auth/token/create/" + t_role
                             : t_orphan      ? "auth/token/create-orphan"
                                             : "auth/token/create";
    auto r = c.call("POST", path, &b);
    if (!r.ok()) return fail(r.status());
    return output(g, r->body);
  }));
  auto* tl = tok->add_subcommand("lookup", "Look up a token (default: the current one)");
  tl->add_option("token", t_token);
  tl->add_flag("--accessor", t_accessor, "The argument is an accessor");
  tl->callback(call([&g](Client& c) {
    Result<ApiReply> r = invalid_argument("");
    if (t_token.empty()) {
      r = c.call("GET", "auth/token/lookup-self");
    } else if (t_accessor) {
      json::value b = json::object{{"accessor", t_token}};
      r = c.call("POST", "auth/token/lookup-accessor", &b);
    } else {
      json::value b = json::object{{"token", t_token}};
      r = c.call("POST", "auth/token/lookup", &b);
    }
    if (!r.ok()) return fail(r.status());
    return output(g, r->body);
  }));
  auto* tr = tok->add_subcommand("renew", "Renew a token (default: the current one)");
  tr->add_option("token", t_token);
  tr->add_option("--increment", t_increment);
  tr->callback(call([&g](Client& c) {
    json::object body;
    if (!t_increment.empty()) body["increment"] = t_increment;
    Result<ApiReply> r = invalid_argument("");
    if (t_token.empty()) {
      json::value b = body;
      r = c.call("POST", "auth/token/renew-self", &b);
    } else {
      body["token"] = t_token;
      json::value b = body;
      r = c.call("POST", "auth/token/renew", &b);
    }
    if (!r.ok()) return fail(r.status());
    return output(g, r->body);
  }));
  auto* tv = tok->add_subcommand("revoke", "Revoke a token and its children");
  tv->add_option("token", t_token);
  tv->add_flag("--accessor", t_accessor);
  tv->add_flag("--self", t_self);
  tv->callback(call([](Client& c) {
    Result<ApiReply> r = invalid_argument("");
    if (t_self) {
      r = c.call("POST", "auth/token/revoke-self");
    } else if (t_token.empty()) {
      return fail(invalid_argument("a token (or -self) is required"));
    } else if (t_accessor) {
      json::value b = json::object{{"accessor", t_token}};
      r = c.call("POST", "auth/token/revoke-accessor", &b);
    } else {
      json::value b = json::object{{"token", t_token}};
      r = c.call("POST", "auth/token/revoke", &b);
    }
    if (!r.ok()) return fail(r.status());
    std::printf("Success! Revoked token (if it existed)\n");
    return 0;
  }));

  // audit
  auto* aud = app.add_subcommand("audit", "Enable, list and disable audit devices");
  aud->require_subcommand(1);
  static std::string a_type, a_path, a_desc;
  static std::vector<std::string> a_opts;
  auto* ae = aud->add_subcommand("enable", "Enable an audit device: audit enable file file_path=PATH");
  ae->add_option("type", a_type)->required();
  ae->add_option("options", a_opts, "key=value device options");
  ae->add_option("--path", a_path);
  ae->add_option("--description", a_desc);
  ae->callback(call([](Client& c) {
    auto opts = parse_kv_args(a_opts);
    if (!opts.ok()) return fail(opts.status());
    json::value body = json::object{{"type", a_type}, {"description", a_desc}, {"options", *opts}};
    std::string path = a_path.empty() ? a_type : a_path;
    auto r = c.call("PUT", "sys/audit/" + path, &body);
    if (!r.ok()) return fail(r.status());
    std::printf("Success! Enabled the %s audit device at: %s/\n", a_type.c_str(), path.c_str());
    return 0;
  }));
  aud->add_subcommand("list", "List audit devices")->callback(call([&g](Client& c) {
    auto r = c.call("GET", "sys/audit");
    if (!r.ok()) return fail(r.status());
    if (g.format == "json") return output(g, r->body);
    std::printf("%-16s %-8s %s\n", "Path", "Type", "Description");
    for (const auto& [k, v] : r->body.as_object().at("data").as_object()) {
      std::printf("%-16s %-8s %s\n", std::string(k).c_str(), scalar(v.as_object().at("type")).c_str(),
                  scalar(v.as_object().at("description")).c_str());
    }
    return 0;
  }));
  auto* ad = aud->add_subcommand("disable", "Disable an audit device");
  ad->add_option("path", a_path)->required();
  ad->callback(call([](Client& c) {
    auto r = c.call("DELETE", "sys/audit/" + a_path);
    if (!r.ok()) return fail(r.status());
    std::printf("Success! Disabled audit device (if it was enabled) at: %s/\n", a_path.c_str());
    return 0;
  }));

  // transit convenience
  auto* tr_ = app.add_subcommand("transit", "Transit convenience: create, encrypt, decrypt");
  tr_->require_subcommand(1);
  static std::string tk, tdata, tmount = "transit";
  auto* tcr = tr_->add_subcommand("create", "Create a transit key");
  tcr->add_option("key", tk)->required();
  tcr->add_option("--type", t_type, "Key type (aes256-gcm96, ed25519, ...)");
  tcr->add_option("--mount", tmount);
  tcr->callback(call([](Client& c) {
    json::value b = json::object{{"type", t_type.empty() ? "aes256-gcm96" : t_type}};
    auto r = c.call("POST", tmount + "/keys/" + tk, &b);
    if (!r.ok()) return fail(r.status());
    std::printf("Success! Created key %s\n", tk.c_str());
    return 0;
  }));
  auto* tenc = tr_->add_subcommand("encrypt", "Encrypt plaintext (text, or - for stdin)");
  tenc->add_option("key", tk)->required();
  tenc->add_option("plaintext", tdata)->required();
  tenc->add_option("--mount", tmount);
  tenc->callback(call([&g](Client& c) {
    std::string pt = tdata;
    if (pt == "-") {
      std::stringstream ss;
      ss << std::cin.rdbuf();
      pt = ss.str();
    }
    json::value b = json::object{{"plaintext", base64_encode(as_bytes(pt))}};
    auto r = c.call("POST", tmount + "/encrypt/" + tk, &b);
    if (!r.ok()) return fail(r.status());
    if (g.format == "json") return output(g, r->body);
    std::printf("%s\n", scalar(r->body.as_object().at("data").as_object().at("ciphertext")).c_str());
    return 0;
  }));
  auto* tdec = tr_->add_subcommand("decrypt", "Decrypt a vault:vN: ciphertext");
  tdec->add_option("key", tk)->required();
  tdec->add_option("ciphertext", tdata)->required();
  tdec->add_option("--mount", tmount);
  tdec->callback(call([&g](Client& c) {
    json::value b = json::object{{"ciphertext", tdata}};
    auto r = c.call("POST", tmount + "/decrypt/" + tk, &b);
    if (!r.ok()) return fail(r.status());
    if (g.format == "json") return output(g, r->body);
    auto pt = base64_decode(r->body.as_object().at("data").as_object().at("plaintext").as_string());
    if (!pt.ok()) return fail(pt.status());
    std::fwrite(pt->data(), 1, pt->size(), stdout);
    std::printf("\n");
    return 0;
  }));
}

}  // namespace custos::cli
