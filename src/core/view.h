// A prefix-scoped window onto the barrier: each mount, the token store and the policy store get
// one, so no component can read another's keys by accident.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <boost/json/value.hpp>

#include "core/barrier.h"

namespace custos::core {

// Writes collected for one atomic View::apply(): keys are relative to the view, values are
// plaintext (the barrier encrypts them on apply). Plaintext still held by a batch that is
// dropped without being applied is wiped.
class WriteBatch {
 public:
  WriteBatch() = default;
  ~WriteBatch();
  WriteBatch(WriteBatch&&) = default;
  WriteBatch& operator=(WriteBatch&&) = delete;
  WriteBatch(const WriteBatch&) = delete;
  WriteBatch& operator=(const WriteBatch&) = delete;

  void put(std::string_view key, ByteSpan value);
  void put_json(std::string_view key, const boost::json::value& v);
  void del(std::string_view key);
  bool empty() const { return ops_.empty(); }
  size_t size() const { return ops_.size(); }

 private:
  friend class View;
  std::vector<storage::Op> ops_;
};

class View {
 public:
  View(Barrier& barrier, std::string prefix) : barrier_(&barrier), prefix_(std::move(prefix)) {}

  Result<std::optional<SecretBytes>> get(std::string_view key) const {
    return barrier_->get(prefix_ + std::string(key));
  }
  Status put(std::string_view key, ByteSpan value) const {
    return barrier_->put(prefix_ + std::string(key), value);
  }
  Status del(std::string_view key) const { return barrier_->del(prefix_ + std::string(key)); }
  Result<std::vector<std::string>> list(std::string_view prefix) const {
    return barrier_->list(prefix_ + std::string(prefix));
  }
  // JSON helpers: most stored records are JSON documents.
  Result<std::optional<boost::json::value>> get_json(std::string_view key) const;
  Status put_json(std::string_view key, const boost::json::value& v) const;
  // Applies every write of `batch` or none, as one durable storage transaction (one commit,
  // one fsync on disk backends). An empty batch is a no-op.
  Status apply(WriteBatch batch) const;
  // Deletes every key below `prefix` (recursively).
  Status delete_tree(std::string_view prefix) const;

  View sub(std::string_view more) const { return View(*barrier_, prefix_ + std::string(more)); }
  const std::string& prefix() const { return prefix_; }
  Barrier& barrier() const { return *barrier_; }

 private:
  Barrier* barrier_;
  std::string prefix_;
};

}  // namespace custos::core
