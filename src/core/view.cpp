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
