#include "attestation/service/collateral_cache.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>

#include "attestation/dcap/collateral.h"
#include "attestation/dcap/pck.h"
#include "attestation/dcap/quote.h"
#include "base/encoding.h"
#include "crypto/hash.h"
#include "crypto/x509.h"

namespace custos::attestation {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kItemNames[] = {"tcb_info",          "tcb_info_chain", "qe_identity",
                                           "qe_identity_chain", "pck_crl",        "pck_crl_chain",
                                           "root_crl"};

std::string describe(const CachedCollateral& c) {
  std::string s = c.kind + " " + c.key + " (issued " + format_rfc3339(c.issued);
  if (c.next_update) s += ", next update " + format_rfc3339(*c.next_update);
  return s + ")";
}

Result<Bytes> read_whole_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return not_found("cannot read " + p.string());
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// "Intel SGX PCK Processor CA" -> "processor"; "... Platform CA" -> "platform".
std::optional<std::string> ca_of(std::string_view issuer_or_cn) {
  if (issuer_or_cn.find("Processor") != std::string_view::npos) return "processor";
  if (issuer_or_cn.find("Platform") != std::string_view::npos) return "platform";
  return std::nullopt;
}

Result<CachedCollateral> tcb_info_item(const Collateral& items) {
  const Bytes& body = items.at("tcb_info");
  ASSIGN_OR_RETURN(auto signed_json, dcap::split_signed_json(as_string_view(body), "tcbInfo"));
  ASSIGN_OR_RETURN(auto info, dcap::parse_tcb_info(signed_json.body));
  CachedCollateral c;
  c.kind = "tcb_info";
  c.key =
      std::string(info.id == dcap::TcbInfo::Id::kTdx ? "tdx:" : "sgx:") + hex_encode(info.fmspc);
  c.body = body;
  if (auto it = items.find("tcb_info_chain"); it != items.end()) c.issuer_chain = it->second;
  c.issued = info.issue_date;
  c.next_update = info.next_update;
  return c;
}

Result<CachedCollateral> qe_identity_item(const Collateral& items) {
  const Bytes& body = items.at("qe_identity");
  ASSIGN_OR_RETURN(auto signed_json,
                   dcap::split_signed_json(as_string_view(body), "enclaveIdentity"));
  ASSIGN_OR_RETURN(auto id, dcap::parse_enclave_identity(signed_json.body));
  CachedCollateral c;
  c.kind = "qe_identity";
  c.key = id.id;
  c.body = body;
  if (auto it = items.find("qe_identity_chain"); it != items.end()) c.issuer_chain = it->second;
  c.issued = id.issue_date;
  c.next_update = id.next_update;
  return c;
}

Result<CachedCollateral> crl_item(const Collateral& items, const std::string& name) {
  ASSIGN_OR_RETURN(auto crl, crypto::Crl::from_any(items.at(name)));
  CachedCollateral c;
  c.kind = name;
  if (name == "root_crl") {
    c.key = "root";
  } else {
    auto ca = ca_of(crl.issuer());
    if (!ca)
      return invalid_argument("pck_crl: issuer is not an Intel SGX PCK Processor/Platform CA");
    c.key = *ca;
    if (auto it = items.find("pck_crl_chain"); it != items.end()) c.issuer_chain = it->second;
  }
  c.body = crl.der();
  c.issued = crl.this_update();
  c.next_update = crl.next_update();
  return c;
}

// What a quote needs from the cache: its TEE, its PCK's FMSPC and issuing CA.
struct QuoteNeeds {
  bool tdx = false;
  std::string fmspc;
  std::string ca;
};

struct PckChainRef {
  bool tdx = false;
  std::string_view chain_pem;
};

Result<PckChainRef> pck_chain_of(const dcap::Quote& quote, const Collateral& collateral) {
  PckChainRef n;
  n.tdx = quote.is_tdx();
  std::string_view& chain_pem = n.chain_pem;
  if (quote.cert_data_type == dcap::CertDataType::kPckChainPem) {
    chain_pem = as_string_view(quote.cert_data);
  } else if (auto it = collateral.find("pck_chain"); it != collateral.end()) {
    chain_pem = as_string_view(it->second);
  } else {
    return failed_precondition("the quote carries no PCK chain and none was given (pck_chain)");
  }
  return n;
}

Result<QuoteNeeds> needs_of(std::string_view chain_pem) {
  QuoteNeeds n;
  auto chain = crypto::Certificate::chain_from_pem(chain_pem);
  if (!chain.ok() || chain->empty()) return invalid_argument("unreadable PCK certificate chain");
  const auto& leaf = chain->front();
  auto ext = leaf.extension(dcap::kSgxExtensionsOid);
  if (!ext) return invalid_argument("PCK certificate has no SGX extensions");
  ASSIGN_OR_RETURN(auto pck, dcap::parse_pck_extensions(*ext));
  n.fmspc = hex_encode(pck.fmspc);
  auto ca = ca_of(leaf.issuer());
  if (!ca) return invalid_argument("PCK certificate is not issued by a PCK Processor/Platform CA");
  n.ca = *ca;
  return n;
}

}  // namespace

