#include "core/engines/kv.h"

#include <algorithm>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <unordered_map>

#include <boost/json.hpp>

namespace custos::core {
namespace {

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

bool valid_key(std::string_view path) {
  if (path.empty() || path.size() > 1024) return false;
  if (path.front() == '/' || path.find("//") != std::string_view::npos) return false;
  return true;
}

boost::json::array string_array(const std::vector<std::string>& v) {
  boost::json::array a;
  for (const auto& x : v) a.emplace_back(x);
  return a;
}

// ------------------------------------------------------------------------------------------
class KvV1 final : public Engine {
 public:
  explicit KvV1(EngineContext ctx) : view_(ctx.storage.sub("kv/")) {}

  Result<bool> exists(const Request& req) override { return kv_v1_exists(view_, req); }
  Result<Response> handle(Request& req) override { return kv_v1_handle(view_, req); }

 private:
  View view_;
};

// ------------------------------------------------------------------------------------------
// One mutex per secret path, for as long as some thread holds or waits for it: writers to the
// same path are serialized, writers to different paths never wait for each other.
class PathLocks {
  struct Entry;

 public:
  class Guard {
   public:
    Guard(PathLocks& owner, std::string path) : owner_(&owner), path_(std::move(path)) {
      entry_ = owner_->acquire(path_);
    }
    ~Guard() { owner_->release(path_, entry_); }
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;

   private:
    PathLocks* owner_;
    std::string path_;
    Entry* entry_ = nullptr;
  };

 private:
  struct Entry {
    std::mutex mu;
    size_t users = 0;  // holders and waiters; guarded by PathLocks::mu_
  };

  Entry* acquire(const std::string& path) {
    Entry* e = nullptr;
    {
      std::lock_guard lock(mu_);
      auto& slot = entries_[path];
      if (!slot) slot = std::make_unique<Entry>();
      e = slot.get();
      ++e->users;
    }
    e->mu.lock();
    return e;
  }

  void release(const std::string& path, Entry* e) {
    e->mu.unlock();
    std::lock_guard lock(mu_);
    if (--e->users == 0) entries_.erase(path);
  }

  std::mutex mu_;
  std::unordered_map<std::string, std::unique_ptr<Entry>> entries_;  // guarded by mu_
};

// ------------------------------------------------------------------------------------------
// kv v2 storage (below the mount's view):
//   config              {max_versions, cas_required, delete_version_after}
//   meta/<path>         metadata JSON (versions map, current/oldest version, custom_metadata)
//   ver/<n>/<path>      {"data": {...}} of version n
// Every mutation of a secret (write, patch, delete, undelete, destroy, metadata write/delete)
// is one atomic storage transaction: its version records and metadata change together or not
// at all, with one durable commit. Mutations of the same path are serialized by a per-path
// lock (so check-and-set and version numbering are atomic); different paths proceed
// concurrently and can share a group commit. Data writes read the mount config under a shared
// lock that config writes take exclusively; the config is cached, as this engine is its only
// writer.
class KvV2 final : public Engine {
 public:
  explicit KvV2(EngineContext ctx) : view_(ctx.storage), clock_(ctx.clock) {}

  Result<bool> exists(const Request& req) override {
    std::string path;
    if (starts_with(req.rel_path, "data/")) {
      path = req.rel_path.substr(5);
    } else if (starts_with(req.rel_path, "metadata/")) {
      path = req.rel_path.substr(9);
    } else {
      return true;
    }
    if (path.empty()) return true;
    ASSIGN_OR_RETURN(auto m, view_.get("meta/" + path));
    return m.has_value();
  }

