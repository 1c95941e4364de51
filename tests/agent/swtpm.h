// A swtpm process for tests: TPM 2.0 on a free 127.0.0.1 port pair, state in a temp dir, stopped
// (by its pid) and removed at destruction, plus a runner for tpm2-tools commands against it.
// Written so tests/attestation/tpm/tpm_swtpm_test.cpp can adopt it (it carries its own copy of
// the same steps today). swtpm missing is a test failure: scripts/install-deps installs it.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>

namespace custos::testing {

class Swtpm {
 public:
  Swtpm() = default;
  ~Swtpm() {
    stop();
    remove_dir();
  }
  Swtpm(const Swtpm&) = delete;
  Swtpm& operator=(const Swtpm&) = delete;

  static bool have_program(const std::string& name) {
    return std::system(("command -v " + name + " >/dev/null 2>&1").c_str()) == 0;
  }

  // Starts swtpm; a gtest failure (and false) if it cannot.
  bool start() {
    char tmpl[] = "/tmp/custos-swtpm-XXXXXX";
    char* d = ::mkdtemp(tmpl);
    if (d == nullptr) {
      ADD_FAILURE() << "mkdtemp failed";
      return false;
    }
    dir_ = d;
    for (int attempt = 0; attempt < 3 && !started_; ++attempt) {
      port_ = free_port_pair();
      if (port_ <= 0) continue;
      std::string cmd =
          "swtpm socket --tpm2 --tpmstate dir=" + dir_ +
          " --server type=tcp,port=" + std::to_string(port_) +
          ",bindaddr=127.0.0.1 --ctrl type=tcp,port=" + std::to_string(port_ + 1) +
          ",bindaddr=127.0.0.1 --flags not-need-init,startup-clear --pid file=" + dir_ +
          "/swtpm.pid --log file=" + dir_ + "/swtpm.log --daemon";
      if (std::system(cmd.c_str()) != 0) continue;
      for (int i = 0; i < 100 && !started_; ++i) {  // up to 5 s for the socket
        if (can_connect(port_)) {
          started_ = true;
        } else {
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
      }
      if (!started_) stop();
    }
    if (!started_) ADD_FAILURE() << "swtpm did not start";
    return started_;
  }

  std::string tcti() const { return "swtpm:host=127.0.0.1,port=" + std::to_string(port_); }
  const std::string& dir() const { return dir_; }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  // Runs a tpm2-tools command line in dir() against this TPM; its stdout, or a gtest failure.
  // Transient objects and sessions are flushed afterwards (swtpm has no resource manager).
  std::string tpm(const std::string& args) {
    std::string cmd = "cd " + dir_ + " && TPM2TOOLS_TCTI=" + tcti() + " timeout 60 " + args +
                      " 2>" + dir_ + "/err.txt";
    std::string out;
    FILE* p = ::popen(cmd.c_str(), "r");
    if (p == nullptr) {
      ADD_FAILURE() << "popen failed";
      return out;
    }
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
    int rc = ::pclose(p);
    if (rc != 0) ADD_FAILURE() << args << " failed (" << rc << "): " << slurp(dir_ + "/err.txt");
    flush();
    return out;
  }

  void flush() {
    std::string base =
        "cd " + dir_ + " && TPM2TOOLS_TCTI=" + tcti() + " timeout 20 tpm2_flushcontext ";
    (void)std::system((base + "-t >/dev/null 2>&1").c_str());
    (void)std::system((base + "-s >/dev/null 2>&1").c_str());
  }

  void stop() {
    if (dir_.empty()) return;
    std::string pid_text = slurp(dir_ + "/swtpm.pid");
    if (pid_text.empty()) return;
    auto pid = static_cast<pid_t>(std::atoi(pid_text.c_str()));
    if (pid <= 1) return;
    ::kill(pid, SIGTERM);
    for (int i = 0; i < 100 && ::kill(pid, 0) == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (::kill(pid, 0) == 0) ::kill(pid, SIGKILL);
    std::error_code ec;
    std::filesystem::remove(dir_ + "/swtpm.pid", ec);
    started_ = false;
  }

  static std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

 private:
  void remove_dir() {
    if (dir_.empty()) return;
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  static bool bind_port(int port) {
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) return false;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    bool ok = ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    ::close(s);
    return ok;
  }

  // A port that was free a moment ago, with port+1 free too (swtpm's control channel).
  static int free_port_pair() {
    for (int attempt = 0; attempt < 20; ++attempt) {
      int s = ::socket(AF_INET, SOCK_STREAM, 0);
      if (s < 0) return -1;
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      socklen_t len = sizeof(a);
      int port = -1;
      if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
          ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
        port = ntohs(a.sin_port);
      }
      ::close(s);
      if (port > 0 && port < 65535 && bind_port(port + 1)) return port;
    }
    return -1;
  }

  static bool can_connect(int port) {
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) return false;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    bool ok = ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    ::close(s);
    return ok;
  }

  std::string dir_;
  int port_ = -1;
  bool started_ = false;
};

}  // namespace custos::testing
