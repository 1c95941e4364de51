// Blocking HttpClient: async Beast operations driven to completion on a private io_context, so
// that one deadline (tcp_stream's expiry) bounds connect, handshake, write and read alike.
#include <openssl/ssl.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/url/parse.hpp>
#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>

#include "net/http.h"
#include "net/internal.h"

namespace custos::net {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using ErrorCode = boost::system::error_code;
using TlsStream = ssl::stream<beast::tcp_stream>;
using Clock = std::chrono::steady_clock;

constexpr std::uint32_t kMaxResponseHeaderBytes = 64 * 1024;
// Generous, but a hostile server still cannot make us buffer without end.
constexpr std::uint64_t kMaxResponseBodyBytes = 256ull * 1024 * 1024;

struct Target {
  bool https = false;
  std::string host;         // for resolving, SNI and verification: no brackets
  std::string port;
  std::string host_header;  // as in the URL, with port when one was given
  std::string target;       // path and query
  std::string key() const { return (https ? "https://" : "http://") + host + ":" + port; }
};

Result<Target> parse_url(std::string_view url) {
  auto parsed = boost::urls::parse_uri(url);
  if (!parsed) return invalid_argument("malformed URL");
  Target t;
  std::string scheme(parsed->scheme());
  for (char& c : scheme) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  if (scheme == "https") {
    t.https = true;
  } else if (scheme != "http") {
    return invalid_argument("unsupported URL scheme \"" + scheme + "\"");
  }
  t.host = parsed->host_address();
  if (t.host.empty()) return invalid_argument("URL has no host");
  t.port = parsed->has_port() ? std::string(parsed->port()) : (t.https ? "443" : "80");
  if (t.port.empty()) t.port = t.https ? "443" : "80";
  t.host_header = std::string(parsed->encoded_host_and_port());
  t.target = std::string(parsed->encoded_target());
  if (t.target.empty()) t.target = "/";
  return t;
}

bool is_ip_address(const std::string& host) {
  ErrorCode ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

bool header_is_safe(const Header& h) {
  if (h.name.empty()) return false;
  for (char c : h.name) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || c == ':') return false;
  }
  for (char c : h.value) {
    auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) return false;
  }
  return true;
}

}  // namespace

struct HttpClient::Impl {
  explicit Impl(ClientOptions o) : options(std::move(o)) {}

  ClientOptions options;
  asio::io_context ioc{1};
  std::unique_ptr<ssl::context> tls_ctx;
  std::unique_ptr<beast::tcp_stream> plain;
  std::unique_ptr<TlsStream> tls;
  std::string connected_key;
  beast::flat_buffer buffer;

  void run_io() {
    ioc.restart();
    ioc.run();
  }

  beast::tcp_stream& tcp_layer() { return tls ? tls->next_layer() : *plain; }

  void disconnect() {
    if (plain || tls) {
      ErrorCode ignored;
      tcp_layer().socket().close(ignored);
    }
    tls.reset();
    plain.reset();
    connected_key.clear();
    buffer.clear();
    // Drop handlers of whatever the close cancelled.
    run_io();
  }

