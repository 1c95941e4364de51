// Fuzzes the appraisal policy parser (our JSON form and Intel SecL's flat and nested forms) and
// appraises fixed claims with whatever parses; a parsed policy must also survive a round trip
// through its native JSON form.
#include <boost/json/serialize.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "attestation/service/appraisal.h"

namespace {

using namespace custos::attestation;

const Claims& claims_for(TeeType tee) {
  static const Claims* all = [] {
    auto* c = new Claims[5];
    const TeeType tees[] = {TeeType::kSgx, TeeType::kTdx, TeeType::kSnp, TeeType::kTpm,
                            TeeType::kSim};
    for (int i = 0; i < 5; ++i) {
      c[i].tee = tees[i];
      c[i].report_data = custos::Bytes(64, 1);
      c[i].fields["mrenclave"] = std::string(64, 'a');
      c[i].fields["isv_svn"] = 2;
      c[i].fields["mrtd"] = std::string(96, 'b');
      c[i].fields["tee_tcb_svn"] = "03";
      c[i].fields["reported_tcb"] = boost::json::object{{"bootloader", 3}};
      c[i].fields["pcrs"] = boost::json::object{{"sha256", boost::json::object{{"0", "00"}}}};
    }
    return c;
  }();
  return all[static_cast<int>(tee)];
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto policy = parse_policy(text);
  if (!policy.ok()) return 0;
  const custos::SysTime now{};
  for (TeeType t : {TeeType::kSgx, TeeType::kTdx, TeeType::kSnp, TeeType::kTpm, TeeType::kSim}) {
    Appraisal a = appraise(claims_for(t), *policy, now);
    if (a.pass != a.denials.empty()) std::abort();
    (void)a.to_json();
  }
  std::string native = boost::json::serialize(policy->to_json());
  auto again = parse_policy(native);
  if (!again.ok()) std::abort();  // our own output must parse
  if (boost::json::serialize(again->to_json()) != native) std::abort();
  return 0;
}
