// A throwaway single-member etcd for tests: /usr/bin/etcd (Debian's etcd-server) on 127.0.0.1
// with free client and peer ports and its data in a temp dir. It dies with the test process
// (PR_SET_PDEATHSIG), so a crashed test leaves no etcd behind. Bash twin:
// tests/integration/etcd.sh.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

namespace custos::testing {

class EtcdServer {
 public:
  // Starts a member and waits until it answers; on failure returns null and sets `error`.
  static std::unique_ptr<EtcdServer> start(std::string& error);
  ~EtcdServer();  // SIGTERM, bounded wait, SIGKILL; removes the data dir
  EtcdServer(const EtcdServer&) = delete;
  EtcdServer& operator=(const EtcdServer&) = delete;

  // "http://127.0.0.1:PORT"
  const std::string& url() const { return url_; }
  // Freezes (SIGSTOP) and thaws (SIGCONT) the member: a partition a test can make on demand.
  void freeze();
  void thaw();

 private:
  EtcdServer() = default;
  std::string dir_;
  std::string url_;
  pid_t pid_ = -1;
};

}  // namespace custos::testing