Status CollateralCache::put(CachedCollateral item, ImportSummary& summary) {
  std::lock_guard<std::mutex> lock(mu_);
  auto k = std::make_pair(item.kind, item.key);
  auto it = items_.find(k);
  if (it != items_.end() && it->second.issued > item.issued) {
    summary.imported.push_back("kept newer " + describe(it->second));
    return ok_status();
  }
  summary.imported.push_back(describe(item));
  items_[k] = std::move(item);
  return ok_status();
}

Result<ImportSummary> CollateralCache::import_collateral(const Collateral& items) {
  ImportSummary summary;
  std::vector<CachedCollateral> parsed;
  if (items.count("tcb_info")) {
    auto c = tcb_info_item(items);
    if (!c.ok()) return c.status().with_context("tcb_info");
    parsed.push_back(std::move(*c));
  }
  if (items.count("qe_identity")) {
    auto c = qe_identity_item(items);
    if (!c.ok()) return c.status().with_context("qe_identity");
    parsed.push_back(std::move(*c));
  }
  for (const char* crl : {"pck_crl", "root_crl"}) {
    if (!items.count(crl)) continue;
    auto c = crl_item(items, crl);
    if (!c.ok()) return c.status().with_context(crl);
    parsed.push_back(std::move(*c));
  }
  if (parsed.empty()) return invalid_argument("no collateral items to import");
  // All or nothing: parse everything first, then store.
  for (auto& c : parsed) RETURN_IF_ERROR(put(std::move(c), summary));
  return summary;
}

Result<ImportSummary> CollateralCache::import_bundle(ByteSpan json) {
  ASSIGN_OR_RETURN(auto items, dcap::collateral_from_bundle(json));
  return import_collateral(items);
}

Result<ImportSummary> CollateralCache::import_path(const std::string& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) {
    ASSIGN_OR_RETURN(Bytes data, read_whole_file(path));
    return import_bundle(data);
  }
  ImportSummary total;
  Collateral items;
  std::vector<fs::path> entries;
  for (const auto& e : fs::directory_iterator(path, ec)) entries.push_back(e.path());
  if (ec) return not_found("cannot list " + path + ": " + ec.message());
  std::sort(entries.begin(), entries.end());
  for (const auto& p : entries) {
    if (fs::is_directory(p, ec)) {
      ASSIGN_OR_RETURN(auto sub, import_path(p.string()));
      total.imported.insert(total.imported.end(), sub.imported.begin(), sub.imported.end());
      continue;
    }
    std::string stem = p.filename().string();
    stem = stem.substr(0, stem.find('.'));
    std::replace(stem.begin(), stem.end(), '-', '_');
    bool named =
        std::find(std::begin(kItemNames), std::end(kItemNames), stem) != std::end(kItemNames);
    ASSIGN_OR_RETURN(Bytes data, read_whole_file(p));
    if (named) {
      items[stem] = std::move(data);
    } else if (p.extension() == ".json" &&
               as_string_view(data).find("\"tcb_info_issuer_chain\"") != std::string_view::npos) {
      auto r = import_bundle(data);
      if (!r.ok()) return r.status().with_context(p.string());
      total.imported.insert(total.imported.end(), r->imported.begin(), r->imported.end());
    }
  }
  if (!items.empty()) {
    auto r = import_collateral(items);
    if (!r.ok()) return r.status().with_context(path);
    total.imported.insert(total.imported.end(), r->imported.begin(), r->imported.end());
  }
  if (total.imported.empty()) return invalid_argument("no collateral found in " + path);
  return total;
}

