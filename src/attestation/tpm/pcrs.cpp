#include "attestation/tpm/pcrs.h"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <charconv>
#include <string>

#include "base/encoding.h"
#include "base/reader.h"

namespace custos::attestation::tpm {
namespace {

constexpr size_t kLegacySelectionSize = 4 + 16 * 8;   // TPML_PCR_SELECTION as a C struct
constexpr size_t kLegacyDigestListSize = 4 + 8 * 66;  // TPML_DIGEST as a C struct
constexpr size_t kMaxPcrIndex = 1024;

size_t bank_size(uint16_t bank) {
  auto h = hash_from_tpm(bank);
  return h ? crypto::hash_size(*h) : 0;
}

uint16_t bank_for_size(size_t n) {
  switch (n) {
    case 20: return alg::kSha1;
    case 32: return alg::kSha256;
    case 48: return alg::kSha384;
    case 64: return alg::kSha512;
    default: return 0;
  }
}

size_t selected_count(const std::vector<PcrSelection>& selection) {
  size_t n = 0;
  for (const auto& s : selection) n += s.indices.size();
  return n;
}

Result<Bytes> hex_value(std::string_view s) {
  std::string t = strip_whitespace(s);
  std::string_view v = t;
  if (v.size() >= 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) v.remove_prefix(2);
  ASSIGN_OR_RETURN(Bytes b, hex_decode(v));
  if (bank_for_size(b.size()) == 0) return invalid_argument("PCR value has an unexpected length");
  return b;
}

Result<uint32_t> pcr_index(std::string_view s) {
  uint32_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v >= kMaxPcrIndex) {
    return invalid_argument("bad PCR index");
  }
  return v;
}

// Assigns an ordered list of values to the selection.
Result<PcrBanks> assign_ordered(const std::vector<Bytes>& values,
                                const std::vector<PcrSelection>& selection) {
  if (values.size() != selected_count(selection)) {
    return invalid_argument("PCR list has " + std::to_string(values.size()) +
                            " values, the quote selects " +
                            std::to_string(selected_count(selection)));
  }
  PcrBanks out;
  size_t i = 0;
  for (const auto& s : selection) {
    for (uint32_t idx : s.indices) out[s.hash][idx] = values[i++];
  }
  return out;
}

Status add_value(PcrBanks& out, uint16_t bank, uint32_t index, Bytes value) {
  if (bank == 0) bank = bank_for_size(value.size());
  if (bank_size(bank) != value.size()) return invalid_argument("PCR value length does not fit its bank");
  out[bank][index] = std::move(value);
  return ok_status();
}

Result<PcrBanks> parse_json(const boost::json::value& v, const std::vector<PcrSelection>& selection) {
  if (const auto* arr = v.if_array()) {
    std::vector<Bytes> values;
    for (const auto& e : *arr) {
      const auto* s = e.if_string();
      if (s == nullptr) return invalid_argument("PCR array entries must be hex strings");
      ASSIGN_OR_RETURN(Bytes b, hex_value(*s));
      values.push_back(std::move(b));
    }
    return assign_ordered(values, selection);
  }
  const auto* obj = v.if_object();
  if (obj == nullptr) return invalid_argument("PCR JSON must be an object or an array");
  // {"pcrs": {...}} as tpm2_quote prints it.
  if (auto it = obj->find("pcrs"); it != obj->end() && obj->size() == 1) {
    return parse_json(it->value(), selection);
  }
  PcrBanks out;
  for (const auto& kv : *obj) {
    std::string_view key = kv.key();
    if (const auto* bank_obj = kv.value().if_object()) {
      uint16_t bank = tpm_hash_from_name(key);
      if (bank == 0) return invalid_argument("unknown PCR bank in JSON");
      for (const auto& e : *bank_obj) {
        ASSIGN_OR_RETURN(uint32_t idx, pcr_index(e.key()));
        const auto* s = e.value().if_string();
        if (s == nullptr) return invalid_argument("PCR values must be hex strings");
        ASSIGN_OR_RETURN(Bytes b, hex_value(*s));
        RETURN_IF_ERROR(add_value(out, bank, idx, std::move(b)));
      }
    } else if (const auto* s = kv.value().if_string()) {
      ASSIGN_OR_RETURN(uint32_t idx, pcr_index(key));
      ASSIGN_OR_RETURN(Bytes b, hex_value(*s));
      RETURN_IF_ERROR(add_value(out, 0, idx, std::move(b)));
    } else {
      return invalid_argument("unexpected PCR JSON member");
    }
  }
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// tpm2-tools YAML ("sha256:" then "  0 : 0x...") or bare lines of hex in selection order.
Result<PcrBanks> parse_text(std::string_view text, const std::vector<PcrSelection>& selection) {
  PcrBanks out;
  std::vector<Bytes> ordered;
  uint16_t bank = 0;
  bool keyed = false;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = trim(text.substr(start, end - start));
    start = end + 1;
    if (line.empty() || line[0] == '#') continue;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      ASSIGN_OR_RETURN(Bytes b, hex_value(line));
      ordered.push_back(std::move(b));
      continue;
    }
    std::string_view key = trim(line.substr(0, colon));
    std::string_view val = trim(line.substr(colon + 1));
    if (val.empty()) {
      uint16_t b = tpm_hash_from_name(key);
      bank = b;  // other section headers ("pcrs:", "selected:") reset the bank
      continue;
    }
    auto idx = pcr_index(key);
    if (!idx.ok()) continue;  // other YAML fields (quoted:, sig:, calcDigest:, ...)
    ASSIGN_OR_RETURN(Bytes b, hex_value(val));
    RETURN_IF_ERROR(add_value(out, bank, *idx, std::move(b)));
    keyed = true;
  }
  if (keyed && !ordered.empty()) return invalid_argument("PCR text mixes indexed and bare values");
  if (!keyed) {
    if (ordered.empty()) return invalid_argument("no PCR values found");
    return assign_ordered(ordered, selection);
  }
  return out;
}

