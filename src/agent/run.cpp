#include "agent/run.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <set>


extern char** environ;

namespace custos::agent {
namespace {

namespace fs = std::filesystem;

std::string errno_text(int e) { return std::strerror(e); }

bool valid_env_name(std::string_view n) {
  if (n.empty()) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    char c = n[i];
    bool ok = c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

// The program as execve() will find it: a path with '/' as given, else the first executable
// regular file of that name on PATH.
Result<fs::path> resolve_program(const std::string& name) {
  if (name.empty()) return invalid_argument("run: no program given (custos run [flags] -- PROGRAM ARGS)");
  if (name.find('/') != std::string::npos) {
    std::error_code ec;
    fs::path p = fs::absolute(name, ec).lexically_normal();
    if (ec || access(p.c_str(), X_OK) != 0) return not_found("run: program " + name + " is not executable");
    return p;
  }
  const char* path_env = std::getenv("PATH");
  std::string path = path_env ? path_env : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    if (dir.empty()) dir = ".";
    fs::path candidate = fs::path(dir) / name;
    struct stat st {};
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(candidate.c_str(), X_OK) == 0) {
      std::error_code ec;
      fs::path abs = fs::absolute(candidate, ec);
      return ec ? candidate : abs;
    }
    start = end + 1;
  }
  return not_found("run: program " + name + " not found on PATH");
}

Status write_all(int fd, ByteSpan data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return internal_error("write: " + errno_text(errno));
    }
    off += static_cast<size_t>(n);
  }
  return ok_status();
}

// A private mount namespace in which mounts made here are invisible to the rest of the system.
// As root a plain CLONE_NEWNS; otherwise an unprivileged user namespace mapping our own uid/gid
// onto themselves (the program keeps its identity, and exec drops the namespace capabilities).
Status enter_private_mount_namespace() {
  if (::unshare(CLONE_NEWNS) != 0) {
    uid_t uid = ::geteuid();
    gid_t gid = ::getegid();
    if (::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) {
      return unavailable("run: cannot create a private mount namespace: " + errno_text(errno));
    }
    auto put = [](const char* file, const std::string& text) -> Status {
      int fd = ::open(file, O_WRONLY | O_CLOEXEC);
      if (fd < 0) return unavailable(std::string("run: open ") + file + ": " + errno_text(errno));
      Status st = write_all(fd, as_bytes(text));
      ::close(fd);
      return st;
    };
    RETURN_IF_ERROR(put("/proc/self/setgroups", "deny"));
    RETURN_IF_ERROR(put("/proc/self/uid_map", std::to_string(uid) + " " + std::to_string(uid) + " 1\n"));
    RETURN_IF_ERROR(put("/proc/self/gid_map", std::to_string(gid) + " " + std::to_string(gid) + " 1\n"));
  }
  // Without this, a tmpfs mounted below a shared mount would propagate back to the host.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return unavailable("run: making mounts private: " + errno_text(errno));
  }
  return ok_status();
}

// Creates a missing directory chain (mode 0700). Existing directories are left as they are.
Status make_dirs(const fs::path& dir) {
  std::error_code ec;
  if (fs::is_directory(dir, ec)) return ok_status();
  fs::create_directories(dir, ec);
  if (ec) return unavailable("run: creating " + dir.string() + ": " + ec.message());
  fs::permissions(dir, fs::perms::owner_all, ec);
  return ok_status();
}

// Namespace mode, first half (before any thread exists: unshare(CLONE_NEWUSER) refuses
// multithreaded callers, and the HTTP client's resolver starts one): refuse directories that
// contain the program, create missing ones, enter the private mount namespace.
Status prepare_namespace(const std::set<fs::path>& dirs, const fs::path& program) {
  for (const auto& d : dirs) {
    auto rel = program.lexically_relative(d);
    if (!rel.empty() && rel.native().rfind("..", 0) != 0) {
      return invalid_argument("run: secret directory " + d.string() +
                              " contains the program; it would be hidden by the private tmpfs");
    }
  }
  for (const auto& d : dirs) RETURN_IF_ERROR(make_dirs(d));
  return enter_private_mount_namespace();
}

