// The "sim" TEE: a software stand-in for SGX on machines without TEE hardware (issue #3).
//
// Its evidence is a real SGX ECDSA quote v3 (ISV report body, QE report signed by a PCK key,
// attestation key bound in the QE report data, quote signed by the attestation key, PCK chain as
// certification data type 5), but every certificate and every signed collateral item chains to a
// *simulation root* that SimPlatform::create() generates. Such evidence proves nothing about
// hardware: a deployment trusts the sim root only when its appraisal policy allows tee "sim", and
// the verifier reports tee = kSim so a policy for "sgx" can never accept it.
//
// Verification reuses the DCAP code path unchanged (DcapVerifier with the sim root pinned as
// VerifierConfig::trusted_root); SimVerifier is that, plus the kSim label.
//
// On-disk layout of a platform directory: src/attestation/sim/README.md.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>

#include "attestation/common/evidence.h"
#include "base/bytes.h"
#include "base/clock.h"
#include "base/status.h"
#include "crypto/pkey.h"
#include "crypto/x509.h"

namespace custos::attestation::dcap {
class DcapVerifier;
}

namespace custos::attestation::sim {

// What the simulated enclave asks to be quoted.
struct SimQuoteInput {
  std::array<uint8_t, 32> mrenclave{};    // measure_file() of the program
  std::array<uint8_t, 64> report_data{};  // e.g. SHA-256(nonce || public key), zero padded
  uint16_t isv_prod_id = 0;
  uint16_t isv_svn = 0;
  bool debug = false;  // sets ATTRIBUTES.DEBUG; claims.debug reports it
  // Default: SimPlatform::mrsigner(), the SHA-256 of the sim signer's public key (SPKI DER).
  std::optional<std::array<uint8_t, 32>> mrsigner;
};

// SHA-256 of the file's bytes: the sim TEE's MRENCLAVE for a program. Errors: kNotFound when the
// file cannot be opened, kInternal on a read error.
Result<Bytes> measure_file(const std::filesystem::path& path);

class SimPlatform {
 public:
  // Creates a new sim platform in `dir` (created with mode 0700 if missing; must be empty or
  // absent, else kAlreadyExists): root CA, PCK CA, PCK leaf with SGX extensions, TCB signing
  // certificate, signed TCB Info (one UpToDate level matching the leaf) and QE Identity, PCK and
  // root CRLs, the QE attestation key, the sim signer key and a README.txt warning that this is a
  // SIMULATION. Private keys are written with mode 0600. Certificates, CRLs and collateral are
  // valid from now - 1 hour to now + 10 years (a sim platform is not meant to be refreshed).
  static Result<SimPlatform> create(const std::filesystem::path& dir, SysTime now);
  // Loads a directory written by create(). Checks that the keys match their certificates.
  static Result<SimPlatform> load(const std::filesystem::path& dir);

  SimPlatform(SimPlatform&&) noexcept;
  SimPlatform& operator=(SimPlatform&&) noexcept;
  ~SimPlatform();

  // A v3 SGX quote over `in`, signed with this platform's keys.
  Result<Bytes> quote(const SimQuoteInput& in) const;
  // The items DcapVerifier needs besides the quote: tcb_info, tcb_info_chain, qe_identity,
  // qe_identity_chain, pck_crl, pck_crl_chain, root_crl (docs/formats/collateral.md).
  Collateral collateral() const;
  // The simulation root: the trust anchor a verifier of this platform's quotes pins.
  const crypto::Certificate& root() const;
  // MRSIGNER of quotes without an override: SHA-256 of the sim signer public key (SPKI DER).
  std::array<uint8_t, 32> mrsigner() const;
  const crypto::PublicKey& signer_public_key() const;
  const std::filesystem::path& dir() const;

 private:
  struct State;
  explicit SimPlatform(std::unique_ptr<State> s);
  std::unique_ptr<State> state_;
};

// Verifies sim quotes: DcapVerifier with `root` pinned, and claims.tee = kSim. Evidence must be
// tagged kSim; quotes whose PCK chain or collateral does not lead to `root` (another sim platform,
// real Intel hardware) are rejected with the DCAP reason codes. An empty root rejects everything
// ("sim.root.unset"): trusting the sim TEE is always an explicit configuration.
class SimVerifier final : public Verifier {
 public:
  explicit SimVerifier(crypto::Certificate root);
  ~SimVerifier() override;
  SimVerifier(const SimVerifier&) = delete;
  SimVerifier& operator=(const SimVerifier&) = delete;

  TeeType tee() const override { return TeeType::kSim; }
  VerifyResult verify(const Evidence& evidence, const Collateral& collateral,
                      const VerifyOptions& options) const override;

 private:
  bool has_root_ = false;
  std::unique_ptr<dcap::DcapVerifier> dcap_;
};

}  // namespace custos::attestation::sim