  Status ensure_tls_context() {
    if (tls_ctx) return ok_status();
    auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
    if (SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION) != 1) {
      return internal_error("configuring TLS minimum version");
    }
    ErrorCode ec;
    if (!options.ca_file.empty()) {
      ctx->load_verify_file(options.ca_file, ec);
      if (ec) return invalid_argument("loading CA file: " + ec.message());
    } else {
      ctx->set_default_verify_paths(ec);
      if (ec) return internal_error("loading system CA roots: " + ec.message());
    }
    if (!options.client_cert_file.empty()) {
      ctx->use_certificate_chain_file(options.client_cert_file, ec);
      if (ec) return invalid_argument("loading client certificate: " + ec.message());
      ctx->use_private_key_file(
          options.client_key_file.empty() ? options.client_cert_file : options.client_key_file,
          ssl::context::pem, ec);
      if (ec) return invalid_argument("loading client key: " + ec.message());
    }
    tls_ctx = std::move(ctx);
    return ok_status();
  }

  Status connect(const Target& t, Clock::time_point deadline) {
    disconnect();
    if (t.https) RETURN_IF_ERROR(ensure_tls_context());

    tcp::resolver resolver(ioc);
    tcp::resolver::results_type endpoints;
    ErrorCode ec = asio::error::would_block;
    asio::steady_timer timer(ioc);
    timer.expires_at(deadline);
    timer.async_wait([&resolver](ErrorCode e) {
      if (!e) resolver.cancel();
    });
    resolver.async_resolve(t.host, t.port,
                           [&](ErrorCode e, tcp::resolver::results_type r) {
                             ec = e;
                             endpoints = std::move(r);
                             timer.cancel();
                           });
    run_io();
    if (ec) return unavailable("resolving " + t.host + ": " + ec.message());

    auto stream = std::make_unique<beast::tcp_stream>(ioc);
    stream->expires_at(deadline);
    ec = asio::error::would_block;
    stream->async_connect(endpoints, [&ec](ErrorCode e, const tcp::endpoint&) { ec = e; });
    run_io();
    if (ec) return unavailable("connecting to " + t.host + ":" + t.port + ": " + ec.message());
    ErrorCode ignored;
    stream->socket().set_option(tcp::no_delay(true), ignored);

    if (!t.https) {
      plain = std::move(stream);
      connected_key = t.key();
      return ok_status();
    }
    auto s = std::make_unique<TlsStream>(std::move(*stream), *tls_ctx);
    if (!is_ip_address(t.host) &&
        SSL_set_tlsext_host_name(s->native_handle(), t.host.c_str()) != 1) {
      return internal_error("setting TLS server name");
    }
    if (options.insecure_skip_verify) {
      s->set_verify_mode(ssl::verify_none);
    } else {
      s->set_verify_mode(ssl::verify_peer);
      s->set_verify_callback(ssl::host_name_verification(t.host));
    }
    ec = asio::error::would_block;
    s->async_handshake(ssl::stream_base::client, [&ec](ErrorCode e) { ec = e; });
    run_io();
    if (ec) {
      tls = std::move(s);
      disconnect();
      return unavailable("TLS handshake with " + t.host + ": " + ec.message());
    }
    tls = std::move(s);
    connected_key = t.key();
    return ok_status();
  }

  struct Exchange {
    ErrorCode ec;
    bool write_failed = false;
    bool got_some = false;  // any response byte arrived
  };

  template <class Stream>
  Exchange exchange(Stream& stream, bhttp::request<bhttp::string_body>& req,
                    bhttp::response_parser<bhttp::string_body>& parser) {
    Exchange x;
    x.ec = asio::error::would_block;
    bhttp::async_write(stream, req, [&x](ErrorCode e, size_t) { x.ec = e; });
    run_io();
    if (x.ec) {
      x.write_failed = true;
      return x;
    }
    x.ec = asio::error::would_block;
    bhttp::async_read(stream, buffer, parser, [&x](ErrorCode e, size_t) { x.ec = e; });
    run_io();
    x.got_some = parser.got_some();
    return x;
  }

  Result<HttpResponse> request(std::string_view method, std::string_view url,
                               const std::vector<Header>& headers, std::string_view body) {
    ASSIGN_OR_RETURN(Target t, parse_url(url));
    if (method.empty()) return invalid_argument("empty HTTP method");
    for (char c : method) {
      auto u = static_cast<unsigned char>(c);
      if (u <= 0x20 || u >= 0x7f) return invalid_argument("malformed HTTP method");
    }
    auto deadline = Clock::now() + options.timeout;

    bhttp::request<bhttp::string_body> req;
    req.version(11);
    bhttp::verb verb = bhttp::string_to_verb(method);
    if (verb == bhttp::verb::unknown) {
      req.method_string(method);
    } else {
      req.method(verb);
    }
    req.target(t.target);
    req.set(bhttp::field::host, t.host_header);
    req.set(bhttp::field::user_agent, "custos");
    for (const Header& h : headers) {
      if (!header_is_safe(h)) return invalid_argument("malformed header");
      if (iequals_ascii(h.name, "content-length") || iequals_ascii(h.name, "transfer-encoding")) {
        continue;  // framing is ours
      }
      if (iequals_ascii(h.name, "host") || iequals_ascii(h.name, "user-agent")) {
        req.set(h.name, h.value);
      } else {
        req.insert(h.name, h.value);
      }
    }
    req.body().assign(body.data(), body.size());
    req.prepare_payload();
    bool head = verb == bhttp::verb::head;

    for (int attempt = 0;; ++attempt) {
      bool reused = connected_key == t.key();
      if (!reused) RETURN_IF_ERROR(connect(t, deadline));
      tcp_layer().expires_at(deadline);

      bhttp::response_parser<bhttp::string_body> parser;
      parser.header_limit(kMaxResponseHeaderBytes);
      parser.body_limit(kMaxResponseBodyBytes);
      if (head) parser.skip(true);

      Exchange x = tls ? exchange(*tls, req, parser) : exchange(*plain, req, parser);
      if (x.ec) {
        disconnect();
        // A kept-alive connection the server closed while idle fails before any response
        // byte; that, and only that, is worth one fresh attempt.
        if (reused && attempt == 0 && !x.got_some && x.ec != beast::error::timeout) continue;
        if (x.ec == beast::error::timeout) {
          return Status(Code::kDeadlineExceeded, "HTTP request to " + t.host + " timed out");
        }
        return unavailable(std::string(x.write_failed ? "sending" : "reading") +
                           " HTTP request: " + x.ec.message());
      }
      auto& msg = parser.get();
      HttpResponse out;
      out.status = static_cast<int>(msg.result_int());
      for (const auto& f : msg) {
        out.headers.push_back({std::string(f.name_string()), std::string(f.value())});
      }
      out.body = std::move(msg.body());
      if (!msg.keep_alive()) disconnect();
      return out;
    }
  }
};

HttpClient::HttpClient(ClientOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

HttpClient::~HttpClient() = default;

Result<HttpResponse> HttpClient::request(std::string_view method, std::string_view url,
                                         const std::vector<Header>& headers,
                                         std::string_view body) {
  try {
    return impl_->request(method, url, headers, body);
  } catch (const std::exception& e) {
    try {
      impl_->disconnect();
    } catch (...) {
      // Nothing more to release; the next request reconnects.
    }
    return internal_error(std::string("HTTP client: ") + e.what());
  }
}

}  // namespace custos::net
