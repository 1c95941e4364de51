#include "cli/main.h"

#include <cstdio>

namespace custos::cli {

int run_main(int, char**) {
  std::fputs("custos: not yet wired\n", stderr);
  return 2;
}

}  // namespace custos::cli
