#pragma once

namespace custos::cli {

// Entry point of the `custos` binary: dispatches to server or client commands.
int run_main(int argc, char** argv);

}  // namespace custos::cli
