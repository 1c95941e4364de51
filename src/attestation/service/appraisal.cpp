#include "attestation/service/appraisal.h"

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <boost/json/value.hpp>
#include <cctype>
#include <functional>
#include <limits>
#include <set>
#include <utility>

#include "base/encoding.h"

namespace custos::attestation {
namespace {

namespace json = boost::json;

// ---------------------------------------------------------------------------------------------
// Parsing helpers. Every error names the key path so a policy author can find the mistake.

Status bad(std::string_view path, std::string_view what) {
  return invalid_argument("policy " + std::string(path) + ": " + std::string(what));
}

std::string join_path(std::string_view parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  return std::string(parent) + "." + std::string(key);
}

// A hex string of `want` bytes (0: any non-empty length), returned lowercase. "0x" tolerated.
Result<std::string> hex_value(const json::value& v, std::string_view path, size_t want) {
  if (!v.is_string()) return bad(path, "expected a hex string");
  std::string s(v.as_string());
  if (s.rfind("0x", 0) == 0 || s.rfind("0X", 0) == 0) s = s.substr(2);
  auto decoded = hex_decode(s);
  if (!decoded.ok() || decoded->empty()) return bad(path, "expected a hex string");
  if (want != 0 && decoded->size() != want) {
    return bad(path, "expected " + std::to_string(want) + " bytes of hex, got " +
                         std::to_string(decoded->size()));
  }
  return hex_encode(*decoded);
}

// A hex string or an array of them.
Result<std::vector<std::string>> hex_list(const json::value& v, std::string_view path,
                                          size_t want) {
  std::vector<std::string> out;
  if (v.is_string()) {
    ASSIGN_OR_RETURN(auto h, hex_value(v, path, want));
    out.push_back(std::move(h));
    return out;
  }
  if (!v.is_array()) return bad(path, "expected a hex string or an array of them");
  size_t i = 0;
  for (const auto& e : v.as_array()) {
    ASSIGN_OR_RETURN(auto h,
                     hex_value(e, std::string(path) + "[" + std::to_string(i++) + "]", want));
    out.push_back(std::move(h));
  }
  return out;
}

Result<uint64_t> uint_value(const json::value& v, std::string_view path, uint64_t max) {
  uint64_t n = 0;
  if (v.is_uint64()) {
    n = v.as_uint64();
  } else if (v.is_int64() && v.as_int64() >= 0) {
    n = static_cast<uint64_t>(v.as_int64());
  } else {
    return bad(path, "expected a non-negative integer");
  }
  if (n > max) return bad(path, "must be at most " + std::to_string(max));
  return n;
}

template <typename T>
Result<T> uint_as(const json::value& v, std::string_view path) {
  ASSIGN_OR_RETURN(uint64_t n, uint_value(v, path, std::numeric_limits<T>::max()));
  return static_cast<T>(n);
}

template <typename T>
Result<std::vector<T>> uint_list(const json::value& v, std::string_view path) {
  std::vector<T> out;
  if (!v.is_array()) {
    ASSIGN_OR_RETURN(T n, uint_as<T>(v, path));
    out.push_back(n);
    return out;
  }
  size_t i = 0;
  for (const auto& e : v.as_array()) {
    ASSIGN_OR_RETURN(T n, uint_as<T>(e, std::string(path) + "[" + std::to_string(i++) + "]"));
    out.push_back(n);
  }
  return out;
}

Result<bool> bool_value(const json::value& v, std::string_view path) {
  if (!v.is_bool()) return bad(path, "expected true or false");
  return v.as_bool();
}

Result<std::vector<std::string>> string_list(const json::value& v, std::string_view path) {
  std::vector<std::string> out;
  if (v.is_string()) {
    out.emplace_back(v.as_string());
    return out;
  }
  if (!v.is_array()) return bad(path, "expected a string or an array of strings");
  for (const auto& e : v.as_array()) {
    if (!e.is_string()) return bad(path, "expected an array of strings");
    out.emplace_back(e.as_string());
  }
  return out;
}

Result<const json::object*> object_value(const json::value& v, std::string_view path) {
  if (!v.is_object()) return bad(path, "expected an object");
  return &v.as_object();
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// TEE names: ours ("sgx") and ISecL's ("SGX").
Result<TeeType> tee_value(const json::value& v, std::string_view path) {
  if (!v.is_string()) return bad(path, "expected a TEE name");
  auto t = parse_tee(lower(std::string_view(v.as_string())));
  if (!t.ok()) {
    return bad(path,
               "unknown TEE \"" + std::string(v.as_string()) + "\" (sgx, tdx, snp, tpm, sim)");
  }
  return *t;
}

Result<std::vector<TeeType>> tee_list(const json::value& v, std::string_view path) {
  std::vector<TeeType> out;
  if (!v.is_array()) {
    ASSIGN_OR_RETURN(TeeType t, tee_value(v, path));
    out.push_back(t);
    return out;
  }
  for (const auto& e : v.as_array()) {
    ASSIGN_OR_RETURN(TeeType t, tee_value(e, path));
    out.push_back(t);
  }
  return out;
}

Result<Seconds> duration_value(const json::value& v, std::string_view path) {
  if (v.is_string()) {
    auto d = parse_duration(std::string_view(v.as_string()));
    if (!d.ok()) return bad(path, "expected a duration (\"30d\", \"12h\") or seconds");
    return *d;
  }
  ASSIGN_OR_RETURN(uint64_t n, uint_value(v, path, uint64_t{1} << 40));
  return Seconds(static_cast<int64_t>(n));
}

// Walks an object's members, dispatching each key to a handler; unknown keys are errors.
using MemberFn = std::function<Status(const json::value&, const std::string& path)>;
Status walk(const json::object& o, std::string_view parent,
            const std::vector<std::pair<std::string_view, MemberFn>>& handlers,
            const std::set<std::string_view>& ignored = {}) {
  for (const auto& [key, value] : o) {
    std::string path = join_path(parent, key);
    if (ignored.count(std::string_view(key))) continue;
    bool found = false;
    for (const auto& [name, fn] : handlers) {
      if (name == std::string_view(key)) {
        RETURN_IF_ERROR(fn(value, path));
        found = true;
        break;
      }
    }
    if (!found) return bad(path, "unknown key");
  }
  return ok_status();
}

// Handler factories.
MemberFn hexes(std::vector<std::string>& out, size_t want) {
  return [&out, want](const json::value& v, const std::string& p) -> Status {
    ASSIGN_OR_RETURN(out, hex_list(v, p, want));
    return ok_status();
  };
}
template <typename T>
MemberFn uint_opt(std::optional<T>& out) {
  return [&out](const json::value& v, const std::string& p) -> Status {
    ASSIGN_OR_RETURN(out, uint_as<T>(v, p));
    return ok_status();
  };
}
MemberFn strings(std::vector<std::string>& out) {
  return [&out](const json::value& v, const std::string& p) -> Status {
    ASSIGN_OR_RETURN(out, string_list(v, p));
    return ok_status();
  };
}
MemberFn append_strings(std::vector<std::string>& out) {
  return [&out](const json::value& v, const std::string& p) -> Status {
    ASSIGN_OR_RETURN(auto list, string_list(v, p));
    out.insert(out.end(), list.begin(), list.end());
    return ok_status();
  };
}
MemberFn enforce_up_to_date(Policy& policy) {
  return [&policy](const json::value& v, const std::string& p) -> Status {
    ASSIGN_OR_RETURN(bool enforce, bool_value(v, p));
    if (enforce) policy.tcb_statuses = std::vector<TcbStatus>{TcbStatus::kUpToDate};
    return ok_status();
  };
}

// --- our native form ---------------------------------------------------------------------------

Status parse_sgx(const json::object& o, std::string_view path, SgxPolicy& p) {
  return walk(o, path,
              {{"mrenclave", hexes(p.mrenclave, 32)},
               {"mrsigner", hexes(p.mrsigner, 32)},
               {"isv_prod_id",
                [&p](const json::value& v, const std::string& k) -> Status {
                  ASSIGN_OR_RETURN(p.isv_prod_id, uint_list<uint16_t>(v, k));
                  return ok_status();
                }},
               {"min_isv_svn", uint_opt(p.min_isv_svn)},
               {"config_id", hexes(p.config_id, 64)},
               {"min_config_svn", uint_opt(p.min_config_svn)},
               {"isv_ext_prod_id", hexes(p.isv_ext_prod_id, 16)},
               {"isv_family_id", hexes(p.isv_family_id, 16)}});
}

Status parse_tdx(const json::object& o, std::string_view path, TdxPolicy& p) {
  return walk(o, path,
              {{"mrtd", hexes(p.mrtd, 48)},
               {"rtmr0", hexes(p.rtmr[0], 48)},
               {"rtmr1", hexes(p.rtmr[1], 48)},
               {"rtmr2", hexes(p.rtmr[2], 48)},
               {"rtmr3", hexes(p.rtmr[3], 48)},
               {"mrseam", hexes(p.mrseam, 48)},
               {"mrsignerseam", hexes(p.mrsignerseam, 48)},
               {"mrconfigid", hexes(p.mrconfigid, 48)},
               {"mrowner", hexes(p.mrowner, 48)},
               {"min_seam_svn", uint_opt(p.min_seam_svn)},
               {"seam_svn", uint_opt(p.seam_svn)}});
}

Status parse_snp(const json::object& o, std::string_view path, SnpPolicy& p) {
  return walk(o, path,
              {{"measurement", hexes(p.measurement, 48)},
               {"host_data", hexes(p.host_data, 32)},
               {"id_key_digest", hexes(p.id_key_digest, 48)},
               {"min_guest_svn", uint_opt(p.min_guest_svn)},
               {"max_vmpl", uint_opt(p.max_vmpl)},
               {"min_tcb", [&p](const json::value& v, const std::string& k) -> Status {
                  ASSIGN_OR_RETURN(const json::object* t, object_value(v, k));
                  SnpTcb tcb;
                  std::optional<uint32_t> bl, tee, snp, mc;
                  RETURN_IF_ERROR(walk(*t, k,
                                       {{"bootloader", uint_opt(bl)},
                                        {"tee", uint_opt(tee)},
                                        {"snp", uint_opt(snp)},
                                        {"microcode", uint_opt(mc)}}));
                  tcb.bootloader = bl.value_or(0);
                  tcb.tee = tee.value_or(0);
                  tcb.snp = snp.value_or(0);
                  tcb.microcode = mc.value_or(0);
                  p.min_tcb = tcb;
                  return ok_status();
                }}});
}

Status parse_tpm(const json::object& o, std::string_view path, TpmPolicy& p) {
  return walk(
      o, path,
      {{"pcrs", [&p](const json::value& v, const std::string& k) -> Status {
          ASSIGN_OR_RETURN(const json::object* banks, object_value(v, k));
          for (const auto& [bank, pcrs] : *banks) {
            std::string bank_path = join_path(k, bank);
            std::string b(bank);
            if (b != "sha1" && b != "sha256" && b != "sha384" && b != "sha512") {
              return bad(bank_path, "unknown PCR bank (sha1, sha256, sha384, sha512)");
            }
            ASSIGN_OR_RETURN(const json::object* idx, object_value(pcrs, bank_path));
            for (const auto& [index, values] : *idx) {
              std::string ip = join_path(bank_path, index);
              std::string is(index);
              if (is.empty() || is.size() > 2 ||
                  !std::all_of(is.begin(), is.end(), [](char c) { return c >= '0' && c <= '9'; })) {
                return bad(ip, "expected a PCR index 0..23");
              }
              int n = std::stoi(is);
              if (n > 23) return bad(ip, "expected a PCR index 0..23");
              ASSIGN_OR_RETURN(p.pcrs[b][n], hex_list(values, ip, 0));
            }
          }
          return ok_status();
        }}});
}

Status parse_native(const json::object& o, Policy& p) {
  auto sub = [](auto fn, auto& target) {
    return [fn, &target](const json::value& v, const std::string& k) -> Status {
      ASSIGN_OR_RETURN(const json::object* obj, object_value(v, k));
      return fn(*obj, k, target);
    };
  };
  return walk(o, "",
              {{"id",
                [&p](const json::value& v, const std::string& k) -> Status {
                  if (!v.is_string()) return bad(k, "expected a string");
                  p.id = std::string(v.as_string());
                  return ok_status();
                }},
               {"tee",
                [&p](const json::value& v, const std::string& k) -> Status {
                  ASSIGN_OR_RETURN(p.tees, tee_list(v, k));
                  return ok_status();
                }},
               {"allow_debug",
                [&p](const json::value& v, const std::string& k) -> Status {
                  ASSIGN_OR_RETURN(p.allow_debug, bool_value(v, k));
                  return ok_status();
                }},
               {"tcb_status",
                [&p](const json::value& v, const std::string& k) -> Status {
                  ASSIGN_OR_RETURN(auto names, string_list(v, k));
                  std::vector<TcbStatus> statuses;
                  for (const auto& n : names) {
                    auto s = parse_tcb_status(n);
                    if (!s.ok()) return bad(k, "unknown TCB status \"" + n + "\"");
                    statuses.push_back(*s);
                  }
                  p.tcb_statuses = std::move(statuses);
                  return ok_status();
                }},
               {"accepted_advisory_ids",
                [&p](const json::value& v, const std::string& k) -> Status {
                  ASSIGN_OR_RETURN(p.accepted_advisory_ids, string_list(v, k));
                  return ok_status();
                }},
               {"rejected_advisory_ids", strings(p.rejected_advisory_ids)},
               {"max_collateral_age",
                [&p](const json::value& v, const std::string& k) -> Status {
                  ASSIGN_OR_RETURN(p.max_collateral_age, duration_value(v, k));
                  return ok_status();
                }},
               {"report_data",
                [&p](const json::value& v, const std::string& k) -> Status {
                  ASSIGN_OR_RETURN(std::string h, hex_value(v, k, 0));
                  if (h.size() > 128) return bad(k, "at most 64 bytes");
                  p.report_data = *hex_decode(h);
                  return ok_status();
                }},
               {"sgx", sub(parse_sgx, p.sgx)},
               {"tdx", sub(parse_tdx, p.tdx)},
               {"snp", sub(parse_snp, p.snp)},
               {"tpm", sub(parse_tpm, p.tpm)},
               {"client_permissions_anyof", strings(p.client_permissions_any_of)},
               {"client_permissions_allof", strings(p.client_permissions_all_of)}},
              {"description"});
}

// --- Intel SecL key-transfer policies ----------------------------------------------------------

// Flat v3/v4 (SKC KBS): sgx_enclave_* names, client permissions under either spelling.
Status parse_isecl_flat(const json::object& o, Policy& p) {
  p.source = Policy::Source::kIsecl;
  return walk(o, "",
              {{"id",
                [&p](const json::value& v, const std::string& k) -> Status {
                  if (!v.is_string()) return bad(k, "expected a string");
                  p.id = std::string(v.as_string());
                  return ok_status();
                }},
               {"attestation_type_anyof",
                [&p](const json::value& v, const std::string& k) -> Status {
                  ASSIGN_OR_RETURN(p.tees, tee_list(v, k));
                  return ok_status();
                }},
               {"sgx_enclave_issuer_anyof", hexes(p.sgx.mrsigner, 32)},
               {"sgx_enclave_measurement_anyof", hexes(p.sgx.mrenclave, 32)},
               {"sgx_enclave_issuer_product_id_anyof",
                [&p](const json::value& v, const std::string& k) -> Status {
                  ASSIGN_OR_RETURN(p.sgx.isv_prod_id, uint_list<uint16_t>(v, k));
                  return ok_status();
                }},
               {"sgx_enclave_issuer_product_id",  // v3: a single value
                [&p](const json::value& v, const std::string& k) -> Status {
                  ASSIGN_OR_RETURN(p.sgx.isv_prod_id, uint_list<uint16_t>(v, k));
                  return ok_status();
                }},
               {"sgx_enclave_issuer_extended_product_id_anyof", hexes(p.sgx.isv_ext_prod_id, 16)},
               {"sgx_enclave_svn_minimum", uint_opt(p.sgx.min_isv_svn)},
               {"sgx_config_id_anyof", hexes(p.sgx.config_id, 64)},
               {"sgx_config_id_svn", uint_opt(p.sgx.min_config_svn)},
               {"sgx_enforce_tcb_up_to_date", enforce_up_to_date(p)},
               {"enforce_tcb_upto_date", enforce_up_to_date(p)},
               {"tls_client_certificate_issuer_cn_anyof", strings(p.client_issuer_cn_any_of)},
               {"tls_client_certificate_san_anyof", append_strings(p.client_permissions_any_of)},
               {"tls_client_certificate_san_allof", append_strings(p.client_permissions_all_of)},
               {"client_permissions_anyof", append_strings(p.client_permissions_any_of)},
               {"client_permissions_allof", append_strings(p.client_permissions_all_of)}},
              // Bookkeeping fields of the KBS API; kpt2_issuer_anyof concerns SGX key-provisioning
              // certificates, which are not attestation claims.
              {"created_at", "updated_at", "label", "kpt2_issuer_anyof"});
}

Status reject_policy_ids(const json::value& v, const std::string& k) {
  if (v.is_array() && v.as_array().empty()) return ok_status();
  return bad(k,
             "Intel Trust Authority policy IDs cannot be evaluated here; state the "
             "attributes instead");
}

// Nested v5 (Trust Authority KBS): {"attestation_type": "SGX"|"TDX", "sgx"|"tdx": {"attributes":
// {...}, "policy_ids": [...]}}.
Status parse_isecl_v5(const json::object& o, Policy& p) {
  p.source = Policy::Source::kIseclV5;
  auto sgx_attrs = [&p](const json::value& v, const std::string& k) -> Status {
    ASSIGN_OR_RETURN(const json::object* a, object_value(v, k));
    return walk(*a, k,
                {{"mrsigner", hexes(p.sgx.mrsigner, 32)},
                 {"mrenclave", hexes(p.sgx.mrenclave, 32)},
                 {"isvprodid",
                  [&p](const json::value& x, const std::string& kk) -> Status {
                    ASSIGN_OR_RETURN(p.sgx.isv_prod_id, uint_list<uint16_t>(x, kk));
                    return ok_status();
                  }},
                 {"isvsvn", uint_opt(p.sgx.min_isv_svn)},
                 {"client_permissions", append_strings(p.client_permissions_all_of)},
                 {"enforce_tcb_upto_date", enforce_up_to_date(p)}});
  };
  auto tdx_attrs = [&p](const json::value& v, const std::string& k) -> Status {
    ASSIGN_OR_RETURN(const json::object* a, object_value(v, k));
    return walk(*a, k,
                {{"mrsignerseam", hexes(p.tdx.mrsignerseam, 48)},
                 {"mrseam", hexes(p.tdx.mrseam, 48)},
                 {"seamsvn", uint_opt(p.tdx.seam_svn)},
                 {"mrtd", hexes(p.tdx.mrtd, 48)},
                 {"rtmr0", hexes(p.tdx.rtmr[0], 48)},
                 {"rtmr1", hexes(p.tdx.rtmr[1], 48)},
                 {"rtmr2", hexes(p.tdx.rtmr[2], 48)},
                 {"rtmr3", hexes(p.tdx.rtmr[3], 48)},
                 {"client_permissions", append_strings(p.client_permissions_all_of)},
                 {"enforce_tcb_upto_date", enforce_up_to_date(p)}});
  };
  auto section = [](MemberFn attrs) {
    return [attrs](const json::value& v, const std::string& k) -> Status {
      ASSIGN_OR_RETURN(const json::object* s, object_value(v, k));
      return walk(*s, k, {{"attributes", attrs}, {"policy_ids", reject_policy_ids}});
    };
  };
  RETURN_IF_ERROR(walk(o, "",
                       {{"id",
                         [&p](const json::value& v, const std::string& k) -> Status {
                           if (!v.is_string()) return bad(k, "expected a string");
                           p.id = std::string(v.as_string());
                           return ok_status();
                         }},
                        {"attestation_type",
                         [&p](const json::value& v, const std::string& k) -> Status {
                           ASSIGN_OR_RETURN(p.tees, tee_list(v, k));
                           return ok_status();
                         }},
                        {"sgx", section(sgx_attrs)},
                        {"tdx", section(tdx_attrs)}},
                       {"created_at", "updated_at", "created_by", "updated_by"}));
  if (p.tees.empty()) return bad("attestation_type", "required in a v5 key transfer policy");
  return ok_status();
}

bool is_isecl_flat(const json::object& o) {
  for (const auto& [key, value] : o) {
    std::string_view k(key);
    if (k.rfind("sgx_enclave_", 0) == 0 || k.rfind("sgx_config_id", 0) == 0 ||
        k.rfind("tls_client_certificate_", 0) == 0 || k == "attestation_type_anyof" ||
        k == "kpt2_issuer_anyof" || k == "sgx_enforce_tcb_up_to_date") {
      return true;
    }
  }
  return false;
}

bool is_isecl_v5(const json::object& o) {
  return o.contains("attestation_type");
}

// --- appraisal ---------------------------------------------------------------------------------

std::string list_text(const std::vector<std::string>& v) {
  std::string out = "any of [";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += ", ";
    out += v[i];
  }
  return out + "]";
}

std::optional<std::string> field_string(const Claims& c, std::string_view name) {
  const json::value* v = c.fields.if_contains(name);
  if (!v || !v->is_string()) return std::nullopt;
  return std::string(v->as_string());
}

std::optional<uint64_t> number_of(const json::value* v) {
  if (!v) return std::nullopt;
  if (v->is_uint64()) return v->as_uint64();
  if (v->is_int64() && v->as_int64() >= 0) return static_cast<uint64_t>(v->as_int64());
  return std::nullopt;
}

std::optional<uint64_t> field_number(const Claims& c, std::string_view name) {
  return number_of(c.fields.if_contains(name));
}

class Checker {
 public:
  explicit Checker(const Claims& c) : claims_(c) {}

