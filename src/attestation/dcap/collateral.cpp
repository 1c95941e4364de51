#include "attestation/dcap/collateral.h"

#include <algorithm>
#include <cstdio>
#include <set>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "attestation/dcap/reasons.h"
#include "base/encoding.h"

namespace custos::attestation::dcap {
namespace {

namespace json = boost::json;

// --- Raw top-level scanner (the input has already been validated as JSON) -------------------

size_t skip_ws(std::string_view s, size_t i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) ++i;
  return i;
}

// i points at the opening quote; returns the index after the closing quote.
size_t skip_string(std::string_view s, size_t i) {
  for (++i; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
    } else if (s[i] == '"') {
      return i + 1;
    }
  }
  return s.size();
}

size_t skip_value(std::string_view s, size_t i) {
  if (i >= s.size()) return i;
  if (s[i] == '"') return skip_string(s, i);
  if (s[i] == '{' || s[i] == '[') {
    int depth = 0;
    while (i < s.size()) {
      char c = s[i];
      if (c == '"') {
        i = skip_string(s, i);
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      if (c == '}' || c == ']') {
        if (--depth == 0) return i + 1;
      }
      ++i;
    }
    return i;
  }
  while (i < s.size() && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' &&
         s[i] != '\t' && s[i] != '\r' && s[i] != '\n') {
    ++i;
  }
  return i;
}

// --- Typed field access -----------------------------------------------------------------

class Fields {
 public:
  Fields(const json::object& o, std::string_view reason) : o_(o), reason_(reason) {}

  Status error(std::string_view what) const { return reason::fail(reason_, what); }

  const json::value* find(std::string_view key) const { return o_.if_contains(key); }

  Result<std::string_view> str(std::string_view key) const {
    const json::value* v = find(key);
    if (!v || !v->is_string()) return error(std::string(key) + " missing or not a string");
    return std::string_view(v->get_string());
  }
  Result<uint64_t> uint(std::string_view key, uint64_t max) const {
    const json::value* v = find(key);
    if (!v) return error(std::string(key) + " missing");
    return as_uint(*v, key, max);
  }
  Result<uint64_t> as_uint(const json::value& v, std::string_view key, uint64_t max) const {
    uint64_t out = 0;
    if (v.is_int64() && v.get_int64() >= 0) {
      out = static_cast<uint64_t>(v.get_int64());
    } else if (v.is_uint64()) {
      out = v.get_uint64();
    } else {
      return error(std::string(key) + " is not a non-negative integer");
    }
    if (out > max) return error(std::string(key) + " out of range");
    return out;
  }
  template <size_t N>
  Result<std::array<uint8_t, N>> hex(std::string_view key) const {
    ASSIGN_OR_RETURN(std::string_view s, str(key));
    auto b = hex_decode(s);
    if (!b.ok() || b->size() != N) return error(std::string(key) + " is not " +
                                                 std::to_string(N) + " bytes of hex");
    std::array<uint8_t, N> out{};
    std::copy(b->begin(), b->end(), out.begin());
    return out;
  }
  Result<SysTime> time(std::string_view key) const {
    ASSIGN_OR_RETURN(std::string_view s, str(key));
    auto t = parse_rfc3339(s);
    if (!t.ok()) return error(std::string(key) + " is not an RFC 3339 time");
    return *t;
  }
  const json::array* array(std::string_view key) const {
    const json::value* v = find(key);
    return v ? v->if_array() : nullptr;
  }

 private:
  const json::object& o_;
  std::string_view reason_;
};

Result<json::value> parse_json(std::string_view text, std::string_view reason) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) return reason::fail(reason, "invalid JSON");
  return v;
}

Result<TcbStatus> status_field(const Fields& f) {
  ASSIGN_OR_RETURN(std::string_view s, f.str("tcbStatus"));
  auto st = parse_tcb_status(s);
  if (!st.ok() || *st == TcbStatus::kNotApplicable) return f.error("unknown tcbStatus");
  return *st;
}

