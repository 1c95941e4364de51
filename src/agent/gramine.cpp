// SGX evidence inside a Gramine enclave through its attestation pseudo-filesystem
// (Gramine docs, "Attestation and Secret Provisioning": /dev/attestation/attestation_type,
// user_report_data, quote). Writing user_report_data sets the report data of the next quote;
// reading quote returns a DCAP quote. Untested on hardware (docs/agent.md).
#include <mutex>

#include "agent/internal.h"

namespace custos::agent::internal {
namespace {

namespace fs = std::filesystem;
using attestation::TeeType;

constexpr size_t kMaxQuote = size_t{1} << 20;

class GramineProducer final : public EvidenceProducer {
 public:
  explicit GramineProducer(fs::path root) : root_(std::move(root)) {}

  TeeType tee() const override { return TeeType::kSgx; }

  Result<ProducedEvidence> produce(ByteSpan report_data) const override {
    RETURN_IF_ERROR(check_report_data(report_data));
    // user_report_data and quote are one slot per enclave: the write and the read belong together.
    std::lock_guard<std::mutex> lock(mu_);
    RETURN_IF_ERROR(write_file(root_ / "user_report_data", report_data));
    ASSIGN_OR_RETURN(Bytes quote, read_file(root_ / "quote", kMaxQuote));
    if (quote.empty()) return unavailable("Gramine returned an empty quote");
    ProducedEvidence out;
    out.evidence = attestation::Evidence{TeeType::kSgx, std::move(quote)};
    return out;
  }

 private:
  fs::path root_;
  mutable std::mutex mu_;
};

}  // namespace

Result<std::unique_ptr<EvidenceProducer>> make_gramine_producer(const ProducerConfig& c) {
  std::error_code ec;
  if (!fs::is_directory(c.attestation_root, ec)) {
    return unavailable(c.attestation_root.string() +
                       " does not exist: not running inside a Gramine SGX enclave with "
                       "sgx.remote_attestation = \"dcap\"");
  }
  // Gramine names the scheme; "none" means attestation is off, "epid" is not supported here.
  auto type = read_text(c.attestation_root / "attestation_type");
  if (type.ok() && *type != "dcap") {
    return failed_precondition("Gramine attestation type is \"" + *type + "\", need \"dcap\"");
  }
  return std::unique_ptr<EvidenceProducer>(std::make_unique<GramineProducer>(c.attestation_root));
}

}  // namespace custos::agent::internal
