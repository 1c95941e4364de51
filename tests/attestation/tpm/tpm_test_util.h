// Helpers for the TPM tests.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>

#include "attestation/tpm/verifier.h"
#include "base/clock.h"
#include "base/encoding.h"

namespace custos::attestation::tpm::testing {

inline std::string vector_path(const std::string& rel) {
  return std::string(CUSTOS_SOURCE_DIR "/../shared/vectors/") + rel;
}

// A missing vector is a failure, not a skip.
inline Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ADD_FAILURE() << "missing file " << path;
    return {};
  }
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
inline Bytes read_vector(const std::string& rel) { return read_file(vector_path(rel)); }

inline VerifyResult run(const TpmVerifier& v, const Bytes& attest, const Collateral& c,
                        SysTime when = from_unix_seconds(1735689600)) {  // 2025-01-01
  Evidence e;
  e.tee = TeeType::kTpm;
  e.data = attest;
  VerifyOptions o;
  o.at = when;
  return v.verify(e, c, o);
}

inline std::string reason(const VerifyResult& r) { return r.ok() ? "accepted" : r.rejection().reason; }
inline std::string message(const VerifyResult& r) { return r.ok() ? "" : r.rejection().message; }

}  // namespace custos::attestation::tpm::testing
