// Helpers shared by the net tests: a raw socket for misbehaving clients, an echo handler.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>

#include "net/http.h"

namespace custos::net::testing {

using namespace std::chrono_literals;

// A raw TCP connection to 127.0.0.1 for sending what no well-behaved client would.
class RawConn {
 public:
  explicit RawConn(uint16_t port, std::chrono::milliseconds recv_timeout = 5000ms) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(recv_timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((recv_timeout.count() % 1000) * 1000);
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawConn() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawConn(const RawConn&) = delete;
  RawConn& operator=(const RawConn&) = delete;

  bool connected() const { return connected_; }
  bool send_all(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  // Reads one response (headers plus a Content-Length body), or what arrives before the peer
  // closes or the timeout hits.
  std::string read_response() {
    std::string out;
    char buf[4096];
    for (;;) {
      auto end = out.find("\r\n\r\n");
      if (end != std::string::npos) {
        auto cl = out.find("Content-Length: ");
        size_t len = 0;
        if (cl != std::string::npos && cl < end) len = std::stoul(out.substr(cl + 16));
        if (out.size() >= end + 4 + len) return out;
      }
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return out;
      out.append(buf, static_cast<size_t>(n));
    }
  }
  // True when the server closed the connection (recv returns 0) before the timeout.
  bool wait_closed() {
    char buf[256];
    for (int i = 0; i < 1000; ++i) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
    }
    return false;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

inline int status_of(const std::string& raw) {
  if (raw.size() < 12 || raw.rfind("HTTP/1.", 0) != 0) return 0;
  return std::atoi(raw.c_str() + 9);
}

inline HttpResponse echo(HttpRequest& req) {
  HttpResponse r;
  if (req.target == "/empty") {
    r.status = 204;
    return r;
  }
  if (req.target == "/text") {
    r.headers.push_back({"Content-Type", "text/plain"});
    r.body = "plain";
    return r;
  }
  r.headers.push_back({"X-Method", req.method});
  r.headers.push_back({"X-Target", req.target});
  r.headers.push_back({"X-Remote", req.remote_addr});
  r.headers.push_back({"X-Tls", req.tls ? "1" : "0"});
  r.headers.push_back({"X-Token", std::string(req.header("x-vault-token"))});
  r.body = req.body.empty() ? std::string("{\"ok\":true}") : req.body;
  return r;
}

inline std::string header_of(const HttpResponse& r, std::string_view name) {
  for (const auto& h : r.headers) {
    if (h.name.size() == name.size() &&
        std::equal(h.name.begin(), h.name.end(), name.begin(),
                   [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
      return h.value;
    }
  }
  return {};
}

inline ServerOptions test_options() {
  ServerOptions o;
  o.address = "127.0.0.1";
  o.port = 0;
  o.io_threads = 2;
  o.worker_threads = 8;
  o.max_header_bytes = 4096;
  o.max_body_bytes = 64 * 1024;
  return o;
}

inline std::unique_ptr<HttpServer> start_server(const ServerOptions& o, Handler h = echo) {
  auto s = HttpServer::start(o, std::move(h));
  EXPECT_TRUE(s.ok()) << s.status().to_string();
  if (!s.ok()) return nullptr;
  return std::move(s).value();
}

inline std::string url(uint16_t port, std::string_view path, bool tls = false) {
  return std::string(tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(port) +
         std::string(path);
}

}  // namespace custos::net::testing
