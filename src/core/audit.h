// The audit broker: every request and response is written, as one JSON line each, to every
// enabled device before the response leaves the server. Sensitive values (all strings in request
// and response data, tokens, accessors) are replaced by "hmac-sha256:<hex>" under a per-device
// key, so the log can be searched (sys/audit-hash) without holding secrets. If devices are
// enabled and none can write, the request fails (Vault's rule) with a clear error.
#pragma once

#include <atomic>
#include <boost/json/object.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "core/request.h"
#include "core/view.h"

namespace custos::core {

struct TokenEntry;

class AuditDevice {
 public:
  virtual ~AuditDevice() = default;
  virtual Status write_line(std::string_view line) = 0;
};

// Appends lines to a file opened with O_APPEND; reopen on SIGHUP is not implemented.
Result<std::unique_ptr<AuditDevice>> open_file_device(const std::string& path, int mode);

class AuditBroker {
 public:
  explicit AuditBroker(const Clock& clock) : clock_(clock) {}

  // Loads the device table from storage (after unseal) and opens the devices.
  Status load(View view);
  void clear();
  bool enabled() const;

  // `error` non-empty: the request was refused before it ran (a bad token, an ACL denial), and
  // its entry says why, as Vault's does.
  Status log_request(const Request& req, const TokenEntry* token, std::string_view error = {});
  // render_response() and write_response() at once.
  Status log_response(const Request& req, const TokenEntry* token, const Result<Response>& resp);

  // A response's entries, rendered for each device enabled at the time, kept until the writes
  // the response reflects are durable: the log never records an answer the client was not
  // given. Empty when no device is enabled.
  struct PendingResponse {
    std::vector<std::pair<std::string, boost::json::object>> lines;  // device path, entry
  };
  std::shared_ptr<const PendingResponse> render_response(const Request& req,
                                                         const TokenEntry* token,
                                                         const Result<Response>& resp) const;
  // Writes the entries to the devices still enabled. `outcome` not ok: the client is answered
  // with that error instead (its writes could not be made durable), and the entries say so.
  // Fails, like log_response(), when devices are enabled and none can record it.
  Status write_response(const PendingResponse& pending, const Status& outcome);

  Status enable(const std::string& path, const std::string& type, const std::string& description,
                const boost::json::object& options, bool local);
  Status disable(const std::string& path);
  boost::json::object list() const;
  Result<std::string> hash(const std::string& path, std::string_view input) const;

 private:
  struct Device {
    std::string path;
    std::string type;
    std::string description;
    boost::json::object options;
    bool local = false;
    SecretBytes hmac_key;
    std::unique_ptr<AuditDevice> sink;
  };
  Status write_all(const std::function<std::string(const Device&)>& render);
  Status persist();
  static std::string hmac_value(const Device& d, std::string_view v);
  static boost::json::value hash_tree(const Device& d, const boost::json::value& v, int depth);

  const Clock& clock_;
  mutable std::mutex mu_;
  std::optional<View> view_;
  std::map<std::string, Device> devices_;
  std::atomic<size_t> active_{0};  // devices_.size(), read without mu_ (see Recount)
};

}  // namespace custos::core
