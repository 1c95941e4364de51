// Output and input helpers the client commands share.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <string>

#include "base/status.h"

namespace custos::cli {

// Vault's two-column "Key / Value" table, keys sorted.
void print_table(const boost::json::object& o);
// Prints the error's message to stderr; returns the exit code 2.
int fail(const Status& st);
// A JSON value as the table shows it: strings bare, null as "n/a", the rest as JSON.
std::string scalar(const boost::json::value& v);
// One line from stdin; on a terminal, after `prompt` on stderr and without echo.
std::string read_stdin_line(const char* prompt);

}  // namespace custos::cli
