// The in-memory backend: for dev mode and tests. Nothing survives the process, so "durable"
// degenerates to "visible to every later call".
#include <algorithm>
#include <map>
#include <mutex>
#include <shared_mutex>

#include "storage/backend.h"
#include "storage/keys.h"

namespace custos::storage {
namespace {

class InmemBackend final : public Backend {
 public:
  Result<std::optional<Bytes>> get(std::string_view key) override {
    RETURN_IF_ERROR(internal::validate_key(key));
    std::shared_lock lock(mu_);
    auto it = data_.find(key);
    if (it == data_.end()) return std::optional<Bytes>();
    return std::optional<Bytes>(it->second);
  }

  Status put(std::string_view key, ByteSpan value) override {
    RETURN_IF_ERROR(internal::validate_key(key));
    Bytes copy(value.begin(), value.end());  // allocate outside the lock
    std::unique_lock lock(mu_);
    data_.insert_or_assign(std::string(key), std::move(copy));
    return ok_status();
  }

  Status del(std::string_view key) override {
    RETURN_IF_ERROR(internal::validate_key(key));
    std::unique_lock lock(mu_);
    auto it = data_.find(key);
    if (it != data_.end()) data_.erase(it);
    return ok_status();
  }

  Result<std::vector<std::string>> list(std::string_view prefix) override {
    std::vector<std::string> out;
    std::shared_lock lock(mu_);
    auto it = data_.lower_bound(prefix);
    while (it != data_.end() && std::string_view(it->first).starts_with(prefix)) {
      internal::Child child = internal::immediate_child(it->first, prefix);
      out.emplace_back(child.name);
      if (child.folder) {
        it = data_.lower_bound(internal::skip_past_folder(prefix, child.name));
      } else {
        ++it;
      }
    }
    lock.unlock();
    // Already in order by construction; sorting again keeps the contract independent of that
    // argument.
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
  }

  Status transaction(std::span<const Op> ops) override {
    for (const Op& op : ops) RETURN_IF_ERROR(internal::validate_key(op.key));
    std::unique_lock lock(mu_);
    // Nothing below can fail short of bad_alloc, so validating first makes this all-or-nothing.
    for (const Op& op : ops) {
      if (op.kind == Op::Kind::kPut) {
        data_.insert_or_assign(op.key, op.value);
      } else {
        data_.erase(op.key);
      }
    }
    return ok_status();
  }

  std::string_view name() const override { return "inmem"; }

 private:
  std::shared_mutex mu_;
  std::map<std::string, Bytes, std::less<>> data_;  // guarded by mu_
};

}  // namespace

std::unique_ptr<Backend> open_inmem() {
  return std::make_unique<InmemBackend>();
}

}  // namespace custos::storage
