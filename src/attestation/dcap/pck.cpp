#include "attestation/dcap/pck.h"

#include <algorithm>
#include <string>

#include "attestation/dcap/der.h"
#include "attestation/dcap/reasons.h"

namespace custos::attestation::dcap {
namespace {

// Content octets of 1.2.840.113741.1.13.1: every SGX extension OID starts with these.
constexpr std::array<uint8_t, 9> kSgxOidPrefix = {0x2a, 0x86, 0x48, 0x86, 0xf8,
                                                  0x4d, 0x01, 0x0d, 0x01};

Status bad(std::string_view what) { return reason::fail(reason::kPckExtensions, what); }

// The arcs after the SGX prefix (e.g. {2, 17} for .2.17); empty if not an SGX OID or an arc is
// larger than one base-128 byte (none of the defined ones is).
std::optional<std::array<uint8_t, 2>> sgx_arcs(const der::Element& oid, size_t& count) {
  ByteSpan v = oid.value;
  if (oid.tag != der::kOid || v.size() <= kSgxOidPrefix.size() ||
      v.size() > kSgxOidPrefix.size() + 2 ||
      !std::equal(kSgxOidPrefix.begin(), kSgxOidPrefix.end(), v.begin())) {
    return std::nullopt;
  }
  std::array<uint8_t, 2> arcs{};
  count = v.size() - kSgxOidPrefix.size();
  for (size_t i = 0; i < count; ++i) {
    uint8_t b = v[kSgxOidPrefix.size() + i];
    if (b & 0x80) return std::nullopt;
    arcs[i] = b;
  }
  return arcs;
}

template <size_t N>
bool octets(const der::Element& e, std::array<uint8_t, N>& out) {
  if (e.tag != der::kOctetString || e.value.size() != N) return false;
  std::copy(e.value.begin(), e.value.end(), out.begin());
  return true;
}

std::optional<bool> boolean(const der::Element& e) {
  if (e.tag != der::kBoolean || e.value.size() != 1) return std::nullopt;
  return e.value[0] != 0;
}

Status parse_tcb(ByteSpan seq, PckExtensions& out) {
  der::Reader r(seq);
  uint32_t seen = 0;  // bit i: component i+1; bit 16: PCESVN; bit 17: CPUSVN
  while (!r.empty()) {
    auto item = r.expect(der::kSequence);
    if (!item) return bad("malformed TCB entry");
    der::Reader ir(item->value);
    auto oid = ir.expect(der::kOid);
    auto value = ir.next();
    if (!oid || !value || !ir.empty()) return bad("malformed TCB entry");
    size_t n = 0;
    auto arcs = sgx_arcs(*oid, n);
    if (!arcs || n != 2 || (*arcs)[0] != 2 || (*arcs)[1] < 1 || (*arcs)[1] > 18) {
      return bad("unexpected OID in TCB");
    }
    uint8_t idx = (*arcs)[1];
    uint32_t bit = 1u << (idx - 1);
    if (seen & bit) return bad("duplicate TCB entry");
    seen |= bit;
    if (idx <= 16) {
      auto v = der::to_uint(*value);
      if (!v || value->tag != der::kInteger || *v > 255) return bad("TCB component out of range");
      out.cpu_svn_components[idx - 1] = static_cast<uint8_t>(*v);
    } else if (idx == 17) {
      auto v = der::to_uint(*value);
      if (!v || value->tag != der::kInteger || *v > 0xffff) return bad("PCESVN out of range");
      out.pce_svn = static_cast<uint16_t>(*v);
    } else if (!octets(*value, out.cpu_svn)) {
      return bad("CPUSVN is not 16 octets");
    }
  }
  if (seen != (1u << 18) - 1) return bad("TCB is missing entries");
  return ok_status();
}

Status parse_configuration(ByteSpan seq, PckExtensions& out) {
  der::Reader r(seq);
  while (!r.empty()) {
    auto item = r.expect(der::kSequence);
    if (!item) return bad("malformed Configuration entry");
    der::Reader ir(item->value);
    auto oid = ir.expect(der::kOid);
    auto value = ir.next();
    if (!oid || !value || !ir.empty()) return bad("malformed Configuration entry");
    size_t n = 0;
    auto arcs = sgx_arcs(*oid, n);
    if (!arcs || n != 2 || (*arcs)[0] != 7) return bad("unexpected OID in Configuration");
    auto b = boolean(*value);
    if (!b) return bad("Configuration flag is not a BOOLEAN");
    switch ((*arcs)[1]) {
      case 1: out.dynamic_platform = b; break;
      case 2: out.cached_keys = b; break;
      case 3: out.smt_enabled = b; break;
      default: break;  // later additions are ignored
    }
  }
  return ok_status();
}

}  // namespace

Result<PckExtensions> parse_pck_extensions(ByteSpan der_bytes) {
  der::Reader outer(der_bytes);
  auto seq = outer.expect(der::kSequence);
  if (!seq || !outer.empty()) return bad("not a single SEQUENCE");
  PckExtensions out;
  uint32_t seen = 0;
  der::Reader r(seq->value);
  while (!r.empty()) {
    auto item = r.expect(der::kSequence);
    if (!item) return bad("malformed entry");
    der::Reader ir(item->value);
    auto oid = ir.expect(der::kOid);
    auto value = ir.next();
    if (!oid || !value || !ir.empty()) return bad("malformed entry");
    size_t n = 0;
    auto arcs = sgx_arcs(*oid, n);
    if (!arcs || n != 1) return bad("unexpected OID");
    uint8_t id = (*arcs)[0];
    if (id >= 1 && id <= 7) {
      uint32_t bit = 1u << id;
      if (seen & bit) return bad("duplicate entry");
      seen |= bit;
    }
    switch (id) {
      case 1:
        if (!octets(*value, out.ppid)) return bad("PPID is not 16 octets");
        break;
      case 2:
        if (value->tag != der::kSequence) return bad("TCB is not a SEQUENCE");
        RETURN_IF_ERROR(parse_tcb(value->value, out));
        break;
      case 3:
        if (!octets(*value, out.pce_id)) return bad("PCE-ID is not 2 octets");
        break;
      case 4:
        if (!octets(*value, out.fmspc)) return bad("FMSPC is not 6 octets");
        break;
      case 5: {
        auto v = der::to_uint(*value);
        if (!v || value->tag != der::kEnumerated || *v > 2) return bad("unknown SGX Type");
        out.sgx_type = *v;
        break;
      }
      case 6: {
        std::array<uint8_t, 16> id16{};
        if (!octets(*value, id16)) return bad("PlatformInstanceID is not 16 octets");
        out.platform_instance_id = id16;
        break;
      }
      case 7:
        if (value->tag != der::kSequence) return bad("Configuration is not a SEQUENCE");
        RETURN_IF_ERROR(parse_configuration(value->value, out));
        break;
      default:
        break;  // extensions Intel may add later do not change the ones we rely on
    }
  }
  constexpr uint32_t kRequired = (1u << 1) | (1u << 2) | (1u << 3) | (1u << 4) | (1u << 5);
  if ((seen & kRequired) != kRequired) return bad("missing PPID, TCB, PCE-ID, FMSPC or SGX Type");
  return out;
}

}  // namespace custos::attestation::dcap