  Result<Response> handle(Request& req) override {
    const std::string& rel = req.rel_path;
    if (rel == "config") return config(req);
    if (starts_with(rel, "data/")) return data(req, rel.substr(5));
    if (starts_with(rel, "metadata/") || rel == "metadata") {
      return metadata(req, rel.size() > 9 ? rel.substr(9) : "");
    }
    if (starts_with(rel, "delete/")) return versions_op(req, rel.substr(7), VersionOp::kDelete);
    if (starts_with(rel, "undelete/")) return versions_op(req, rel.substr(9), VersionOp::kUndelete);
    if (starts_with(rel, "destroy/")) return versions_op(req, rel.substr(8), VersionOp::kDestroy);
    if (starts_with(rel, "subkeys/")) return subkeys(req, rel.substr(8));
    if (req.op == Operation::kList && (rel.empty() || rel == "/")) {
      return not_found("");
    }
    return not_found("unsupported path for kv version 2: " + rel +
                     " (use data/, metadata/, delete/, undelete/, destroy/, subkeys/ or config)");
  }

 private:
  enum class VersionOp { kDelete, kUndelete, kDestroy };

  struct Config {
    int64_t max_versions = 0;  // 0: Vault's default of 10
    bool cas_required = false;
    int64_t delete_version_after = 0;
  };

  std::string now_str() const { return format_rfc3339_nanos(clock_.now()); }

  // The mount config, from the cache when it is loaded. Callers hold config_mu_ (shared or
  // exclusive), so no config write runs meanwhile.
  Result<Config> load_config() {
    {
      std::lock_guard lock(config_cache_mu_);
      if (config_cache_) return *config_cache_;
    }
    ASSIGN_OR_RETURN(Config c, read_config());
    std::lock_guard lock(config_cache_mu_);
    config_cache_ = c;
    return c;
  }

  Result<Config> read_config() {
    Config c;
    ASSIGN_OR_RETURN(auto v, view_.get_json("config"));
    if (v && v->is_object()) {
      const auto& o = v->as_object();
      ASSIGN_OR_RETURN(c.max_versions, field_int(o, "max_versions", 0));
      ASSIGN_OR_RETURN(c.cas_required, field_bool(o, "cas_required", false));
      ASSIGN_OR_RETURN(c.delete_version_after, field_int(o, "delete_version_after", 0));
    }
    return c;
  }

  Result<Response> config(Request& req) {
    if (req.op == Operation::kRead) {
      std::shared_lock lock(config_mu_);
      ASSIGN_OR_RETURN(Config c, load_config());
      return Response::with_data({{"max_versions", c.max_versions},
                                  {"cas_required", c.cas_required},
                                  {"delete_version_after", duration_string(c.delete_version_after)}});
    }
    if (req.op != Operation::kCreate && req.op != Operation::kUpdate) {
      return unimplemented("unsupported operation");
    }
    std::unique_lock lock(config_mu_);
    ASSIGN_OR_RETURN(Config c, load_config());
    ASSIGN_OR_RETURN(c.max_versions, field_int(req.data, "max_versions", c.max_versions));
    ASSIGN_OR_RETURN(c.cas_required, field_bool(req.data, "cas_required", c.cas_required));
    ASSIGN_OR_RETURN(c.delete_version_after,
                     field_duration(req.data, "delete_version_after", c.delete_version_after));
    if (c.max_versions < 0) return invalid_argument("max_versions must not be negative");
    Status st = view_.put_json(
        "config", boost::json::object{{"max_versions", c.max_versions},
                                      {"cas_required", c.cas_required},
                                      {"delete_version_after", c.delete_version_after}});
    std::lock_guard cache_lock(config_cache_mu_);
    // After a failed write the stored config is reread rather than assumed.
    if (st.ok()) {
      config_cache_ = c;
    } else {
      config_cache_.reset();
    }
    RETURN_IF_ERROR(st);
    return Response::empty();
  }

  static std::string duration_string(int64_t secs) {
    if (secs == 0) return "0s";
    std::string out;
    int64_t h = secs / 3600, m = (secs % 3600) / 60, s = secs % 60;
    if (h) out += std::to_string(h) + "h";
    if (h || m) out += std::to_string(m) + "m";
    out += std::to_string(s) + "s";
    return out;
  }

  Result<std::optional<boost::json::object>> load_meta(const std::string& path) {
    ASSIGN_OR_RETURN(auto v, view_.get_json("meta/" + path));
    if (!v) return std::optional<boost::json::object>();
    if (!v->is_object()) return data_loss("stored metadata is corrupt");
    return std::optional<boost::json::object>(std::move(v->as_object()));
  }