  void deny(std::string claim, std::string expected, std::string actual) {
    denials_.push_back({std::move(claim), std::move(expected), std::move(actual)});
  }

  // Any-of over a lowercase hex claim field (constant-time comparisons: identities).
  void any_of(std::string_view prefix, std::string_view field,
              const std::vector<std::string>& allowed) {
    if (allowed.empty()) return;
    std::string name = std::string(prefix) + "." + std::string(field);
    auto actual = field_string(claims_, field);
    if (!actual) {
      deny(name, list_text(allowed), "absent");
      return;
    }
    std::string a = lower(*actual);
    bool match = false;
    for (const auto& want : allowed) match |= constant_time_equal(want, a);
    if (!match) deny(name, list_text(allowed), a);
  }

  void minimum(std::string_view prefix, std::string_view field, std::optional<uint64_t> min) {
    if (!min) return;
    std::string name = std::string(prefix) + "." + std::string(field);
    auto actual = field_number(claims_, field);
    if (!actual) {
      deny(name, ">= " + std::to_string(*min), "absent");
    } else if (*actual < *min) {
      deny(name, ">= " + std::to_string(*min), std::to_string(*actual));
    }
  }

  std::vector<Denial> take() { return std::move(denials_); }
  const Claims& claims() const { return claims_; }

