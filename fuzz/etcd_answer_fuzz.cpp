// Fuzzes the reading of etcd's JSON gateway answers (src/etcd/gateway.h): range answers and the
// lock transaction's answer, as a misbehaving or impersonated etcd could send them.
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "etcd/gateway.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  boost::system::error_code ec;
  boost::json::value v =
      boost::json::parse(std::string_view(reinterpret_cast<const char*>(data), size), ec);
  if (ec || !v.is_object()) return 0;
  for (auto r : {custos::etcd::parse_range_kvs(v.as_object()),
                 custos::etcd::parse_txn_last_range(v.as_object())}) {
    if (!r.ok()) continue;
    for (const auto& kv : *r) {
      if (kv.key.empty()) __builtin_trap();  // accepted keys are never empty
    }
  }
  return 0;
}