  boost::json::object new_meta() {
    std::string now = now_str();
    return boost::json::object{{"created_time", now},
                               {"updated_time", now},
                               {"current_version", 0},
                               {"oldest_version", 0},
                               {"max_versions", 0},
                               {"cas_required", false},
                               {"delete_version_after", 0},
                               {"custom_metadata", nullptr},
                               {"versions", boost::json::object{}}};
  }

  // A version counts as deleted once its deletion_time has passed.
  bool version_deleted(const boost::json::object& v) const {
    const auto* d = v.if_contains("deletion_time");
    if (!d || !d->is_string() || d->as_string().empty()) return false;
    auto t = parse_rfc3339(std::string_view(d->as_string()));
    return !t.ok() || *t <= clock_.now();
  }

  boost::json::object version_metadata(const boost::json::object& meta, int64_t version) const {
    const auto& versions = meta.at("versions").as_object();
    const auto* v = versions.if_contains(std::to_string(version));
    boost::json::object out{{"version", version},
                            {"custom_metadata", meta.contains("custom_metadata")
                                                    ? meta.at("custom_metadata")
                                                    : boost::json::value(nullptr)}};
    if (v && v->is_object()) {
      out["created_time"] = v->as_object().at("created_time");
      out["deletion_time"] = v->as_object().at("deletion_time");
      out["destroyed"] = v->as_object().at("destroyed");
    }
    return out;
  }

  static int64_t effective_max_versions(const boost::json::object& meta, const Config& c) {
    int64_t m = meta.at("max_versions").to_number<int64_t>();
    if (m == 0) m = c.max_versions;
    if (m == 0) m = 10;
    return m;
  }

