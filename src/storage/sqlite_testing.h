// Test seams for the SQLite backend's committer (cf. leveldb's fault_injection_test).
// Production code opens with open_sqlite(); only tests set hooks.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string_view>

#include "base/status.h"
#include "storage/backend.h"

namespace custos::storage {

struct SqliteTestHooks {
  // Called on the committer thread before each COMMIT with the number of writes (puts, deletes
  // or whole transactions) it covers; a non-OK status makes the commit fail (and, as a real
  // failure does, stops the backend).
  std::function<Status(size_t writes)> before_commit;
  // Called on the committer thread before each fsync of the WAL; a non-OK status makes that
  // fsync fail. May block, to hold writes committed but not durable.
  std::function<Status()> before_sync;
  // Called on the committer thread after each checkpoint with what sqlite3_wal_checkpoint_v2
  // reported: the WAL's size in frames and the frames copied into the database file.
  std::function<void(int wal_frames, int copied_frames)> after_checkpoint;
  // Called on the reading thread before each get() that reaches SQLite (neither the overlay nor
  // the key filter answered it).
  std::function<void(std::string_view key)> before_read;
  // Called on the committer thread when a rebuilt key filter replaces the old one, with the
  // number of keys it holds.
  std::function<void(size_t keys)> after_filter_rebuild;
};

Result<std::unique_ptr<Backend>> open_sqlite_with_hooks(const SqliteOptions& options,
                                                        SqliteTestHooks hooks);

}  // namespace custos::storage
