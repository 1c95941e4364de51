// A backend that forwards every call to an in-memory one: tests derive from it to change one
// behaviour (a transaction limit, calls that block) and keep the rest real.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "storage/backend.h"

namespace custos::core {

class ForwardingBackend : public storage::Backend {
 public:
  Result<std::optional<Bytes>> get(std::string_view k) override { return inner_->get(k); }
  Status put(std::string_view k, ByteSpan v) override { return inner_->put(k, v); }
  Status del(std::string_view k) override { return inner_->del(k); }
  Result<std::vector<std::string>> list(std::string_view p) override { return inner_->list(p); }
  Status transaction(std::span<const storage::Op> ops) override { return inner_->transaction(ops); }
  std::string_view name() const override { return "forwarding"; }

 private:
  std::unique_ptr<storage::Backend> inner_ = storage::open_inmem();
};

}  // namespace custos::core
