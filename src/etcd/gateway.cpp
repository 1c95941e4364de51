#include "etcd/gateway.h"

#include <boost/json.hpp>

#include "base/encoding.h"

namespace custos::etcd {

namespace json = boost::json;

std::string string_field(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : "";
}

Result<std::vector<KeyValue>> parse_range_kvs(const json::object& r) {
  std::vector<KeyValue> out;
  const auto* kvs = r.if_contains("kvs");
  if (!kvs) return out;
  if (!kvs->is_array()) return data_loss("etcd: malformed range response");
  for (const auto& item : kvs->as_array()) {
    if (!item.is_object()) return data_loss("etcd: malformed range response");
    const json::object& o = item.as_object();
    for (const char* f : {"key", "value", "create_revision", "lease"}) {
      const auto* v = o.if_contains(f);
      if (v && !v->is_string()) {
        return data_loss(std::string("etcd: malformed ") + f + " in range response");
      }
    }
    KeyValue kv;
    auto key = base64_decode(string_field(o, "key"));
    if (!key.ok() || key->empty()) return data_loss("etcd: malformed key in range response");
    kv.key.assign(key->begin(), key->end());
    // The gateway omits empty fields: a key with an empty value has no "value".
    std::string value = string_field(o, "value");
    if (!value.empty()) {
      auto decoded = base64_decode(value);
      if (!decoded.ok()) return data_loss("etcd: malformed value in range response");
      kv.value = std::move(*decoded);
    }
    kv.create_revision = string_field(o, "create_revision");
    kv.lease = string_field(o, "lease");
    out.push_back(std::move(kv));
  }
  return out;
}

Result<std::vector<KeyValue>> parse_txn_last_range(const json::object& r) {
  const auto* responses = r.if_contains("responses");
  if (!responses) return std::vector<KeyValue>{};
  if (!responses->is_array()) return data_loss("etcd: malformed txn response");
  const auto& list = responses->as_array();
  if (list.empty()) return std::vector<KeyValue>{};
  if (!list.back().is_object()) return data_loss("etcd: malformed txn response");
  const auto* rr = list.back().as_object().if_contains("response_range");
  if (!rr) return std::vector<KeyValue>{};
  if (!rr->is_object()) return data_loss("etcd: malformed txn response");
  return parse_range_kvs(rr->as_object());
}

}  // namespace custos::etcd