  Result<Response> data(Request& req, const std::string& path) {
    if (!valid_key(path)) return invalid_argument("invalid secret path");
    if (req.op == Operation::kRead) return read_data(req, path);
    if (req.op == Operation::kDelete) {
      PathLocks::Guard lock(path_locks_, path);
      ASSIGN_OR_RETURN(auto meta, load_meta(path));
      if (!meta) return Response::empty();
      int64_t cur = meta->at("current_version").to_number<int64_t>();
      auto& versions = meta->at("versions").as_object();
      if (auto* v = versions.if_contains(std::to_string(cur)); v && v->is_object()) {
        auto& vo = v->as_object();
        if (!vo.at("destroyed").as_bool() && !version_deleted(vo)) vo["deletion_time"] = now_str();
      }
      RETURN_IF_ERROR(view_.put_json("meta/" + path, *meta));
      return Response::empty();
    }
    if (req.op == Operation::kList) return unimplemented("use metadata/ to list kv version 2 secrets");
    bool patch = req.op == Operation::kPatch;
    const auto* d = req.data.if_contains("data");
    if (!d || !d->is_object()) {
      return invalid_argument("no data provided");
    }
    int64_t cas = -1;
    if (const auto* o = req.data.if_contains("options"); o && o->is_object()) {
      ASSIGN_OR_RETURN(cas, field_int(o->as_object(), "cas", -1));
    } else if (o && !o->is_null()) {
      return invalid_argument("'options' must be an object");
    }
    std::shared_lock config_lock(config_mu_);
    PathLocks::Guard lock(path_locks_, path);
    ASSIGN_OR_RETURN(Config cfg, load_config());
    ASSIGN_OR_RETURN(auto existing, load_meta(path));
    boost::json::object meta = existing ? std::move(*existing) : new_meta();
    int64_t cur = meta.at("current_version").to_number<int64_t>();
    bool cas_required = cfg.cas_required || meta.at("cas_required").as_bool();
    if (cas_required && cas < 0) {
      return invalid_argument("check-and-set parameter required for this call");
    }
    if (cas >= 0 && cas != cur) {
      return invalid_argument("check-and-set parameter did not match the current version");
    }
    boost::json::object new_data = d->as_object();
    if (patch) {
      if (!existing || cur == 0) return not_found("");
      const auto& cv = meta.at("versions").as_object();
      const auto* v = cv.if_contains(std::to_string(cur));
      if (!v || v->as_object().at("destroyed").as_bool() || version_deleted(v->as_object())) {
        return not_found("");
      }
      ASSIGN_OR_RETURN(auto stored, view_.get_json("ver/" + std::to_string(cur) + "/" + path));
      if (!stored || !stored->is_object()) return not_found("");
      boost::json::object base = stored->as_object().at("data").as_object();
      merge_patch(base, new_data);
      new_data = std::move(base);
    }
    int64_t version = cur + 1;
    std::string now = now_str();
    WriteBatch batch;
    {
      boost::json::object record;
      record.emplace("data", std::move(new_data));
      batch.put_json("ver/" + std::to_string(version) + "/" + path, record);
    }
    std::string deletion_time;
    int64_t dva = meta.at("delete_version_after").to_number<int64_t>();
    if (dva == 0) dva = cfg.delete_version_after;
    if (dva > 0) deletion_time = format_rfc3339_nanos(clock_.now() + std::chrono::seconds(dva));
    auto& versions = meta["versions"].as_object();
    versions[std::to_string(version)] =
        boost::json::object{{"created_time", now}, {"deletion_time", deletion_time}, {"destroyed", false}};
    meta["current_version"] = version;
    meta["updated_time"] = now;
    if (meta.at("oldest_version").to_number<int64_t>() == 0) meta["oldest_version"] = version;
    // Trim versions beyond max_versions (oldest first): their data is deleted for good.
    int64_t maxv = effective_max_versions(meta, cfg);
    while (static_cast<int64_t>(versions.size()) > maxv) {
      int64_t oldest = version;
      for (const auto& [k, v] : versions) oldest = std::min<int64_t>(oldest, std::stoll(std::string(k)));
      batch.del("ver/" + std::to_string(oldest) + "/" + path);
      versions.erase(std::to_string(oldest));
      int64_t next = version;
      for (const auto& [k, v] : versions) next = std::min<int64_t>(next, std::stoll(std::string(k)));
      meta["oldest_version"] = next;
    }
    batch.put_json("meta/" + path, meta);
    RETURN_IF_ERROR(view_.apply(std::move(batch)));
    boost::json::object out{{"created_time", now},
                            {"custom_metadata", meta.at("custom_metadata")},
                            {"deletion_time", deletion_time},
                            {"destroyed", false},
                            {"version", version}};
    return Response::with_data(std::move(out));
  }

  static void merge_patch(boost::json::object& target, const boost::json::object& patch) {
    for (const auto& [k, v] : patch) {
      if (v.is_null()) {
        target.erase(k);
      } else if (v.is_object() && target.contains(k) && target.at(k).is_object()) {
        merge_patch(target.at(k).as_object(), v.as_object());
      } else {
        target[k] = v;
      }
    }
  }

  Result<Response> read_data(Request& req, const std::string& path) {
    ASSIGN_OR_RETURN(int64_t want, field_int(req.data, "version", 0));
    ASSIGN_OR_RETURN(auto meta, load_meta(path));
    if (!meta) return not_found("");
    int64_t version = want > 0 ? want : meta->at("current_version").to_number<int64_t>();
    const auto& versions = meta->at("versions").as_object();
    const auto* v = versions.if_contains(std::to_string(version));
    if (!v || !v->is_object()) return not_found("");
    const auto& vo = v->as_object();
    if (vo.at("destroyed").as_bool() || version_deleted(vo)) return not_found("");
    ASSIGN_OR_RETURN(auto stored, view_.get_json("ver/" + std::to_string(version) + "/" + path));
    if (!stored || !stored->is_object()) return not_found("");
    return Response::with_data({{"data", stored->as_object().at("data")},
                                {"metadata", version_metadata(*meta, version)}});
  }

