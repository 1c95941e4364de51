// Where Core keeps its own records (docs/formats/barrier.md). Internal to core/.
#pragma once

#include <string_view>

namespace custos::core::paths {

// Outside the barrier (read before it opens): the seal's configuration and the root key,
// encrypted by the unseal key (Shamir) or the HSM (auto seal).
constexpr std::string_view kSealConfig = "core/seal-config";
constexpr std::string_view kRootKey = "core/root-key";
// Auto seal only: the recovery key encrypted by the HSM, and the recovery shares' count and
// threshold.
constexpr std::string_view kRecoveryKey = "core/recovery-key";
constexpr std::string_view kRecoveryConfig = "core/recovery-config";
// Inside the barrier.
constexpr std::string_view kMounts = "core/mounts";
constexpr std::string_view kCluster = "core/cluster";
constexpr std::string_view kAuth = "core/auth";
// HA: the active server's advertisement, under the id its lock names (docs/ha.md).
constexpr std::string_view kLeaderPrefix = "core/leader/";

}  // namespace custos::core::paths