// Second half: one tmpfs (mode 0700, owner = us) over each distinct parent directory, files
// written 0400. The tmpfs hides whatever else that directory held, for the program only.
Status inject_files_namespace(const std::vector<std::pair<fs::path, const SecretBytes*>>& files,
                              const std::set<fs::path>& dirs) {
  for (const auto& d : dirs) {
    std::string opts = "mode=0700,size=16m,uid=" + std::to_string(::geteuid()) +
                       ",gid=" + std::to_string(::getegid());
    if (::mount("custos-secrets", d.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                opts.c_str()) != 0) {
      return unavailable("run: mounting a private tmpfs on " + d.string() + ": " + errno_text(errno));
    }
  }
  for (const auto& [path, secret] : files) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
    if (fd < 0) return unavailable("run: creating " + path.string() + ": " + errno_text(errno));
    Status st = write_all(fd, secret->span());
    ::close(fd);
    RETURN_IF_ERROR(st);
  }
  return ok_status();
}

std::string env_suffix(const fs::path& p) {
  std::string out;
  for (char c : p.filename().string()) {
    if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
      out += c;
    } else if (c >= 'a' && c <= 'z') {
      out += static_cast<char>(c - 'a' + 'A');
    } else {
      out += '_';
    }
  }
  return out;
}

// Memfd mode: a sealed memfd per secret, kept open across exec at fd >= 100; PATH becomes a
// symlink to /proc/self/fd/N, which resolves to the secret only inside a process holding that fd
// (the program and the children it lets inherit it). CUSTOS_SECRET_FILE_<NAME> names it too.
Status inject_files_memfd(const std::vector<std::pair<fs::path, const SecretBytes*>>& files) {
  for (const auto& [path, secret] : files) {
    int mfd = static_cast<int>(::memfd_create("custos-secret", MFD_ALLOW_SEALING));
    if (mfd < 0) return unavailable("run: memfd_create: " + errno_text(errno));
    Status st = write_all(mfd, secret->span());
    if (st.ok() && ::fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
      st = internal_error("run: sealing memfd: " + errno_text(errno));
    }
    if (st.ok()) (void)::fchmod(mfd, 0400);
    int fd = st.ok() ? ::fcntl(mfd, F_DUPFD, 100) : -1;  // F_DUPFD leaves FD_CLOEXEC clear
    if (st.ok() && fd < 0) st = internal_error("run: dup memfd: " + errno_text(errno));
    ::close(mfd);
    RETURN_IF_ERROR(st);
    std::string target = "/proc/self/fd/" + std::to_string(fd);
    RETURN_IF_ERROR(make_dirs(path.parent_path()));
    struct stat lst {};
    if (::lstat(path.c_str(), &lst) == 0) {
      // Replace only a link a previous `custos run` left; never clobber a real file.
      char buf[64] = {};
      ssize_t n = S_ISLNK(lst.st_mode) ? ::readlink(path.c_str(), buf, sizeof(buf) - 1) : -1;
      if (n < 0 || std::string_view(buf, static_cast<size_t>(n)).rfind("/proc/self/fd/", 0) != 0) {
        return failed_precondition("run: " + path.string() + " exists and is not a custos secret link");
      }
      ::unlink(path.c_str());
    }
    if (::symlink(target.c_str(), path.c_str()) != 0) {
      return unavailable("run: symlink " + path.string() + ": " + errno_text(errno));
    }
    std::string env = "CUSTOS_SECRET_FILE_" + env_suffix(path);
    ::setenv(env.c_str(), target.c_str(), 1);
  }
  return ok_status();
}

