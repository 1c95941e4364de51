#include "attestation/sim/sim.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <system_error>

#include "attestation/dcap/pck.h"
#include "attestation/dcap/verifier.h"
#include "attestation/sim/encode.h"
#include "base/cleanup.h"
#include "base/encoding.h"
#include "crypto/hash.h"

namespace custos::attestation::sim {
namespace {

namespace fs = std::filesystem;
using std::chrono::hours;

// File names inside a platform directory (README.md beside this file documents them).
constexpr const char* kReadme = "README.txt";
constexpr const char* kRootCert = "root.pem";
constexpr const char* kRootKey = "root.key";
constexpr const char* kPckCaCert = "pck_ca.pem";
constexpr const char* kPckCaKey = "pck_ca.key";
constexpr const char* kPckCert = "pck.pem";
constexpr const char* kPckKey = "pck.key";
constexpr const char* kTcbCert = "tcb_signing.pem";
constexpr const char* kTcbKey = "tcb_signing.key";
constexpr const char* kAttestationKey = "attestation.key";
constexpr const char* kSignerKey = "signer.key";
constexpr const char* kSignerPub = "signer.pub.pem";
constexpr const char* kTcbInfo = "tcb_info.json";
constexpr const char* kQeIdentity = "qe_identity.json";
constexpr const char* kPckCrl = "pck_crl.der";
constexpr const char* kRootCrl = "root_crl.der";

constexpr auto kValidity = hours(24 * 365 * 10);
constexpr auto kBackdate = hours(1);
constexpr uint16_t kQeIsvSvn = 8;
constexpr uint16_t kQeIsvProdId = 1;

constexpr const char* kReadmeText =
    "THIS DIRECTORY IS A SIMULATED TEE PLATFORM (Custos \"sim\" TEE).\n"
    "\n"
    "It holds a simulation root CA, a PCK CA and PCK certificate, a TCB signing certificate,\n"
    "signed TCB Info and QE Identity, CRLs, the quoting key and a signer key, all generated in\n"
    "software by `custos sim init`. Quotes made with it are SGX-shaped, but they prove NOTHING\n"
    "about hardware: anyone who can read the private keys here can forge any measurement.\n"
    "\n"
    "NEVER TRUST THE SIMULATION ROOT (root.pem) IN PRODUCTION. A verifier accepts sim evidence\n"
    "only when its policy explicitly allows the TEE type \"sim\", and reports it as tee \"sim\".\n"
    "Use it for development, CI and machines without TEE hardware.\n";

// The sim QE's identity: fixed values, so QE Identity and quotes agree across create()/load().
std::array<uint8_t, 32> sim_qe_measurement(std::string_view label) {
  Bytes h = crypto::sha256(as_bytes(label));
  std::array<uint8_t, 32> out{};
  std::memcpy(out.data(), h.data(), out.size());
  return out;
}

std::string upper_hex(ByteSpan b) {
  std::string h = hex_encode(b);
  for (auto& c : h) c = static_cast<char>(c >= 'a' && c <= 'f' ? c - 'a' + 'A' : c);
  return h;
}

Status errno_status(const std::string& what, int err) {
  return internal_error(what + ": " + std::strerror(err));
}

// Writes a new file (never replaces one) with `mode`, durably.
Status write_new_file(const fs::path& path, ByteSpan data, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return errno_status("creating " + path.string(), errno);
  Cleanup close_fd([fd] { ::close(fd); });
  // The umask may have narrowed the mode; it may never widen it, so set it exactly.
  if (::fchmod(fd, mode) != 0) return errno_status("chmod " + path.string(), errno);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_status("writing " + path.string(), errno);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) return errno_status("syncing " + path.string(), errno);
  return ok_status();
}
Status write_public(const fs::path& p, std::string_view text) {
  return write_new_file(p, as_bytes(text), 0644);
}
Status write_private(const fs::path& p, const crypto::PrivateKey& key) {
  SecretString pem = key.to_pem();
  return write_new_file(p, as_bytes(pem.str()), 0600);
}

Result<Bytes> read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found("cannot read " + path.string());
  Bytes b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return internal_error("error reading " + path.string());
  return b;
}
Result<crypto::Certificate> read_cert(const fs::path& p) {
  ASSIGN_OR_RETURN(Bytes b, read_file(p));
  auto c = crypto::Certificate::from_pem(as_string_view(b));
  if (!c.ok()) return c.status().with_context(p.string());
  return c;
}
Result<crypto::PrivateKey> read_key(const fs::path& p) {
  ASSIGN_OR_RETURN(Bytes b, read_file(p));
  SecretBytes secret(std::move(b));
  auto k = crypto::PrivateKey::from_pem(secret.view());
  if (!k.ok()) return k.status().with_context(p.string());
  return k;
}

