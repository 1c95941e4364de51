#include "core/view.h"

#include <boost/json.hpp>

namespace custos::core {

Result<std::optional<boost::json::value>> View::get_json(std::string_view key) const {
  ASSIGN_OR_RETURN(auto raw, get(key));
  if (!raw) return std::optional<boost::json::value>();
  boost::system::error_code ec;
  auto v = boost::json::parse(raw->view(), ec);
  if (ec) return data_loss("stored record is not valid JSON");
  return std::optional<boost::json::value>(std::move(v));
}

Status View::put_json(std::string_view key, const boost::json::value& v) const {
  SecretString text(boost::json::serialize(v));
  return put(key, as_bytes(text.str()));
}

WriteBatch::~WriteBatch() {
  for (auto& op : ops_) secure_wipe(op.value.data(), op.value.size());
}

void WriteBatch::put(std::string_view key, ByteSpan value) {
  ops_.push_back({storage::Op::Kind::kPut, std::string(key), Bytes(value.begin(), value.end())});
}

void WriteBatch::put_json(std::string_view key, const boost::json::value& v) {
  SecretString text(boost::json::serialize(v));
  put(key, as_bytes(text.str()));
}

void WriteBatch::del(std::string_view key) {
  ops_.push_back({storage::Op::Kind::kDelete, std::string(key), {}});
}

Status View::apply(WriteBatch batch) const {
  if (batch.empty()) return ok_status();
  std::vector<storage::Op> ops = std::move(batch.ops_);
  for (auto& op : ops) op.key.insert(0, prefix_);
  // The barrier seals each value and wipes its plaintext.
  return barrier_->transaction(std::move(ops));
}

Status View::delete_tree(std::string_view prefix) const {
  ASSIGN_OR_RETURN(auto keys, list(prefix));
  for (const auto& k : keys) {
    std::string full = std::string(prefix) + k;
    if (!k.empty() && k.back() == '/') {
      RETURN_IF_ERROR(delete_tree(full));
    } else {
      RETURN_IF_ERROR(del(full));
    }
  }
  return ok_status();
}

}  // namespace custos::core
