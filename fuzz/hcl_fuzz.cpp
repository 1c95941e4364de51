// Fuzzes the HCL parser and the JSON rendering of whatever it accepts.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <boost/json/serialize.hpp>

#include "hcl/hcl.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto body = custos::hcl::parse(text);
  if (body.ok()) {
    std::string json = boost::json::serialize(custos::hcl::to_json(*body));
    (void)json;
  }
  return 0;
}