crypto::CertificateSpec sim_spec(const std::string& cn, bool ca, SysTime now) {
  crypto::CertificateSpec s;
  s.subject_cn = cn;
  s.subject_extra = {{"O", "Custos SIMULATION - not for production"}};
  s.not_before = now - kBackdate;
  s.not_after = now + kValidity;
  s.is_ca = ca;
  return s;
}

}  // namespace

struct SimPlatform::State {
  fs::path dir;
  PlatformSpec platform;
  crypto::Certificate root, pck_ca, pck, tcb_signing;
  crypto::PrivateKey pck_key, attestation_key;
  crypto::PublicKey signer_pub;
  std::array<uint8_t, 32> mrsigner{};
  std::string pck_chain_pem;
  Collateral collateral;
  mutable QeSignatureMemo qe_memo;
  Bytes attestation_xy;  // the attestation key's x||y, read once at load
};

SimPlatform::SimPlatform(std::unique_ptr<State> s) : state_(std::move(s)) {}
SimPlatform::SimPlatform(SimPlatform&&) noexcept = default;
SimPlatform& SimPlatform::operator=(SimPlatform&&) noexcept = default;
SimPlatform::~SimPlatform() = default;

Result<Bytes> measure_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found("cannot open " + path.string());
  crypto::Hasher h(crypto::HashAlg::kSha256);
  std::vector<char> buf(1 << 16);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    std::streamsize n = in.gcount();
    if (n > 0)
      h.update(ByteSpan(reinterpret_cast<const uint8_t*>(buf.data()), static_cast<size_t>(n)));
  }
  if (in.bad()) return internal_error("error reading " + path.string());
  return h.finish();
}

Result<SimPlatform> SimPlatform::create(const fs::path& dir, SysTime now) {
  using crypto::KeyType;
  using crypto::PrivateKey;
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    if (!fs::is_directory(dir, ec))
      return already_exists(dir.string() + " exists and is not a directory");
    if (!fs::is_empty(dir, ec)) return already_exists(dir.string() + " is not empty");
  } else {
    fs::create_directories(dir, ec);
    if (ec) return internal_error("creating " + dir.string() + ": " + ec.message());
  }
  fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  if (ec) return internal_error("chmod " + dir.string() + ": " + ec.message());

  ASSIGN_OR_RETURN(PrivateKey root_key, PrivateKey::generate(KeyType::kEcP256));
  ASSIGN_OR_RETURN(PrivateKey pck_ca_key, PrivateKey::generate(KeyType::kEcP256));
  ASSIGN_OR_RETURN(PrivateKey pck_key, PrivateKey::generate(KeyType::kEcP256));
  ASSIGN_OR_RETURN(PrivateKey tcb_key, PrivateKey::generate(KeyType::kEcP256));
  ASSIGN_OR_RETURN(PrivateKey attestation_key, PrivateKey::generate(KeyType::kEcP256));
  ASSIGN_OR_RETURN(PrivateKey signer_key, PrivateKey::generate(KeyType::kEcP256));

  // DcapVerifier recognizes certificates by the words Intel uses in their CNs ("SGX PCK
  // Certificate", "SGX PCK ... CA", "TCB Signing"); the "Custos Sim" prefix and the O= name make
  // a sim certificate unmistakable to a human reading it.
  ASSIGN_OR_RETURN(crypto::Certificate root,
                   crypto::issue_certificate(sim_spec("Custos Sim Root CA", true, now),
                                             root_key.public_key(), root_key, nullptr));
  ASSIGN_OR_RETURN(crypto::Certificate pck_ca,
                   crypto::issue_certificate(sim_spec("Custos Sim SGX PCK Platform CA", true, now),
                                             pck_ca_key.public_key(), root_key, &root));
  ASSIGN_OR_RETURN(crypto::Certificate tcb_signing,
                   crypto::issue_certificate(sim_spec("Custos Sim SGX TCB Signing", false, now),
                                             tcb_key.public_key(), root_key, &root));
  PlatformSpec platform;
  platform.fmspc = {0x53, 0x49, 0x4d, 0x00, 0x00, 0x00};  // "SIM"
  crypto::CertificateSpec leaf_spec = sim_spec("Custos Sim SGX PCK Certificate", false, now);
  leaf_spec.extensions[std::string(dcap::kSgxExtensionsOid)] = sgx_extensions_der(platform);
  ASSIGN_OR_RETURN(crypto::Certificate pck,
                   crypto::issue_certificate(leaf_spec, pck_key.public_key(), pck_ca_key, &pck_ca));
  ASSIGN_OR_RETURN(crypto::Crl pck_crl,
                   crypto::issue_crl(pck_ca, pck_ca_key, {}, now - kBackdate, now + kValidity));
  ASSIGN_OR_RETURN(crypto::Crl root_crl,
                   crypto::issue_crl(root, root_key, {}, now - kBackdate, now + kValidity));

  // One UpToDate TCB level: exactly the leaf's TCB.
  TcbInfoSpec tcb;
  tcb.issue_date = now - kBackdate;
  tcb.next_update = now + kValidity;
  LevelSpec level;
  level.sgx_components = platform.cpu_svn_components;
  level.pce_svn = platform.pce_svn;
  tcb.levels = {level};
  ASSIGN_OR_RETURN(std::string tcb_body,
                   sign_pcs_body("tcbInfo", tcb_info_json(tcb, platform), tcb_key));
  QeIdentitySpec qe;
  qe.issue_date = now - kBackdate;
  qe.next_update = now + kValidity;
  qe.mrsigner_hex = upper_hex(sim_qe_measurement("custos sim QE signer"));
  qe.isv_prod_id = kQeIsvProdId;
  qe.levels = {{kQeIsvSvn, "UpToDate"}};
  ASSIGN_OR_RETURN(std::string qe_body,
                   sign_pcs_body("enclaveIdentity", qe_identity_json(qe), tcb_key));

  // The README first: a directory with keys in it always says what it is.
  RETURN_IF_ERROR(write_public(dir / kReadme, kReadmeText));
  RETURN_IF_ERROR(write_public(dir / kRootCert, root.pem()));
  RETURN_IF_ERROR(write_private(dir / kRootKey, root_key));
  RETURN_IF_ERROR(write_public(dir / kPckCaCert, pck_ca.pem()));
  RETURN_IF_ERROR(write_private(dir / kPckCaKey, pck_ca_key));
  RETURN_IF_ERROR(write_public(dir / kPckCert, pck.pem()));
  RETURN_IF_ERROR(write_private(dir / kPckKey, pck_key));
  RETURN_IF_ERROR(write_public(dir / kTcbCert, tcb_signing.pem()));
  RETURN_IF_ERROR(write_private(dir / kTcbKey, tcb_key));
  RETURN_IF_ERROR(write_private(dir / kAttestationKey, attestation_key));
  RETURN_IF_ERROR(write_private(dir / kSignerKey, signer_key));
  RETURN_IF_ERROR(write_public(dir / kSignerPub, signer_key.public_key().to_pem()));
  RETURN_IF_ERROR(write_public(dir / kTcbInfo, tcb_body));
  RETURN_IF_ERROR(write_public(dir / kQeIdentity, qe_body));
  RETURN_IF_ERROR(write_new_file(dir / kPckCrl, pck_crl.der(), 0644));
  RETURN_IF_ERROR(write_new_file(dir / kRootCrl, root_crl.der(), 0644));
  return load(dir);
}