Result<std::vector<std::string>> advisories(const Fields& f) {
  std::vector<std::string> out;
  const json::value* v = f.find("advisoryIDs");
  if (!v) return out;
  const json::array* a = v->if_array();
  if (!a) return f.error("advisoryIDs is not an array");
  for (const auto& e : *a) {
    if (!e.is_string()) return f.error("advisoryIDs entry is not a string");
    out.emplace_back(e.get_string());
  }
  return out;
}

// v3 "sgxtcbcomponents"/"tdxtcbcomponents": exactly 16 objects with an "svn".
Result<std::array<uint8_t, 16>> components(const Fields& tcb, std::string_view key) {
  const json::array* a = tcb.array(key);
  if (!a) return tcb.error(std::string(key) + " missing");
  if (a->size() != 16) return tcb.error(std::string(key) + " does not have 16 entries");
  std::array<uint8_t, 16> out{};
  for (size_t i = 0; i < 16; ++i) {
    const json::object* c = (*a)[i].if_object();
    if (!c) return tcb.error(std::string(key) + " entry is not an object");
    const json::value* svn = c->if_contains("svn");
    if (!svn) return tcb.error("component without svn");
    ASSIGN_OR_RETURN(uint64_t v, tcb.as_uint(*svn, "svn", 255));
    out[i] = static_cast<uint8_t>(v);
  }
  return out;
}

Result<std::vector<IdentityTcbLevel>> identity_levels(const Fields& f, std::string_view reason) {
  const json::array* a = f.array("tcbLevels");
  if (!a || a->empty()) return f.error("tcbLevels missing or empty");
  std::vector<IdentityTcbLevel> out;
  for (const auto& lv : *a) {
    const json::object* lo = lv.if_object();
    if (!lo) return f.error("tcbLevels entry is not an object");
    Fields lf(*lo, reason);
    const json::value* tcb = lo->if_contains("tcb");
    if (!tcb || !tcb->is_object()) return f.error("tcb level without tcb");
    Fields tf(tcb->get_object(), reason);
    IdentityTcbLevel level;
    ASSIGN_OR_RETURN(uint64_t svn, tf.uint("isvsvn", 0xffff));
    level.isv_svn = static_cast<uint16_t>(svn);
    ASSIGN_OR_RETURN(level.tcb_date, lf.time("tcbDate"));
    ASSIGN_OR_RETURN(level.status, status_field(lf));
    ASSIGN_OR_RETURN(level.advisory_ids, advisories(lf));
    out.push_back(std::move(level));
  }
  return out;
}

Result<TdxModule> tdx_module(const Fields& f) {
  TdxModule m;
  ASSIGN_OR_RETURN(m.mr_signer, f.hex<48>("mrsigner"));
  ASSIGN_OR_RETURN(m.attributes, f.hex<8>("attributes"));
  ASSIGN_OR_RETURN(m.attributes_mask, f.hex<8>("attributesMask"));
  return m;
}

std::string tcb_info_reason() { return std::string(reason::kTcbInfo) + std::string(reason::kMalformed); }
std::string qe_identity_reason() {
  return std::string(reason::kQeIdentity) + std::string(reason::kMalformed);
}

}  // namespace