bool can_make_namespace() {
  // Probed in a child so the probe leaves this process untouched.
  pid_t pid = ::fork();
  if (pid < 0) return false;
  if (pid == 0) {
    Status st = enter_private_mount_namespace();
    ::_exit(st.ok() ? 0 : 1);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace

Result<SecretSpec> parse_secret_spec(std::string_view arg, SecretSpec::Target target) {
  size_t eq = arg.find('=');
  if (eq == std::string_view::npos || eq == 0) {
    return invalid_argument("secret \"" + std::string(arg) + "\": expected NAME=SOURCE");
  }
  SecretSpec s;
  s.target = target;
  std::string name(arg.substr(0, eq));
  std::string_view src = arg.substr(eq + 1);
  if (target == SecretSpec::Target::kEnv) {
    if (!valid_env_name(name)) return invalid_argument("secret: invalid environment variable name \"" + name + "\"");
    s.name = name;
  } else {
    fs::path p(name);
    for (const auto& part : p) {
      if (part == "..") return invalid_argument("secret-file: path must not contain \"..\": " + name);
    }
    if (p.filename().empty()) return invalid_argument("secret-file: path names a directory: " + name);
    std::error_code ec;
    fs::path abs = fs::absolute(p, ec).lexically_normal();
    if (ec) return invalid_argument("secret-file: " + name + ": " + ec.message());
    s.name = abs.string();
  }
  if (src.rfind("key:", 0) == 0) {
    s.source = SecretSpec::Source::kKey;
    s.ref = std::string(src.substr(4));
  } else if (src.rfind("kbs:///", 0) == 0) {
    s.source = SecretSpec::Source::kResource;
    s.ref = std::string(src.substr(7));
    size_t slashes = 0;
    for (char c : s.ref) slashes += c == '/' ? 1 : 0;
    if (slashes != 2 || s.ref.find("//") != std::string::npos || s.ref.back() == '/') {
      return invalid_argument("secret \"" + name + "\": expected kbs:///repository/type/tag");
    }
  } else if (src.rfind("vault:", 0) == 0) {
    s.source = SecretSpec::Source::kVault;
    std::string_view rest = src.substr(6);
    while (!rest.empty() && rest.front() == '/') rest.remove_prefix(1);
    size_t hash = rest.rfind('#');
    if (hash == std::string_view::npos || hash == 0 || hash + 1 == rest.size()) {
      return invalid_argument("secret \"" + name + "\": expected vault:PATH#FIELD");
    }
    s.ref = std::string(rest.substr(0, hash));
    s.field = std::string(rest.substr(hash + 1));
  } else {
    return invalid_argument("secret \"" + name +
                            "\": source must be key:ID, kbs:///repo/type/tag or vault:PATH#FIELD");
  }
  if (s.ref.empty()) return invalid_argument("secret \"" + name + "\": empty reference");
  return s;
}

Result<FileMode> parse_file_mode(std::string_view s) {
  if (s == "auto") return FileMode::kAuto;
  if (s == "namespace") return FileMode::kNamespace;
  if (s == "memfd") return FileMode::kMemfd;
  return invalid_argument("file mode must be auto, namespace or memfd");
}

Status run_with_secrets(const RunOptions& options) {
  if (options.argv.empty()) return invalid_argument("run: no program given (custos run [flags] -- PROGRAM ARGS)");
  ASSIGN_OR_RETURN(fs::path program, resolve_program(options.argv[0]));

  // File secrets in namespace mode: enter the namespace now, while single-threaded.
  std::set<fs::path> secret_dirs;
  for (const auto& s : options.secrets) {
    if (s.target == SecretSpec::Target::kFile) secret_dirs.insert(fs::path(s.name).parent_path());
  }
  FileMode mode = options.file_mode;
  if (!secret_dirs.empty()) {
    if (mode == FileMode::kAuto) mode = can_make_namespace() ? FileMode::kNamespace : FileMode::kMemfd;
    if (mode == FileMode::kNamespace) RETURN_IF_ERROR(prepare_namespace(secret_dirs, program));
  }

  // The program is what gets measured (sim: MRENCLAVE = SHA-256 of this file).
  ProducerConfig pc = options.producer;
  pc.program = program;
  auto producer = make_producer(pc);
  if (!producer.ok()) return producer.status().with_context("run: evidence producer");

  FetchOptions base = options.fetch;
  base.producer = producer->get();
  net::HttpClient http(net::ClientOptions{options.fetch.insecure_skip_verify, options.fetch.ca_file, "", "", std::chrono::seconds(60)});
  base.http = &http;

  // One ephemeral key for the whole run (each transfer still has its own nonce): RSA-3072
  // generation costs far more than a transfer.
  bool need_v1 = false, need_v0 = false, need_vault = false;
  for (const auto& s : options.secrets) {
    need_v1 |= s.source == SecretSpec::Source::kKey;
    need_v0 |= s.source == SecretSpec::Source::kResource;
    need_vault |= s.source == SecretSpec::Source::kVault;
  }
  std::optional<crypto::PrivateKey> eph;
  if (need_v1 || need_v0) {
    auto k = generate_ephemeral_key(base.key_type);
    if (!k.ok()) return k.status();
    eph = std::move(*k);
    base.ephemeral = &*eph;
  }
  std::optional<KbsV0Session> v0;
  if (need_v0) {
    auto sess = KbsV0Session::open(base);
    if (!sess.ok()) return sess.status().with_context("run: /kbs/v0 attestation");
    v0 = std::move(*sess);
  }
  SecretString vault_token;
  if (need_vault) {
    auto t = attest_login(base, options.vault_role, options.vault_mount);
    if (!t.ok()) return t.status().with_context("run: auth/" + options.vault_mount + " login");
    vault_token = std::move(*t);
  }

  std::vector<SecretBytes> values;
  values.reserve(options.secrets.size());
  for (const auto& s : options.secrets) {
    Result<SecretBytes> v = internal_error("unreachable");
    switch (s.source) {
      case SecretSpec::Source::kKey: {
        FetchOptions fo = base;
        fo.key_id = s.ref;
        v = fetch_key(fo);
        break;
      }
      case SecretSpec::Source::kResource:
        v = v0->get_resource(s.ref);
        break;
      case SecretSpec::Source::kVault:
        v = read_kv_field(base, vault_token, s.ref, s.field);
        break;
    }
    if (!v.ok()) return v.status().with_context("run: secret " + s.name);
    values.push_back(std::move(*v));
  }

  std::vector<std::pair<fs::path, const SecretBytes*>> files;
  std::string env_names, file_names;
  for (size_t i = 0; i < options.secrets.size(); ++i) {
    const auto& s = options.secrets[i];
    if (s.target == SecretSpec::Target::kEnv) {
      if (values[i].view().find('\0') != std::string_view::npos) {
        return invalid_argument("run: secret " + s.name + " holds a NUL byte and cannot be an environment variable; use --secret-file");
      }
      std::string v(values[i].view());
      ::setenv(s.name.c_str(), v.c_str(), 1);
      secure_wipe(v.data(), v.size());
      env_names += (env_names.empty() ? "" : ", ") + s.name;
    } else {
      files.emplace_back(fs::path(s.name), &values[i]);
      file_names += (file_names.empty() ? "" : ", ") + s.name;
    }
  }

  const char* how = "";
  if (!files.empty()) {
    if (mode == FileMode::kNamespace) {
      RETURN_IF_ERROR(inject_files_namespace(files, secret_dirs));
      how = " (private tmpfs in a mount namespace)";
    } else {
      RETURN_IF_ERROR(inject_files_memfd(files));
      how = " (sealed memfd, symlinked)";
    }
  }
  // Names only: values never reach a log or a terminal.
  std::fprintf(stderr, "custos run: attested as %s; injected %zu secret(s): env [%s] files [%s]%s; exec %s\n",
               std::string(attestation::tee_name(producer->get()->tee())).c_str(), values.size(),
               env_names.c_str(), file_names.c_str(), how, program.c_str());
  std::fflush(stderr);
  for (auto& v : values) v.wipe();

  std::vector<char*> argv;
  argv.reserve(options.argv.size() + 1);
  for (const auto& a : options.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  ::execve(program.c_str(), argv.data(), environ);
  return unavailable("run: exec " + program.string() + ": " + errno_text(errno));
}

}  // namespace custos::agent
