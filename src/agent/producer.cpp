#include "agent/producer.h"

#include "agent/internal.h"

namespace custos::agent {

Result<std::unique_ptr<EvidenceProducer>> make_producer(const ProducerConfig& config) {
  using attestation::TeeType;
  switch (config.tee) {
    case TeeType::kSim:
      return internal::make_sim_producer(config);
    case TeeType::kTdx:
    case TeeType::kSnp:
      return internal::make_tsm_producer(config);
    case TeeType::kSgx:
      return internal::make_gramine_producer(config);
    case TeeType::kTpm:
      return internal::make_tpm_producer(config);
  }
  return invalid_argument("unknown TEE type");
}

}  // namespace custos::agent