Result<SignedJson> split_signed_json(std::string_view body, std::string_view key) {
  std::string reason = key == "tcbInfo" ? tcb_info_reason() : qe_identity_reason();
  ASSIGN_OR_RETURN(json::value v, parse_json(body, reason));
  if (!v.is_object()) return reason::fail(reason, "body is not a JSON object");

  std::optional<std::string_view> value_raw;
  std::optional<std::string_view> signature;
  std::set<std::string_view> keys;
  size_t i = skip_ws(body, 0);
  if (i >= body.size() || body[i] != '{') return reason::fail(reason, "body is not an object");
  ++i;
  while (true) {
    i = skip_ws(body, i);
    if (i >= body.size()) return reason::fail(reason, "unterminated body");
    if (body[i] == '}') break;
    if (body[i] != '"') return reason::fail(reason, "unexpected character");
    size_t key_end = skip_string(body, i);
    std::string_view k = body.substr(i + 1, key_end - i - 2);
    if (!keys.insert(k).second) return reason::fail(reason, "duplicate top-level key");
    i = skip_ws(body, key_end);
    if (i >= body.size() || body[i] != ':') return reason::fail(reason, "expected ':'");
    i = skip_ws(body, i + 1);
    size_t start = i;
    i = skip_value(body, i);
    std::string_view raw = body.substr(start, i - start);
    if (k == key) value_raw = raw;
    if (k == "signature") signature = raw;
    i = skip_ws(body, i);
    if (i < body.size() && body[i] == ',') {
      ++i;
      continue;
    }
  }
  if (!value_raw || value_raw->empty() || value_raw->front() != '{') {
    return reason::fail(reason, std::string(key) + " object missing");
  }
  if (!signature || signature->size() < 2 || signature->front() != '"') {
    return reason::fail(reason, "signature missing");
  }
  auto sig = hex_decode(signature->substr(1, signature->size() - 2));
  if (!sig.ok() || sig->size() != 64) return reason::fail(reason, "signature is not 64 bytes of hex");
  return SignedJson{std::string(*value_raw), std::move(*sig)};
}

Result<TcbInfo> parse_tcb_info(std::string_view text) {
  const std::string reason = tcb_info_reason();
  ASSIGN_OR_RETURN(json::value v, parse_json(text, reason));
  const json::object* o = v.if_object();
  if (!o) return reason::fail(reason, "tcbInfo is not an object");
  Fields f(*o, reason);
  TcbInfo info;
  ASSIGN_OR_RETURN(uint64_t version, f.uint("version", 1000));
  if (version != 2 && version != 3) {
    return reason::fail(std::string(reason::kTcbInfo) + std::string(reason::kUnsupportedVersion),
                        "TCB Info version " + std::to_string(version));
  }
  info.version = static_cast<int>(version);
  if (info.version == 3) {
    ASSIGN_OR_RETURN(std::string_view id, f.str("id"));
    if (id == "SGX") {
      info.id = TcbInfo::Id::kSgx;
    } else if (id == "TDX") {
      info.id = TcbInfo::Id::kTdx;
    } else {
      return f.error("unknown id");
    }
  }
  ASSIGN_OR_RETURN(info.issue_date, f.time("issueDate"));
  ASSIGN_OR_RETURN(info.next_update, f.time("nextUpdate"));
  ASSIGN_OR_RETURN(info.fmspc, f.hex<6>("fmspc"));
  ASSIGN_OR_RETURN(info.pce_id, f.hex<2>("pceId"));
  ASSIGN_OR_RETURN(uint64_t tcb_type, f.uint("tcbType", 0xffff));
  // Type 0 (component-wise comparison of the 16 SGX TCB components + PCESVN) is the only
  // type Intel has defined; any other would change the comparison rules.
  if (tcb_type != 0) return f.error("unsupported tcbType");
  info.tcb_type = static_cast<uint32_t>(tcb_type);
  ASSIGN_OR_RETURN(uint64_t eval, f.uint("tcbEvaluationDataNumber", 0xffffffff));
  info.tcb_evaluation_data_number = static_cast<uint32_t>(eval);

  if (const json::value* m = f.find("tdxModule")) {
    if (!m->is_object()) return f.error("tdxModule is not an object");
    ASSIGN_OR_RETURN(info.tdx_module, tdx_module(Fields(m->get_object(), reason)));
  }
  if (const json::value* ids = f.find("tdxModuleIdentities")) {
    const json::array* a = ids->if_array();
    if (!a) return f.error("tdxModuleIdentities is not an array");
    for (const auto& e : *a) {
      const json::object* mo = e.if_object();
      if (!mo) return f.error("tdxModuleIdentities entry is not an object");
      Fields mf(*mo, reason);
      TdxModuleIdentity ident;
      ASSIGN_OR_RETURN(std::string_view id, mf.str("id"));
      ident.id = std::string(id);
      std::transform(ident.id.begin(), ident.id.end(), ident.id.begin(),
                     [](char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 32) : c; });
      ASSIGN_OR_RETURN(ident.module, tdx_module(mf));
      ASSIGN_OR_RETURN(ident.levels, identity_levels(mf, reason));
      info.tdx_module_identities.push_back(std::move(ident));
    }
  }
  if (info.id == TcbInfo::Id::kTdx && !info.tdx_module) return f.error("TDX TCB Info without tdxModule");

  const json::array* levels = f.array("tcbLevels");
  if (!levels || levels->empty()) return f.error("tcbLevels missing or empty");
  for (const auto& lv : *levels) {
    const json::object* lo = lv.if_object();
    if (!lo) return f.error("tcbLevels entry is not an object");
    Fields lf(*lo, reason);
    const json::value* tcb = lo->if_contains("tcb");
    if (!tcb || !tcb->is_object()) return f.error("tcb level without tcb");
    Fields tf(tcb->get_object(), reason);
    TcbLevel level;
    if (info.version == 2) {
      for (size_t i = 0; i < 16; ++i) {
        char name[20];
        std::snprintf(name, sizeof(name), "sgxtcbcomp%02zusvn", i + 1);
        ASSIGN_OR_RETURN(uint64_t svn, tf.uint(name, 255));
        level.sgx_components[i] = static_cast<uint8_t>(svn);
      }
    } else {
      ASSIGN_OR_RETURN(level.sgx_components, components(tf, "sgxtcbcomponents"));
      if (info.id == TcbInfo::Id::kTdx) {
        ASSIGN_OR_RETURN(auto tdx, components(tf, "tdxtcbcomponents"));
        level.tdx_components = tdx;
      }
    }
    ASSIGN_OR_RETURN(uint64_t pce_svn, tf.uint("pcesvn", 0xffff));
    level.pce_svn = static_cast<uint16_t>(pce_svn);
    ASSIGN_OR_RETURN(level.tcb_date, lf.time("tcbDate"));
    ASSIGN_OR_RETURN(level.status, status_field(lf));
    ASSIGN_OR_RETURN(level.advisory_ids, advisories(lf));
    info.levels.push_back(std::move(level));
  }
  return info;
}