  Result<Response> metadata(Request& req, const std::string& path) {
    if (req.op == Operation::kList) {
      std::string prefix = path;
      if (!prefix.empty() && prefix.back() != '/') prefix += '/';
      ASSIGN_OR_RETURN(auto keys, view_.list("meta/" + prefix));
      if (keys.empty()) return not_found("");
      return Response::with_data({{"keys", string_array(keys)}});
    }
    if (!valid_key(path)) return invalid_argument("invalid secret path");
    if (req.op == Operation::kRead) {
      ASSIGN_OR_RETURN(auto meta, load_meta(path));
      if (!meta) return not_found("");
      boost::json::object out = *meta;
      int64_t dva = out.at("delete_version_after").to_number<int64_t>();
      out["delete_version_after"] = duration_string(dva);
      return Response::with_data(std::move(out));
    }
    PathLocks::Guard lock(path_locks_, path);
    if (req.op == Operation::kDelete) {
      ASSIGN_OR_RETURN(auto meta, load_meta(path));
      if (!meta) return Response::empty();
      WriteBatch batch;
      for (const auto& [k, v] : meta->at("versions").as_object()) {
        batch.del("ver/" + std::string(k) + "/" + path);
      }
      batch.del("meta/" + path);
      RETURN_IF_ERROR(view_.apply(std::move(batch)));
      return Response::empty();
    }
    // create/update/patch: metadata settings.
    ASSIGN_OR_RETURN(auto existing, load_meta(path));
    boost::json::object meta = existing ? std::move(*existing) : new_meta();
    if (const auto* x = req.data.if_contains("max_versions")) {
      (void)x;
      ASSIGN_OR_RETURN(int64_t mv, field_int(req.data, "max_versions", 0));
      if (mv < 0) return invalid_argument("max_versions must not be negative");
      meta["max_versions"] = mv;
    }
    if (req.data.contains("cas_required")) {
      ASSIGN_OR_RETURN(bool c, field_bool(req.data, "cas_required", false));
      meta["cas_required"] = c;
    }
    if (req.data.contains("delete_version_after")) {
      ASSIGN_OR_RETURN(int64_t d, field_duration(req.data, "delete_version_after", 0));
      meta["delete_version_after"] = d;
    }
    if (const auto* cm = req.data.if_contains("custom_metadata")) {
      if (cm->is_null()) {
        meta["custom_metadata"] = nullptr;
      } else if (!cm->is_object()) {
        return invalid_argument("custom_metadata must be an object of strings");
      } else {
        boost::json::object merged;
        if (req.op == Operation::kPatch && meta.at("custom_metadata").is_object()) {
          merged = meta.at("custom_metadata").as_object();
        }
        for (const auto& [k, v] : cm->as_object()) {
          if (v.is_null() && req.op == Operation::kPatch) {
            merged.erase(k);
            continue;
          }
          if (!v.is_string()) return invalid_argument("custom_metadata values must be strings");
          merged[k] = v;
        }
        if (merged.size() > 64) return invalid_argument("custom_metadata may hold at most 64 keys");
        meta["custom_metadata"] = std::move(merged);
      }
    }
    meta["updated_time"] = now_str();
    RETURN_IF_ERROR(view_.put_json("meta/" + path, meta));
    return Response::empty();
  }

  Result<Response> versions_op(Request& req, const std::string& path, VersionOp op) {
    if (req.op != Operation::kCreate && req.op != Operation::kUpdate) {
      return unimplemented("unsupported operation");
    }
    if (!valid_key(path)) return invalid_argument("invalid secret path");
    std::vector<int64_t> wanted;
    const auto* vs = req.data.if_contains("versions");
    if (!vs || !vs->is_array() || vs->as_array().empty()) {
      return invalid_argument("no version number provided");
    }
    for (const auto& v : vs->as_array()) {
      boost::json::object tmp{{"v", v}};
      ASSIGN_OR_RETURN(int64_t n, field_int(tmp, "v", -1));
      if (n <= 0) return invalid_argument("invalid version number");
      wanted.push_back(n);
    }
    PathLocks::Guard lock(path_locks_, path);
    ASSIGN_OR_RETURN(auto meta, load_meta(path));
    if (!meta) return Response::empty();
    auto& versions = meta->at("versions").as_object();
    WriteBatch batch;
    for (int64_t n : wanted) {
      auto* v = versions.if_contains(std::to_string(n));
      if (!v || !v->is_object()) continue;
      auto& vo = v->as_object();
      switch (op) {
        case VersionOp::kDelete:
          if (!vo.at("destroyed").as_bool() && !version_deleted(vo)) vo["deletion_time"] = now_str();
          break;
        case VersionOp::kUndelete:
          if (!vo.at("destroyed").as_bool()) vo["deletion_time"] = "";
          break;
        case VersionOp::kDestroy:
          batch.del("ver/" + std::to_string(n) + "/" + path);
          vo["destroyed"] = true;
          break;
      }
    }
    (*meta)["updated_time"] = now_str();
    batch.put_json("meta/" + path, *meta);
    RETURN_IF_ERROR(view_.apply(std::move(batch)));
    return Response::empty();
  }

