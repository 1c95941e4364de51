// Copying a whole store from one backend to another (`custos operator migrate`,
// docs/configuration.md "Migrating storage"). Keys and values are copied as they are: barrier
// ciphertext, so nothing is unsealed and the same unseal (or recovery) keys open the copy.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "base/status.h"
#include "storage/backend.h"

namespace custos::storage {

struct MigrationStats {
  uint64_t keys = 0;
  uint64_t bytes = 0;  // of values
};

// Copies every key of `from` into `to`, which must hold no key at all (FailedPrecondition
// otherwise: a copy merged into another store would be neither). Writes go in batches that fit
// the destination's transaction limit. Then reads every key of `from` back from `to` and
// compares (DataLoss on any difference). `progress`, if set, is called after each batch with
// the keys copied so far.
Result<MigrationStats> migrate(Backend& from, Backend& to,
                               const std::function<void(uint64_t keys)>& progress = {});

}  // namespace custos::storage