Result<SimPlatform> SimPlatform::load(const fs::path& dir) {
  auto s = std::make_unique<State>();
  s->dir = dir;
  auto in_dir = [&](const char* name) { return dir / name; };
  ASSIGN_OR_RETURN(s->root, read_cert(in_dir(kRootCert)));
  ASSIGN_OR_RETURN(s->pck_ca, read_cert(in_dir(kPckCaCert)));
  ASSIGN_OR_RETURN(s->pck, read_cert(in_dir(kPckCert)));
  ASSIGN_OR_RETURN(s->tcb_signing, read_cert(in_dir(kTcbCert)));
  ASSIGN_OR_RETURN(s->pck_key, read_key(in_dir(kPckKey)));
  ASSIGN_OR_RETURN(s->attestation_key, read_key(in_dir(kAttestationKey)));
  ASSIGN_OR_RETURN(Bytes signer_pem, read_file(in_dir(kSignerPub)));
  ASSIGN_OR_RETURN(s->signer_pub, crypto::PublicKey::from_pem(as_string_view(signer_pem)));

  // A directory assembled from two platforms would produce quotes that never verify; say so now.
  if (s->pck_key.public_key().to_der() != s->pck.public_key().to_der()) {
    return failed_precondition(dir.string() + ": pck.key does not match pck.pem");
  }
  if (!s->pck.verify_signature(s->pck_ca.public_key()).ok() ||
      !s->pck_ca.verify_signature(s->root.public_key()).ok() ||
      !s->tcb_signing.verify_signature(s->root.public_key()).ok()) {
    return failed_precondition(dir.string() + ": certificates do not chain to root.pem");
  }
  if (s->attestation_key.type() != crypto::KeyType::kEcP256) {
    return failed_precondition(dir.string() + ": attestation.key is not an EC P-256 key");
  }
  ASSIGN_OR_RETURN(s->attestation_xy, s->attestation_key.public_ec_xy());
  std::optional<Bytes> ext = s->pck.extension(dcap::kSgxExtensionsOid);
  if (!ext) return failed_precondition(dir.string() + ": pck.pem has no SGX extensions");
  ASSIGN_OR_RETURN(dcap::PckExtensions pe, dcap::parse_pck_extensions(*ext));
  s->platform.cpu_svn_components = pe.cpu_svn_components;
  s->platform.pce_svn = pe.pce_svn;
  s->platform.fmspc = pe.fmspc;
  s->platform.pce_id = pe.pce_id;
  s->platform.sgx_type = pe.sgx_type;

  Bytes spki = s->signer_pub.to_der();
  Bytes h = crypto::sha256(spki);
  std::memcpy(s->mrsigner.data(), h.data(), s->mrsigner.size());
  s->pck_chain_pem = s->pck.pem() + s->pck_ca.pem() + s->root.pem();

  std::string signing_chain = s->tcb_signing.pem() + s->root.pem();
  Collateral& c = s->collateral;
  ASSIGN_OR_RETURN(c["tcb_info"], read_file(in_dir(kTcbInfo)));
  ASSIGN_OR_RETURN(c["qe_identity"], read_file(in_dir(kQeIdentity)));
  ASSIGN_OR_RETURN(c["pck_crl"], read_file(in_dir(kPckCrl)));
  ASSIGN_OR_RETURN(c["root_crl"], read_file(in_dir(kRootCrl)));
  c["tcb_info_chain"] = to_bytes(signing_chain);
  c["qe_identity_chain"] = to_bytes(signing_chain);
  c["pck_crl_chain"] = to_bytes(s->pck_ca.pem() + s->root.pem());
  return SimPlatform(std::move(s));
}