 private:
  const Claims& claims_;
  std::vector<Denial> denials_;
};

template <typename T>
std::optional<uint64_t> widen(const std::optional<T>& v) {
  if (!v) return std::nullopt;
  return static_cast<uint64_t>(*v);
}

void check_sgx(Checker& ck, const SgxPolicy& p, std::string_view prefix) {
  ck.any_of(prefix, "mrenclave", p.mrenclave);
  ck.any_of(prefix, "mrsigner", p.mrsigner);
  if (!p.isv_prod_id.empty()) {
    std::vector<std::string> allowed;
    for (auto id : p.isv_prod_id) allowed.push_back(std::to_string(id));
    auto actual = field_number(ck.claims(), "isv_prod_id");
    bool match = actual && std::find(p.isv_prod_id.begin(), p.isv_prod_id.end(), *actual) !=
                               p.isv_prod_id.end();
    if (!match) {
      ck.deny(std::string(prefix) + ".isv_prod_id", list_text(allowed),
              actual ? std::to_string(*actual) : "absent");
    }
  }
  ck.minimum(prefix, "isv_svn", widen(p.min_isv_svn));
  ck.any_of(prefix, "config_id", p.config_id);
  ck.minimum(prefix, "config_svn", widen(p.min_config_svn));
  ck.any_of(prefix, "isv_ext_prod_id", p.isv_ext_prod_id);
  ck.any_of(prefix, "isv_family_id", p.isv_family_id);
}

void check_tdx(Checker& ck, const TdxPolicy& p) {
  ck.any_of("tdx", "mrtd", p.mrtd);
  for (size_t i = 0; i < 4; ++i) ck.any_of("tdx", "rtmr" + std::to_string(i), p.rtmr[i]);
  ck.any_of("tdx", "mrseam", p.mrseam);
  ck.any_of("tdx", "mrsignerseam", p.mrsignerseam);
  ck.any_of("tdx", "mrconfigid", p.mrconfigid);
  ck.any_of("tdx", "mrowner", p.mrowner);
  if (p.min_seam_svn || p.seam_svn) {
    std::optional<uint64_t> svn;
    if (auto h = field_string(ck.claims(), "tee_tcb_svn")) {
      auto b = hex_decode(*h);
      if (b.ok() && !b->empty()) svn = (*b)[0];
    }
    if (p.min_seam_svn && (!svn || *svn < *p.min_seam_svn)) {
      ck.deny("tdx.seam_svn", ">= " + std::to_string(*p.min_seam_svn),
              svn ? std::to_string(*svn) : "absent");
    }
    if (p.seam_svn && (!svn || *svn != *p.seam_svn)) {
      ck.deny("tdx.seam_svn", std::to_string(*p.seam_svn), svn ? std::to_string(*svn) : "absent");
    }
  }
}

void check_snp(Checker& ck, const SnpPolicy& p) {
  ck.any_of("snp", "measurement", p.measurement);
  ck.any_of("snp", "host_data", p.host_data);
  ck.any_of("snp", "id_key_digest", p.id_key_digest);
  ck.minimum("snp", "guest_svn", widen(p.min_guest_svn));
  if (p.max_vmpl) {
    auto vmpl = field_number(ck.claims(), "vmpl");
    if (!vmpl || *vmpl > *p.max_vmpl) {
      ck.deny("snp.vmpl", "<= " + std::to_string(*p.max_vmpl),
              vmpl ? std::to_string(*vmpl) : "absent");
    }
  }
  if (p.min_tcb) {
    const json::value* tcb = ck.claims().fields.if_contains("reported_tcb");
    const json::object* t = tcb && tcb->is_object() ? &tcb->as_object() : nullptr;
    const std::pair<const char*, uint32_t> parts[] = {{"bootloader", p.min_tcb->bootloader},
                                                      {"tee", p.min_tcb->tee},
                                                      {"snp", p.min_tcb->snp},
                                                      {"microcode", p.min_tcb->microcode}};
    for (const auto& [name, min] : parts) {
      auto actual = t ? number_of(t->if_contains(name)) : std::nullopt;
      if (!actual || *actual < min) {
        ck.deny(std::string("snp.reported_tcb.") + name, ">= " + std::to_string(min),
                actual ? std::to_string(*actual) : "absent");
      }
    }
  }
}

void check_tpm(Checker& ck, const TpmPolicy& p) {
  const json::value* pcrs = ck.claims().fields.if_contains("pcrs");
  for (const auto& [bank, indexes] : p.pcrs) {
    for (const auto& [index, allowed] : indexes) {
      std::string name = "tpm.pcrs." + bank + "." + std::to_string(index);
      std::optional<std::string> actual;
      if (pcrs && pcrs->is_object()) {
        const json::value* b = pcrs->as_object().if_contains(bank);
        if (b && b->is_object()) {
          const json::value* v = b->as_object().if_contains(std::to_string(index));
          if (v && v->is_string()) actual = lower(std::string_view(v->as_string()));
        }
      }
      if (!actual) {
        ck.deny(name, list_text(allowed), "absent");
        continue;
      }
      bool match = false;
      for (const auto& want : allowed) match |= constant_time_equal(want, *actual);
      if (!match) ck.deny(name, list_text(allowed), *actual);
    }
  }
}

const std::vector<TcbStatus>& default_tcb_statuses() {
  static const std::vector<TcbStatus> kDefault = {
      TcbStatus::kUpToDate, TcbStatus::kSwHardeningNeeded, TcbStatus::kConfigurationNeeded,
      TcbStatus::kConfigurationAndSwHardeningNeeded, TcbStatus::kNotApplicable};
  return kDefault;
}

json::array hex_array(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

}  // namespace

bool Policy::allows(TeeType t) const {
  if (tees.empty()) return t != TeeType::kSim;
  return std::find(tees.begin(), tees.end(), t) != tees.end();
}

Result<Policy> parse_policy(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) return invalid_argument("policy: not valid JSON: " + ec.message());
  if (!v.is_object()) return invalid_argument("policy: expected a JSON object");
  const json::object& o = v.as_object();
  Policy p;
  if (is_isecl_v5(o)) {
    RETURN_IF_ERROR(parse_isecl_v5(o, p));
  } else if (is_isecl_flat(o)) {
    RETURN_IF_ERROR(parse_isecl_flat(o, p));
  } else {
    RETURN_IF_ERROR(parse_native(o, p));
  }
  return p;
}

json::object Policy::to_json() const {
  json::object o;
  if (!id.empty()) o["id"] = id;
  if (!tees.empty()) {
    json::array t;
    for (auto tee : tees) t.emplace_back(tee_name(tee));
    o["tee"] = std::move(t);
  }
  o["allow_debug"] = allow_debug;
  json::array st;
  for (auto s : tcb_statuses ? *tcb_statuses : default_tcb_statuses())
    st.emplace_back(tcb_status_name(s));
  o["tcb_status"] = std::move(st);
  if (accepted_advisory_ids) o["accepted_advisory_ids"] = hex_array(*accepted_advisory_ids);
  if (!rejected_advisory_ids.empty()) o["rejected_advisory_ids"] = hex_array(rejected_advisory_ids);
  if (max_collateral_age) o["max_collateral_age"] = max_collateral_age->count();
  if (report_data) o["report_data"] = hex_encode(*report_data);
  json::object sg;
  if (!sgx.mrenclave.empty()) sg["mrenclave"] = hex_array(sgx.mrenclave);
  if (!sgx.mrsigner.empty()) sg["mrsigner"] = hex_array(sgx.mrsigner);
  if (!sgx.isv_prod_id.empty()) {
    json::array a;
    for (auto id_value : sgx.isv_prod_id) a.emplace_back(id_value);
    sg["isv_prod_id"] = std::move(a);
  }
  if (sgx.min_isv_svn) sg["min_isv_svn"] = *sgx.min_isv_svn;
  if (!sgx.config_id.empty()) sg["config_id"] = hex_array(sgx.config_id);
  if (sgx.min_config_svn) sg["min_config_svn"] = *sgx.min_config_svn;
  if (!sgx.isv_ext_prod_id.empty()) sg["isv_ext_prod_id"] = hex_array(sgx.isv_ext_prod_id);
  if (!sgx.isv_family_id.empty()) sg["isv_family_id"] = hex_array(sgx.isv_family_id);
  if (!sg.empty()) o["sgx"] = std::move(sg);
  json::object td;
  if (!tdx.mrtd.empty()) td["mrtd"] = hex_array(tdx.mrtd);
  for (size_t i = 0; i < 4; ++i) {
    if (!tdx.rtmr[i].empty()) td["rtmr" + std::to_string(i)] = hex_array(tdx.rtmr[i]);
  }
  if (!tdx.mrseam.empty()) td["mrseam"] = hex_array(tdx.mrseam);
  if (!tdx.mrsignerseam.empty()) td["mrsignerseam"] = hex_array(tdx.mrsignerseam);
  if (!tdx.mrconfigid.empty()) td["mrconfigid"] = hex_array(tdx.mrconfigid);
  if (!tdx.mrowner.empty()) td["mrowner"] = hex_array(tdx.mrowner);
  if (tdx.min_seam_svn) td["min_seam_svn"] = *tdx.min_seam_svn;
  if (tdx.seam_svn) td["seam_svn"] = *tdx.seam_svn;
  if (!td.empty()) o["tdx"] = std::move(td);
  json::object sn;
  if (!snp.measurement.empty()) sn["measurement"] = hex_array(snp.measurement);
  if (!snp.host_data.empty()) sn["host_data"] = hex_array(snp.host_data);
  if (!snp.id_key_digest.empty()) sn["id_key_digest"] = hex_array(snp.id_key_digest);
  if (snp.min_tcb) {
    sn["min_tcb"] = json::object{{"bootloader", snp.min_tcb->bootloader},
                                 {"tee", snp.min_tcb->tee},
                                 {"snp", snp.min_tcb->snp},
                                 {"microcode", snp.min_tcb->microcode}};
  }
  if (snp.min_guest_svn) sn["min_guest_svn"] = *snp.min_guest_svn;
  if (snp.max_vmpl) sn["max_vmpl"] = *snp.max_vmpl;
  if (!sn.empty()) o["snp"] = std::move(sn);
  if (!tpm.pcrs.empty()) {
    json::object banks;
    for (const auto& [bank, idx] : tpm.pcrs) {
      json::object b;
      for (const auto& [i, values] : idx) b[std::to_string(i)] = hex_array(values);
      banks[bank] = std::move(b);
    }
    o["tpm"] = json::object{{"pcrs", std::move(banks)}};
  }
  if (!client_permissions_any_of.empty())
    o["client_permissions_anyof"] = hex_array(client_permissions_any_of);
  if (!client_permissions_all_of.empty())
    o["client_permissions_allof"] = hex_array(client_permissions_all_of);
  return o;
}

json::object Appraisal::to_json() const {
  json::array d;
  for (const auto& x : denials) {
    d.emplace_back(
        json::object{{"claim", x.claim}, {"expected", x.expected}, {"actual", x.actual}});
  }
  return json::object{{"pass", pass}, {"policy_id", policy_id}, {"denials", std::move(d)}};
}

std::vector<std::string> Appraisal::reasons() const {
  std::vector<std::string> out;
  for (const auto& d : denials) {
    out.push_back(d.claim + ": expected " + d.expected + ", got " + d.actual);
  }
  return out;
}

Appraisal appraise(const Claims& claims, const Policy& policy, SysTime now) {
  Checker ck(claims);

  if (!policy.allows(claims.tee)) {
    std::vector<std::string> allowed;
    if (policy.tees.empty()) {
      allowed = {"sgx", "tdx", "snp", "tpm"};
    } else {
      for (auto t : policy.tees) allowed.emplace_back(tee_name(t));
    }
    std::string actual(tee_name(claims.tee));
    if (claims.tee == TeeType::kSim)
      actual += " (simulated evidence: the policy must list \"sim\")";
    ck.deny("tee", list_text(allowed), actual);
  }
  if (claims.debug && !policy.allow_debug) ck.deny("debug", "false", "true");

  const auto& statuses = policy.tcb_statuses ? *policy.tcb_statuses : default_tcb_statuses();
  if (std::find(statuses.begin(), statuses.end(), claims.tcb_status) == statuses.end()) {
    std::vector<std::string> names;
    for (auto s : statuses) names.emplace_back(tcb_status_name(s));
    ck.deny("tcb_status", list_text(names), std::string(tcb_status_name(claims.tcb_status)));
  }
  for (const auto& id : claims.advisory_ids) {
    if (policy.accepted_advisory_ids &&
        std::find(policy.accepted_advisory_ids->begin(), policy.accepted_advisory_ids->end(), id) ==
            policy.accepted_advisory_ids->end()) {
      ck.deny("advisory_ids", list_text(*policy.accepted_advisory_ids), id);
    }
    if (std::find(policy.rejected_advisory_ids.begin(), policy.rejected_advisory_ids.end(), id) !=
        policy.rejected_advisory_ids.end()) {
      ck.deny("advisory_ids", "none of " + list_text(policy.rejected_advisory_ids).substr(7), id);
    }
  }

  // Collateral freshness. Verification already checked validity at its own time; this guards the
  // case of verifying "as of" an earlier time, and the policy's own age limit.
  if (claims.collateral_expiry && now > *claims.collateral_expiry) {
    ck.deny("collateral_expiry", "after " + format_rfc3339(now),
            "expired at " + format_rfc3339(*claims.collateral_expiry));
  }
  bool dcap =
      claims.tee == TeeType::kSgx || claims.tee == TeeType::kTdx || claims.tee == TeeType::kSim;
  if (policy.max_collateral_age && (dcap || claims.collateral_issued)) {
    std::string want = "issued at most " + std::to_string(policy.max_collateral_age->count()) +
                       "s before " + format_rfc3339(now);
    if (!claims.collateral_issued) {
      ck.deny("collateral_issued", want, "absent (verified without TCB collateral)");
    } else if (now - *claims.collateral_issued > *policy.max_collateral_age) {
      ck.deny("collateral_issued", want, "issued " + format_rfc3339(*claims.collateral_issued));
    }
  }

  if (policy.report_data) {
    const Bytes& want = *policy.report_data;
    bool match = claims.report_data.size() >= want.size() &&
                 constant_time_equal(want, ByteSpan(claims.report_data).first(want.size()));
    if (!match) {
      ck.deny("report_data",
              hex_encode(want) + (want.size() < claims.report_data.size() ? "..." : ""),
              hex_encode(claims.report_data));
    }
  }

  switch (claims.tee) {
    case TeeType::kSgx:
      check_sgx(ck, policy.sgx, "sgx");
      break;
    case TeeType::kSim:
      check_sgx(ck, policy.sgx, "sim");
      break;
    case TeeType::kTdx:
      check_tdx(ck, policy.tdx);
      break;
    case TeeType::kSnp:
      check_snp(ck, policy.snp);
      break;
    case TeeType::kTpm:
      check_tpm(ck, policy.tpm);
      break;
  }

  Appraisal a;
  a.policy_id = policy.id;
  a.denials = ck.take();
  a.pass = a.denials.empty();
  return a;
}

}  // namespace custos::attestation
