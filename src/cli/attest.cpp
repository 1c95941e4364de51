#include "cli/attest.h"

#include <boost/json/serialize.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <system_error>

#include "attestation/service/service.h"
#include "attestation/sim/sim.h"
#include "base/encoding.h"
#include "cli/agent.h"
#include "crypto/hash.h"

namespace custos::cli {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using attestation::TeeType;

constexpr int kAccepted = 0;
constexpr int kRejected = 1;
constexpr int kUsage = 2;

// Collateral flags, by their CLI spelling; the item name is the flag with '_' for '-'.
constexpr const char* kCollateralFlags[] = {
    "collateral", "tcb-info",      "tcb-info-chain", "qe-identity", "qe-identity-chain",
    "pck-crl",    "pck-crl-chain", "root-crl",       "root-ca",     "pck-chain",
    "vcek",       "vlek",          "ask-ark",        "ak-pub",      "ak-cert",
    "ak-ca",      "pcrs",          "signature"};

struct VerifyArgs {
  std::string type;
  std::string evidence;
  std::string at;
  std::string nonce;
  std::string policy;
  std::string sim_dir;
  std::string cache_dir;
  std::map<std::string, std::string> files;  // flag -> path
};

Result<Bytes> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found("cannot read " + path);
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string default_cache_dir() {
  if (const char* d = std::getenv("CUSTOS_COLLATERAL_DIR"); d && *d) return d;
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.custos/collateral";
  return ".custos/collateral";
}

int usage(const std::string& message) {
  std::fprintf(stderr, "error: %s\n", message.c_str());
  return kUsage;
}

void print_outcome(const Globals& g, const attestation::VerifyOutcome& out) {
  json::object o = out.to_json();
  o.erase("token");  // a token signed by a throwaway CLI key means nothing to anyone else
  if (g.format == "json") {
    std::printf("%s\n", json::serialize(o).c_str());
    return;
  }
  std::printf("Verified      %s\n", out.passed() ? "true" : "false");
  std::printf("Genuine       %s\n", out.verified ? "true" : "false");
  if (out.claims) {
    const auto& c = *out.claims;
    std::printf("TEE           %s\n", std::string(attestation::tee_name(c.tee)).c_str());
    std::printf("TCB status    %s\n",
                std::string(attestation::tcb_status_name(c.tcb_status)).c_str());
    std::string adv;
    for (const auto& a : c.advisory_ids) adv += (adv.empty() ? "" : ", ") + a;
    std::printf("Advisory IDs  %s\n", adv.empty() ? "-" : adv.c_str());
    std::printf("Debug         %s\n", c.debug ? "true" : "false");
    for (const char* k : {"mrenclave", "mrsigner", "isv_prod_id", "isv_svn", "mrtd", "rtmr0",
                          "rtmr1", "rtmr2", "rtmr3", "mrseam", "measurement", "host_data"}) {
      if (const json::value* v = c.fields.if_contains(k)) {
        std::string s = v->is_string() ? std::string(v->as_string()) : json::serialize(*v);
        std::printf("%-13s %s\n", k, s.c_str());
      }
    }
    std::printf("Report data   %s\n", hex_encode(c.report_data).c_str());
  }
  for (const auto& r : out.reasons()) std::printf("Reason        %s\n", r.c_str());
}

int run_verify(const Globals& g, const VerifyArgs& a) {
  auto tee = attestation::parse_tee(a.type);
  if (!tee.ok()) return usage("--type must be sgx, tdx, snp, tpm or sim");
  auto raw = read_file(a.evidence);
  if (!raw.ok()) return usage(raw.status().message());
  auto evidence = attestation::decode_binary(*raw);
  if (!evidence.ok()) return usage("--evidence " + a.evidence + ": " + evidence.status().message());

  std::map<std::string, std::string> item_paths;
  for (const auto& [flag, path] : a.files) {
    if (!path.empty()) item_paths[attestation::collateral_item_name(flag)] = path;
  }
  auto collateral = attestation::load_collateral_files(item_paths);
  if (!collateral.ok()) return usage(collateral.status().message());

  attestation::VerifyRequest req;
  req.evidence = attestation::Evidence{*tee, std::move(*evidence)};
  req.collateral = std::move(*collateral);
  req.issue_token = false;
  if (!a.at.empty()) {
    auto t = parse_rfc3339(a.at);
    if (!t.ok()) return usage("--at: expected RFC 3339 time (2025-07-19T10:01:17Z)");
    req.at = *t;
  }
  attestation::Policy policy;
  if (!a.policy.empty()) {
    auto text = read_file(a.policy);
    if (!text.ok()) return usage(text.status().message());
    auto p = attestation::parse_policy(as_string_view(*text));
    if (!p.ok()) return usage(a.policy + ": " + p.status().message());
    policy = std::move(*p);
  }
  if (!a.nonce.empty()) {
    std::string n = a.nonce.rfind("0x", 0) == 0 ? a.nonce.substr(2) : a.nonce;
    auto bytes = hex_decode(n);
    if (!bytes.ok()) return usage("--nonce: expected hex");
    if (*tee == TeeType::kTpm) {
      req.collateral["nonce"] = to_bytes(n);
    } else {
      // Other TEEs carry the nonce in report data: it must start with it.
      if (bytes->size() > 64) return usage("--nonce: at most 64 bytes");
      policy.report_data = *bytes;
    }
  }
  req.policy = policy;

  attestation::ServiceConfig config;
  if (*tee == TeeType::kSim) {
    if (!a.sim_dir.empty()) {
      auto platform = attestation::sim::SimPlatform::load(a.sim_dir);
      if (!platform.ok()) return usage("--sim-dir: " + platform.status().message());
      config.sim_root = platform->root();
      for (auto& [name, bytes] : platform->collateral()) req.collateral.try_emplace(name, bytes);
    } else if (req.collateral.count("root_ca")) {
      auto root = crypto::Certificate::from_any(req.collateral.at("root_ca"));
      if (!root.ok()) return usage("--root-ca: " + root.status().message());
      config.sim_root = *root;
    } else {
      return usage("--type sim needs --sim-dir DIR (or --root-ca with the sim root)");
    }
  }
  auto svc = attestation::Service::create(std::move(config));
  if (!svc.ok()) return usage(svc.status().message());

  // DCAP quotes without explicit collateral use the local collateral cache.
  bool dcap = *tee == TeeType::kSgx || *tee == TeeType::kTdx;
  std::string cache_dir = a.cache_dir.empty() ? default_cache_dir() : a.cache_dir;
  std::error_code ec;
  if (dcap && !req.collateral.count("tcb_info") && fs::is_directory(cache_dir, ec)) {
    auto imported = (*svc)->cache().import_path(cache_dir);
    if (!imported.ok()) {
      std::fprintf(stderr, "warning: collateral cache %s: %s\n", cache_dir.c_str(),
                   imported.status().message().c_str());
    }
  }

  attestation::VerifyOutcome out = (*svc)->verify(req);
  print_outcome(g, out);
  return out.passed() ? kAccepted : kRejected;
}

int run_import(const std::string& source, const std::string& cache_dir_flag) {
  std::string cache_dir = cache_dir_flag.empty() ? default_cache_dir() : cache_dir_flag;
  attestation::CollateralCache check;
  auto summary = check.import_path(source);
  if (!summary.ok()) return usage(source + ": " + summary.status().message());
  std::error_code ec;
  fs::create_directories(cache_dir, ec);
  if (ec) return usage("cannot create " + cache_dir + ": " + ec.message());
  // Stored under a content-derived name so re-importing the same collateral is idempotent.
  std::string id =
      hex_encode(crypto::sha256(as_bytes(fs::absolute(source).string()))).substr(0, 16);
  fs::path dest = fs::path(cache_dir) / (fs::path(source).filename().string() + "-" + id);
  if (fs::is_directory(source, ec)) {
    fs::remove_all(dest, ec);
    fs::copy(source, dest, fs::copy_options::recursive, ec);
  } else {
    dest += ".json";
    fs::copy_file(source, dest, fs::copy_options::overwrite_existing, ec);
  }
  if (ec) return usage("cannot copy into " + cache_dir + ": " + ec.message());
  for (const auto& line : summary->imported) std::printf("imported %s\n", line.c_str());
  std::printf("into %s\n", dest.string().c_str());
  return kAccepted;
}

int run_list(const Globals& g, const std::string& cache_dir_flag) {
  std::string cache_dir = cache_dir_flag.empty() ? default_cache_dir() : cache_dir_flag;
  attestation::CollateralCache cache;
  std::error_code ec;
  if (fs::is_directory(cache_dir, ec)) {
    auto r = cache.import_path(cache_dir);
    if (!r.ok()) return usage(cache_dir + ": " + r.status().message());
  }
  json::array items;
  for (const auto& c : cache.list()) {
    json::object o{{"kind", c.kind}, {"key", c.key}, {"issued", format_rfc3339(c.issued)}};
    if (c.next_update) o["next_update"] = format_rfc3339(*c.next_update);
    items.push_back(std::move(o));
  }
  if (g.format == "json") {
    std::printf("%s\n", json::serialize(items).c_str());
  } else {
    for (const auto& v : items) {
      const auto& o = v.as_object();
      std::printf(
          "%-12s %-20s next update %s\n", std::string(o.at("kind").as_string()).c_str(),
          std::string(o.at("key").as_string()).c_str(),
          o.contains("next_update") ? std::string(o.at("next_update").as_string()).c_str() : "-");
    }
  }
  return kAccepted;
}

}  // namespace

