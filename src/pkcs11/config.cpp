#include "pkcs11/config.h"

#include <set>
#include <utility>

#include "attestation/common/evidence.h"
#include "hcl/hcl.h"

namespace custos::pkcs11 {
namespace {

Status error_at(int line, std::string_view what) {
  return invalid_argument("line " + std::to_string(line) + ": " + std::string(what));
}

// Names come from the file: only short printable text is quoted back.
std::string quote_name(std::string_view s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size() && i < 64; ++i) {
    char c = s[i];
    out.push_back(c >= 0x20 && c <= 0x7e ? c : '?');
  }
  if (s.size() > 64) out += "...";
  return out + "\"";
}

Result<std::string> string_of(const hcl::Attribute& a) {
  if (!a.value.is_string()) {
    return error_at(a.line, quote_name(a.name) + " must be a string, not a " +
                                std::string(hcl::kind_name(a.value.kind())));
  }
  return a.value.as_string();
}

Result<bool> bool_of(const hcl::Attribute& a) {
  if (!a.value.is_bool()) return error_at(a.line, quote_name(a.name) + " must be true or false");
  return a.value.as_bool();
}

Result<uint16_t> u16_of(const hcl::Attribute& a) {
  if (!a.value.is_int() || a.value.as_int() < 0 || a.value.as_int() > 0xffff) {
    return error_at(a.line, quote_name(a.name) + " must be an integer from 0 to 65535");
  }
  return static_cast<uint16_t>(a.value.as_int());
}

Result<KeySpec> key_of(const hcl::Block& b) {
  if (b.labels.size() != 1 || b.labels[0].empty() || b.labels[0].size() > 128) {
    return error_at(b.line,
                    "a key block needs one label of 1 to 128 characters: key \"web\" { ... }");
  }
  KeySpec k;
  k.label = b.labels[0];
  if (!b.body.blocks.empty()) return error_at(b.body.blocks[0].line, "unexpected block in key");
  for (const hcl::Attribute& a : b.body.attributes) {
    if (a.name == "id") {
      ASSIGN_OR_RETURN(k.id, string_of(a));
    } else {
      return error_at(a.line, "unknown key " + quote_name(a.name) + " in key " +
                                  quote_name(k.label) + " (expected id)");
    }
  }
  if (k.id.empty() || k.id.size() > 256) {
    return error_at(b.line, "key " + quote_name(k.label) + " needs an id (the broker's key id)");
  }
  return k;
}

}  // namespace

Result<ModuleConfig> parse_module_config(std::string_view text) {
  Result<hcl::Body> parsed = hcl::parse(text);
  if (!parsed.ok()) {
    // The parser quotes what it did not expect, which could be an unquoted PIN: only the line.
    const std::string& m = parsed.status().message();
    const size_t colon = m.find(':');
    return invalid_argument((m.rfind("line ", 0) == 0 && colon != std::string::npos
                                 ? m.substr(0, colon)
                                 : std::string("the file")) +
                            ": syntax error (the text is not repeated: it may hold the PIN)");
  }
  const hcl::Body& body = *parsed;
  ModuleConfig c;
  std::set<std::string> seen;
  for (const hcl::Attribute& a : body.attributes) {
    if (!seen.insert(a.name).second) return error_at(a.line, quote_name(a.name) + " is set twice");
    if (a.name == "kbs_addr") {
      ASSIGN_OR_RETURN(c.kbs_addr, string_of(a));
    } else if (a.name == "ca_file") {
      ASSIGN_OR_RETURN(c.ca_file, string_of(a));
    } else if (a.name == "tls_skip_verify") {
      ASSIGN_OR_RETURN(c.tls_skip_verify, bool_of(a));
    } else if (a.name == "tee") {
      ASSIGN_OR_RETURN(std::string tee, string_of(a));
      Result<attestation::TeeType> t = attestation::parse_tee(tee);
      if (!t.ok()) return error_at(a.line, t.status().message());
      c.producer.tee = *t;
    } else if (a.name == "sim_dir") {
      ASSIGN_OR_RETURN(std::string dir, string_of(a));
      c.producer.sim_dir = dir;
    } else if (a.name == "isv_prod_id") {
      ASSIGN_OR_RETURN(c.producer.isv_prod_id, u16_of(a));
    } else if (a.name == "isv_svn") {
      ASSIGN_OR_RETURN(c.producer.isv_svn, u16_of(a));
    } else if (a.name == "tcti") {
      ASSIGN_OR_RETURN(c.producer.tcti, string_of(a));
    } else if (a.name == "ak_context") {
      ASSIGN_OR_RETURN(c.producer.ak_context, string_of(a));
    } else if (a.name == "pcrs") {
      ASSIGN_OR_RETURN(c.producer.pcr_selection, string_of(a));
    } else if (a.name == "token_label") {
      ASSIGN_OR_RETURN(c.token_label, string_of(a));
      if (c.token_label.empty() || c.token_label.size() > 32) {
        return error_at(a.line, "token_label must be 1 to 32 characters");
      }
    } else if (a.name == "pin") {
      ASSIGN_OR_RETURN(std::string pin, string_of(a));
      if (pin.empty() || pin.size() > 256)
        return error_at(a.line, "pin must be 1 to 256 characters");
      c.pin = SecretString(std::move(pin));
    } else {
      return error_at(a.line,
                      "unknown key " + quote_name(a.name) +
                          " (expected kbs_addr, ca_file, tls_skip_verify, tee, sim_dir, "
                          "isv_prod_id, isv_svn, tcti, ak_context, pcrs, token_label, pin)");
    }
  }
  std::set<std::string> labels;
  for (const hcl::Block& b : body.blocks) {
    if (b.type != "key") {
      return error_at(b.line, "unknown block " + quote_name(b.type) + " (expected key)");
    }
    ASSIGN_OR_RETURN(KeySpec k, key_of(b));
    if (!labels.insert(k.label).second) {
      return error_at(b.line, "key " + quote_name(k.label) + " is defined twice");
    }
    if (c.keys.size() == kMaxKeys) return error_at(b.line, "too many keys (at most 64)");
    c.keys.push_back(std::move(k));
  }
  if (c.kbs_addr.empty()) return invalid_argument("kbs_addr is required");
  if (c.keys.empty()) return invalid_argument("no key block: the token would hold nothing");
  return c;
}

}  // namespace custos::pkcs11
