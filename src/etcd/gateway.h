// Reading etcd's JSON gateway answers (etcd/backend.cpp): every field checked, since a
// misbehaving or impersonated etcd must not crash the server or mislead it. Fuzzed by
// fuzz/etcd_answer_fuzz.cpp.
#pragma once

#include <boost/json/object.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "base/bytes.h"
#include "base/status.h"

namespace custos::etcd {

// One key of a range answer, decoded from base64.
struct KeyValue {
  std::string key;  // never empty
  Bytes value;      // empty when the gateway omitted it (an empty value, or keys_only)
  std::string create_revision;
  std::string lease;
};

// The "kvs" of a /v3/kv/range answer (absent: none). DataLoss when any field is malformed.
Result<std::vector<KeyValue>> parse_range_kvs(const boost::json::object& answer);

// The lock key as a /v3/kv/txn answer's last response saw it (a request_range of it), if any.
Result<std::vector<KeyValue>> parse_txn_last_range(const boost::json::object& answer);

// A string field, or "" when absent or not a string.
std::string string_field(const boost::json::object& o, std::string_view key);

}  // namespace custos::etcd
