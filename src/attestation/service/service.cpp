#include "attestation/service/service.h"

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/string.hpp>
#include <fstream>
#include <iterator>
#include <set>
#include <utility>

#include "attestation/dcap/collateral.h"
#include "attestation/dcap/verifier.h"
#include "attestation/sim/sim.h"
#include "attestation/snp/verifier.h"
#include "attestation/tpm/verifier.h"
#include "base/encoding.h"

namespace custos::attestation {
namespace {

namespace json = boost::json;

bool is_text(ByteSpan b) {
  return std::all_of(b.begin(), b.end(), [](uint8_t c) {
    return (c >= 0x20 && c < 0x7f) || c == '\n' || c == '\r' || c == '\t';
  });
}

Result<Bytes> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found("cannot read " + path);
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Items that are one binary object (a CRL, a certificate, a TPM structure): decoded to binary
// here. Chains, JSON and PCR lists stay as given; their verifiers read them.
const std::set<std::string, std::less<>> kBinaryItems = {
    "pck_crl", "root_crl", "root_ca", "vcek", "vlek", "ak_cert", "ak_pub", "signature"};

}  // namespace

Result<Bytes> decode_binary(ByteSpan raw) {
  if (raw.empty()) return invalid_argument("empty input");
  if (!is_text(raw)) return Bytes(raw.begin(), raw.end());
  std::string_view text = as_string_view(raw);
  size_t begin = text.find("-----BEGIN ");
  if (begin != std::string_view::npos) {
    size_t body = text.find('\n', begin);
    size_t end = text.find("-----END ", begin);
    if (body == std::string_view::npos || end == std::string_view::npos || end < body) {
      return invalid_argument("malformed PEM");
    }
    auto der = base64_decode(strip_whitespace(text.substr(body + 1, end - body - 1)));
    if (!der.ok() || der->empty()) return invalid_argument("malformed PEM");
    return std::move(*der);
  }
  std::string s = strip_whitespace(text);
  if (s.rfind("0x", 0) == 0 || s.rfind("0X", 0) == 0) s = s.substr(2);
  if (auto h = hex_decode(s); h.ok() && !h->empty()) return std::move(*h);
  if (auto b = base64_decode(s); b.ok() && !b->empty()) return std::move(*b);
  return invalid_argument("not binary, PEM, hex or base64");
}

std::string collateral_item_name(std::string_view flag) {
  std::string s(flag);
  while (!s.empty() && s[0] == '-') s.erase(0, 1);
  std::replace(s.begin(), s.end(), '-', '_');
  return s;
}

Result<Collateral> load_collateral_files(const std::map<std::string, std::string>& item_paths) {
  Collateral out;
  if (auto it = item_paths.find("collateral"); it != item_paths.end()) {
    ASSIGN_OR_RETURN(Bytes bundle, read_file(it->second));
    auto items = dcap::collateral_from_bundle(bundle);
    if (!items.ok())
      return invalid_argument("collateral bundle " + it->second + ": " + items.status().message());
    out = std::move(*items);
  }
  for (const auto& [name, path] : item_paths) {
    if (name == "collateral") continue;
    ASSIGN_OR_RETURN(Bytes data, read_file(path));
    if (kBinaryItems.count(name) && is_text(data)) {
      auto decoded = decode_binary(data);
      if (!decoded.ok())
        return invalid_argument(name + " (" + path + "): " + decoded.status().message());
      data = std::move(*decoded);
    }
    out[name] = std::move(data);
  }
  return out;
}

void Registry::add(std::unique_ptr<Verifier> verifier) {
  TeeType t = verifier->tee();
  verifiers_[t] = std::move(verifier);
}

const Verifier* Registry::find(TeeType tee) const {
  auto it = verifiers_.find(tee);
  return it == verifiers_.end() ? nullptr : it->second.get();
}

std::vector<std::string> VerifyOutcome::reasons() const {
  std::vector<std::string> out;
  if (rejection) {
    // Verifier messages often start with their reason code already.
    bool prefixed = rejection->message.rfind(rejection->reason, 0) == 0;
    out.push_back(prefixed ? rejection->message : rejection->reason + ": " + rejection->message);
  }
  if (appraisal) {
    for (auto& r : appraisal->reasons()) out.push_back(std::move(r));
  }
  return out;
}

json::object VerifyOutcome::to_json() const {
  json::object o;
  o["verified"] = passed();
  o["genuine"] = verified;
  if (claims) {
    o["tee"] = tee_name(claims->tee);
    o["tcb_status"] = tcb_status_name(claims->tcb_status);
    json::array adv;
    for (const auto& a : claims->advisory_ids) adv.emplace_back(a);
    o["advisory_ids"] = std::move(adv);
    o["claims"] = claims->to_json();
  } else {
    o["tee"] = nullptr;
    o["tcb_status"] = nullptr;
    o["advisory_ids"] = json::array{};
    o["claims"] = json::object{};
  }
  json::array rs;
  for (auto& r : reasons()) rs.emplace_back(r);
  o["reasons"] = std::move(rs);
  if (rejection) {
    o["rejection"] = json::object{{"reason", rejection->reason}, {"message", rejection->message}};
  }
  if (appraisal) o["appraisal"] = appraisal->to_json();
  if (!token.empty()) o["token"] = token;
  return o;
}

Result<std::unique_ptr<Service>> Service::create(ServiceConfig config) {
  std::unique_ptr<Service> s(new Service(std::move(config)));
  if (s->config_.token_key_pem.empty()) {
    ASSIGN_OR_RETURN(auto signer, TokenSigner::generate(s->config_.token_issuer));
    s->signer_.emplace(std::move(signer));
  } else {
    ASSIGN_OR_RETURN(auto signer,
                     TokenSigner::from_pem(s->config_.token_key_pem, s->config_.token_issuer));
    s->signer_.emplace(std::move(signer));
  }
  s->registry_.add(
      std::make_unique<dcap::DcapVerifier>(dcap::VerifierConfig{.tee = TeeType::kSgx}));
  s->registry_.add(
      std::make_unique<dcap::DcapVerifier>(dcap::VerifierConfig{.tee = TeeType::kTdx}));
  s->registry_.add(std::make_unique<snp::SnpVerifier>());
  tpm::VerifierConfig tpm_config;
  if (s->config_.tpm_ak_roots) tpm_config.ak_roots = *s->config_.tpm_ak_roots;
  s->registry_.add(std::make_unique<tpm::TpmVerifier>(tpm_config));
  // Without a configured sim root the sim verifier rejects everything ("sim.root.unset").
  s->registry_.add(std::make_unique<sim::SimVerifier>(s->config_.sim_root ? *s->config_.sim_root
                                                                          : crypto::Certificate()));
  return s;
}

SysTime Service::now() const {
  return config_.clock ? config_.clock->now() : SystemClock::instance().now();
}

VerifyOutcome Service::verify(const VerifyRequest& request) const {
  VerifyOutcome out;
  SysTime at = request.at ? *request.at : now();
  const Policy& policy = request.policy ? *request.policy : config_.default_policy;

  // Refuse simulated evidence before any work unless the policy allows it: a sim root is a
  // software key, so verifying it first would only lend the evidence credibility.
  if (request.evidence.tee == TeeType::kSim && !policy.allows(TeeType::kSim)) {
    out.rejection = Rejection{"policy.sim_not_allowed",
                              "simulated evidence (tee \"sim\") is refused unless the policy lists "
                              "\"sim\" among its TEEs"};
    return out;
  }
  const Verifier* verifier = registry_.find(request.evidence.tee);
  if (!verifier) {
    out.rejection = Rejection{"service.unsupported_tee",
                              "no verifier for tee " + std::string(tee_name(request.evidence.tee))};
    return out;
  }

  Collateral collateral = request.collateral;
  bool dcap = request.evidence.tee == TeeType::kSgx || request.evidence.tee == TeeType::kTdx;
  if (dcap && !(collateral.count("tcb_info") && collateral.count("qe_identity") &&
                collateral.count("pck_crl") && collateral.count("root_crl"))) {
    Status st = cache_.fill_for_quote(request.evidence.data, collateral, at);
    if (!st.ok()) {
      bool stale = st.message().find("expired at") != std::string::npos ||
                   st.message().find("not valid before") != std::string::npos;
      out.rejection = Rejection{stale ? "collateral.stale" : "collateral.missing", st.message()};
      return out;
    }
  }

  VerifyResult r = verifier->verify(request.evidence, collateral, VerifyOptions{at});
  if (!r.ok()) {
    out.rejection = r.rejection();
    return out;
  }
  out.verified = true;
  out.claims = r.claims();
  out.appraisal = appraise(*out.claims, policy, at);
  if (out.appraisal->pass && request.issue_token) {
    auto token = signer_->sign_result(*out.claims, *out.appraisal, now(), config_.token_ttl);
    if (token.ok()) out.token = std::move(*token);
  }
  return out;
}

}  // namespace custos::attestation
