// TPM 2.0 evidence with tpm2-tools: tpm2_quote over the configured PCRs with the AK, and
// tpm2_readpublic for the AK's TPM2B_PUBLIC. The qualifying data (extraData) is
// SHA-256(report_data): 32 bytes fit the TPM's limit whatever its digest sizes, and a verifier
// recomputes it from the report data it expects (docs/agent.md).
#include <stdlib.h>

#include "agent/internal.h"
#include "base/cleanup.h"
#include "base/encoding.h"
#include "crypto/hash.h"

namespace custos::agent::internal {
namespace {

namespace fs = std::filesystem;
using attestation::TeeType;

class TpmProducer final : public EvidenceProducer {
 public:
  explicit TpmProducer(const ProducerConfig& c)
      : tcti_(c.tcti),
        ak_(c.ak_context),
        pcrs_(c.pcr_selection),
        hash_(c.tpm_hash),
        tools_(c.tpm2_tools_dir),
        timeout_(c.tpm_timeout_seconds) {}

  TeeType tee() const override { return TeeType::kTpm; }

  Result<ProducedEvidence> produce(ByteSpan report_data) const override {
    RETURN_IF_ERROR(check_report_data(report_data));
    ASSIGN_OR_RETURN(fs::path work, make_work_dir());
    Cleanup remove_work([&work] {
      std::error_code ec;
      fs::remove_all(work, ec);
    });
    std::map<std::string, std::string> env;
    if (!tcti_.empty()) env["TPM2TOOLS_TCTI"] = tcti_;
    const std::string nonce = hex_encode(crypto::sha256(report_data));

    RETURN_IF_ERROR(
        run_program({tool("tpm2_quote"), "-c", ak_, "-l", pcrs_, "-q", nonce, "-m",
                     (work / "quote.msg").string(), "-s", (work / "quote.sig").string(), "-o",
                     (work / "pcrs.bin").string(), "-F", "serialized", "-g", hash_},
                    env, work, timeout_));
    RETURN_IF_ERROR(
        run_program({tool("tpm2_readpublic"), "-c", ak_, "-o", (work / "ak.pub").string()}, env,
                    work, timeout_));
    ProducedEvidence out;
    ASSIGN_OR_RETURN(Bytes attest, read_file(work / "quote.msg"));
    out.evidence = attestation::Evidence{TeeType::kTpm, std::move(attest)};
    ASSIGN_OR_RETURN(out.collateral["signature"], read_file(work / "quote.sig"));
    ASSIGN_OR_RETURN(out.collateral["pcrs"], read_file(work / "pcrs.bin"));
    ASSIGN_OR_RETURN(out.collateral["ak_pub"], read_file(work / "ak.pub"));
    out.collateral["nonce"] = to_bytes(nonce);
    return out;
  }

 private:
  std::string tool(const char* name) const {
    return tools_.empty() ? std::string(name) : (tools_ / name).string();
  }

  static Result<fs::path> make_work_dir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/custos-tpm-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) == nullptr)
      return unavailable("cannot create a directory under " + tmpl);
    return fs::path(buf.data());
  }

  std::string tcti_, ak_, pcrs_, hash_;
  fs::path tools_;
  std::chrono::seconds timeout_;
};

}  // namespace

Result<std::unique_ptr<EvidenceProducer>> make_tpm_producer(const ProducerConfig& c) {
  if (c.ak_context.empty()) {
    return invalid_argument("tpm: the AK is required (a context file or a persistent handle)");
  }
  if (c.pcr_selection.empty()) return invalid_argument("tpm: a PCR selection is required");
  if (c.tpm_timeout_seconds <= 0) return invalid_argument("tpm: timeout must be positive");
  for (const std::string* s : {&c.tcti, &c.ak_context, &c.pcr_selection, &c.tpm_hash}) {
    // Arguments go to exec directly (no shell), but a leading '-' would read as an option.
    if (!s->empty() && (*s)[0] == '-')
      return invalid_argument("tpm: argument \"" + *s + "\" starts with '-'");
  }
  return std::unique_ptr<EvidenceProducer>(std::make_unique<TpmProducer>(c));
}

}  // namespace custos::agent::internal
