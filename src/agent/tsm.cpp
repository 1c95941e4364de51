// TDX and SEV-SNP evidence through the Linux configfs-tsm report interface
// (Documentation/ABI/testing/configfs-tsm, Linux >= 6.7):
//   mkdir <root>/<entry>; write 64 bytes to inblob; read outblob (the quote or report);
//   auxblob (SNP) holds the certificate table; generation counts writes, so a changed value
//   between our write and our read means another writer raced us; rmdir the entry.
// Untested on hardware (docs/agent.md); tests run against a directory tree shaped like it.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <optional>

#include "agent/internal.h"
#include "base/cleanup.h"
#include "base/encoding.h"
#include "base/log.h"
#include "base/reader.h"
#include "crypto/random.h"
#include "crypto/x509.h"

namespace custos::agent::internal {
namespace {

namespace fs = std::filesystem;
using attestation::TeeType;

constexpr int kRaceRetries = 3;
constexpr size_t kMaxOutblob = size_t{1} << 20;

class TsmProducer final : public EvidenceProducer {
 public:
  TsmProducer(TeeType tee, fs::path root, std::string entry)
      : tee_(tee), root_(std::move(root)), entry_(std::move(entry)) {}

  TeeType tee() const override { return tee_; }

  Result<ProducedEvidence> produce(ByteSpan report_data) const override {
    RETURN_IF_ERROR(check_report_data(report_data));
    // A named entry is shared state between our calls; fresh entries are not.
    std::unique_lock<std::mutex> lock(mu_, std::defer_lock);
    std::string name = entry_;
    if (name.empty()) {
      name = "custos-" + hex_encode(crypto::random_bytes(8));
    } else {
      lock.lock();
    }
    const fs::path dir = root_ / name;
    bool created = false;
    if (::mkdir(dir.c_str(), 0700) == 0) {
      created = true;
    } else if (errno != EEXIST || entry_.empty()) {
      return unavailable("creating TSM report entry " + dir.string() + ": " + std::strerror(errno));
    }
    Cleanup remove_entry([&] {
      if (created && ::rmdir(dir.c_str()) != 0) {
        LOG_WARN("agent", "could not remove TSM report entry " << dir.string() << ": "
                                                               << std::strerror(errno));
      }
    });

    if (auto provider = read_text(dir / "provider"); provider.ok()) {
      const char* want = tee_ == TeeType::kTdx ? "tdx_guest" : "sev_guest";
      if (*provider != want) {
        return failed_precondition("TSM provider is \"" + *provider + "\", not " + want);
      }
    }

    Bytes outblob;
    for (int attempt = 0;; ++attempt) {
      RETURN_IF_ERROR(write_file(dir / "inblob", report_data));
      std::optional<std::string> before = generation(dir);
      ASSIGN_OR_RETURN(outblob, read_file(dir / "outblob", kMaxOutblob));
      if (before == generation(dir)) break;
      if (attempt + 1 >= kRaceRetries) {
        return unavailable("TSM report entry " + dir.string() + " keeps changing under us");
      }
    }
    if (outblob.empty()) return unavailable("TSM returned an empty report");

    ProducedEvidence out;
    out.evidence = attestation::Evidence{tee_, std::move(outblob)};
    if (tee_ == TeeType::kSnp) {
      auto aux = read_file(dir / "auxblob", kMaxOutblob);
      if (aux.ok() && !aux->empty()) {
        auto certs = snp_certs_from_auxblob(*aux);
        if (!certs.ok()) return certs.status().with_context("SNP auxblob");
        out.collateral = std::move(*certs);
      }
    }
    return out;
  }

 private:
  static std::optional<std::string> generation(const fs::path& dir) {
    auto g = read_text(dir / "generation");
    if (!g.ok()) return std::nullopt;
    return *g;
  }

  TeeType tee_;
  fs::path root_;
  std::string entry_;
  mutable std::mutex mu_;
};

// A GUID as it appears in the table: the first three fields little-endian (Linux guid_t).
// `text` is a constant of the canonical dashed form.
Bytes guid_bytes(std::string_view text) {
  std::string hex;
  for (char c : text) {
    if (c != '-') hex.push_back(c);
  }
  Bytes b = hex_decode(hex).value();
  std::reverse(b.begin(), b.begin() + 4);
  std::reverse(b.begin() + 4, b.begin() + 6);
  std::reverse(b.begin() + 6, b.begin() + 8);
  return b;
}

}  // namespace

Result<attestation::Collateral> snp_certs_from_auxblob(ByteSpan aux) {
  static const Bytes kVcek = guid_bytes("63da758d-e664-4564-adc5-f4b93be8accd");
  static const Bytes kVlek = guid_bytes("a8074bc2-a25a-483e-aae6-39c045a0b8a1");
  static const Bytes kAsk = guid_bytes("4ab7b379-bbac-4fe4-a02f-05aef327c782");
  static const Bytes kArk = guid_bytes("c0b406a4-a803-4952-9743-3fb6014cd0ae");
  ByteReader r(aux);
  std::string vcek, vlek, ask, ark;
  for (;;) {
    ByteSpan guid = r.bytes(16);
    uint32_t offset = r.u32le();
    uint32_t length = r.u32le();
    RETURN_IF_ERROR(r.status("certificate table"));
    if (std::all_of(guid.begin(), guid.end(), [](uint8_t b) { return b == 0; }) && offset == 0 &&
        length == 0) {
      break;
    }
    if (offset > aux.size() || length > aux.size() - offset) {
      return invalid_argument("certificate table entry points outside the blob");
    }
    ByteSpan der = aux.subspan(offset, length);
    std::string* slot = nullptr;
    if (std::equal(guid.begin(), guid.end(), kVcek.begin(), kVcek.end())) slot = &vcek;
    if (std::equal(guid.begin(), guid.end(), kVlek.begin(), kVlek.end())) slot = &vlek;
    if (std::equal(guid.begin(), guid.end(), kAsk.begin(), kAsk.end())) slot = &ask;
    if (std::equal(guid.begin(), guid.end(), kArk.begin(), kArk.end())) slot = &ark;
    if (slot == nullptr) continue;
    ASSIGN_OR_RETURN(crypto::Certificate cert, crypto::Certificate::from_any(der));
    *slot = cert.pem();
  }
  attestation::Collateral c;
  if (!vcek.empty()) c["vcek"] = to_bytes(vcek);
  if (!vlek.empty()) c["vlek"] = to_bytes(vlek);
  if (!ask.empty() || !ark.empty()) c["ask_ark"] = to_bytes(ask + ark);
  return c;
}

Result<std::unique_ptr<EvidenceProducer>> make_tsm_producer(const ProducerConfig& c) {
  std::error_code ec;
  if (!fs::is_directory(c.tsm_root, ec)) {
    return unavailable("configfs-tsm is not available at " + c.tsm_root.string() +
                       " (needs Linux >= 6.7 in a TDX or SEV-SNP guest, configfs mounted)");
  }
  if (c.tsm_entry.find('/') != std::string::npos || c.tsm_entry == "." || c.tsm_entry == "..") {
    return invalid_argument("TSM entry must be a plain name");
  }
  return std::unique_ptr<EvidenceProducer>(
      std::make_unique<TsmProducer>(c.tee, c.tsm_root, c.tsm_entry));
}

}  // namespace custos::agent::internal
