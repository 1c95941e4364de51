// The WAL-write-gathering VFS (sqlite_vfs.h). Every file but a WAL is opened by the default VFS
// straight into the memory SQLite gives us, so it runs the default code with nothing in
// between; a WAL is opened into the memory after our own header, whose methods gather writes.
#include "storage/sqlite_vfs.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <vector>

namespace custos::storage::internal {
namespace {

constexpr const char* kVfsName = "custos-wal-gather";
// A commit's frames are flushed after its COMMIT anyway; this only bounds one huge transaction.
constexpr size_t kMaxGathered = size_t{4} << 20;

struct WalFile {
  sqlite3_file base;           // pMethods = &kWalMethods
  sqlite3_file* real;          // the default VFS's file, right after this header
  std::vector<char>* pending;  // gathered bytes, written at `pending_at`
  sqlite3_int64 pending_at;
  int broken;  // SQLITE_OK, or the error of a failed flush: the file refuses everything since
};

WalFile* wal(sqlite3_file* f) {
  return reinterpret_cast<WalFile*>(f);
}
sqlite3_file* real(sqlite3_file* f) {
  return wal(f)->real;
}

// The default VFS writes at most 128 KiB - 1 bytes per call (its pwrite masks the length with
// 0x1ffff; SQLite itself never writes more than a page and a frame header at once), so the
// gathered bytes go down in pieces of 64 KiB.
constexpr size_t kMaxWrite = size_t{64} << 10;

int flush(WalFile* w) {
  if (w->broken != SQLITE_OK) return w->broken;
  int rc = SQLITE_OK;
  for (size_t done = 0; rc == SQLITE_OK && done < w->pending->size(); done += kMaxWrite) {
    size_t n = std::min(kMaxWrite, w->pending->size() - done);
    rc = w->real->pMethods->xWrite(w->real, w->pending->data() + done, static_cast<int>(n),
                                   w->pending_at + static_cast<sqlite3_int64>(done));
  }
  w->pending->clear();
  if (rc != SQLITE_OK) w->broken = rc;
  return rc;
}

// Flushes, then forwards: every method but xWrite and xClose reads or changes what a write may
// have gathered.
#define CUSTOS_FLUSH_OR_RETURN(f)                 \
  do {                                            \
    int flush_rc_ = flush(wal(f));                \
    if (flush_rc_ != SQLITE_OK) return flush_rc_; \
  } while (0)

int wal_close(sqlite3_file* f) {
  WalFile* w = wal(f);
  int rc = flush(w);
  int close_rc = w->real->pMethods != nullptr ? w->real->pMethods->xClose(w->real) : SQLITE_OK;
  delete w->pending;
  w->pending = nullptr;
  return rc != SQLITE_OK ? rc : close_rc;
}

int wal_read(sqlite3_file* f, void* out, int amount, sqlite3_int64 offset) {
  CUSTOS_FLUSH_OR_RETURN(f);
  return real(f)->pMethods->xRead(real(f), out, amount, offset);
}

int wal_write(sqlite3_file* f, const void* data, int amount, sqlite3_int64 offset) {
  WalFile* w = wal(f);
  if (w->broken != SQLITE_OK) return w->broken;
  if (amount <= 0) return SQLITE_OK;
  auto n = static_cast<size_t>(amount);
  const bool follows = !w->pending->empty() &&
                       offset == w->pending_at + static_cast<sqlite3_int64>(w->pending->size());
  if (!follows || w->pending->size() + n > kMaxGathered) {
    int rc = flush(w);
    if (rc != SQLITE_OK) return rc;
    w->pending_at = offset;
  }
  const char* p = static_cast<const char*>(data);
  w->pending->insert(w->pending->end(), p, p + n);
  return SQLITE_OK;
}

int wal_truncate(sqlite3_file* f, sqlite3_int64 size) {
  CUSTOS_FLUSH_OR_RETURN(f);
  return real(f)->pMethods->xTruncate(real(f), size);
}

int wal_sync(sqlite3_file* f, int flags) {
  CUSTOS_FLUSH_OR_RETURN(f);
  return real(f)->pMethods->xSync(real(f), flags);
}

int wal_file_size(sqlite3_file* f, sqlite3_int64* size) {
  CUSTOS_FLUSH_OR_RETURN(f);
  return real(f)->pMethods->xFileSize(real(f), size);
}

int wal_lock(sqlite3_file* f, int level) {
  return real(f)->pMethods->xLock(real(f), level);
}
int wal_unlock(sqlite3_file* f, int level) {
  return real(f)->pMethods->xUnlock(real(f), level);
}
int wal_check_reserved(sqlite3_file* f, int* out) {
  return real(f)->pMethods->xCheckReservedLock(real(f), out);
}

int wal_file_control(sqlite3_file* f, int op, void* arg) {
  CUSTOS_FLUSH_OR_RETURN(f);
  return real(f)->pMethods->xFileControl(real(f), op, arg);
}

int wal_sector_size(sqlite3_file* f) {
  return real(f)->pMethods->xSectorSize(real(f));
}
int wal_device(sqlite3_file* f) {
  return real(f)->pMethods->xDeviceCharacteristics(real(f));
}

int wal_shm_map(sqlite3_file* f, int page, int size, int extend, void volatile** out) {
  return real(f)->pMethods->xShmMap(real(f), page, size, extend, out);
}
int wal_shm_lock(sqlite3_file* f, int offset, int n, int flags) {
  return real(f)->pMethods->xShmLock(real(f), offset, n, flags);
}
void wal_shm_barrier(sqlite3_file* f) {
  real(f)->pMethods->xShmBarrier(real(f));
}
int wal_shm_unmap(sqlite3_file* f, int delete_flag) {
  return real(f)->pMethods->xShmUnmap(real(f), delete_flag);
}

// The WAL is never memory-mapped (only the database file is), so no fetch ever finds a page.
int wal_fetch(sqlite3_file* /*f*/, sqlite3_int64 /*offset*/, int /*amount*/, void** out) {
  *out = nullptr;
  return SQLITE_OK;
}
int wal_unfetch(sqlite3_file* /*f*/, sqlite3_int64 /*offset*/, void* /*p*/) {
  return SQLITE_OK;
}

#undef CUSTOS_FLUSH_OR_RETURN

const sqlite3_io_methods kWalMethods = {
    3,
    wal_close,
    wal_read,
    wal_write,
    wal_truncate,
    wal_sync,
    wal_file_size,
    wal_lock,
    wal_unlock,
    wal_check_reserved,
    wal_file_control,
    wal_sector_size,
    wal_device,
    wal_shm_map,
    wal_shm_lock,
    wal_shm_barrier,
    wal_shm_unmap,
    wal_fetch,
    wal_unfetch,
};

sqlite3_vfs* parent_of(sqlite3_vfs* vfs) {
  return static_cast<sqlite3_vfs*>(vfs->pAppData);
}

int vfs_open(sqlite3_vfs* vfs, sqlite3_filename name, sqlite3_file* file, int flags,
             int* out_flags) {
  sqlite3_vfs* parent = parent_of(vfs);
  if ((flags & SQLITE_OPEN_WAL) == 0) return parent->xOpen(parent, name, file, flags, out_flags);
  WalFile* w = wal(file);
  auto* inner = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(file) + sizeof(WalFile));
  std::memset(inner, 0, static_cast<size_t>(parent->szOsFile));
  w->base.pMethods = nullptr;  // until the real file is open: SQLite then does not close it
  int rc = parent->xOpen(parent, name, inner, flags, out_flags);
  if (rc != SQLITE_OK) {
    // The default VFS may leave methods set on failure; SQLite closes only what we expose.
    if (inner->pMethods != nullptr) inner->pMethods->xClose(inner);
    return rc;
  }
  w->real = inner;
  w->pending = new (std::nothrow) std::vector<char>();
  if (w->pending == nullptr) {
    inner->pMethods->xClose(inner);
    return SQLITE_NOMEM;
  }
  w->pending_at = 0;
  w->broken = SQLITE_OK;
  w->base.pMethods = &kWalMethods;
  return SQLITE_OK;
}

// The rest forward to the default VFS, passing it its own object (its methods read their state
// from there).
int vfs_delete(sqlite3_vfs* vfs, const char* name, int sync_dir) {
  return parent_of(vfs)->xDelete(parent_of(vfs), name, sync_dir);
}
int vfs_access(sqlite3_vfs* vfs, const char* name, int flags, int* out) {
  return parent_of(vfs)->xAccess(parent_of(vfs), name, flags, out);
}
int vfs_full_pathname(sqlite3_vfs* vfs, const char* name, int n, char* out) {
  return parent_of(vfs)->xFullPathname(parent_of(vfs), name, n, out);
}
void* vfs_dlopen(sqlite3_vfs* vfs, const char* name) {
  return parent_of(vfs)->xDlOpen(parent_of(vfs), name);
}
void vfs_dlerror(sqlite3_vfs* vfs, int n, char* out) {
  parent_of(vfs)->xDlError(parent_of(vfs), n, out);
}
void (*vfs_dlsym(sqlite3_vfs* vfs, void* handle, const char* symbol))(void) {
  return parent_of(vfs)->xDlSym(parent_of(vfs), handle, symbol);
}
void vfs_dlclose(sqlite3_vfs* vfs, void* handle) {
  parent_of(vfs)->xDlClose(parent_of(vfs), handle);
}
int vfs_randomness(sqlite3_vfs* vfs, int n, char* out) {
  return parent_of(vfs)->xRandomness(parent_of(vfs), n, out);
}
int vfs_sleep(sqlite3_vfs* vfs, int micros) {
  return parent_of(vfs)->xSleep(parent_of(vfs), micros);
}
int vfs_current_time(sqlite3_vfs* vfs, double* out) {
  return parent_of(vfs)->xCurrentTime(parent_of(vfs), out);
}
int vfs_last_error(sqlite3_vfs* vfs, int n, char* out) {
  return parent_of(vfs)->xGetLastError(parent_of(vfs), n, out);
}
int vfs_current_time64(sqlite3_vfs* vfs, sqlite3_int64* out) {
  return parent_of(vfs)->xCurrentTimeInt64(parent_of(vfs), out);
}

}  // namespace

