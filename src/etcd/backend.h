// The etcd storage backend (docs/storage-etcd.md): the physical storage interface over etcd's v3
// API, through its JSON gateway (HTTP/1.1, POST /v3/...), so it needs no gRPC stack. Values are
// barrier ciphertext, like every backend's.
//
// One server at a time: at open the backend takes a lock, a key beside its prefix bound to an
// etcd lease that a background thread keeps alive, and every write is a transaction that first
// compares that key's creation revision with its own (a fencing token). A second server on the
// same prefix is refused at open; a server whose lease lapsed (a partition longer than the lease)
// has every further write refused by etcd itself, never interleaved with the new holder's.
//
// With ha_enabled (docs/ha.md) the lock is not taken at open: the server competes for it
// through storage::HaLock (Backend::ha_lock()), reads freely while a standby, and may write
// only while it holds the lock. Losing it then makes the server a standby again, not stop.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "net/http.h"
#include "storage/backend.h"

namespace custos::etcd {

struct EtcdOptions {
  // Client URLs of the cluster's members ("http://127.0.0.1:2379", https:// with tls below);
  // a request that cannot reach one tries the next.
  std::vector<std::string> endpoints;
  // Every key lives under this prefix (Vault's etcd backend uses "/vault/"). Must end in '/'.
  std::string prefix = "/custos/";
  // etcd's role-based access control (empty: no authentication).
  std::string username;
  std::string password;
  // TLS to etcd: CA, client certificate and key (https:// endpoints).
  net::ClientOptions tls;
  std::chrono::seconds request_timeout{10};
  // The lock's lease: a server that stops renewing it loses the lock this long after.
  std::chrono::seconds lock_ttl{15};
  // etcd refuses transactions with more operations than its --max-txn-ops (default 128).
  size_t max_txn_ops = 128;
  // High availability: the lock is taken through ha_lock(), not at open.
  bool ha_enabled = false;
  // HA: how often a standby looks whether the lock is free.
  std::chrono::milliseconds ha_poll{1000};
  // Called once, from whichever thread notices, when the lock is lost (its lease ran out, or a
  // write found another holder). From then on every call fails; the server stops (it may have
  // cached what another server now changes). Not used with ha_enabled (HaLock's on_lost).
  std::function<void()> on_lock_lost;
};

// Connects, checks the prefix, and takes the lock (FailedPrecondition if another server holds
// it, naming that server); with ha_enabled, only connects.
Result<std::unique_ptr<storage::Backend>> open_etcd(const EtcdOptions& options);

// The lock key of a prefix: "/custos/" -> "/custos.lock" (outside the prefix's key range).
std::string lock_key_for(const std::string& prefix);

}  // namespace custos::etcd
