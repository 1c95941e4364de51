// A scope guard for C APIs without an RAII type (cf. absl::Cleanup).
#pragma once

#include <utility>

namespace custos {

template <typename F>
class [[nodiscard]] Cleanup {
 public:
  explicit Cleanup(F f) : f_(std::move(f)) {}
  ~Cleanup() {
    if (active_) f_();
  }
  Cleanup(const Cleanup&) = delete;
  Cleanup& operator=(const Cleanup&) = delete;
  void cancel() { active_ = false; }

 private:
  F f_;
  bool active_ = true;
};

}  // namespace custos
