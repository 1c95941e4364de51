#include "attestation/snp/verifier.h"

#include <algorithm>
#include <exception>
#include <functional>
#include <mutex>
#include <string_view>
#include <unordered_map>

#include "attestation/snp/amd_roots.h"
#include "attestation/snp/vek.h"
#include "base/encoding.h"
#include "crypto/pkey.h"

namespace custos::attestation::snp {
namespace {

VerifyResult reject(std::string reason, std::string message) {
  return VerifyResult::reject(std::move(reason), std::move(message));
}

template <size_t N>
std::string hex(const std::array<uint8_t, N>& a) {
  return hex_encode(ByteSpan(a.data(), a.size()));
}

bool same_key(const crypto::PublicKey& a, const crypto::PublicKey& b) {
  return a.to_der() == b.to_der();
}

bool self_signed(const crypto::Certificate& c) { return c.subject() == c.issuer(); }

boost::json::object tcb_json(const TcbVersion& t) {
  boost::json::object o;
  o["bootloader"] = t.bootloader;
  o["tee"] = t.tee;
  o["snp"] = t.snp;
  o["microcode"] = t.microcode;
  if (t.fmc) o["fmc"] = *t.fmc;
  return o;
}

// Validity at `at` (RFC 5280 section 4.1.2.5: both bounds inclusive). `what` names the
// certificate in reason codes: "snp.vek.expired", "snp.ask.not_yet_valid", ...
std::optional<VerifyResult> check_validity(const crypto::Certificate& c, SysTime at,
                                           const std::string& what) {
  if (at < c.not_before()) {
    return reject("snp." + what + ".not_yet_valid",
                  what + " certificate is valid from " + format_rfc3339(c.not_before()));
  }
  if (at > c.not_after()) {
    return reject("snp." + what + ".expired",
                  what + " certificate expired at " + format_rfc3339(c.not_after()));
  }
  return std::nullopt;
}

Result<std::vector<crypto::Certificate>> parse_chain(ByteSpan data) {
  auto pem = crypto::Certificate::chain_from_pem(as_string_view(data));
  if (pem.ok() && !pem->empty()) return std::move(pem).value();
  ASSIGN_OR_RETURN(auto one, crypto::Certificate::from_any(data));
  return std::vector<crypto::Certificate>{std::move(one)};
}

Result<ProductAnchor> make_anchor(const char* product, const char* ark, const char* ask,
                                  const char* asvk, TcbLayout layout, uint8_t family) {
  ProductAnchor a;
  a.product = product;
  ASSIGN_OR_RETURN(a.ark, crypto::Certificate::from_pem(ark));
  ASSIGN_OR_RETURN(auto ask_cert, crypto::Certificate::from_pem(ask));
  ASSIGN_OR_RETURN(auto asvk_cert, crypto::Certificate::from_pem(asvk));
  a.intermediates.push_back(std::move(ask_cert));
  a.intermediates.push_back(std::move(asvk_cert));
  a.tcb_layout = layout;
  a.cpuid_family = family;
  return a;
}

}  // namespace

Result<std::vector<ProductAnchor>> amd_product_anchors() {
  // Decoded once per process: these are compiled-in constants, and certificates are immutable
  // and shared between copies, so every verifier can hold the same ones.
  static const Result<std::vector<ProductAnchor>> anchors =
      []() -> Result<std::vector<ProductAnchor>> {
    std::vector<ProductAnchor> out;
    ASSIGN_OR_RETURN(auto milan, make_anchor("Milan", kMilanArkPem, kMilanAskPem, kMilanAsvkPem,
                                             TcbLayout::kMilanGenoa, 0x19));
    ASSIGN_OR_RETURN(auto genoa, make_anchor("Genoa", kGenoaArkPem, kGenoaAskPem, kGenoaAsvkPem,
                                             TcbLayout::kMilanGenoa, 0x19));
    ASSIGN_OR_RETURN(auto turin, make_anchor("Turin", kTurinArkPem, kTurinAskPem, kTurinAsvkPem,
                                             TcbLayout::kTurin, 0x1A));
    out.push_back(std::move(milan));
    out.push_back(std::move(genoa));
    out.push_back(std::move(turin));
    return out;
  }();
  return anchors;
}

// --- The VEK chain cache ----------------------------------------------------------------------

// The time-free outcome of steps 2-3 for one (key kind, VEK bytes, ask_ark bytes): only chains
// whose every signature verified are represented. The certificates are kept so that their
// validity can be checked against each call's verification time.
struct SnpVerifier::VerifiedVek {
  bool is_vlek = false;
  Bytes vek_bytes;
  std::optional<Bytes> chain_bytes;  // "ask_ark" as given; unset: none given
  crypto::Certificate vek;
  crypto::PublicKey vek_key;
  VekExtensions ext;
  crypto::Certificate inter;              // the ASK or ASVK that signed the VEK
  const ProductAnchor* anchor = nullptr;  // one of the verifier's anchors_ (never reallocated)

