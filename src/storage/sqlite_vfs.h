// A SQLite VFS that wraps the platform's default one and gathers the WAL's writes (SQLite writes
// each frame as two pwrite()s, its 24-byte header and its page) into one pwrite per run of
// contiguous bytes: docs/formats/storage-sqlite.md, "WAL writes".
#pragma once

#include <sqlite3.h>

#include "base/status.h"

namespace custos::storage::internal {

// The VFS's name, registered (not as the default) on first use; open connections with it.
Result<const char*> coalescing_vfs();

// Writes what the connection's WAL has gathered. Call after each COMMIT: until then the
// frames are in memory only, and an fsync of the WAL would not cover them. A failure leaves
// the WAL file refusing every further operation (its frames are lost, and SQLite believes them
// written), so the caller must stop using the connection.
Status flush_wal(sqlite3* db);

}  // namespace custos::storage::internal
