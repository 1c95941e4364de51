// custos: one binary that is the server and its client (like `vault`).
#include "cli/main.h"

int main(int argc, char** argv) { return custos::cli::run_main(argc, argv); }