// tpm2-tools "serialized" / legacy quotepcr.out layout (see the header).
Result<PcrBanks> parse_serialized(ByteSpan data) {
  ByteReader r(data);
  uint32_t sel_count = r.u32le();
  if (sel_count > 16) return invalid_argument("serialized PCR selection count too large");
  std::vector<PcrSelection> sels;
  for (uint32_t i = 0; i < 16; ++i) {
    PcrSelection s;
    s.hash = r.u16le();
    uint8_t size = r.u8();
    ByteSpan bits = r.bytes(4);
    r.skip(1);  // struct padding
    if (i >= sel_count) continue;
    if (size > 4) return invalid_argument("serialized sizeofSelect too large");
    for (size_t byte = 0; byte < size && byte < bits.size(); ++byte) {
      for (uint32_t bit = 0; bit < 8; ++bit) {
        if (bits[byte] & (1u << bit)) s.indices.push_back(static_cast<uint32_t>(byte) * 8 + bit);
      }
    }
    sels.push_back(std::move(s));
  }
  uint32_t lists = r.u32le();
  RETURN_IF_ERROR(r.status("serialized PCR file"));
  if (r.remaining() != size_t{lists} * kLegacyDigestListSize) {
    return invalid_argument("serialized PCR file has the wrong size");
  }
  std::vector<Bytes> values;
  for (uint32_t l = 0; l < lists; ++l) {
    uint32_t count = r.u32le();
    if (count > 8) return invalid_argument("serialized TPML_DIGEST count too large");
    for (uint32_t i = 0; i < 8; ++i) {
      uint16_t size = r.u16le();
      ByteSpan buf = r.bytes(64);
      if (i >= count) continue;
      if (size > 64) return invalid_argument("serialized digest too large");
      values.emplace_back(buf.begin(), buf.begin() + size);
    }
  }
  RETURN_IF_ERROR(r.status("serialized PCR file"));
  PcrBanks out;
  size_t i = 0;
  for (const auto& s : sels) {
    for (uint32_t idx : s.indices) {
      if (i >= values.size()) return invalid_argument("serialized PCR file has too few digests");
      RETURN_IF_ERROR(add_value(out, s.hash, idx, values[i++]));
    }
  }
  return out;
}

bool is_text(ByteSpan data) {
  for (uint8_t c : data) {
    if (!(c == '\n' || c == '\r' || c == '\t' || (c >= 0x20 && c < 0x7f))) return false;
  }
  return !data.empty();
}

}  // namespace

Result<PcrBanks> parse_pcr_values(ByteSpan data, const std::vector<PcrSelection>& selection) {
  if (data.size() >= kLegacySelectionSize + 4 &&
      (data.size() - kLegacySelectionSize - 4) % kLegacyDigestListSize == 0) {
    auto s = parse_serialized(data);
    if (s.ok()) return s;
  }
  size_t values_size = 0;
  for (const auto& s : selection) values_size += s.indices.size() * bank_size(s.hash);
  if (!is_text(data)) {
    if (values_size == 0 || data.size() != values_size) {
      return invalid_argument("binary PCR file matches neither the serialized nor the values layout");
    }
    PcrBanks out;
    size_t pos = 0;
    for (const auto& s : selection) {
      size_t n = bank_size(s.hash);
      for (uint32_t idx : s.indices) {
        out[s.hash][idx] = Bytes(data.begin() + static_cast<std::ptrdiff_t>(pos),
                                 data.begin() + static_cast<std::ptrdiff_t>(pos + n));
        pos += n;
      }
    }
    return out;
  }
  std::string_view text = as_string_view(data);
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && (text[first] == '{' || text[first] == '[')) {
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(text, ec);
    if (ec) return invalid_argument("PCR JSON does not parse");
    return parse_json(v, selection);
  }
  return parse_text(text, selection);
}

Result<Bytes> concat_selected(const PcrBanks& banks, const std::vector<PcrSelection>& selection) {
  Bytes out;
  for (const auto& s : selection) {
    size_t n = bank_size(s.hash);
    if (n == 0) return invalid_argument("quote selects an unsupported PCR bank");
    auto b = banks.find(s.hash);
    for (uint32_t idx : s.indices) {
      if (b == banks.end()) return not_found("no values for a selected PCR bank");
      auto v = b->second.find(idx);
      if (v == b->second.end()) return not_found("PCR " + std::to_string(idx) + " not supplied");
      if (v->second.size() != n) return invalid_argument("PCR value has the wrong length");
      out.insert(out.end(), v->second.begin(), v->second.end());
    }
  }
  return out;
}

}  // namespace custos::attestation::tpm
