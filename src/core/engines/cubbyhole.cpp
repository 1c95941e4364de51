#include "core/engines/cubbyhole.h"

#include "core/engines/kv.h"
#include "core/tokens.h"

namespace custos::core {
namespace {

class Cubbyhole final : public Engine {
 public:
  explicit Cubbyhole(View view) : view_(std::move(view)) {}

  Result<bool> exists(const Request& req) override {
    ASSIGN_OR_RETURN(View box, own(req));
    return kv_v1_exists(box, req);
  }

  Result<Response> handle(Request& req) override {
    ASSIGN_OR_RETURN(View box, own(req));
    return kv_v1_handle(box, req);
  }

 private:
  // The calling token's own cubbyhole: nothing in the request can name another one.
  Result<View> own(const Request& req) const {
    if (req.token == nullptr) return permission_denied("permission denied");
    if (req.token->type != "service") {
      return invalid_argument("cubbyhole operations are only supported by \"service\" type tokens");
    }
    return cubbyhole_of(view_, req.token->hash);
  }

  View view_;
};

}  // namespace

View cubbyhole_of(const View& mount_view, std::string_view token_hash) {
  std::string sub(token_hash);
  sub += '/';
  return mount_view.sub(sub);
}

Result<std::unique_ptr<Engine>> make_cubbyhole_engine(EngineContext ctx, const MountEntry& entry) {
  (void)entry;
  return std::unique_ptr<Engine>(std::make_unique<Cubbyhole>(ctx.storage));
}

}  // namespace custos::core