  bool matches(bool vlek, ByteSpan vek_in, const std::optional<ByteSpan>& chain_in) const {
    auto same = [](const Bytes& a, ByteSpan b) {
      return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
    };
    if (is_vlek != vlek || !same(vek_bytes, vek_in)) return false;
    if (chain_bytes.has_value() != chain_in.has_value()) return false;
    return !chain_in || same(*chain_bytes, *chain_in);
  }
};

// Bounded (least recently used out) and guarded by one mutex held only for lookups and inserts;
// parsing and signature checks of a miss run outside it, so two threads missing on the same
// bytes both verify, and the second insert keeps the first entry.
class SnpVerifier::ChainCache {
 public:
  explicit ChainCache(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

  static size_t key(bool vlek, ByteSpan vek, const std::optional<ByteSpan>& chain) {
    std::hash<std::string_view> h;
    size_t k = h(as_string_view(vek));
    k = k * 31 + (chain ? h(as_string_view(*chain)) + 1 : 0);
    return k * 2 + (vlek ? 1 : 0);
  }

  std::shared_ptr<const VerifiedVek> find(bool vlek, ByteSpan vek,
                                          const std::optional<ByteSpan>& chain) {
    const size_t k = key(vlek, vek, chain);
    std::lock_guard lock(mu_);
    auto [begin, end] = map_.equal_range(k);
    for (auto it = begin; it != end; ++it) {
      if (it->second.entry->matches(vlek, vek, chain)) {
        it->second.last_used = ++tick_;
        ++hits_;
        return it->second.entry;
      }
    }
    ++misses_;
    return nullptr;
  }

  std::shared_ptr<const VerifiedVek> insert(std::shared_ptr<const VerifiedVek> e) {
    std::optional<ByteSpan> chain;
    if (e->chain_bytes) chain = ByteSpan(*e->chain_bytes);
    const size_t k = key(e->is_vlek, e->vek_bytes, chain);
    std::lock_guard lock(mu_);
    auto [begin, end] = map_.equal_range(k);
    for (auto it = begin; it != end; ++it) {
      if (it->second.entry->matches(e->is_vlek, e->vek_bytes, chain)) return it->second.entry;
    }
    if (map_.size() >= capacity_) {
      auto oldest = std::min_element(map_.begin(), map_.end(), [](const auto& a, const auto& b) {
        return a.second.last_used < b.second.last_used;
      });
      map_.erase(oldest);
    }
    map_.emplace(k, Slot{e, ++tick_});
    return e;
  }

  CacheStats stats() const {
    std::lock_guard lock(mu_);
    return {hits_, misses_, map_.size()};
  }

 private:
  struct Slot {
    std::shared_ptr<const VerifiedVek> entry;
    uint64_t last_used = 0;
  };
  const size_t capacity_;
  mutable std::mutex mu_;
  std::unordered_multimap<size_t, Slot> map_;
  uint64_t tick_ = 0;
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
};

SnpVerifier::VekChainOutcome SnpVerifier::VekChainOutcome::failed(std::string reason,
                                                                  std::string message) {
  VekChainOutcome out(nullptr);
  out.rejection = reject(std::move(reason), std::move(message));
  return out;
}

SnpVerifier::SnpVerifier(VerifierConfig config)
    : use_builtin_intermediates_(config.use_builtin_intermediates),
      cache_(std::make_unique<ChainCache>(config.cache_capacity)) {
  if (config.anchors) {
    anchors_ = std::move(*config.anchors);
  } else {
    auto amd = amd_product_anchors();
    if (amd.ok()) {
      anchors_ = std::move(amd).value();
    } else {
      init_status_ = amd.status();
    }
  }
  // An ARK is only an anchor if it is a self-signed CA (AMD SEV-SNP ABI spec, "Key Hierarchy").
  for (const auto& a : anchors_) {
    if (!self_signed(a.ark) || !a.ark.is_ca() ||
        !a.ark.verify_signature(a.ark.public_key()).ok()) {
      init_status_ = failed_precondition("ARK for " + a.product + " is not a self-signed CA");
    }
  }
}

// Steps 2 and 3 for one VEK and chain: everything that depends only on the certificate bytes
// and the report's key kind, i.e. parsing, names, key type, extensions and every signature of the
// chain. Nothing here depends on the verification time.
SnpVerifier::VekChainOutcome SnpVerifier::verify_vek_chain(
    bool is_vlek, ByteSpan vek_bytes, std::optional<ByteSpan> chain_bytes) const {
  const std::string vek_name = is_vlek ? "VLEK" : "VCEK";
  auto vek_or = crypto::Certificate::from_any(vek_bytes);
  if (!vek_or.ok()) return VekChainOutcome::failed("snp.vek.parse", vek_or.status().message());
  const crypto::Certificate& vek = *vek_or;
  // The report names the key that signed it; a certificate of the other kind cannot be its key.
  const std::string expected_cn = is_vlek ? "SEV-VLEK" : "SEV-VCEK";
  if (vek.subject_cn() != expected_cn) {
    return VekChainOutcome::failed(
        "snp.vek.type_mismatch",
        "report is signed by a " + vek_name + " but the certificate is " + vek.subject_cn());
  }
  crypto::PublicKey vek_key = vek.public_key();
  if (vek_key.type() != crypto::KeyType::kEcP384) {
    return VekChainOutcome::failed("snp.vek.key_type", vek_name + " key is not EC P-384");
  }
  auto ext = parse_vek_extensions(vek);
  if (!ext.ok()) return VekChainOutcome::failed("snp.vek.extensions", ext.status().message());

  // --- 3. Chain: VEK <- ASK/ASVK <- ARK (pinned). ABI spec "Key Hierarchy"; RSA-PSS SHA-384.
  std::vector<crypto::Certificate> pool;
  if (chain_bytes) {
    auto chain = parse_chain(*chain_bytes);
    if (!chain.ok()) return VekChainOutcome::failed("snp.chain.parse", chain.status().message());
    for (auto& c : *chain) {
      if (self_signed(c)) {
        // A root in the collateral must be one we pin; anything else is an impostor, even with
        // the right name.
        bool pinned = std::any_of(anchors_.begin(), anchors_.end(), [&](const ProductAnchor& a) {
          return same_key(a.ark.public_key(), c.public_key());
        });
        if (!pinned) {
          return VekChainOutcome::failed(
              "snp.ark.untrusted",
              "root certificate " + c.subject_cn() + " in ask_ark is not a pinned ARK");
        }
        continue;  // the pinned copy is used
      }
      pool.push_back(std::move(c));
    }
  } else if (use_builtin_intermediates_) {
    for (const auto& a : anchors_) {
      pool.insert(pool.end(), a.intermediates.begin(), a.intermediates.end());
    }
  }
  const crypto::Certificate* inter = nullptr;
  bool name_matched = false;
  for (const auto& c : pool) {
    if (c.subject() != vek.issuer()) continue;
    name_matched = true;
    if (vek.verify_signature(c.public_key()).ok()) {
      inter = &c;
      break;
    }
  }
  if (!name_matched) {
    return VekChainOutcome::failed(
        "snp.chain.no_issuer", "no " + std::string(is_vlek ? "ASVK" : "ASK") + " named like the " +
                                   vek_name + " issuer (" + vek.issuer() + ") was supplied");
  }
  if (inter == nullptr) {
    return VekChainOutcome::failed("snp.vek.signature",
                                   vek_name + " certificate signature does not verify");
  }
  const std::string inter_role = is_vlek ? "asvk" : "ask";
  const ProductAnchor* anchor = nullptr;
  for (const auto& a : anchors_) {
    if (a.ark.subject() == inter->issuer()) {
      anchor = &a;
      break;
    }
  }
  if (anchor == nullptr) {
    return VekChainOutcome::failed(
        "snp.ark.untrusted",
        inter->subject_cn() + " is not issued by a pinned ARK (" + inter->issuer() + ")");
  }
  if (!inter->verify_signature(anchor->ark.public_key()).ok()) {
    return VekChainOutcome::failed(
        "snp." + inter_role + ".signature",
        inter->subject_cn() + " is not signed by the pinned " + anchor->ark.subject_cn());
  }
  if (!inter->is_ca()) {
    return VekChainOutcome::failed("snp." + inter_role + ".not_ca",
                                   inter->subject_cn() + " is not a CA");
  }
  // The intermediate's role must fit the key: VCEKs come from "SEV-<product>", VLEKs from
  // "SEV-VLEK-<product>" (VLEK spec 58369, "Certificate Chain").
  const std::string role_cn = (is_vlek ? "SEV-VLEK-" : "SEV-") + anchor->product;
  if (inter->subject_cn() != role_cn) {
    return VekChainOutcome::failed(
        "snp.chain.role",
        vek_name + " is issued by " + inter->subject_cn() + ", expected " + role_cn);
  }
  auto out = std::make_shared<VerifiedVek>();
  out->is_vlek = is_vlek;
  out->vek_bytes.assign(vek_bytes.begin(), vek_bytes.end());
  if (chain_bytes) out->chain_bytes = Bytes(chain_bytes->begin(), chain_bytes->end());
  out->vek = std::move(*vek_or);
  out->vek_key = std::move(vek_key);
  out->ext = std::move(*ext);
  out->inter = *inter;
  out->anchor = anchor;
  return VekChainOutcome(std::move(out));
}

SnpVerifier::~SnpVerifier() = default;

CacheStats SnpVerifier::cache_stats() const {
  return cache_->stats();
}

VerifyResult SnpVerifier::verify(const Evidence& evidence, const Collateral& collateral,
                                 const VerifyOptions& options) const {
  try {
    return verify_impl(evidence, collateral, options);
  } catch (const std::exception& e) {
    return reject("snp.internal", std::string("internal error: ") + e.what());
  } catch (...) {
    return reject("snp.internal", "internal error");
  }
}

VerifyResult SnpVerifier::verify_impl(const Evidence& evidence, const Collateral& collateral,
                                      const VerifyOptions& options) const {
  if (!init_status_.ok()) return reject("snp.config.invalid", init_status_.message());
  if (evidence.tee != TeeType::kSnp) return reject("snp.evidence.type", "evidence is not SNP");

  // --- 1. Parse the report (ABI spec 7.3, Table "ATTESTATION_REPORT Structure").
  auto raw = decode_report_bytes(evidence.data);
  if (!raw.ok()) return reject("snp.report.format", raw.status().message());
  auto parsed = parse_report(*raw);
  if (!parsed.ok()) {
    bool version = parsed.status().message().find("version") != std::string::npos;
    return reject(version ? "snp.report.version" : "snp.report.format", parsed.status().message());
  }
  const AttestationReport& rep = *parsed;
  // SIGNATURE_ALGO 1 = ECDSA P-384 with SHA-384 (Table "Signature Algorithm Encodings").
  if (rep.signature_algo != kSigAlgoEcdsaP384Sha384) {
    return reject("snp.report.signature_algo",
                  "unsupported SIGNATURE_ALGO " + std::to_string(rep.signature_algo));
  }
  // SIGNING_KEY (bits 4:2 at 0x48): 0 VCEK, 1 VLEK, 7 none (an unsigned report).
  if (rep.signing_key != 0 && rep.signing_key != 1) {
    return reject("snp.report.signing_key",
                  "report SIGNING_KEY " + std::to_string(rep.signing_key) + " is not VCEK or VLEK");
  }
  // VMPL is 0..3 (ABI spec 7.3, MSG_REPORT_REQ).
  if (rep.vmpl > 3) return reject("snp.report.vmpl", "VMPL out of range");
  // Guest policy bit 17 is reserved and must be one (Table "Guest Policy Structure").
  if ((rep.policy & policy_bit::kReserved1) == 0) {
    return reject("snp.report.policy_reserved", "guest policy bit 17 (reserved, MBO) is zero");
  }
  const bool is_vlek = rep.signing_key == 1;
  const std::string vek_name = is_vlek ? "VLEK" : "VCEK";

  // --- 2. The VEK certificate (VCEK spec 57230 / VLEK spec 58369).
  const char* wanted = is_vlek ? "vlek" : "vcek";
  auto it = collateral.find(wanted);
  if (it == collateral.end()) it = collateral.find(is_vlek ? "vcek" : "vlek");
  if (it == collateral.end()) {
    return reject("snp.collateral.missing", std::string("collateral \"") + wanted + "\" (the " +
                                                vek_name + " certificate) is required");
  }
  const ByteSpan vek_bytes(it->second);
  auto chain_it = collateral.find("ask_ark");
  const std::optional<ByteSpan> chain_bytes =
      chain_it == collateral.end() ? std::nullopt : std::optional<ByteSpan>(chain_it->second);

  // --- 3. Chain: VEK <- ASK/ASVK <- ARK (pinned), its time-free part from the cache when these
  // exact bytes were verified before. Validity at `at` and the product are checked every call.
  std::shared_ptr<const VerifiedVek> verified = cache_->find(is_vlek, vek_bytes, chain_bytes);
  if (!verified) {
    VekChainOutcome fresh = verify_vek_chain(is_vlek, vek_bytes, chain_bytes);
    if (!fresh.vek) return std::move(*fresh.rejection);
    verified = cache_->insert(std::move(fresh.vek));
  }
  const crypto::Certificate& vek = verified->vek;
  const crypto::Certificate* inter = &verified->inter;
  const ProductAnchor* anchor = verified->anchor;
  const crypto::PublicKey& vek_key = verified->vek_key;
  const VekExtensions* ext = &verified->ext;
  const std::string inter_role = is_vlek ? "asvk" : "ask";
  if (auto r = check_validity(vek, options.at, "vek")) return *r;
  if (auto r = check_validity(*inter, options.at, inter_role)) return *r;
  if (auto r = check_validity(anchor->ark, options.at, "ark")) return *r;
  // productName is "Milan-B0", "Genoa", "Turin", ...: its family must be the anchor's.
  if (!ext->product_name.empty() && ext->product_name.rfind(anchor->product, 0) != 0) {
    return reject("snp.vek.product_mismatch", vek_name + " product " + ext->product_name +
                                                  " does not match " + anchor->product);
  }

  // --- 4. Report signature: ECDSA P-384/SHA-384 over bytes 0x000..0x29F, r and s little-endian
  // (ABI spec Table "ECDSA P-384 with SHA-384 Signature").
  if (!rep.sig_high_bytes_zero) {
    return reject("snp.signature.invalid", "signature components exceed 48 bytes");
  }
  Bytes rs = rep.sig_r;
  rs.insert(rs.end(), rep.sig_s.begin(), rep.sig_s.end());
  crypto::SignOptions sopts;
  sopts.hash = crypto::HashAlg::kSha384;
  sopts.ec_format = crypto::SignOptions::EcFormat::kRaw;
  ByteSpan signed_part = ByteSpan(*raw).subspan(0, kSignedSize);
  if (!vek_key.verify(signed_part, rs, sopts).ok()) {
    return reject("snp.signature.invalid", "report signature does not verify with the " + vek_name);
  }

  // --- 5. Reported TCB must be the TCB the VEK was derived for (VCEK spec 57230 "VCEK
  // Certificate Extensions": the VEK is specific to the reported TCB).
  TcbVersion reported = decode_tcb(rep.reported_tcb, anchor->tcb_layout);
  TcbVersion cert_tcb = ext->tcb;
  if (anchor->tcb_layout != TcbLayout::kTurin) cert_tcb.fmc.reset();
  if (anchor->tcb_layout == TcbLayout::kTurin && !cert_tcb.fmc) cert_tcb.fmc = uint8_t{0};
  if (!(reported == cert_tcb)) {
    return reject("snp.tcb.mismatch", "REPORTED_TCB " + tcb_to_string(reported) + " differs from " +
                                          vek_name + " TCB " + tcb_to_string(cert_tcb));
  }

  // --- 6. CPUID family (v3+ reports) must be the anchor's product family.
  if (rep.cpuid_fam_id && anchor->cpuid_family && *rep.cpuid_fam_id != *anchor->cpuid_family) {
    return reject("snp.report.cpuid_mismatch",
                  "report CPUID family does not match the " + anchor->product + " root");
  }

  // --- 7. Chip ID: a VCEK is per chip (hwID); skipped for VLEKs (per CSP) and when the guest
  // asked the firmware to mask CHIP_ID (MASK_CHIP_ID, bit 1 at 0x48).
  if (!is_vlek && !rep.mask_chip_id) {
    if (!ext->hw_id || (ext->hw_id->size() != 64 && ext->hw_id->size() != 8)) {
      return reject("snp.vek.hwid", "VCEK lacks a 64- or 8-byte hwID extension");
    }
    ByteSpan chip(rep.chip_id.data(), ext->hw_id->size());
    if (!constant_time_equal(chip, *ext->hw_id)) {
      return reject("snp.chip_id.mismatch", "report CHIP_ID does not match the VCEK hwID");
    }
  }

  // --- Claims.
  Claims claims;
  claims.tee = TeeType::kSnp;
  claims.debug = (rep.policy & policy_bit::kDebug) != 0;
  // SNP has no TCB-status service like Intel's: the chain proves the TCB, appraisal compares
  // reported_tcb with its minimums.
  claims.tcb_status = TcbStatus::kNotApplicable;
  claims.report_data.assign(rep.report_data.begin(), rep.report_data.end());
  claims.collateral_expiry =
      std::min({vek.not_after(), inter->not_after(), anchor->ark.not_after()});
  auto& f = claims.fields;
  f["version"] = rep.version;
  f["guest_svn"] = rep.guest_svn;
  f["policy"] = rep.policy;
  boost::json::object pol;
  pol["abi_minor"] = rep.policy & 0xff;
  pol["abi_major"] = (rep.policy >> 8) & 0xff;
  pol["smt"] = (rep.policy & policy_bit::kSmt) != 0;
  pol["migrate_ma"] = (rep.policy & policy_bit::kMigrateMa) != 0;
  pol["debug"] = claims.debug;
  pol["single_socket"] = (rep.policy & policy_bit::kSingleSocket) != 0;
  pol["cxl_allow"] = (rep.policy & policy_bit::kCxlAllow) != 0;
  pol["mem_aes_256_xts"] = (rep.policy & policy_bit::kMemAes256Xts) != 0;
  pol["rapl_dis"] = (rep.policy & policy_bit::kRaplDis) != 0;
  pol["ciphertext_hiding"] = (rep.policy & policy_bit::kCiphertextHiding) != 0;
  pol["page_swap_disable"] = (rep.policy & policy_bit::kPageSwapDisable) != 0;
  f["policy_flags"] = std::move(pol);
  f["family_id"] = hex(rep.family_id);
  f["image_id"] = hex(rep.image_id);
  f["vmpl"] = rep.vmpl;
  f["measurement"] = hex(rep.measurement);
  f["host_data"] = hex(rep.host_data);
  f["id_key_digest"] = hex(rep.id_key_digest);
  f["author_key_digest"] = hex(rep.author_key_digest);
  f["author_key_en"] = rep.author_key_en;
  f["report_id"] = hex(rep.report_id);
  f["report_id_ma"] = hex(rep.report_id_ma);
  f["chip_id"] = hex(rep.chip_id);
  f["mask_chip_id"] = rep.mask_chip_id;
  f["reported_tcb"] = tcb_json(reported);
  f["current_tcb"] = tcb_json(decode_tcb(rep.current_tcb, anchor->tcb_layout));
  f["committed_tcb"] = tcb_json(decode_tcb(rep.committed_tcb, anchor->tcb_layout));
  f["launch_tcb"] = tcb_json(decode_tcb(rep.launch_tcb, anchor->tcb_layout));
  f["platform_info"] = rep.platform_info;
  f["current_firmware"] = std::to_string(rep.current_major) + "." +
                          std::to_string(rep.current_minor) + "." +
                          std::to_string(rep.current_build);
  f["committed_firmware"] = std::to_string(rep.committed_major) + "." +
                            std::to_string(rep.committed_minor) + "." +
                            std::to_string(rep.committed_build);
  if (rep.cpuid_fam_id) {
    f["cpuid_fam_id"] = *rep.cpuid_fam_id;
    f["cpuid_mod_id"] = *rep.cpuid_mod_id;
    f["cpuid_step"] = *rep.cpuid_step;
  }
  if (rep.launch_mit_vector) {
    f["launch_mit_vector"] = *rep.launch_mit_vector;
    f["current_mit_vector"] = *rep.current_mit_vector;
  }
  f["signing_key"] = is_vlek ? "vlek" : "vcek";
  f["product"] = anchor->product;
  if (ext->csp_id) f["csp_id"] = *ext->csp_id;
  return VerifyResult::accept(std::move(claims));
}

}  // namespace custos::attestation::snp
