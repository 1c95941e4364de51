// The physical storage interface: opaque bytes under string keys. Everything above core/barrier
// is encrypted before it reaches a Backend, so backends never see plaintext secrets.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/bytes.h"
#include "base/status.h"

namespace custos::storage {

struct Op {
  enum class Kind { kPut, kDelete };
  Kind kind = Kind::kPut;
  std::string key;
  Bytes value;  // kPut only
};

// All methods are thread-safe. A put/delete/transaction that returns OK is durable (on disk
// backends it survives kill -9 and power loss, subject to the device honouring fsync).
class Backend {
 public:
  virtual ~Backend() = default;

  virtual Result<std::optional<Bytes>> get(std::string_view key) = 0;
  virtual Status put(std::string_view key, ByteSpan value) = 0;
  virtual Status del(std::string_view key) = 0;  // deleting a missing key is OK
  // Vault's list semantics: the immediate children of `prefix`, sorted; a child that has
  // children of its own ends with '/'. "a/b", "a/c/d" listed under "a/" -> ["b", "c/"].
  virtual Result<std::vector<std::string>> list(std::string_view prefix) = 0;
  // Applies every op or none.
  virtual Status transaction(std::span<const Op> ops) = 0;
  // Name for sys/ and logs: "inmem", "sqlite".
  virtual std::string_view name() const = 0;
};

std::unique_ptr<Backend> open_inmem();

struct SqliteOptions {
  std::string path;
  // Group commit: concurrent writers share one transaction and one fsync. 0 disables batching.
  size_t max_batch = 256;
  // A background checkpoint starts once this many WAL pages (frames) are not yet copied into
  // the database file (SQLite's own auto-checkpoint default is 1000).
  size_t checkpoint_pages = 1000;
};
Result<std::unique_ptr<Backend>> open_sqlite(const SqliteOptions& options);

}  // namespace custos::storage
