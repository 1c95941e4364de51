#include "attestation/dcap/verifier.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "attestation/dcap/cert.h"
#include "attestation/dcap/der.h"
#include "attestation/dcap/intel_root.h"
#include "attestation/dcap/pck.h"
#include "attestation/dcap/reasons.h"
#include "base/encoding.h"
#include "crypto/hash.h"
#include "crypto/pkey.h"

namespace custos::attestation::dcap {
namespace {

using crypto::Certificate;
using crypto::Crl;
using crypto::PublicKey;

crypto::SignOptions raw_ecdsa_sha256() {
  crypto::SignOptions o;
  o.hash = crypto::HashAlg::kSha256;
  o.ec_format = crypto::SignOptions::EcFormat::kRaw;
  return o;
}

// [ARCHITECTURE 5] validity windows are inclusive at both ends: a collateral item is usable from
// its issue date through its next-update instant.
Status check_window(SysTime at, SysTime not_before, SysTime not_after, std::string_view prefix,
                    std::string_view what) {
  if (at < not_before) {
    return reason::fail(prefix, reason::kNotYetValid,
                        std::string(what) + " is valid from " + format_rfc3339(not_before));
  }
  if (at > not_after) {
    return reason::fail(prefix, reason::kExpired,
                        std::string(what) + " expired at " + format_rfc3339(not_after));
  }
  return ok_status();
}

// --- Trust anchor and chains --------------------------------------------------------------

struct Anchor {
  PcsCert root;  // the pinned certificate, with its key imported once
};

Result<std::shared_ptr<const Anchor>> make_anchor(const Certificate& root) {
  auto parsed = PcsCert::from_der(root.der());
  if (!parsed.ok()) return internal_error("trusted root: " + parsed.status().message());
  auto a = std::make_shared<Anchor>();
  a->root = std::move(*parsed);
  return std::shared_ptr<const Anchor>(std::move(a));
}

// The embedded production root, decoded once per process: it is a compiled-in constant, not
// input, and PcsCert is immutable and safe to share between threads.
const Result<std::shared_ptr<const Anchor>>& production_anchor() {
  static const Result<std::shared_ptr<const Anchor>> anchor = []() {
    auto root = Certificate::from_der(intel_sgx_root_ca_der());
    if (!root.ok()) return Result<std::shared_ptr<const Anchor>>(root.status());
    return make_anchor(*root);
  }();
  return anchor;
}

bool same(ByteSpan a, ByteSpan b) { return std::ranges::equal(a, b); }

std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      auto b = hex_decode(s.substr(i + 1, 2));
      if (b.ok()) {
        out.push_back(static_cast<char>((*b)[0]));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

// One certificate of a chain; the pinned root's exact bytes stand for the pinned certificate, so
// it is not decoded (nor its key imported) again.
Result<PcsCert> decode_certificate(ByteSpan der, std::string_view prefix, const Anchor& anchor) {
  if (same(der, anchor.root.der())) return anchor.root;
  auto cert = PcsCert::from_der(der);
  if (!cert.ok()) return reason::fail(prefix, reason::kMalformed, cert.status().message());
  return std::move(*cert);
}

// A certificate list as PEM (possibly URL-encoded, as PCS issuer-chain headers are) or as
// concatenated DER, leaf first.
Result<std::vector<PcsCert>> load_certificates(ByteSpan bytes, std::string_view prefix,
                                               const Anchor& anchor) {
  constexpr size_t kMaxCerts = 8;  // PCS chains have 2 or 3
  std::string_view text = as_string_view(bytes);
  while (!text.empty() && (text.back() == '\0' || text.back() == '\n')) text.remove_suffix(1);
  if (text.empty()) return reason::fail(prefix, reason::kMissing, "empty certificate chain");
  std::string decoded;
  if (text.find("%2D") != std::string_view::npos || text.find("%2d") != std::string_view::npos) {
    decoded = percent_decode(text);
    text = decoded;
  }
  std::vector<PcsCert> out;
  if (text.find("-----BEGIN CERTIFICATE-----") != std::string_view::npos) {
    auto blocks = PcsCert::pem_blocks(text, kMaxCerts);
    if (!blocks.ok()) return reason::fail(prefix, reason::kMalformed, blocks.status().message());
    for (const Bytes& der : *blocks) {
      ASSIGN_OR_RETURN(PcsCert cert, decode_certificate(der, prefix, anchor));
      out.push_back(std::move(cert));
    }
    return out;
  }
  der::Reader r(bytes);
  while (!r.empty()) {
    auto e = r.expect(der::kSequence);
    if (!e) return reason::fail(prefix, reason::kMalformed, "neither PEM nor DER certificates");
    if (out.size() == kMaxCerts) {
      return reason::fail(prefix, reason::kMalformed, "too many certificates");
    }
    ASSIGN_OR_RETURN(PcsCert cert, decode_certificate(e->raw, prefix, anchor));
    out.push_back(std::move(cert));
  }
  return out;
}

struct VerifiedChain {
  std::vector<PcsCert> certs;  // leaf first, the pinned root last
  SysTime not_before = SysTime::min();
  SysTime not_after = SysTime::max();
};

// Verifies signatures, names, CA flags and key usages of leaf <- intermediates <- root once
// (time-free, so the result can be cached); validity windows are folded into one window checked
// per verification. The chain's root, if included, must carry the pinned key; the pinned
// certificate then stands in for it. Names chain byte for byte, as PCS encodes them.
// `expected_size` counts the root.
Result<VerifiedChain> verify_chain(std::vector<PcsCert> certs, const Anchor& anchor,
                                   std::string_view prefix, size_t expected_size) {
  if (certs.empty()) return reason::fail(prefix, reason::kMissing, "no certificates");
  const PcsCert& last = certs.back();
  // Without the root in the chain, a failing last link means "not issued by our root".
  bool root_in_chain = false;
  if (same(last.der(), anchor.root.der())) {
    root_in_chain = true;
    certs.pop_back();
  } else if (same(last.subject(), last.issuer())) {
    root_in_chain = true;
    if (!same(last.spki(), anchor.root.spki())) {
      return reason::fail(prefix, reason::kUntrustedRoot,
                          "the chain's root is not the pinned root (key differs)");
    }
    certs.pop_back();
  }
  certs.push_back(anchor.root);
  if (certs.size() != expected_size) {
    return reason::fail(prefix, reason::kMalformed,
                        "expected " + std::to_string(expected_size) + " certificates, got " +
                            std::to_string(certs.size()));
  }
  VerifiedChain out;
  for (size_t i = 0; i + 1 < certs.size(); ++i) {
    const PcsCert& child = certs[i];
    const PcsCert& parent = certs[i + 1];
    if (!same(child.issuer(), parent.subject())) {
      return reason::fail(prefix, i + 2 == certs.size() ? reason::kUntrustedRoot : reason::kSignature,
                          "issuer of '" + child.subject_cn() + "' is not '" + parent.subject_cn() + "'");
    }
    if (!parent.is_ca()) {
      return reason::fail(prefix, reason::kNotCa, "'" + parent.subject_cn() + "' is not a CA");
    }
    if (!parent.may_sign_certificates()) {
      return reason::fail(prefix, reason::kNotCa,
                          "'" + parent.subject_cn() + "' may not sign certificates (keyUsage)");
    }
    if (!child.verify_signature(parent.public_key()).ok()) {
      return reason::fail(prefix,
                          i + 2 == certs.size() && !root_in_chain ? reason::kUntrustedRoot
                                                                  : reason::kSignature,
                          "signature of '" + child.subject_cn() + "' does not verify");
    }
  }
  for (const auto& c : certs) {
    out.not_before = std::max(out.not_before, c.not_before());
    out.not_after = std::min(out.not_after, c.not_after());
  }
  out.certs = std::move(certs);
  return out;
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// --- Parsed, signature-checked collateral ---------------------------------------------------

struct ParsedCollateral {
  uint64_t id = 0;
  Collateral source;
  TcbInfo tcb_info;
  VerifiedChain tcb_chain;
  EnclaveIdentity qe_identity;
  VerifiedChain qe_chain;
  Crl pck_crl;
  Crl root_crl;
  SysTime pck_crl_next;
  SysTime root_crl_next;
};

const Bytes* item(const Collateral& c, const char* key) {
  auto it = c.find(key);
  return it == c.end() ? nullptr : &it->second;
}

Result<Crl> load_crl(const Collateral& c, const char* key, std::string_view prefix) {
  const Bytes* b = item(c, key);
  if (!b || b->empty()) return reason::fail(prefix, reason::kMissing, std::string(key) + " not given");
  auto crl = Crl::from_any(*b);
  if (!crl.ok()) return reason::fail(prefix, reason::kMalformed, "unparsable CRL");
  if (!crl->next_update()) return reason::fail(prefix, reason::kMalformed, "CRL without nextUpdate");
  return std::move(*crl);
}

// A signing chain for TCB Info or QE Identity: "Intel SGX TCB Signing" <- root [PCS].
Result<VerifiedChain> load_signing_chain(const Collateral& c, const char* key,
                                         std::string_view prefix, const Anchor& anchor,
                                         const Crl& root_crl) {
  const Bytes* b = item(c, key);
  if (!b) return reason::fail(prefix, reason::kMissing, std::string(key) + " not given");
  ASSIGN_OR_RETURN(auto certs, load_certificates(*b, prefix, anchor));
  ASSIGN_OR_RETURN(VerifiedChain chain, verify_chain(std::move(certs), anchor, prefix, 2));
  if (!contains(chain.certs[0].subject_cn(), "TCB Signing")) {
    return reason::fail(prefix, reason::kBadName, "signer is not an Intel SGX TCB Signing certificate");
  }
  if (root_crl.is_revoked(chain.certs[0].serial())) {
    return reason::fail(prefix, reason::kRevoked, "TCB signing certificate revoked by the root CRL");
  }
  return chain;
}

Status verify_signed_json(const SignedJson& s, const VerifiedChain& chain, std::string_view prefix) {
  if (!chain.certs[0].public_key().verify(as_bytes(s.body), s.signature, raw_ecdsa_sha256()).ok()) {
    return reason::fail(prefix, reason::kSignature, "signature over the JSON body does not verify");
  }
  return ok_status();
}

Result<std::shared_ptr<ParsedCollateral>> parse_collateral(const Collateral& c, const Anchor& anchor) {
  auto out = std::make_shared<ParsedCollateral>();
  out->source = c;

  // An explicit root_ca item may only restate the pinned root: collateral never adds trust.
  if (const Bytes* root = item(c, "root_ca")) {
    auto cert = Certificate::from_any(*root);
    if (!cert.ok() || !same(cert->public_key().to_der(), anchor.root.spki())) {
      return reason::fail(reason::kRootCaUntrusted, "root_ca collateral is not the pinned root");
    }
  }

  // Root CA CRL: issued and signed by the pinned root [PCK "CRL profile"].
  ASSIGN_OR_RETURN(out->root_crl, load_crl(c, "root_crl", reason::kRootCrl));
  if (!same(out->root_crl.issuer_der(), anchor.root.subject())) {
    return reason::fail(reason::kRootCrl, reason::kIssuerMismatch, "root CRL not issued by the root CA");
  }
  if (!anchor.root.may_sign_crls()) {
    return reason::fail(reason::kRootCrl, reason::kIssuerMismatch, "the root CA may not sign CRLs");
  }
  if (!out->root_crl.verify_signature(anchor.root.public_key()).ok()) {
    return reason::fail(reason::kRootCrl, reason::kSignature, "root CRL signature does not verify");
  }
  out->root_crl_next = *out->root_crl.next_update();
  // PCK CRL: its issuer is checked against the quote's PCK CA per quote (see check_pck_crls).
  ASSIGN_OR_RETURN(out->pck_crl, load_crl(c, "pck_crl", reason::kPckCrl));
  out->pck_crl_next = *out->pck_crl.next_update();

  // TCB Info [PCS "TCB Info"], signed by the TCB signing key over the exact tcbInfo bytes.
  const Bytes* tcb = item(c, "tcb_info");
  if (!tcb) return reason::fail(reason::kTcbInfo, reason::kMissing, "tcb_info not given");
  ASSIGN_OR_RETURN(SignedJson tcb_signed, split_signed_json(as_string_view(*tcb), "tcbInfo"));
  ASSIGN_OR_RETURN(out->tcb_chain, load_signing_chain(c, "tcb_info_chain", reason::kTcbSigningChain,
                                                      anchor, out->root_crl));
  RETURN_IF_ERROR(verify_signed_json(tcb_signed, out->tcb_chain, reason::kTcbInfo));
  ASSIGN_OR_RETURN(out->tcb_info, parse_tcb_info(tcb_signed.body));

  // QE Identity [PCS "Enclave Identity V2"].
  const Bytes* qe = item(c, "qe_identity");
  if (!qe) return reason::fail(reason::kQeIdentity, reason::kMissing, "qe_identity not given");
  ASSIGN_OR_RETURN(SignedJson qe_signed, split_signed_json(as_string_view(*qe), "enclaveIdentity"));
  // PCS signs TCB Info and QE Identity with the same key, so the two issuer chains are usually
  // the same bytes: verified once then (every check on them is a function of those bytes).
  const Bytes* tcb_chain_bytes = item(c, "tcb_info_chain");
  const Bytes* qe_chain_bytes = item(c, "qe_identity_chain");
  if (tcb_chain_bytes && qe_chain_bytes && *tcb_chain_bytes == *qe_chain_bytes) {
    out->qe_chain = out->tcb_chain;
  } else {
    ASSIGN_OR_RETURN(out->qe_chain,
                     load_signing_chain(c, "qe_identity_chain", reason::kQeIdentityChain, anchor,
                                        out->root_crl));
  }
  RETURN_IF_ERROR(verify_signed_json(qe_signed, out->qe_chain, reason::kQeIdentity));
  ASSIGN_OR_RETURN(out->qe_identity, parse_enclave_identity(qe_signed.body));
  return out;
}

// --- PCK chain ----------------------------------------------------------------------------

struct PckInfo {
  uint64_t id = 0;
  Bytes source;
  VerifiedChain chain;  // PCK leaf, PCK Processor/Platform CA, root
  PublicKey leaf_key;
  PckExtensions ext;
};

Result<std::shared_ptr<PckInfo>> parse_pck(ByteSpan bytes, const Anchor& anchor) {
  auto out = std::make_shared<PckInfo>();
  out->source = Bytes(bytes.begin(), bytes.end());
  ASSIGN_OR_RETURN(auto certs, load_certificates(bytes, reason::kPckChain, anchor));
  // [PCK]: PCK certificate <- Intel SGX PCK Processor CA | Platform CA <- Intel SGX Root CA.
  ASSIGN_OR_RETURN(out->chain, verify_chain(std::move(certs), anchor, reason::kPckChain, 3));
  const PcsCert& leaf = out->chain.certs[0];
  const PcsCert& ca = out->chain.certs[1];
  // [QVL 4.1.2.4.4] the leaf must be a PCK certificate, issued by a PCK CA.
  if (!contains(leaf.subject_cn(), "SGX PCK Certificate") || leaf.is_ca()) {
    return reason::fail(reason::kPckChain, reason::kBadName, "leaf is not an SGX PCK Certificate");
  }
  if (!contains(ca.subject_cn(), "SGX PCK") || !contains(ca.subject_cn(), "CA")) {
    return reason::fail(reason::kPckChain, reason::kBadName, "intermediate is not an SGX PCK CA");
  }
  out->leaf_key = leaf.public_key();  // P-256: PcsCert admits no other key
  auto ext = leaf.extension(kSgxExtensionsOidDer);
  if (!ext) return reason::fail(reason::kPckExtensions, "PCK certificate has no SGX extensions");
  ASSIGN_OR_RETURN(out->ext, parse_pck_extensions(*ext));
  return out;
}

// [QVL 4.1.2.4.6-4.1.2.4.7] the PCK CRL is the one of the PCK's CA and does not list the PCK;
// the root CRL does not list the PCK CA.
Status check_pck_crls(const PckInfo& pck, const ParsedCollateral& coll) {
  const PcsCert& leaf = pck.chain.certs[0];
  const PcsCert& ca = pck.chain.certs[1];
  if (!same(coll.pck_crl.issuer_der(), ca.subject())) {
    return reason::fail(reason::kPckCrl, reason::kIssuerMismatch,
                        "PCK CRL is not issued by '" + ca.subject_cn() + "'");
  }
  if (!ca.may_sign_crls()) {
    return reason::fail(reason::kPckCrl, reason::kIssuerMismatch,
                        "'" + ca.subject_cn() + "' may not sign CRLs (keyUsage)");
  }
  if (!coll.pck_crl.verify_signature(ca.public_key()).ok()) {
    return reason::fail(reason::kPckCrl, reason::kSignature, "PCK CRL signature does not verify");
  }
  if (coll.pck_crl.is_revoked(leaf.serial())) {
    return reason::fail(reason::kPckRevoked, "PCK certificate serial " + hex_encode(leaf.serial()) +
                                                 " is revoked");
  }
  if (coll.root_crl.is_revoked(ca.serial())) {
    return reason::fail(reason::kPckCaRevoked, "PCK CA certificate is revoked by the root CRL");
  }
  return ok_status();
}

// --- Caches -------------------------------------------------------------------------------

size_t hash_collateral(const Collateral& c) {
  size_t h = 0xcbf29ce484222325ull;
  std::hash<std::string_view> hs;
  for (const auto& [k, v] : c) {
    h = (h * 31) ^ hs(k);
    h = (h * 31) ^ hs(as_string_view(v));
  }
  return h;
}

template <typename T>
class ContentCache {
 public:
  // The cached entry whose content equals `matches`, or null.
  template <typename Eq>
  std::shared_ptr<const T> find(size_t key, Eq matches) const {
    auto it = map_.find(key);
    if (it == map_.end()) return nullptr;
    for (const auto& e : it->second) {
      if (matches(*e)) return e;
    }
    return nullptr;
  }
  void insert(size_t key, std::shared_ptr<const T> value, size_t capacity) {
    if (size_ >= capacity) {
      map_.clear();  // simple and bounded: a full cache restarts cold
      size_ = 0;
    }
    map_[key].push_back(std::move(value));
    ++size_;
  }
  size_t size() const { return size_; }

 private:
  std::unordered_map<size_t, std::vector<std::shared_ptr<const T>>> map_;
  size_t size_ = 0;
};

// --- TCB evaluation [QVL TcbLevelCheck, TdxModuleCheck, TDRelaunchCheck] --------------------

bool is_configuration_needed(TcbStatus s) {
  return s == TcbStatus::kConfigurationNeeded || s == TcbStatus::kOutOfDateConfigurationNeeded ||
         s == TcbStatus::kConfigurationAndSwHardeningNeeded;
}

// A component status that is OutOfDate downgrades the platform status; Revoked overrides it.
TcbStatus converge(TcbStatus platform, TcbStatus component) {
  if (component == TcbStatus::kOutOfDate) {
    if (platform == TcbStatus::kUpToDate || platform == TcbStatus::kSwHardeningNeeded) {
      return TcbStatus::kOutOfDate;
    }
    if (platform == TcbStatus::kConfigurationNeeded ||
        platform == TcbStatus::kConfigurationAndSwHardeningNeeded) {
      return TcbStatus::kOutOfDateConfigurationNeeded;
    }
  }
  if (component == TcbStatus::kRevoked) return TcbStatus::kRevoked;
  return platform;
}

const IdentityTcbLevel* identity_level(const std::vector<IdentityTcbLevel>& levels, uint16_t svn) {
  for (const auto& l : levels) {
    if (svn >= l.isv_svn) return &l;
  }
  return nullptr;
}

std::string module_identity_id(uint8_t version) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "TDX_%02X", version);
  return buf;
}

const TdxModuleIdentity* find_module_identity(const TcbInfo& info, uint8_t version) {
  std::string id = module_identity_id(version);
  for (const auto& m : info.tdx_module_identities) {
    if (m.id == id) return &m;
  }
  return nullptr;
}

struct TcbOutcome {
  TcbStatus status = TcbStatus::kUpToDate;
  const TcbLevel* level = nullptr;
  std::optional<TcbStatus> module_status;
  const IdentityTcbLevel* module_level = nullptr;
  bool relaunch_advised = false;
};

bool sgx_level_matches(const PckExtensions& ext, const TcbLevel& l) {
  for (size_t i = 0; i < 16; ++i) {
    if (ext.cpu_svn_components[i] < l.sgx_components[i]) return false;
  }
  return ext.pce_svn >= l.pce_svn;
}

bool tdx_level_matches(const std::array<uint8_t, 16>& tee_tcb_svn, const TcbLevel& l) {
  // With a TDX module version (TEE_TCB_SVN[1] > 0) the first two bytes are the module's SVN and
  // version, judged by the TDX module identities instead.
  size_t start = tee_tcb_svn[1] > 0 ? 2 : 0;
  for (size_t i = start; i < 16; ++i) {
    if (tee_tcb_svn[i] < (*l.tdx_components)[i]) return false;
  }
  return true;
}

Result<TcbOutcome> evaluate_tcb(const Quote& q, const PckExtensions& ext, const TcbInfo& info,
                                TcbStatus qe_status) {
  TcbOutcome out;
  const bool tdx = info.version >= 3 && info.id == TcbInfo::Id::kTdx && q.is_tdx();
  const TcbLevel* sgx_level = nullptr;
  const TcbLevel* tdx_level = nullptr;
  // [QVL 4.1.2.4.17.1-3] the first (highest) level the platform's SGX components and PCESVN
  // reach; for TDX the first of those the TEE_TCB_SVN reaches too.
  for (const auto& level : info.levels) {
    if (!sgx_level_matches(ext, level)) continue;
    if (!sgx_level) sgx_level = &level;
    if (!tdx) break;
    if (level.tdx_components && tdx_level_matches(q.td_body->tee_tcb_svn, level)) {
      tdx_level = &level;
      break;
    }
  }
  if (!sgx_level) {
    return reason::fail(reason::kTcbNoMatchingLevel,
                        "the PCK's SGX TCB components and PCESVN are below every TCB level");
  }
  if (!tdx) {
    out.level = sgx_level;
    out.status = converge(sgx_level->status, qe_status);
    return out;
  }
  if (!tdx_level) {
    return reason::fail(reason::kTcbNoMatchingLevel, "TEE_TCB_SVN is below every TDX TCB level");
  }
  out.level = tdx_level;

  // [QVL 4.1.2.4.17.4.1] TDX module TCB status from the module identity of TEE_TCB_SVN[1].
  const auto& svn = q.td_body->tee_tcb_svn;
  TcbStatus module_status = TcbStatus::kUpToDate;
  if (!(q.version > kQuoteV3 && svn[1] == 0)) {
    const TdxModuleIdentity* ident = find_module_identity(info, svn[1]);
    if (!ident) {
      return reason::fail(reason::kTdxModuleMismatch, "no TDX module identity " + module_identity_id(svn[1]));
    }
    out.module_level = identity_level(ident->levels, svn[0]);
    if (!out.module_level) {
      return reason::fail(reason::kTdxModuleNoLevel, "TDX module SVN below every module TCB level");
    }
    module_status = out.module_level->status;
    out.module_status = module_status;
  }
  TcbStatus status = converge(tdx_level->status, module_status);

  // [QVL 4.1.2.4.17.4.3] TD relaunch: a TD 1.5 whose TDX TCB is out of date only because of the
  // TDX module, while TEE_TCB_SVN2 shows the module was updated since the TD launched. Intel
  // reports a separate status; we keep OutOfDate and flag it (td_relaunch_advised).
  if (q.td15_extension && status != TcbStatus::kRevoked &&
      qe_status != TcbStatus::kOutOfDate && qe_status != TcbStatus::kRevoked &&
      (sgx_level->status == TcbStatus::kUpToDate || sgx_level->status == TcbStatus::kSwHardeningNeeded ||
       is_configuration_needed(sgx_level->status)) &&
      (status == TcbStatus::kOutOfDate || status == TcbStatus::kOutOfDateConfigurationNeeded) &&
      module_status == TcbStatus::kOutOfDate) {
    const auto& svn2 = q.td15_extension->tee_tcb_svn2;
    const TcbLevel& latest = info.levels.front();
    if (latest.tdx_components) {
      if (svn2[1] == 0) {
        out.relaunch_advised = svn2[0] >= (*latest.tdx_components)[0] &&
                               svn2[2] >= (*latest.tdx_components)[2];
      } else if (const TdxModuleIdentity* id2 = find_module_identity(info, svn2[1]);
                 id2 && !id2->levels.empty()) {
        out.relaunch_advised = svn2[0] >= id2->levels.front().isv_svn &&
                               svn2[2] >= (*latest.tdx_components)[2];
      }
    }
  }
  out.status = converge(status, qe_status);
  return out;
}

// --- Claims -------------------------------------------------------------------------------

template <size_t N>
std::string hex(const std::array<uint8_t, N>& a) {
  return hex_encode(ByteSpan(a.data(), a.size()));
}

void add_unique(std::vector<std::string>& out, const std::vector<std::string>& ids) {
  for (const auto& id : ids) {
    if (std::find(out.begin(), out.end(), id) == out.end()) out.push_back(id);
  }
}

Claims base_claims(const Quote& q, const PckInfo& pck) {
  Claims c;
  auto& f = c.fields;
  c.report_data = Bytes(q.report_data().begin(), q.report_data().end());
  f["quote_version"] = static_cast<int64_t>(q.version);
  if (q.sgx_body) {
    const EnclaveReport& r = *q.sgx_body;
    c.tee = TeeType::kSgx;
    c.debug = (r.attributes[0] & 0x02) != 0;  // SGX ATTRIBUTES.DEBUG (bit 1)
    f["mrenclave"] = hex(r.mr_enclave);
    f["mrsigner"] = hex(r.mr_signer);
    f["isv_prod_id"] = static_cast<int64_t>(r.isv_prod_id_value());
    f["isv_svn"] = static_cast<int64_t>(r.isv_svn_value());
    f["attributes"] = hex(r.attributes);
    f["misc_select"] = hex(r.misc_select);
    f["cpu_svn"] = hex(r.cpu_svn);
    f["config_id"] = hex(r.config_id);
    f["config_svn"] = static_cast<int64_t>(r.config_svn_value());
    f["isv_ext_prod_id"] = hex(r.isv_ext_prod_id);
    f["isv_family_id"] = hex(r.isv_family_id);
  } else {
    const Td10ReportBody& t = *q.td_body;
    c.tee = TeeType::kTdx;
    c.debug = (t.td_attributes[0] & 0x01) != 0;  // TD_ATTRIBUTES.DEBUG (bit 0)
    f["tee_tcb_svn"] = hex(t.tee_tcb_svn);
    f["mrseam"] = hex(t.mr_seam);
    f["mrsignerseam"] = hex(t.mr_signer_seam);
    f["seam_attributes"] = hex(t.seam_attributes);
    f["td_attributes"] = hex(t.td_attributes);
    f["xfam"] = hex(t.xfam);
    f["mrtd"] = hex(t.mr_td);
    f["mrconfigid"] = hex(t.mr_config_id);
    f["mrowner"] = hex(t.mr_owner);
    f["mrownerconfig"] = hex(t.mr_owner_config);
    f["rtmr0"] = hex(t.rtmr0);
    f["rtmr1"] = hex(t.rtmr1);
    f["rtmr2"] = hex(t.rtmr2);
    f["rtmr3"] = hex(t.rtmr3);
    if (q.td15_extension) {
      f["tee_tcb_svn2"] = hex(q.td15_extension->tee_tcb_svn2);
      f["mrservicetd"] = hex(q.td15_extension->mr_service_td);
    }
  }
  f["fmspc"] = hex(pck.ext.fmspc);
  f["pce_id"] = hex(pck.ext.pce_id);
  f["pce_svn"] = static_cast<int64_t>(pck.ext.pce_svn);
  f["pck_cpu_svn"] = hex(pck.ext.cpu_svn);
  f["sgx_type"] = static_cast<int64_t>(pck.ext.sgx_type);
  f["qe_svn"] = static_cast<int64_t>(q.qe_report.isv_svn_value());
  return c;
}

}  // namespace

// --- DcapVerifier -----------------------------------------------------------------------------

struct DcapVerifier::State {
  std::shared_ptr<const Anchor> anchor;
  Status anchor_error;
  mutable std::mutex mu;
  mutable ContentCache<ParsedCollateral> collateral;
  mutable ContentCache<PckInfo> pcks;
  mutable std::map<std::pair<uint64_t, uint64_t>, Status> crl_checks;
  mutable std::unordered_map<std::string, PublicKey> attestation_keys;
  // SHA-256(PCK chain id || QE report || its signature) of QE report signatures that verified.
  // A QE report certifies one attestation key and is the same in every quote that key signs, so
  // a platform's quotes after the first cost one ECDSA verification, not two. Keyed by the
  // exact bytes (and the PCK chain they were checked against), the memo can only repeat a
  // verification that succeeded on identical input.
  mutable std::unordered_set<std::string> verified_qe_reports;
  mutable std::atomic<uint64_t> next_id{1};
  mutable std::atomic<uint64_t> hits{0};
  mutable std::atomic<uint64_t> misses{0};
};

DcapVerifier::DcapVerifier(VerifierConfig config)
    : config_(std::move(config)), state_(std::make_unique<State>()) {
  Result<std::shared_ptr<const Anchor>> anchor =
      config_.trusted_root ? make_anchor(*config_.trusted_root) : production_anchor();
  if (anchor.ok()) {
    state_->anchor = std::move(*anchor);
  } else {
    state_->anchor_error = internal_error("trusted root unusable: " + anchor.status().message());
  }
  if (config_.cache_capacity == 0) config_.cache_capacity = 1;
}

DcapVerifier::~DcapVerifier() = default;

CacheStats DcapVerifier::cache_stats() const { return {state_->hits.load(), state_->misses.load()}; }

VerifyResult DcapVerifier::verify(const Evidence& evidence, const Collateral& collateral,
                                  const VerifyOptions& options) const {
  if (evidence.tee != config_.tee || (evidence.tee != TeeType::kSgx && evidence.tee != TeeType::kTdx)) {
    return VerifyResult::reject(std::string(reason::kQuoteTeeMismatch),
                                "this verifier takes " + std::string(tee_name(config_.tee)) + " evidence");
  }
  VerifyResult r = verify_quote(evidence.data, collateral, options);
  if (r.ok() && r.claims().tee != evidence.tee) {
    return VerifyResult::reject(std::string(reason::kQuoteTeeMismatch),
                                "the quote is not a " + std::string(tee_name(evidence.tee)) + " quote");
  }
  return r;
}

namespace {

VerifyResult rejected(const Status& s) { return VerifyResult::reject(reason::reason_of(s), s.message()); }

// The PCK chain bytes: in the quote (type 5) or, for PPID-only quotes (types 1-4), from collateral.
Result<ByteSpan> pck_chain_bytes(const Quote& q, const Collateral& collateral) {
  if (q.cert_data_type == CertDataType::kPckChainPem) {
    // [QL "Certification Data"]: type 5 is the PEM chain; anything else under type 5 is malformed.
    if (as_string_view(q.cert_data).find("-----BEGIN CERTIFICATE-----") == std::string_view::npos) {
      return reason::fail(reason::kCertDataMalformed, "certification data type 5 is not PEM");
    }
    return q.cert_data;
  }
  const Bytes* b = item(collateral, "pck_chain");
  if (!b) {
    return reason::fail(reason::kPckChain, reason::kMissing,
                        "the quote carries no PCK chain (certification data type " +
                            std::to_string(static_cast<int>(q.cert_data_type)) +
                            ") and collateral has no pck_chain");
  }
  return ByteSpan(*b);
}

}  // namespace

VerifyResult DcapVerifier::verify_signatures_only(ByteSpan quote, const Collateral& collateral,
                                                  SysTime at) const {
  VerifyOptions opts;
  opts.at = at;
  // A run of the full pipeline that stops after the signature checks.
  auto parsed = parse_quote(quote);
  if (!parsed.ok()) return rejected(parsed.status());
  const Quote& q = *parsed;
  if (!state_->anchor) return rejected(state_->anchor_error);
  const Anchor& anchor = *state_->anchor;

  auto chain_bytes = pck_chain_bytes(q, collateral);
  if (!chain_bytes.ok()) return rejected(chain_bytes.status());
  auto pck = parse_pck(*chain_bytes, anchor);
  if (!pck.ok()) return rejected(pck.status());
  Status st = check_window(at, (*pck)->chain.not_before, (*pck)->chain.not_after, reason::kPckChain,
                           "the PCK certificate chain");
  if (!st.ok()) return rejected(st);
  if (!(*pck)->leaf_key.verify(q.qe_report_raw, q.qe_report_signature, raw_ecdsa_sha256()).ok()) {
    return rejected(reason::fail(reason::kQeReportSignature, "QE report signature does not verify with the PCK key"));
  }
  crypto::Hasher h(crypto::HashAlg::kSha256);
  h.update(q.attestation_key);
  h.update(q.qe_auth_data);
  Bytes binding = h.finish();
  if (!std::equal(binding.begin(), binding.end(), q.qe_report.report_data.begin())) {
    return rejected(reason::fail(reason::kQeReportBinding, "QE report data does not hash the attestation key"));
  }
  auto key = PublicKey::from_ec_xy(crypto::KeyType::kEcP256, q.attestation_key);
  if (!key.ok()) return rejected(reason::fail(reason::kAttestationKey, "attestation key is not a P-256 point"));
  if (!key->verify(q.signed_data, q.signature, raw_ecdsa_sha256()).ok()) {
    return rejected(reason::fail(reason::kQuoteSignature, "quote signature does not verify"));
  }
  Claims c = base_claims(q, **pck);
  c.tcb_status = TcbStatus::kNotApplicable;
  c.fields["collateral"] = "none";
  return VerifyResult::accept(std::move(c));
}

VerifyResult DcapVerifier::verify_quote(ByteSpan quote, const Collateral& collateral,
                                        const VerifyOptions& options) const {
  const SysTime at = options.at;
  auto parsed = parse_quote(quote);
  if (!parsed.ok()) return rejected(parsed.status());
  const Quote& q = *parsed;
  if (!state_->anchor) return rejected(state_->anchor_error);
  const Anchor& anchor = *state_->anchor;
  State& s = *state_;

  // PCK chain: cached by content.
  auto chain_bytes = pck_chain_bytes(q, collateral);
  if (!chain_bytes.ok()) return rejected(chain_bytes.status());
  const size_t pck_key = std::hash<std::string_view>{}(as_string_view(*chain_bytes));
  std::shared_ptr<const PckInfo> pck;
  {
    std::lock_guard lock(s.mu);
    pck = s.pcks.find(pck_key, [&](const PckInfo& p) {
      return p.source.size() == chain_bytes->size() &&
             std::equal(p.source.begin(), p.source.end(), chain_bytes->begin());
    });
  }
  if (!pck) {
    s.misses++;
    auto fresh = parse_pck(*chain_bytes, anchor);
    if (!fresh.ok()) return rejected(fresh.status());
    (*fresh)->id = s.next_id++;
    pck = std::move(*fresh);
    std::lock_guard lock(s.mu);
    s.pcks.insert(pck_key, pck, config_.cache_capacity);
  } else {
    s.hits++;
  }

  // Collateral: cached by content.
  const size_t coll_key = hash_collateral(collateral);
  std::shared_ptr<const ParsedCollateral> coll;
  {
    std::lock_guard lock(s.mu);
    coll = s.collateral.find(coll_key, [&](const ParsedCollateral& p) { return p.source == collateral; });
  }
  if (!coll) {
    s.misses++;
    auto fresh = parse_collateral(collateral, anchor);
    if (!fresh.ok()) return rejected(fresh.status());
    (*fresh)->id = s.next_id++;
    coll = std::move(*fresh);
    std::lock_guard lock(s.mu);
    s.collateral.insert(coll_key, coll, config_.cache_capacity);
  } else {
    s.hits++;
  }

  // CRLs against this PCK chain: cached per (collateral, chain) pair.
  {
    std::optional<Status> cached;
    const auto pair_key = std::make_pair(coll->id, pck->id);
    {
      std::lock_guard lock(s.mu);
      auto it = s.crl_checks.find(pair_key);
      if (it != s.crl_checks.end()) cached = it->second;
    }
    if (!cached) {
      cached = check_pck_crls(*pck, *coll);
      std::lock_guard lock(s.mu);
      if (s.crl_checks.size() >= config_.cache_capacity * 4) s.crl_checks.clear();
      s.crl_checks[pair_key] = *cached;
    }
    if (!cached->ok()) return rejected(*cached);
  }

  // Time: every certificate, CRL and signed JSON must be valid at `at`.
  const TcbInfo& tcb = coll->tcb_info;
  const EnclaveIdentity& qe_id = coll->qe_identity;
  for (const Status& st : {
           check_window(at, pck->chain.not_before, pck->chain.not_after, reason::kPckChain,
                        "the PCK certificate chain"),
           check_window(at, coll->tcb_chain.not_before, coll->tcb_chain.not_after,
                        reason::kTcbSigningChain, "the TCB Info signing chain"),
           check_window(at, coll->qe_chain.not_before, coll->qe_chain.not_after,
                        reason::kQeIdentityChain, "the QE Identity signing chain"),
           check_window(at, coll->root_crl.this_update(), coll->root_crl_next, reason::kRootCrl,
                        "the root CA CRL"),
           check_window(at, coll->pck_crl.this_update(), coll->pck_crl_next, reason::kPckCrl,
                        "the PCK CRL"),
           check_window(at, tcb.issue_date, tcb.next_update, reason::kTcbInfo, "TCB Info"),
           check_window(at, qe_id.issue_date, qe_id.next_update, reason::kQeIdentity, "QE Identity"),
       }) {
    if (!st.ok()) return rejected(st);
  }

  // [QVL 4.1.2.4.9] TCB Info made for this TEE.
  if (tcb.version >= 3) {
    bool tdx_info = tcb.id == TcbInfo::Id::kTdx;
    if (tdx_info != q.is_tdx()) {
      return rejected(reason::fail(reason::kTcbInfo, reason::kTeeMismatch,
                                   tdx_info ? "TDX TCB Info for an SGX quote" : "SGX TCB Info for a TDX quote"));
    }
  } else if (q.is_tdx()) {
    return rejected(reason::fail(reason::kTcbInfo, reason::kTeeMismatch, "TCB Info v2 cannot describe TDX"));
  }
  // [QVL 4.1.2.4.10] TCB Info made for this platform.
  if (tcb.fmspc != pck->ext.fmspc) {
    return rejected(reason::fail(reason::kTcbInfo, reason::kFmspcMismatch,
                                 "TCB Info FMSPC " + hex(tcb.fmspc) + " is not the PCK's " + hex(pck->ext.fmspc)));
  }
  if (tcb.pce_id != pck->ext.pce_id) {
    return rejected(reason::fail(reason::kTcbInfo, reason::kPceIdMismatch, "TCB Info PCEID is not the PCK's"));
  }

  // [QVL 4.1.2.4.11] TDX: the SEAM module is Intel's (MRSIGNERSEAM) with no SEAM attributes.
  if (q.is_tdx() && tcb.tdx_module) {
    const auto& svn = q.td_body->tee_tcb_svn;
    const TdxModule* module = &*tcb.tdx_module;
    if (q.version > kQuoteV3 && svn[1] > 0) {
      const TdxModuleIdentity* ident = find_module_identity(tcb, svn[1]);
      if (!ident) {
        return rejected(reason::fail(reason::kTdxModuleMismatch,
                                     "TCB Info has no TDX module identity " + module_identity_id(svn[1])));
      }
      module = &ident->module;
    }
    if (q.td_body->mr_signer_seam != module->mr_signer) {
      return rejected(reason::fail(reason::kTdxModuleMismatch, "MRSIGNERSEAM is not the TDX module signer"));
    }
    for (size_t i = 0; i < 8; ++i) {
      if (q.td_body->seam_attributes[i] != 0 || module->attributes[i] != 0) {
        return rejected(reason::fail(reason::kTdxModuleMismatch, "SEAM attributes are not zero"));
      }
    }
  }

  // [QVL 4.1.2.4.12] the QE report is signed by the PCK key (memoized by content, see State).
  std::string qe_memo;
  {
    crypto::Hasher h(crypto::HashAlg::kSha256);
    const uint64_t id = pck->id;
    h.update(ByteSpan(reinterpret_cast<const uint8_t*>(&id), sizeof id));
    h.update(q.qe_report_raw);
    h.update(q.qe_report_signature);
    Bytes d = h.finish();
    qe_memo.assign(d.begin(), d.end());
  }
  bool qe_verified = false;
  {
    std::lock_guard lock(s.mu);
    qe_verified = s.verified_qe_reports.contains(qe_memo);
  }
  if (!qe_verified) {
    if (!pck->leaf_key.verify(q.qe_report_raw, q.qe_report_signature, raw_ecdsa_sha256()).ok()) {
      return rejected(reason::fail(reason::kQeReportSignature,
                                   "QE report signature does not verify with the PCK key"));
    }
    std::lock_guard lock(s.mu);
    if (s.verified_qe_reports.size() >= config_.cache_capacity) s.verified_qe_reports.clear();
    s.verified_qe_reports.insert(std::move(qe_memo));
  }
  // [QVL 4.1.2.4.13] the QE report binds the attestation key: SHA-256(key || auth data).
  crypto::Hasher hasher(crypto::HashAlg::kSha256);
  hasher.update(q.attestation_key);
  hasher.update(q.qe_auth_data);
  Bytes binding = hasher.finish();
  if (!std::equal(binding.begin(), binding.end(), q.qe_report.report_data.begin())) {
    return rejected(reason::fail(reason::kQeReportBinding,
                                 "QE report data is not SHA-256(attestation key || QE auth data)"));
  }

  // [QVL 4.1.2.4.14-15] the QE is the one the QE Identity describes.
  const std::string expected_qe = q.is_tdx() ? "TD_QE" : "QE";
  if (qe_id.id != expected_qe) {
    return rejected(reason::fail(reason::kQeIdentity, reason::kTeeMismatch,
                                 "QE Identity '" + qe_id.id + "' where '" + expected_qe + "' is needed"));
  }
  const EnclaveReport& qe = q.qe_report;
  if ((qe.misc_select_value() & qe_id.misc_select_mask) != qe_id.misc_select) {
    return rejected(reason::fail(reason::kQeIdentity, reason::kMiscselect, "QE MISCSELECT does not match"));
  }
  for (size_t i = 0; i < 16; ++i) {
    if ((qe.attributes[i] & qe_id.attributes_mask[i]) != qe_id.attributes[i]) {
      return rejected(reason::fail(reason::kQeIdentity, reason::kAttributes, "QE ATTRIBUTES do not match"));
    }
  }
  if (!constant_time_equal(qe.mr_signer, qe_id.mr_signer)) {
    return rejected(reason::fail(reason::kQeIdentity, reason::kMrsigner, "QE MRSIGNER is not Intel's"));
  }
  if (qe.isv_prod_id_value() != qe_id.isv_prod_id) {
    return rejected(reason::fail(reason::kQeIdentity, reason::kIsvProdId, "QE ISVPRODID does not match"));
  }
  const IdentityTcbLevel* qe_level = identity_level(qe_id.levels, qe.isv_svn_value());
  if (!qe_level) {
    return rejected(reason::fail(reason::kQeIdentity, reason::kNoMatchingLevel,
                                 "QE ISVSVN is below every QE Identity TCB level"));
  }
  // QVL reads any QE level status other than UpToDate and Revoked as OutOfDate.
  TcbStatus qe_status = qe_level->status;
  if (qe_status != TcbStatus::kUpToDate && qe_status != TcbStatus::kRevoked) qe_status = TcbStatus::kOutOfDate;

  // [QVL 4.1.2.4.16] the quote is signed by the attestation key.
  std::optional<PublicKey> att_key;
  const std::string key_id(as_string_view(q.attestation_key));
  {
    std::lock_guard lock(s.mu);
    auto it = s.attestation_keys.find(key_id);
    if (it != s.attestation_keys.end()) att_key = it->second;
  }
  if (!att_key) {
    auto k = PublicKey::from_ec_xy(crypto::KeyType::kEcP256, q.attestation_key);
    if (!k.ok()) return rejected(reason::fail(reason::kAttestationKey, "attestation key is not a P-256 point"));
    att_key = *k;
    // Cache only keys certified by a valid QE report (checked above), so junk cannot fill it.
    std::lock_guard lock(s.mu);
    if (s.attestation_keys.size() >= config_.cache_capacity) s.attestation_keys.clear();
    s.attestation_keys.emplace(key_id, *k);
  }
  if (!att_key->verify(q.signed_data, q.signature, raw_ecdsa_sha256()).ok()) {
    return rejected(reason::fail(reason::kQuoteSignature, "quote signature does not verify with the attestation key"));
  }

  // [QVL 4.1.2.4.17] TCB level and status.
  auto outcome = evaluate_tcb(q, pck->ext, tcb, qe_status);
  if (!outcome.ok()) return rejected(outcome.status());
  if (config_.reject_revoked_tcb && outcome->status == TcbStatus::kRevoked) {
    return rejected(reason::fail(reason::kTcbRevoked, "the platform's TCB level is Revoked"));
  }

  Claims c = base_claims(q, *pck);
  c.tcb_status = outcome->status;
  add_unique(c.advisory_ids, outcome->level->advisory_ids);
  if (outcome->module_level) add_unique(c.advisory_ids, outcome->module_level->advisory_ids);
  add_unique(c.advisory_ids, qe_level->advisory_ids);
  SysTime expiry = std::min({pck->chain.not_after, coll->tcb_chain.not_after, coll->qe_chain.not_after,
                             coll->root_crl_next, coll->pck_crl_next, tcb.next_update, qe_id.next_update});
  c.collateral_expiry = expiry;
  c.collateral_issued = std::max(tcb.issue_date, qe_id.issue_date);
  auto& f = c.fields;
  f["tcb_date"] = format_rfc3339(outcome->level->tcb_date);
  f["tcb_evaluation_data_number"] = static_cast<int64_t>(tcb.tcb_evaluation_data_number);
  f["qe_tcb_status"] = tcb_status_name(qe_level->status);
  if (outcome->module_status) f["tdx_module_tcb_status"] = tcb_status_name(*outcome->module_status);
  if (q.td15_extension) f["td_relaunch_advised"] = outcome->relaunch_advised;
  return VerifyResult::accept(std::move(c));
}

}  // namespace custos::attestation::dcap
