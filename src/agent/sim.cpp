// The sim producer: SimPlatform::quote() with MRENCLAVE = SHA-256 of the program file.
#include "attestation/sim/sim.h"

#include <algorithm>

#include "agent/internal.h"

namespace custos::agent::internal {
namespace {

namespace sim = attestation::sim;

class SimProducer final : public EvidenceProducer {
 public:
  SimProducer(sim::SimPlatform platform, sim::SimQuoteInput base)
      : platform_(std::move(platform)), base_(base) {}

  attestation::TeeType tee() const override { return attestation::TeeType::kSim; }

  Result<ProducedEvidence> produce(ByteSpan report_data) const override {
    RETURN_IF_ERROR(check_report_data(report_data));
    sim::SimQuoteInput in = base_;
    std::copy(report_data.begin(), report_data.end(), in.report_data.begin());
    ASSIGN_OR_RETURN(Bytes quote, platform_.quote(in));
    ProducedEvidence out;
    out.evidence = attestation::Evidence{attestation::TeeType::kSim, std::move(quote)};
    // The sim collateral is signed under the sim root: shipping it from the workload adds no
    // trust, and the verifier has no other source for it.
    out.collateral = platform_.collateral();
    return out;
  }

 private:
  sim::SimPlatform platform_;
  sim::SimQuoteInput base_;
};

}  // namespace

Result<std::unique_ptr<EvidenceProducer>> make_sim_producer(const ProducerConfig& c) {
  if (c.sim_dir.empty())
    return invalid_argument("sim: a platform directory is required (custos sim init DIR)");
  if (c.program.empty()) return invalid_argument("sim: the program to measure is required");
  auto platform = sim::SimPlatform::load(c.sim_dir);
  if (!platform.ok()) return platform.status().with_context("sim: loading " + c.sim_dir.string());
  // Measured once, when the producer is made: the program is what was started.
  auto measurement = sim::measure_file(c.program);
  if (!measurement.ok()) return measurement.status().with_context("sim: measuring the program");
  sim::SimQuoteInput base;
  std::copy(measurement->begin(), measurement->end(), base.mrenclave.begin());
  base.isv_prod_id = c.isv_prod_id;
  base.isv_svn = c.isv_svn;
  base.debug = c.debug;
  return std::unique_ptr<EvidenceProducer>(
      std::make_unique<SimProducer>(std::move(*platform), base));
}

}  // namespace custos::agent::internal
