#include "storage/migrate.h"

#include <vector>

namespace custos::storage {
namespace {

// Every key below `prefix`, depth first, in list order. Vault's list folds sub-folders into
// "name/", so the walk descends into each.
Status walk(Backend& b, const std::string& prefix,
            const std::function<Status(const std::string&)>& visit) {
  ASSIGN_OR_RETURN(std::vector<std::string> children, b.list(prefix));
  for (const auto& child : children) {
    // A folder ("b/") is walked; a key ("b") is visited. Both can exist side by side. A key that
    // ends in '/' lists as a folder and then, inside it, as the empty child: visited there.
    if (!child.empty() && child.back() == '/') {
      RETURN_IF_ERROR(walk(b, prefix + child, visit));
    } else {
      RETURN_IF_ERROR(visit(prefix + child));
    }
  }
  return ok_status();
}

}  // namespace

Result<MigrationStats> migrate(Backend& from, Backend& to,
                               const std::function<void(uint64_t keys)>& progress) {
  ASSIGN_OR_RETURN(std::vector<std::string> existing, to.list(""));
  if (!existing.empty()) {
    return failed_precondition("the destination storage is not empty (it holds \"" +
                               existing.front() + "\"...); migrate into an empty one");
  }
  const size_t limit = to.max_transaction_ops() > 0 ? to.max_transaction_ops() : 256;
  // Also bounded by bytes: etcd refuses requests over --max-request-bytes (1.5 MiB by
  // default); a larger value goes alone.
  constexpr size_t kBatchBytes = size_t{1} << 20;
  MigrationStats stats;
  std::vector<Op> batch;
  size_t batch_bytes = 0;
  auto flush = [&]() -> Status {
    if (batch.empty()) return ok_status();
    RETURN_IF_ERROR(to.transaction(batch));
    batch.clear();
    batch_bytes = 0;
    if (progress) progress(stats.keys);
    return ok_status();
  };
  Status copied = walk(from, "", [&](const std::string& key) -> Status {
    ASSIGN_OR_RETURN(auto value, from.get(key));
    if (!value) return ok_status();  // gone meanwhile (the source is locked: cannot happen)
    stats.keys++;
    stats.bytes += value->size();
    if (!batch.empty() && batch_bytes + key.size() + value->size() > kBatchBytes) {
      RETURN_IF_ERROR(flush());
    }
    batch_bytes += key.size() + value->size();
    batch.push_back(Op{Op::Kind::kPut, key, std::move(*value)});
    if (batch.size() >= limit) return flush();
    return ok_status();
  });
  if (copied.ok()) copied = flush();
  if (!copied.ok()) {
    return copied.with_context("copying (clear what reached the destination before trying again)");
  }
  if (stats.keys == 0) {
    return failed_precondition("the source storage holds no key (is its path right?)");
  }
  // Read back and compare.
  uint64_t checked = 0;
  RETURN_IF_ERROR(walk(from, "", [&](const std::string& key) -> Status {
    ASSIGN_OR_RETURN(auto want, from.get(key));
    ASSIGN_OR_RETURN(auto got, to.get(key));
    if (want.has_value() != got.has_value() || (want && *want != *got)) {
      return data_loss("the copy of \"" + key + "\" differs from the source");
    }
    ++checked;
    return ok_status();
  }));
  if (checked != stats.keys) {
    return data_loss("the source changed during the migration (" + std::to_string(stats.keys) +
                     " keys copied, " + std::to_string(checked) + " read back)");
  }
  return stats;
}

}  // namespace custos::storage
