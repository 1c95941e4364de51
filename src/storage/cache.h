// A read cache in front of a physical backend, as Vault's physical cache (`cache_size`,
// `disable_cache`): the most recently used entries (and known-missing keys) are answered from
// memory. It holds what the backend holds, i.e. barrier ciphertext, never plaintext.
//
// Writes go to the backend first, then drop the key from the cache. A read that missed fetches
// from the backend and fills the cache only if no write touched the key's shard in the meantime
// (a generation counter per shard), so a slow read can never put an older value back over a
// newer one. One process writes the backend at a time (its lock; with HA, the active server,
// and each new lock term empties the cache: Backend::cache_epoch); the cache is not shared.
#pragma once

#include <memory>

#include "storage/backend.h"

namespace custos::storage {

struct CacheStats {
  uint64_t hits = 0;
  uint64_t misses = 0;
  size_t entries = 0;
};

// Wraps `inner`. `capacity` counts entries (Vault's default is 131072); the values held are also
// bounded to 128 MiB in all, and values larger than 256 KiB are passed through uncached.
std::unique_ptr<Backend> with_read_cache(std::unique_ptr<Backend> inner, size_t capacity);
// For tests: the counters of a backend made by with_read_cache (zeros for any other backend).
CacheStats read_cache_stats(const Backend& backend);

}  // namespace custos::storage
