#include "cli/agent.h"

#include <boost/json.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>

#include "agent/producer.h"
#include "attestation/sim/sim.h"
#include "base/encoding.h"

namespace custos::cli {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

int fail(const std::string& what, const Status& st) {
  std::fprintf(stderr, "Error %s: %s\n", what.c_str(), st.message().c_str());
  return 2;
}

Status write_out(const fs::path& path, ByteSpan data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  out.close();
  if (!out) return unavailable("cannot write " + path.string());
  return ok_status();
}

// Runs a command body, turning anything thrown into exit status 2 (exceptions stop here).
template <typename F>
std::function<void()> guarded(Globals& g, F body) {
  return [&g, body]() {
    try {
      g.exit_code = body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      g.exit_code = 2;
    }
  };
}

struct EvidenceArgs {
  std::string tee;
  std::string report_data_hex;
  std::string sim_dir, program;
  int isv_prod_id = 0, isv_svn = 0;
  bool debug = false;
  std::string out, raw_out, collateral_dir;
  std::string tsm_root = "/sys/kernel/config/tsm/report", tsm_entry;
  std::string attestation_root = "/dev/attestation";
  std::string tcti, ak_ctx, pcrs = "sha256:0,1,2,3,4,5,6,7", tpm_hash = "sha256";
};

int run_evidence(const Globals& g, const EvidenceArgs& a) {
  auto tee = attestation::parse_tee(a.tee);
  if (!tee.ok()) return fail("parsing --tee", tee.status());
  auto rd = hex_decode(a.report_data_hex);
  if (!rd.ok()) return fail("parsing --report-data", rd.status());
  // Shorter report data (a 32-byte hash) is zero padded, as SGX/TDX/SNP tooling does.
  if (rd->size() > agent::kReportDataSize) {
    return fail("parsing --report-data", invalid_argument("at most 64 bytes (128 hex digits)"));
  }
  rd->resize(agent::kReportDataSize, 0);

  agent::ProducerConfig c;
  c.tee = *tee;
  c.sim_dir = a.sim_dir;
  c.program = a.program;
  c.isv_prod_id = static_cast<uint16_t>(a.isv_prod_id);
  c.isv_svn = static_cast<uint16_t>(a.isv_svn);
  c.debug = a.debug;
  c.tsm_root = a.tsm_root;
  c.tsm_entry = a.tsm_entry;
  c.attestation_root = a.attestation_root;
  c.tcti = a.tcti;
  c.ak_context = a.ak_ctx;
  c.pcr_selection = a.pcrs;
  c.tpm_hash = a.tpm_hash;
  auto producer = agent::make_producer(c);
  if (!producer.ok()) return fail("setting up the " + a.tee + " producer", producer.status());
  auto e = (*producer)->produce(*rd);
  if (!e.ok()) return fail("producing evidence", e.status());

  if (!a.raw_out.empty()) {
    if (Status st = write_out(a.raw_out, e->evidence.data); !st.ok()) return fail("writing", st);
  }
  if (!a.collateral_dir.empty()) {
    std::error_code ec;
    fs::create_directories(a.collateral_dir, ec);
    for (const auto& [name, bytes] : e->collateral) {
      if (Status st = write_out(fs::path(a.collateral_dir) / name, bytes); !st.ok()) {
        return fail("writing collateral", st);
      }
    }
  }
  json::object coll;
  for (const auto& [name, bytes] : e->collateral) coll[name] = base64_encode(bytes);
  json::object doc{{"tee", std::string(attestation::tee_name(e->evidence.tee))},
                   {"evidence", base64_encode(e->evidence.data)},
                   {"report_data", hex_encode(*rd)},
                   {"collateral", std::move(coll)}};
  std::string text = json::serialize(doc) + "\n";
  if (!a.out.empty()) {
    if (Status st = write_out(a.out, as_bytes(text)); !st.ok()) return fail("writing", st);
    if (g.format != "json") {
      std::fprintf(stderr, "Wrote %s evidence (%zu bytes, %zu collateral items) to %s\n",
                   a.tee.c_str(), e->evidence.data.size(), e->collateral.size(), a.out.c_str());
    }
    return 0;
  }
  std::fputs(text.c_str(), stdout);
  return 0;
}

}  // namespace