Result<EnclaveIdentity> parse_enclave_identity(std::string_view text) {
  const std::string reason = qe_identity_reason();
  ASSIGN_OR_RETURN(json::value v, parse_json(text, reason));
  const json::object* o = v.if_object();
  if (!o) return reason::fail(reason, "enclaveIdentity is not an object");
  Fields f(*o, reason);
  EnclaveIdentity ident;
  ASSIGN_OR_RETURN(uint64_t version, f.uint("version", 1000));
  if (version != 2) {
    return reason::fail(std::string(reason::kQeIdentity) + std::string(reason::kUnsupportedVersion),
                        "Enclave Identity version " + std::to_string(version));
  }
  ident.version = 2;
  ASSIGN_OR_RETURN(std::string_view id, f.str("id"));
  if (id != "QE" && id != "QVE" && id != "TD_QE") return f.error("unknown id");
  ident.id = std::string(id);
  ASSIGN_OR_RETURN(ident.issue_date, f.time("issueDate"));
  ASSIGN_OR_RETURN(ident.next_update, f.time("nextUpdate"));
  ASSIGN_OR_RETURN(uint64_t eval, f.uint("tcbEvaluationDataNumber", 0xffffffff));
  ident.tcb_evaluation_data_number = static_cast<uint32_t>(eval);
  ASSIGN_OR_RETURN(auto misc, f.hex<4>("miscselect"));
  ASSIGN_OR_RETURN(auto misc_mask, f.hex<4>("miscselectMask"));
  auto be32 = [](const std::array<uint8_t, 4>& b) {
    return (static_cast<uint32_t>(b[0]) << 24) | (static_cast<uint32_t>(b[1]) << 16) |
           (static_cast<uint32_t>(b[2]) << 8) | b[3];
  };
  ident.misc_select = be32(misc);
  ident.misc_select_mask = be32(misc_mask);
  ASSIGN_OR_RETURN(ident.attributes, f.hex<16>("attributes"));
  ASSIGN_OR_RETURN(ident.attributes_mask, f.hex<16>("attributesMask"));
  ASSIGN_OR_RETURN(ident.mr_signer, f.hex<32>("mrsigner"));
  ASSIGN_OR_RETURN(uint64_t prod, f.uint("isvprodid", 0xffff));
  ident.isv_prod_id = static_cast<uint16_t>(prod);
  ASSIGN_OR_RETURN(ident.levels, identity_levels(f, reason));
  return ident;
}

