// A filter over the keys a backend holds, so a read of a key that was never written can be
// answered from memory: KV v2 checks whether a path exists before every write to a new path,
// and every such read would otherwise wait for the SQLite connection behind a commit
// (docs/formats/storage-sqlite.md, "Key filter").
//
// A growing Bloom filter: add() records a key, may_contain() answers false only for keys never
// added. It may answer true for a key never added (about 1 in 1,700 per sub-filter, see the .cpp)
// or one added and since deleted: the caller then asks the store. Nothing is ever removed; the
// owner builds a new filter from the store's keys when the store is opened, and again once as
// many new keys have been added as the filter was built with (SqliteBackend's rebuild), so keys
// created and deleted (tokens, leases) do not grow it for ever.
//
// Not thread-safe: the caller serializes add() and may_contain() (SqliteBackend holds its mutex).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace custos::storage::internal {

class KeyFilter {
 public:
  // `expected` sizes the first sub-filter; later ones double as keys are added.
  explicit KeyFilter(size_t expected = 0);

  // Adding a key the filter may already contain changes nothing, so rewrites of the same keys
  // do not grow it.
  void add(std::string_view key);
  bool may_contain(std::string_view key) const;

  size_t keys_added() const { return added_; }  // keys that set bits (not re-adds)
  size_t sub_filters() const { return filters_.size(); }
  size_t memory_bytes() const;

 private:
  struct Sub {
    std::vector<uint64_t> words;  // a power of two of them
    uint64_t mask = 0;            // bits - 1
    size_t capacity = 0;          // keys it takes before the next sub-filter starts
    size_t count = 0;
  };
  static Sub make_sub(size_t capacity);

  std::vector<Sub> filters_;  // the newest last; only it takes new keys
  size_t added_ = 0;
};

}  // namespace custos::storage::internal
