#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "agent/internal.h"
#include "base/cleanup.h"

extern char** environ;  // NOLINT: POSIX

namespace custos::agent::internal {
namespace {

namespace fs = std::filesystem;

Status errno_status(Code code, const std::string& what, int err) {
  return Status(code, what + ": " + std::strerror(err));
}

}  // namespace

Status check_report_data(ByteSpan report_data) {
  if (report_data.size() != kReportDataSize) {
    return invalid_argument("report data must be " + std::to_string(kReportDataSize) +
                            " bytes, got " + std::to_string(report_data.size()));
  }
  return ok_status();
}

Result<Bytes> read_file(const fs::path& path, size_t max) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    return errno_status(err == ENOENT ? Code::kNotFound : Code::kUnavailable,
                        "opening " + path.string(), err);
  }
  Cleanup close_fd([fd] { ::close(fd); });
  Bytes out;
  uint8_t buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_status(Code::kUnavailable, "reading " + path.string(), errno);
    }
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > max) {
      return resource_exhausted(path.string() + " is larger than " + std::to_string(max) +
                                " bytes");
    }
    out.insert(out.end(), buf, buf + n);
  }
  return out;
}

Status write_file(const fs::path& path, ByteSpan data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    int err = errno;
    return errno_status(err == ENOENT ? Code::kNotFound : Code::kUnavailable,
                        "opening " + path.string(), err);
  }
  Cleanup close_fd([fd] { ::close(fd); });
  ssize_t n;
  do {
    n = ::write(fd, data.data(), data.size());
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno_status(Code::kUnavailable, "writing " + path.string(), errno);
  if (static_cast<size_t>(n) != data.size()) {
    return unavailable("short write to " + path.string());
  }
  return ok_status();
}

Result<std::string> read_text(const fs::path& path) {
  ASSIGN_OR_RETURN(Bytes b, read_file(path, 4096));
  std::string s = to_string(b);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r' ||
                        s.back() == '\t' || s.back() == '\0')) {
    s.pop_back();
  }
  return s;
}

Status run_program(const std::vector<std::string>& argv,
                   const std::map<std::string, std::string>& env, const fs::path& work_dir,
                   std::chrono::seconds timeout) {
  if (argv.empty()) return invalid_argument("no program to run");
  // The child's environment: ours, with `env` overriding.
  std::vector<std::string> env_strings;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string entry = *e;
    std::string name = entry.substr(0, entry.find('='));
    if (env.count(name) == 0) env_strings.push_back(std::move(entry));
  }
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argp;
  for (auto& a : args) argp.push_back(a.data());
  argp.push_back(nullptr);

  const std::string out_path = (work_dir / "stdout.txt").string();
  const std::string err_path = (work_dir / "stderr.txt").string();
  posix_spawn_file_actions_t actions;
  if (posix_spawn_file_actions_init(&actions) != 0)
    return internal_error("posix_spawn_file_actions_init");
  Cleanup destroy_actions([&actions] { posix_spawn_file_actions_destroy(&actions); });
  if (posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0) != 0 ||
      posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                       0600) != 0 ||
      posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                       0600) != 0) {
    return internal_error("posix_spawn_file_actions_addopen");
  }
  pid_t pid = -1;
  const bool search_path = argv[0].find('/') == std::string::npos;
  int rc = search_path ? ::posix_spawnp(&pid, argp[0], &actions, nullptr, argp.data(), envp.data())
                       : ::posix_spawn(&pid, argp[0], &actions, nullptr, argp.data(), envp.data());
  if (rc != 0) {
    return errno_status(rc == ENOENT ? Code::kNotFound : Code::kUnavailable, "starting " + argv[0],
                        rc);
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  for (;;) {
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) return errno_status(Code::kInternal, "waitpid", errno);
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);  // our own child, by its pid
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      return Status(Code::kDeadlineExceeded,
                    argv[0] + " did not finish within " + std::to_string(timeout.count()) + " s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return ok_status();
  std::string first_line;
  if (auto err = read_file(err_path, 65536); err.ok()) {
    first_line = to_string(*err);
    first_line = first_line.substr(0, first_line.find('\n'));
    if (first_line.size() > 300) first_line.resize(300);
  }
  std::string how = WIFEXITED(status)
                        ? "exit status " + std::to_string(WEXITSTATUS(status))
                        : "signal " + std::to_string(WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  return unavailable(argv[0] + " failed (" + how + ")" +
                     (first_line.empty() ? "" : ": " + first_line));
}

}  // namespace custos::agent::internal

namespace custos::agent {

std::string self_executable() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

}  // namespace custos::agent
