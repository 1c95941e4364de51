// Feeds arbitrary bytes to the server's request parser with the server's kind of limits (small
// ones, so the fuzzer reaches them). Crashes, hangs and sanitizer reports are the findings.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "base/bytes.h"
#include "net/http.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  custos::ByteSpan input(data, size);
  auto parsed = custos::net::parse_request_for_fuzz(input, 4096, 64 * 1024);
  if (parsed.ok()) {
    // A parsed request always has a method and a target, and never a body over the limit.
    if (parsed->method.empty() || parsed->target.empty() || parsed->body.size() > 64 * 1024) {
      std::abort();
    }
  } else {
    int status = custos::net::http_status_for_parse_error(parsed.status());
    if (status != 400 && status != 413 && status != 431) std::abort();
  }
  return 0;
}
