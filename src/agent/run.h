// `custos run`: attest, fetch every requested secret, inject them into the environment or into
// files, then execve() the program unchanged (docs/workload.md explains the mechanisms and what
// each one protects against).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "agent/fetch.h"
#include "agent/producer.h"
#include "base/status.h"

namespace custos::agent {

struct SecretSpec {
  enum class Target { kEnv, kFile };
  enum class Source {
    kKey,       // key:ID            -> /kbs/v1 key transfer
    kResource,  // kbs:///repo/type/tag -> /kbs/v0 resource
    kVault,     // vault:PATH#FIELD  -> auth/attest login, then a KV read
  };
  Target target = Target::kEnv;
  std::string name;  // environment variable, or the file's path
  Source source = Source::kKey;
  std::string ref;    // key id, "repo/type/tag", or the API path
  std::string field;  // kVault only
};

// Parses "NAME=key:ID", "NAME=kbs:///repo/type/tag" or "NAME=vault:secret/data/app#field".
// Environment names must be [A-Za-z_][A-Za-z0-9_]*; file paths must be absolute or relative
// paths without "..", and are made absolute against the working directory.
Result<SecretSpec> parse_secret_spec(std::string_view arg, SecretSpec::Target target);

// How --secret-file secrets reach the program.
enum class FileMode {
  kAuto,       // kNamespace when a private mount namespace can be made, else kMemfd
  kNamespace,  // private mount namespace + tmpfs over each file's directory
  kMemfd,      // sealed memfd inherited by the program; PATH is a symlink to /proc/self/fd/N
};
Result<FileMode> parse_file_mode(std::string_view s);

struct RunOptions {
  FetchOptions fetch;        // kbs_addr and TLS settings; producer/ids are filled in per secret
  ProducerConfig producer;   // tee, sim_dir, ...; `program` is set from argv[0]
  std::vector<SecretSpec> secrets;
  FileMode file_mode = FileMode::kAuto;
  std::string vault_role;    // auth/attest role for vault: secrets
  std::string vault_mount = "attest";
  std::vector<std::string> argv;  // PROGRAM ARGS, passed to execve unchanged
};

// Does everything and execs; returns only when something failed before exec (the Status says
// what, with the broker's reason for a refusal).
Status run_with_secrets(const RunOptions& options);

}  // namespace custos::agent