CLI::App* add_sim_init_command(CLI::App* parent, Globals& g) {
  auto* sim =
      parent->add_subcommand("sim", "Simulated TEE (development only: never trust in production)");
  sim->require_subcommand(1);
  auto* init = sim->add_subcommand(
      "init", "Create a simulated SGX platform (keys, PCK chain, TCB collateral) in DIR");
  auto dir = std::make_shared<std::string>();
  init->add_option("DIR", *dir, "Directory to create (must be absent or empty)")->required();
  init->callback(guarded(g, [dir, &g]() {
    auto p = attestation::sim::SimPlatform::create(*dir, std::chrono::system_clock::now());
    if (!p.ok()) return fail("creating the sim platform", p.status());
    const std::array<uint8_t, 32> mrsigner = p->mrsigner();
    if (g.format == "json") {
      json::object o{{"dir", *dir},
                     {"root_ca", p->root().pem()},
                     {"root_fingerprint_sha256", hex_encode(p->root().fingerprint_sha256())},
                     {"mrsigner", hex_encode(mrsigner)}};
      std::printf("%s\n", json::serialize(o).c_str());
    } else {
      std::printf("Created a SIMULATED TEE platform in %s\n", dir->c_str());
      std::printf("Sim root CA:     %s/root.pem (sha256 %s)\n", dir->c_str(),
                  hex_encode(p->root().fingerprint_sha256()).c_str());
      std::printf("Default MRSIGNER: %s\n", hex_encode(mrsigner).c_str());
      std::printf("This is not a TEE: trust its root only where policy allows tee \"sim\".\n");
    }
    return 0;
  }));
  return sim;
}

void register_agent_commands(CLI::App& app, Globals& g) {
  add_sim_init_command(&app, g);

  auto* agent_cmd = app.add_subcommand("agent", "Workload side: produce evidence");
  agent_cmd->require_subcommand(1);
  auto a = std::make_shared<EvidenceArgs>();
  auto* ev =
      agent_cmd->add_subcommand("evidence", "Produce attestation evidence bound to report data");
  ev->add_option("--tee", a->tee, "sim, tpm, tdx, snp or sgx")
      ->required()
      ->check(CLI::IsMember({"sim", "tpm", "tdx", "snp", "sgx"}));
  ev->add_option("--report-data", a->report_data_hex, "Up to 64 bytes in hex (zero padded)")
      ->required();
  ev->add_option("--out", a->out, "Write the evidence document (JSON) here instead of stdout");
  ev->add_option("--raw-out", a->raw_out, "Also write the raw evidence bytes here");
  ev->add_option("--collateral-dir", a->collateral_dir,
                 "Also write each collateral item as a file here");
  ev->add_option("--sim-dir", a->sim_dir, "sim: platform directory (custos sim init)");
  ev->add_option("--program", a->program, "sim: program whose SHA-256 is MRENCLAVE");
  ev->add_option("--isv-prod-id", a->isv_prod_id, "sim: ISV product ID")
      ->check(CLI::Range(0, 65535));
  ev->add_option("--isv-svn", a->isv_svn, "sim: ISV SVN")->check(CLI::Range(0, 65535));
  ev->add_flag("--debug", a->debug, "sim: mark the enclave as a debug enclave");
  ev->add_option("--tsm-root", a->tsm_root, "tdx/snp: configfs-tsm report directory");
  ev->add_option("--tsm-entry", a->tsm_entry, "tdx/snp: use this existing report entry");
  ev->add_option("--attestation-root", a->attestation_root, "sgx: Gramine attestation directory");
  ev->add_option("--tcti", a->tcti, "tpm: TCTI (TPM2TOOLS_TCTI), e.g. device:/dev/tpmrm0");
  ev->add_option("--ak-ctx", a->ak_ctx, "tpm: AK context file or persistent handle");
  ev->add_option("--pcrs", a->pcrs, "tpm: PCR selection")->default_val("sha256:0,1,2,3,4,5,6,7");
  ev->add_option("--tpm-hash", a->tpm_hash, "tpm: quote signing hash")->default_val("sha256");
  ev->callback(guarded(g, [a, &g]() { return run_evidence(g, *a); }));
}

}  // namespace custos::cli
