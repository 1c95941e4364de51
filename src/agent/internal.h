// Pieces shared by the producers; not part of the agent API.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent/producer.h"
#include "base/bytes.h"
#include "base/status.h"

namespace custos::agent::internal {

// kInvalidArgument unless `report_data` is exactly kReportDataSize bytes.
Status check_report_data(ByteSpan report_data);

// Reads a whole file, at most `max` bytes (kResourceExhausted beyond). kNotFound if it does not
// exist; other errors kUnavailable (a device or pseudo-file that refused the read).
Result<Bytes> read_file(const std::filesystem::path& path, size_t max = size_t{16} << 20);
// Writes `data` in one write(2) to an existing or new file (O_TRUNC): pseudo-files such as
// configfs inblob and Gramine's user_report_data take their input from a single write.
Status write_file(const std::filesystem::path& path, ByteSpan data);
// A file's text without trailing whitespace.
Result<std::string> read_text(const std::filesystem::path& path);

// Runs `argv` (argv[0] looked up on PATH unless it contains '/') with `env` added to (or
// replacing entries of) the current environment, stdout and stderr to files in `work_dir`. No
// shell is involved. Fails with kUnavailable on a non-zero exit (message: the program, the exit
// status and the first line of its stderr) and kDeadlineExceeded after `timeout` (the child is
// killed).
Status run_program(const std::vector<std::string>& argv,
                   const std::map<std::string, std::string>& env,
                   const std::filesystem::path& work_dir, std::chrono::seconds timeout);

Result<std::unique_ptr<EvidenceProducer>> make_sim_producer(const ProducerConfig& c);
Result<std::unique_ptr<EvidenceProducer>> make_tsm_producer(const ProducerConfig& c);
Result<std::unique_ptr<EvidenceProducer>> make_gramine_producer(const ProducerConfig& c);
Result<std::unique_ptr<EvidenceProducer>> make_tpm_producer(const ProducerConfig& c);

// SNP extended-report certificate table (the configfs-tsm auxblob, GHCB spec "Certificate
// table"): GUID-tagged DER certificates as collateral "vcek" / "vlek" (PEM) and "ask_ark" (ASK
// or ASVK, then ARK, PEM). Unknown GUIDs are skipped.
Result<attestation::Collateral> snp_certs_from_auxblob(ByteSpan aux);

}  // namespace custos::agent::internal