Result<Collateral> collateral_from_bundle(ByteSpan bytes) {
  const std::string reason(reason::kCollateralMalformed);
  ASSIGN_OR_RETURN(json::value v, parse_json(as_string_view(bytes), reason));
  const json::object* o = v.if_object();
  if (!o) return reason::fail(reason, "bundle is not a JSON object");
  Fields f(*o, reason);
  Collateral out;
  auto copy = [&](std::string_view from, const char* to) -> Status {
    const json::value* e = f.find(from);
    if (!e) return ok_status();
    if (!e->is_string()) return f.error(std::string(from) + " is not a string");
    out[to] = to_bytes(std::string_view(e->get_string()));
    return ok_status();
  };
  // Re-wrap the raw signed strings as PCS bodies: the signed bytes stay byte-identical.
  auto wrap = [&](std::string_view body_key, std::string_view sig_key, const char* pcs_key,
                  const char* to) -> Status {
    const json::value* b = f.find(body_key);
    const json::value* s = f.find(sig_key);
    if (!b && !s) return ok_status();
    if (!b || !s || !b->is_string()) return f.error(std::string(body_key) + " or its signature missing");
    std::string sig_hex;
    if (s->is_string()) {
      sig_hex = std::string(s->get_string());
    } else if (const json::array* a = s->if_array()) {  // some bundles carry the bytes as numbers
      Bytes raw;
      for (const auto& e : *a) {
        ASSIGN_OR_RETURN(uint64_t byte, f.as_uint(e, sig_key, 255));
        raw.push_back(static_cast<uint8_t>(byte));
      }
      sig_hex = hex_encode(raw);
    } else {
      return f.error(std::string(sig_key) + " is not hex");
    }
    std::string body = "{\"";
    body += pcs_key;
    body += "\":";
    body += std::string_view(b->get_string());
    body += ",\"signature\":\"" + sig_hex + "\"}";
    out[to] = to_bytes(body);
    return ok_status();
  };
  RETURN_IF_ERROR(wrap("tcb_info", "tcb_info_signature", "tcbInfo", "tcb_info"));
  RETURN_IF_ERROR(wrap("qe_identity", "qe_identity_signature", "enclaveIdentity", "qe_identity"));
  RETURN_IF_ERROR(copy("tcb_info_issuer_chain", "tcb_info_chain"));
  RETURN_IF_ERROR(copy("qe_identity_issuer_chain", "qe_identity_chain"));
  RETURN_IF_ERROR(copy("pck_crl_issuer_chain", "pck_crl_chain"));
  RETURN_IF_ERROR(copy("pck_crl", "pck_crl"));
  RETURN_IF_ERROR(copy("root_ca_crl", "root_crl"));
  RETURN_IF_ERROR(copy("pck_certificate_chain", "pck_chain"));
  if (out.empty()) return f.error("no collateral items");
  return out;
}

}  // namespace custos::attestation::dcap