  static boost::json::value subkeys_of(const boost::json::value& v, int64_t depth, int64_t level) {
    if (!v.is_object() || (depth > 0 && level >= depth)) return nullptr;
    boost::json::object out;
    for (const auto& [k, x] : v.as_object()) out[k] = subkeys_of(x, depth, level + 1);
    return out;
  }

  Result<Response> subkeys(Request& req, const std::string& path) {
    if (req.op != Operation::kRead) return unimplemented("unsupported operation");
    ASSIGN_OR_RETURN(int64_t depth, field_int(req.data, "depth", 0));
    ASSIGN_OR_RETURN(Response r, read_data(req, path));
    const auto& d = r.data->at("data");
    return Response::with_data({{"subkeys", subkeys_of(d, depth, 0)}, {"metadata", r.data->at("metadata")}});
  }

  View view_;
  const Clock& clock_;
  // Data writes hold it shared (they read the config), config writes exclusively.
  std::shared_mutex config_mu_;
  std::mutex config_cache_mu_;
  std::optional<Config> config_cache_;  // guarded by config_cache_mu_
  PathLocks path_locks_;  // serializes the mutations of each path; see the class comment
};

}  // namespace

Result<bool> kv_v1_exists(const View& view, const Request& req) {
  if (req.rel_path.empty()) return true;
  ASSIGN_OR_RETURN(auto v, view.get(req.rel_path));
  return v.has_value();
}

Result<Response> kv_v1_handle(const View& view, Request& req) {
  const std::string& path = req.rel_path;
  if (req.op == Operation::kList) {
    std::string prefix = path;
    if (!prefix.empty() && prefix.back() != '/') prefix += '/';
    ASSIGN_OR_RETURN(auto keys, view.list(prefix));
    if (keys.empty()) return not_found("");
    return Response::with_data({{"keys", string_array(keys)}});
  }
  if (!valid_key(path) || path.back() == '/') return invalid_argument("invalid secret path");
  switch (req.op) {
    case Operation::kRead: {
      ASSIGN_OR_RETURN(auto v, view.get_json(path));
      if (!v) return not_found("");
      if (!v->is_object()) return data_loss("stored secret is not an object");
      return Response::with_data(v->as_object());
    }
    case Operation::kCreate:
    case Operation::kUpdate: {
      if (req.data.empty()) return invalid_argument("no data provided");
      RETURN_IF_ERROR(view.put_json(path, req.data));
      return Response::empty();
    }
    case Operation::kDelete:
      RETURN_IF_ERROR(view.del(path));
      return Response::empty();
    case Operation::kPatch:
      return unimplemented("PATCH is not supported on kv version 1 mounts");
    default:
      return unimplemented("unsupported operation");
  }
}

Result<std::unique_ptr<Engine>> make_kv_engine(EngineContext ctx, const MountEntry& entry) {
  std::string version = "1";
  if (const auto* v = entry.options.if_contains("version"); v && v->is_string()) {
    version = std::string(v->as_string());
  }
  if (version == "2") return std::unique_ptr<Engine>(new KvV2(ctx));
  return std::unique_ptr<Engine>(new KvV1(ctx));
}

}  // namespace custos::core
