// Test seams for the SQLite backend's group-commit path (cf. leveldb's fault_injection_test).
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
  // Called by a writer right after its request is queued, with the queue lock held: the hook
  // must not call back into the backend.
  std::function<void()> on_enqueue;
  // Called on the thread leading a batch before each op's statement; a non-OK status makes that
  // op fail the way a statement-level SQLite error does (the enclosing transaction stays open).
  std::function<Status(std::string_view key)> before_op;
  // Called on the thread leading a batch before each COMMIT with the number of requests (puts,
  // deletes or whole transactions) it covers; a non-OK status makes the COMMIT fail.
  std::function<Status(size_t requests)> before_commit;
  // Called on the checkpointer thread after each checkpoint step: `final` is false for the
  // step that runs alongside commits and true for the one that holds writers off; `wal_frames`
  // and `copied_frames` are what sqlite3_wal_checkpoint_v2 reported.
  std::function<void(bool final, int wal_frames, int copied_frames)> after_checkpoint;
};

Result<std::unique_ptr<Backend>> open_sqlite_with_hooks(const SqliteOptions& options,
                                                        SqliteTestHooks hooks);

}  // namespace custos::storage