void register_attest_commands(CLI::App& app, Globals& g) {
  auto* attest = app.add_subcommand("attest", "Verify attestation evidence; manage collateral");
  attest->require_subcommand(1);

  auto args = std::make_shared<VerifyArgs>();
  auto* verify = attest->add_subcommand(
      "verify", "Verify evidence (exit 0 genuine and accepted, 1 rejected, 2 usage error)");
  verify->add_option("--type", args->type, "sgx, tdx, snp, tpm or sim")
      ->required()
      ->check(CLI::IsMember({"sgx", "tdx", "snp", "tpm", "sim"}));
  verify
      ->add_option("--evidence", args->evidence,
                   "Quote/report/TPMS_ATTEST (binary, PEM, hex, base64)")
      ->required();
  verify->add_option("--at", args->at, "Verification time, RFC 3339 (default: now)");
  for (const char* flag : kCollateralFlags) {
    verify->add_option(std::string("--") + flag, args->files[flag],
                       std::string("Collateral: ") + flag);
  }
  verify->add_option("--nonce", args->nonce,
                     "TPM: expected extraData; others: report data prefix (hex)");
  verify->add_option("--policy", args->policy, "Appraisal policy (JSON; ours or Intel SecL's)");
  verify->add_option("--sim-dir", args->sim_dir,
                     "sim: the sim platform directory whose root to trust");
  verify->add_option("--cache-dir", args->cache_dir,
                     "Collateral cache (default $CUSTOS_COLLATERAL_DIR or ~/.custos/collateral)");
  verify->callback([&g, args]() { g.exit_code = run_verify(g, *args); });

  auto* coll = attest->add_subcommand("collateral", "The local collateral cache (PCCS role)");
  coll->require_subcommand(1);
  auto source = std::make_shared<std::string>();
  auto cache_dir = std::make_shared<std::string>();
  auto* import =
      coll->add_subcommand("import", "Import a dcap-qvl bundle or a directory of collateral files");
  import->add_option("source", *source, "DIR or BUNDLE.json")->required();
  import->add_option("--cache-dir", *cache_dir, "Cache directory");
  import->callback([&g, source, cache_dir]() { g.exit_code = run_import(*source, *cache_dir);
});
auto* list = coll->add_subcommand("list", "List cached collateral");
list->add_option("--cache-dir", *cache_dir, "Cache directory");
list->callback([&g, cache_dir]() { g.exit_code = run_list(g, *cache_dir); });

// `custos attest sim init DIR`: the platform `attest verify --type sim --sim-dir DIR` trusts.
add_sim_init_command(attest, g);
}  // namespace custos::cli

}  // namespace custos::cli
