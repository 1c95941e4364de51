// Workload-side evidence producers (issue #5): one interface over every TEE the agent can ask for
// evidence, so `custos agent evidence`, `custos agent fetch` and `custos run` never branch on the
// TEE type. A producer binds 64 bytes of caller-chosen report data into the evidence (for key
// release: SHA-256(nonce || public key), zero padded) and returns the evidence together with any
// collateral that must travel with it.
//
// Producers (docs/agent.md):
//   sim  SimPlatform::quote() with MRENCLAVE = SHA-256 of the program file.
//   tpm  tpm2_quote (tpm2-tools) against TPM2TOOLS_TCTI with a given AK; qualifying data is
//        SHA-256(report_data) (32 bytes fit every TPM's extraData, whatever its hash).
//   tdx, snp  the Linux configfs-tsm report interface (/sys/kernel/config/tsm/report).
//   sgx  Gramine's /dev/attestation (user_report_data, quote).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "attestation/common/evidence.h"
#include "base/bytes.h"
#include "base/status.h"

namespace custos::agent {

inline constexpr size_t kReportDataSize = 64;

struct ProducedEvidence {
  attestation::Evidence evidence;
  // Items the verifier needs that only the workload has (TPM signature, PCR values, AK public;
  // the sim platform's collateral; SNP certificates from the extended report). May be empty.
  attestation::Collateral collateral;
};

class EvidenceProducer {
 public:
  virtual ~EvidenceProducer() = default;
  virtual attestation::TeeType tee() const = 0;
  // `report_data` must be exactly kReportDataSize bytes (kInvalidArgument otherwise). Safe to
  // call from several threads on one producer.
  virtual Result<ProducedEvidence> produce(ByteSpan report_data) const = 0;
};

struct ProducerConfig {
  attestation::TeeType tee = attestation::TeeType::kSim;

  // sim: a directory made by SimPlatform::create and the program whose SHA-256 is MRENCLAVE.
  std::filesystem::path sim_dir;
  std::filesystem::path program;
  uint16_t isv_prod_id = 0;
  uint16_t isv_svn = 0;
  bool debug = false;

  // tdx / snp: the configfs-tsm report directory. `tsm_entry` names the report entry to use;
  // empty: a fresh entry "custos-<random>" is created and removed after each report. An entry
  // that already exists is used as is and left in place.
  std::filesystem::path tsm_root = "/sys/kernel/config/tsm/report";
  std::string tsm_entry;

  // sgx: Gramine's attestation pseudo-filesystem.
  std::filesystem::path attestation_root = "/dev/attestation";

  // tpm: TCTI string (TPM2TOOLS_TCTI, e.g. "device:/dev/tpmrm0" or "swtpm:host=127.0.0.1,port=N";
  // empty: tpm2-tools' default), the AK as a context file or persistent handle ("0x81010002"),
  // the PCRs to quote and the quote's signing hash.
  std::string tcti;
  std::string ak_context;
  std::string pcr_selection = "sha256:0,1,2,3,4,5,6,7";
  std::string tpm_hash = "sha256";
  std::filesystem::path tpm2_tools_dir;  // empty: found on PATH
  int tpm_timeout_seconds = 60;
};

Result<std::unique_ptr<EvidenceProducer>> make_producer(const ProducerConfig& config);

// The running program's file (/proc/self/exe), what the sim producer measures for a process
// that measures itself (`custos agent fetch` by default, the PKCS#11 module's host). Empty if
// it cannot be read.
std::string self_executable();

}  // namespace custos::agent