std::optional<CachedCollateral> CollateralCache::get(const std::string& kind,
                                                     const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = items_.find({kind, key});
  if (it == items_.end()) return std::nullopt;
  return it->second;
}

std::optional<CachedCollateral> CollateralCache::tcb_info(TeeType tee,
                                                          std::string_view fmspc) const {
  std::string f(fmspc);
  std::transform(f.begin(), f.end(), f.begin(), [](char c) {
    return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  });
  return get("tcb_info", std::string(tee == TeeType::kTdx ? "tdx:" : "sgx:") + f);
}
std::optional<CachedCollateral> CollateralCache::qe_identity(std::string_view id) const {
  return get("qe_identity", std::string(id));
}
std::optional<CachedCollateral> CollateralCache::pck_crl(std::string_view ca) const {
  return get("pck_crl", std::string(ca));
}
std::optional<CachedCollateral> CollateralCache::root_crl() const {
  return get("root_crl", "root");
}

std::vector<CachedCollateral> CollateralCache::list() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<CachedCollateral> out;
  for (const auto& [k, v] : items_) out.push_back(v);
  return out;
}

Status CollateralCache::fill_for_quote(ByteSpan quote_bytes, Collateral& collateral,
                                       SysTime at) const {
  ASSIGN_OR_RETURN(auto quote, dcap::parse_quote(quote_bytes));
  ASSIGN_OR_RETURN(PckChainRef ref, pck_chain_of(quote, collateral));
  Bytes digest = crypto::sha256(as_bytes(ref.chain_pem));
  QuoteNeeds needs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = pck_memo_.find(digest); it != pck_memo_.end()) {
      needs.fmspc = it->second.first;
      needs.ca = it->second.second;
    }
  }
  if (needs.fmspc.empty()) {
    ASSIGN_OR_RETURN(needs, needs_of(ref.chain_pem));
    std::lock_guard<std::mutex> lock(mu_);
    if (pck_memo_.size() >= 4096) pck_memo_.clear();  // bounded; refilled on demand
    pck_memo_[digest] = {needs.fmspc, needs.ca};
  }
  needs.tdx = ref.tdx;
  auto need = [&](const std::string& item, const std::optional<CachedCollateral>& cached,
                  const std::string& what, const char* chain_item) -> Status {
    if (collateral.count(item)) return ok_status();
    if (!cached) {
      return failed_precondition("no cached " + what +
                                 "; import it with `custos attest collateral import`");
    }
    if (at < cached->issued) {
      return failed_precondition("collateral " + cached->kind + " " + cached->key +
                                 " is not valid before " + format_rfc3339(cached->issued) +
                                 " (verification time " + format_rfc3339(at) + ")");
    }
    if (cached->next_update && at > *cached->next_update) {
      return failed_precondition("collateral " + cached->kind + " " + cached->key + " expired at " +
                                 format_rfc3339(*cached->next_update) + " (verification time " +
                                 format_rfc3339(at) + ")");
    }
    collateral[item] = cached->body;
    if (chain_item && !cached->issuer_chain.empty() && !collateral.count(chain_item)) {
      collateral[chain_item] = cached->issuer_chain;
    }
    return ok_status();
  };
  TeeType tee = needs.tdx ? TeeType::kTdx : TeeType::kSgx;
  std::string qe = needs.tdx ? "TD_QE" : "QE";
  RETURN_IF_ERROR(need("tcb_info", tcb_info(tee, needs.fmspc),
                       "tcb_info for " + std::string(tee_name(tee)) + " FMSPC " + needs.fmspc,
                       "tcb_info_chain"));
  RETURN_IF_ERROR(need("qe_identity", qe_identity(qe), "qe_identity " + qe, "qe_identity_chain"));
  RETURN_IF_ERROR(
      need("pck_crl", pck_crl(needs.ca), "pck_crl for the " + needs.ca + " CA", "pck_crl_chain"));
  RETURN_IF_ERROR(need("root_crl", root_crl(), "root_crl", nullptr));
  return ok_status();
}

}  // namespace custos::attestation
