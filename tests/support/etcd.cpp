#include "support/etcd.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>
#include <vector>

#include "support/ports.h"

namespace custos::testing {
namespace {

bool answers(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  close(fd);
  return ok;
}

}  // namespace

std::unique_ptr<EtcdServer> EtcdServer::start(std::string& error) {
  const char* bin = "/usr/bin/etcd";
  if (!std::filesystem::exists(bin)) {
    error = "etcd is not installed (Debian package etcd-server; scripts/install-deps)";
    return nullptr;
  }
  std::string tmpl = "/tmp/custos-etcd-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) {
    error = "mkdtemp failed";
    return nullptr;
  }
  std::unique_ptr<EtcdServer> s(new EtcdServer());
  s->dir_ = buf.data();
  for (int attempt = 0; attempt < 3; ++attempt) {
    int client = free_tcp_port(), peer = free_tcp_port();
    if (client == 0 || peer == 0 || client == peer) continue;
    std::string c = "http://127.0.0.1:" + std::to_string(client);
    std::string p = "http://127.0.0.1:" + std::to_string(peer);
    std::vector<std::string> args = {
        bin, "--name=t", "--data-dir=" + s->dir_ + "/data", "--listen-client-urls=" + c,
        "--advertise-client-urls=" + c, "--listen-peer-urls=" + p,
        "--initial-advertise-peer-urls=" + p, "--initial-cluster=t=" + p,
        // Values up to Custos's 32 MiB body limit, base64-encoded.
        "--max-request-bytes=50331648", "--log-level=error"};
    pid_t pid = fork();
    if (pid < 0) break;
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      int log = open((s->dir_ + "/etcd.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      if (log >= 0) {
        dup2(log, 1);
        dup2(log, 2);
      }
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(bin, argv.data());
      _exit(127);
    }
    s->pid_ = pid;
    for (int i = 0; i < 200; ++i) {  // up to 10 s
      if (answers(client)) {
        s->url_ = c;
        return s;
      }
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid) {
        s->pid_ = -1;
        break;  // exited (a port taken in between): try new ports
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (s->pid_ > 0) {
      kill(s->pid_, SIGKILL);
      waitpid(s->pid_, nullptr, 0);
      s->pid_ = -1;
    }
    std::filesystem::remove_all(s->dir_ + "/data");
  }
  error = "etcd did not start (log in " + s->dir_ + "/etcd.log)";
  return nullptr;
}

EtcdServer::~EtcdServer() {
  if (pid_ > 0) {
    kill(pid_, SIGCONT);
    kill(pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

void EtcdServer::freeze() {
  kill(pid_, SIGSTOP);
}
void EtcdServer::thaw() {
  kill(pid_, SIGCONT);
}

}  // namespace custos::testing
