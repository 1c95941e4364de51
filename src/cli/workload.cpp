#include "cli/workload.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "agent/bench.h"
#include "agent/fetch.h"
#include "agent/producer.h"
#include "agent/run.h"
#include "cli/client.h"

namespace custos::cli {
namespace {

// Finds `name` among app's subcommands, creating it (one subcommand required) when absent.
CLI::App* get_or_add(CLI::App& app, const std::string& name, const std::string& help) {
  auto found = app.get_subcommands([&name](CLI::App* a) { return a->get_name() == name; });
  if (!found.empty()) return found.front();
  CLI::App* s = app.add_subcommand(name, help);
  s->require_subcommand(1);
  return s;
}

// Flags shared by every command that attests.
struct AttestFlags {
  std::string kbs;
  std::string tee = "sim";
  std::string sim_dir;
  std::string program;
  std::string cacert;
  bool skip_verify = false;
  std::string key_type = "rsa";
  uint16_t isv_prod_id = 0;
  uint16_t isv_svn = 0;
  std::string tcti;
  std::string ak_context;
  std::string pcrs = "sha256:0,1,2,3,4,5,6,7";
};

void add_attest_flags(CLI::App* cmd, AttestFlags& f, bool with_program) {
  cmd->add_option("--kbs", f.kbs, "Key broker address (default: CUSTOS_ADDR / VAULT_ADDR)");
  cmd->add_option("--tee", f.tee, "Evidence type: sim, sgx, tdx, snp, tpm")->default_val("sim");
  cmd->add_option("--sim-dir", f.sim_dir, "sim: platform directory (custos sim init DIR)");
  if (with_program) {
    cmd->add_option("--program", f.program,
                    "sim: the program whose SHA-256 is MRENCLAVE (default: this custos binary)");
  }
  cmd->add_option("--cacert", f.cacert, "TLS: trust these roots (PEM) (default: CUSTOS_CACERT)");
  cmd->add_flag("--tls-skip-verify", f.skip_verify, "TLS: do not verify the broker's certificate");
  cmd->add_option("--isv-prod-id", f.isv_prod_id, "sim: ISVPRODID in the quote");
  cmd->add_option("--isv-svn", f.isv_svn, "sim: ISVSVN in the quote");
  cmd->add_option("--tcti", f.tcti, "tpm: TCTI (TPM2TOOLS_TCTI)");
  cmd->add_option("--ak", f.ak_context, "tpm: attestation key context file or persistent handle");
  cmd->add_option("--pcrs", f.pcrs, "tpm: PCR selection")->default_val("sha256:0,1,2,3,4,5,6,7");
}

Status fill_from_flags(const AttestFlags& f, agent::FetchOptions& fo, agent::ProducerConfig& pc) {
  fo.kbs_addr = f.kbs.empty() ? env_or("CUSTOS_ADDR", "VAULT_ADDR", "") : f.kbs;
  if (fo.kbs_addr.empty()) return invalid_argument("--kbs (or CUSTOS_ADDR) is required");
  fo.ca_file = f.cacert.empty() ? env_or("CUSTOS_CACERT", "VAULT_CACERT", "") : f.cacert;
  std::string skip = env_or("CUSTOS_SKIP_VERIFY", "VAULT_SKIP_VERIFY", "");
  fo.insecure_skip_verify = f.skip_verify || skip == "1" || skip == "true";
  if (f.key_type == "rsa") {
    fo.key_type = agent::WrapKeyType::kRsa3072;
  } else if (f.key_type == "ec") {
    fo.key_type = agent::WrapKeyType::kEcP256;
  } else {
    return invalid_argument("--key-type must be rsa or ec");
  }
  ASSIGN_OR_RETURN(pc.tee, attestation::parse_tee(f.tee));
  pc.sim_dir = f.sim_dir;
  pc.program = f.program;
  pc.isv_prod_id = f.isv_prod_id;
  pc.isv_svn = f.isv_svn;
  pc.tcti = f.tcti;
  pc.ak_context = f.ak_context;
  pc.pcr_selection = f.pcrs;
  return ok_status();
}

Status write_secret(const std::string& out, const SecretBytes& value) {
  int fd = STDOUT_FILENO;
  bool close_it = false;
  if (!out.empty() && out != "-") {
    fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return unavailable("cannot write " + out + ": " + std::strerror(errno));
    close_it = true;
    // An existing file keeps its mode through O_CREAT: tighten it before writing.
    if (::fchmod(fd, 0600) != 0) {
      ::close(fd);
      return unavailable("cannot chmod " + out + ": " + std::strerror(errno));
    }
  }
  size_t off = 0;
  Status st;
  while (off < value.size()) {
    ssize_t n = ::write(fd, value.data() + off, value.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      st = unavailable(std::string("write: ") + std::strerror(errno));
      break;
    }
    off += static_cast<size_t>(n);
  }
  if (close_it && ::close(fd) != 0 && st.ok()) st = unavailable("close " + out + ": " + std::strerror(errno));
  return st;
}

// The evidence producer the flags describe; sim evidence measures this binary unless --program.
Result<std::unique_ptr<agent::EvidenceProducer>> producer_for(agent::ProducerConfig& pc) {
  if (pc.program.empty()) pc.program = agent::self_executable();
  return agent::make_producer(pc);
}

int report(const Status& st) {
  std::fprintf(stderr, "Error: %s\n", st.message().c_str());
  return 2;
}

}  // namespace

void register_workload_commands(CLI::App& app, Globals& g) {
  // ---- custos agent fetch
  CLI::App* agent_cmd = get_or_add(app, "agent", "Workload side: produce evidence, fetch secrets");
  auto* fetch = agent_cmd->add_subcommand(
      "fetch", "Attest to the key broker and print (or --out) a released key or resource");
  auto ff = std::make_shared<AttestFlags>();
  auto fetch_key_id = std::make_shared<std::string>();
  auto fetch_resource = std::make_shared<std::string>();
  auto fetch_out = std::make_shared<std::string>();
  add_attest_flags(fetch, *ff, true);
  auto* key_opt = fetch->add_option("--key", *fetch_key_id, "Key id: /kbs/v1 (ISecL) transfer");
  auto* res_opt = fetch->add_option("--resource", *fetch_resource, "repository/type/tag: /kbs/v0 (Trustee) resource");
  key_opt->excludes(res_opt);
  fetch->add_option("--out", *fetch_out, "Write to this file (mode 0600) instead of stdout");
  fetch->add_option("--key-type", ff->key_type, "Ephemeral wrapping key: rsa (RSA-3072) or ec (P-256)")
      ->default_val("rsa");
  fetch->callback([&g, ff, fetch_key_id, fetch_resource, fetch_out] {
    agent::FetchOptions fo;
    agent::ProducerConfig pc;
    if (Status st = fill_from_flags(*ff, fo, pc); !st.ok()) {
      g.exit_code = report(st);
      return;
    }
    if (fetch_key_id->empty() == fetch_resource->empty()) {
      g.exit_code = report(invalid_argument("exactly one of --key or --resource is required"));
      return;
    }
    auto producer = producer_for(pc);
    if (!producer.ok()) {
      g.exit_code = report(producer.status());
      return;
    }
    fo.producer = producer->get();
    fo.key_id = *fetch_key_id;
    fo.resource = *fetch_resource;
    auto value = fetch_key_id->empty() ? agent::fetch_resource(fo) : agent::fetch_key(fo);
    if (!value.ok()) {
      g.exit_code = report(value.status());
      return;
    }
    if (Status st = write_secret(*fetch_out, *value); !st.ok()) {
      g.exit_code = report(st);
      return;
    }
    if (!fetch_out->empty() && *fetch_out != "-") {
      std::fprintf(stderr, "Wrote %zu bytes to %s\n", value->size(), fetch_out->c_str());
    }
    g.exit_code = 0;
  });

  // ---- custos agent ledger-append
  auto* la = agent_cmd->add_subcommand(
      "ledger-append",
      "Attest (binding a new key), sign FILE with that key and append it to a ledger as an "
      "attested entry (docs/ledger.md)");
  auto lf = std::make_shared<AttestFlags>();
  auto la_mount = std::make_shared<std::string>();
  auto la_role = std::make_shared<std::string>();
  auto la_auth = std::make_shared<std::string>("attest");
  auto la_type = std::make_shared<std::string>();
  auto la_file = std::make_shared<std::string>();
  add_attest_flags(la, *lf, true);
  la->add_option("--mount", *la_mount, "The ledger's mount (e.g. supply)")->required();
  la->add_option("--role", *la_role, "auth/attest role to log in with")->required();
  la->add_option("--auth-mount", *la_auth, "Mount of the attest auth method")
      ->default_val("attest");
  la->add_option("--content-type", *la_type, "Content type recorded with the entry");
  la->add_option("FILE", *la_file, "The entry's data (- for stdin)")->required();
  la->callback([&g, lf, la_mount, la_role, la_auth, la_type, la_file] {
    agent::FetchOptions fo;
    agent::ProducerConfig pc;
    if (Status st = fill_from_flags(*lf, fo, pc); !st.ok()) {
      g.exit_code = report(st);
      return;
    }
    std::string data;
    if (*la_file == "-") {
      data.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    } else {
      std::ifstream in(*la_file, std::ios::binary);
      if (!in) {
        g.exit_code = report(invalid_argument("cannot read " + *la_file));
        return;
      }
      data.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    auto producer = producer_for(pc);
    if (!producer.ok()) {
      g.exit_code = report(producer.status());
      return;
    }
    fo.producer = producer->get();
    auto out = agent::append_attested(fo, *la_role, *la_auth, *la_mount, as_bytes(data), *la_type);
    if (!out.ok()) {
      g.exit_code = report(out.status());
      return;
    }
    std::printf("%s\n", out->c_str());
    g.exit_code = 0;
  });

  // ---- custos run
  auto* run = app.add_subcommand(
      "run", "Attest, fetch secrets, inject them (env or files), then exec PROGRAM unchanged");
  auto rf = std::make_shared<AttestFlags>();
  auto env_specs = std::make_shared<std::vector<std::string>>();
  auto file_specs = std::make_shared<std::vector<std::string>>();
  auto file_mode = std::make_shared<std::string>("auto");
  auto role = std::make_shared<std::string>();
  auto vault_mount = std::make_shared<std::string>("attest");
  auto command = std::make_shared<std::vector<std::string>>();
  add_attest_flags(run, *rf, false);
  run->add_option("--secret", *env_specs,
                  "ENV=key:ID | ENV=kbs:///repo/type/tag | ENV=vault:PATH#FIELD (repeatable)")
      ->allow_extra_args(false);
  run->add_option("--secret-file", *file_specs, "PATH=<source as for --secret> (repeatable)")
      ->allow_extra_args(false);
  run->add_option("--file-mode", *file_mode,
                  "How --secret-file reaches the program: auto, namespace (private tmpfs), memfd")
      ->default_val("auto");
  run->add_option("--role", *role, "auth/attest role for vault: secrets");
  run->add_option("--vault-mount", *vault_mount, "Mount of the attest auth method")->default_val("attest");
  run->add_option("--key-type", rf->key_type, "Ephemeral wrapping key: rsa (RSA-3072) or ec (P-256)")
      ->default_val("rsa");
  run->add_option("command", *command, "-- PROGRAM ARGS (everything after -- is passed unchanged)");
  run->callback([&g, rf, env_specs, file_specs, file_mode, role, vault_mount, command] {
    agent::RunOptions ro;
    if (Status st = fill_from_flags(*rf, ro.fetch, ro.producer); !st.ok()) {
      g.exit_code = report(st);
      return;
    }
    for (const auto& s : *env_specs) {
      auto spec = agent::parse_secret_spec(s, agent::SecretSpec::Target::kEnv);
      if (!spec.ok()) {
        g.exit_code = report(spec.status());
        return;
      }
      ro.secrets.push_back(std::move(*spec));
    }
    for (const auto& s : *file_specs) {
      auto spec = agent::parse_secret_spec(s, agent::SecretSpec::Target::kFile);
      if (!spec.ok()) {
        g.exit_code = report(spec.status());
        return;
      }
      ro.secrets.push_back(std::move(*spec));
    }
    auto mode = agent::parse_file_mode(*file_mode);
    if (!mode.ok()) {
      g.exit_code = report(mode.status());
      return;
    }
    ro.file_mode = *mode;
    ro.vault_role = *role;
    ro.vault_mount = *vault_mount;
    ro.argv = *command;
    // Returns only on failure: on success the process is the program now.
    g.exit_code = report(agent::run_with_secrets(ro));
  });

  // ---- custos bench release
  CLI::App* bench = get_or_add(app, "bench", "Load drivers");
  auto* rel = bench->add_subcommand(
      "release",
      "Secure key release throughput and latency (/kbs/v1); each client makes one untimed warm-up "
      "release first");
  auto bf = std::make_shared<AttestFlags>();
  auto bench_key = std::make_shared<std::string>();
  auto clients = std::make_shared<int>(32);
  auto duration = std::make_shared<std::string>("10s");
  auto pool = std::make_shared<size_t>(64);
  auto omit = std::make_shared<bool>(false);
  auto rate = std::make_shared<double>(0);
  add_attest_flags(rel, *bf, true);
  rel->add_option("--key", *bench_key, "Key id to release")->required();
  rel->add_option("--clients", *clients, "Concurrent clients (threads)")->default_val(32);
  rel->add_option("--duration", *duration, "How long to run: 10s, 500ms, 1m")->default_val("10s");
  rel->add_option("--pool", *pool, "Ephemeral keys pre-generated per client (cycled)")->default_val(64);
  rel->add_option("--rate", *rate,
                  "Open loop: releases per second in total, paced over the clients; latency counts "
                  "from when each release was due (0: closed loop, back to back)")
      ->default_val(0);
  rel->add_flag("--omit-collateral", *omit,
                "Do not send the producer's collateral (the broker must hold it: dev server, PCCS)");
  rel->add_option("--key-type", bf->key_type, "Ephemeral wrapping key: ec (P-256) or rsa (RSA-3072)")
      ->default_val("ec");
  rel->callback([&g, bf, bench_key, clients, duration, pool, omit, rate] {
    agent::ReleaseBenchOptions bo;
    if (Status st = fill_from_flags(*bf, bo.fetch, bo.producer); !st.ok()) {
      g.exit_code = report(st);
      return;
    }
    if (bo.producer.program.empty()) bo.producer.program = agent::self_executable();
    bo.fetch.key_id = *bench_key;
    bo.clients = *clients;
    bo.pool_per_client = *pool;
    bo.fetch.omit_collateral = *omit;
    bo.rate = *rate;
    const std::string& d = *duration;
    size_t digits = 0;
    while (digits < d.size() && d[digits] >= '0' && d[digits] <= '9') ++digits;
    std::string unit = d.substr(digits);
    if (digits == 0 || digits > 9 || (unit != "s" && unit != "ms" && unit != "m" && !unit.empty())) {
      g.exit_code = report(invalid_argument("--duration: expected e.g. 10s, 500ms or 1m"));
      return;
    }
    long long n = std::stoll(d.substr(0, digits));
    bo.duration = unit == "ms" ? std::chrono::milliseconds(n)
                  : unit == "m" ? std::chrono::milliseconds(n * 60000)
                                : std::chrono::milliseconds(n * 1000);
    auto r = agent::run_release_bench(bo);
    if (!r.ok()) {
      g.exit_code = report(r.status());
      return;
    }
    if (g.format == "json") {
      std::printf(
          "{\"releases\":%llu,\"failed\":%llu,\"seconds\":%.3f,\"releases_per_second\":%.1f,"
          "\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,\"clients\":%d,"
          "\"distinct_keys\":%zu,\"offered_per_second\":%.1f}\n",
          static_cast<unsigned long long>(r->released), static_cast<unsigned long long>(r->failed),
          r->seconds, r->releases_per_second, r->p50_ms, r->p90_ms, r->p99_ms, r->max_ms, bo.clients,
          r->distinct_keys, r->offered_per_second);
    } else {
      std::printf("clients         %d\n", bo.clients);
      std::printf("duration        %.2f s\n", r->seconds);
      std::printf("releases        %llu (failed %llu)\n", static_cast<unsigned long long>(r->released),
                  static_cast<unsigned long long>(r->failed));
      std::printf("releases/s      %.1f", r->releases_per_second);
      if (r->offered_per_second > 0) std::printf(" (offered %.1f/s, open loop)", r->offered_per_second);
      std::printf("\n");
      std::printf("latency p50     %.2f ms\n", r->p50_ms);
      std::printf("latency p90     %.2f ms\n", r->p90_ms);
      std::printf("latency p99     %.2f ms\n", r->p99_ms);
      std::printf("latency max     %.2f ms\n", r->max_ms);
      std::printf("ephemeral keys  %zu distinct (%s, pooled per client)\n", r->distinct_keys,
                  bf->key_type == "ec" ? "EC P-256" : "RSA-3072");
    }
    if (r->failed > 0) std::fprintf(stderr, "first failure: %s\n", r->first_error.c_str());
    g.exit_code = r->failed > 0 ? 1 : 0;
  });
}

}  // namespace custos::cli