Result<Bytes> SimPlatform::quote(const SimQuoteInput& in) const {
  QuoteSpec q;
  q.version = 3;
  q.report_data = in.report_data;
  q.mr_enclave = in.mrenclave;
  q.mr_signer = in.mrsigner.value_or(state_->mrsigner);
  q.isv_prod_id = in.isv_prod_id;
  q.isv_svn = in.isv_svn;
  if (in.debug) q.attributes[0] = static_cast<uint8_t>(q.attributes[0] | 0x02);  // DEBUG
  q.qe_mrenclave = sim_qe_measurement("custos sim QE");
  q.qe_mrsigner = sim_qe_measurement("custos sim QE signer");
  q.qe_isv_prod_id = kQeIsvProdId;
  q.qe_isv_svn = kQeIsvSvn;
  q.qe_auth_data.assign(32, 0);
  for (size_t i = 0; i < q.qe_auth_data.size(); ++i) q.qe_auth_data[i] = static_cast<uint8_t>(i);
  return encode_quote(q, state_->platform,
                      {state_->pck_key, state_->attestation_key, state_->pck_chain_pem,
                       &state_->qe_memo, state_->attestation_xy});
}

Collateral SimPlatform::collateral() const {
  return state_->collateral;
}
const crypto::Certificate& SimPlatform::root() const {
  return state_->root;
}
std::array<uint8_t, 32> SimPlatform::mrsigner() const {
  return state_->mrsigner;
}
const crypto::PublicKey& SimPlatform::signer_public_key() const {
  return state_->signer_pub;
}
const fs::path& SimPlatform::dir() const {
  return state_->dir;
}

SimVerifier::SimVerifier(crypto::Certificate root) {
  has_root_ = root.raw() != nullptr;
  dcap::VerifierConfig cfg;
  cfg.tee = TeeType::kSgx;
  if (has_root_) cfg.trusted_root = std::move(root);
  dcap_ = std::make_unique<dcap::DcapVerifier>(std::move(cfg));
}
SimVerifier::~SimVerifier() = default;

VerifyResult SimVerifier::verify(const Evidence& evidence, const Collateral& collateral,
                                 const VerifyOptions& options) const {
  // Without an explicit root the DCAP verifier would pin Intel's: never let that happen silently.
  if (!has_root_) return VerifyResult::reject("sim.root.unset", "no simulation root is configured");
  if (evidence.tee != TeeType::kSim) {
    return VerifyResult::reject("sim.evidence.wrong_tee",
                                "evidence is tagged " + std::string(tee_name(evidence.tee)));
  }
  VerifyResult r = dcap_->verify_quote(evidence.data, collateral, options);
  if (!r.ok()) return r;
  if (r.claims().tee != TeeType::kSgx) {
    return VerifyResult::reject("sim.quote.not_sgx", "sim evidence must be an SGX quote");
  }
  r.claims().tee = TeeType::kSim;
  r.claims().fields["simulated"] = true;
  return r;
}

}  // namespace custos::attestation::sim
