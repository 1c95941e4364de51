#include "base/bytes.h"

#include <cstring>

namespace custos {

void secure_wipe(void* p, size_t n) {
  // explicit_bzero is glibc's guaranteed-not-elided wipe. An empty buffer may have no storage
  // (data() of an empty vector is null), which explicit_bzero must not be given.
  if (p == nullptr || n == 0) return;
  explicit_bzero(p, n);
}

bool constant_time_equal(ByteSpan a, ByteSpan b) {
  if (a.size() != b.size()) return false;
  volatile uint8_t acc = 0;
  for (size_t i = 0; i < a.size(); ++i) acc = static_cast<uint8_t>(acc | (a[i] ^ b[i]));
  return acc == 0;
}

}  // namespace custos