Result<const char*> coalescing_vfs() {
  static std::once_flag once;
  static int registered = SQLITE_ERROR;
  static sqlite3_vfs vfs{};
  std::call_once(once, [] {
    sqlite3_vfs* parent = sqlite3_vfs_find(nullptr);
    if (parent == nullptr || parent->iVersion < 2 || parent->xCurrentTimeInt64 == nullptr) {
      return;
    }
    vfs.iVersion = 2;
    vfs.szOsFile = static_cast<int>(sizeof(WalFile)) + parent->szOsFile;
    vfs.mxPathname = parent->mxPathname;
    vfs.zName = kVfsName;
    vfs.pAppData = parent;
    vfs.xOpen = vfs_open;
    vfs.xDelete = vfs_delete;
    vfs.xAccess = vfs_access;
    vfs.xFullPathname = vfs_full_pathname;
    vfs.xDlOpen = vfs_dlopen;
    vfs.xDlError = vfs_dlerror;
    vfs.xDlSym = vfs_dlsym;
    vfs.xDlClose = vfs_dlclose;
    vfs.xRandomness = vfs_randomness;
    vfs.xSleep = vfs_sleep;
    vfs.xCurrentTime = vfs_current_time;
    vfs.xGetLastError = vfs_last_error;
    vfs.xCurrentTimeInt64 = vfs_current_time64;
    registered = sqlite3_vfs_register(&vfs, /*makeDflt=*/0);
  });
  if (registered != SQLITE_OK) {
    return unavailable(std::string("storage: registering the sqlite WAL VFS failed: ") +
                       sqlite3_errstr(registered));
  }
  return kVfsName;
}

Status flush_wal(sqlite3* db) {
  sqlite3_file* file = nullptr;
  int rc = sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &file);
  if (rc != SQLITE_OK || file == nullptr || file->pMethods != &kWalMethods) return ok_status();
  rc = flush(wal(file));
  if (rc == SQLITE_OK) return ok_status();
  return unavailable(std::string("writing the WAL: ") + sqlite3_errstr(rc));
}

}  // namespace custos::storage::internal
