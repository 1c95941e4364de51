// The one-client durable floor for scripts/bench: an HTTP/1.1 keep-alive server that does
// nothing but answer each request once it has written three WAL-sized frames (4,120 bytes each,
// at a moving offset in a preallocated file, as a SQLite commit of a KV v2 write does) and
// fdatasync-ed them. No routing, storage engine, crypto or JSON: what any one-client durable
// write over HTTP costs on this machine. One connection at a time, blocking calls, 127.0.0.1.
//
// Usage: durable_floor PORT FILE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace {

constexpr off_t kFrames = 3 * 4120;
constexpr off_t kFileSize = 4 << 20;

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// The length of the first complete request in `buf` (headers and Content-Length body), or 0.
size_t complete_request(std::string_view buf) {
  const size_t end = buf.find("\r\n\r\n");
  if (end == std::string_view::npos) return 0;
  size_t body = 0;
  std::string_view head = buf.substr(0, end);
  for (size_t pos = 0; pos < head.size();) {
    size_t eol = head.find("\r\n", pos);
    if (eol == std::string_view::npos) eol = head.size();
    std::string_view line = head.substr(pos, eol - pos);
    if (line.size() > 15 && strncasecmp(line.data(), "content-length:", 15) == 0) {
      body = std::strtoul(std::string(line.substr(15)).c_str(), nullptr, 10);
    }
    pos = eol + 2;
  }
  const size_t total = end + 4 + body;
  return buf.size() >= total ? total : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: durable_floor PORT FILE\n");
    return 2;
  }
  const int file = ::open(argv[2], O_RDWR | O_CREAT, 0600);
  if (file < 0 || ::ftruncate(file, kFileSize) != 0 || ::fsync(file) != 0) {
    std::perror("durable_floor: file");
    return 1;
  }
  const int srv = ::socket(AF_INET, SOCK_STREAM, 0);
  const int one = 1;
  ::setsockopt(srv, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::atoi(argv[1])));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(srv, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(srv, 8) != 0) {
    std::perror("durable_floor: listen");
    return 1;
  }
  const std::string frames(static_cast<size_t>(kFrames), 'f');
  const std::string body(297, 'x');  // the size of custos's answer to a KV v2 write
  const std::string response =
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
  off_t offset = 0;
  for (;;) {
    const int conn = ::accept(srv, nullptr, nullptr);
    if (conn < 0) continue;
    ::setsockopt(conn, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::string buf;
    char chunk[65536];
    for (bool open = true; open;) {
      ssize_t n = ::recv(conn, chunk, sizeof chunk, 0);
      if (n <= 0) break;
      buf.append(chunk, static_cast<size_t>(n));
      while (size_t len = complete_request(buf)) {
        buf.erase(0, len);
        if (::pwrite(file, frames.data(), frames.size(), offset) !=
                static_cast<ssize_t>(frames.size()) ||
            ::fdatasync(file) != 0) {
          std::perror("durable_floor: write");
          return 1;
        }
        offset = (offset + kFrames) % (kFileSize - kFrames);
        if (!send_all(conn, response)) {
          open = false;
          break;
        }
      }
    }
    ::close(conn);
  }
}
