// HttpServer over Boost.Beast. One io_context per I/O thread: a connection lives on exactly one
// of them for its whole life, so that io_context is the connection's strand and its state needs
// no locks. Handlers run on a separate thread pool and hand their response back by posting to
// the connection's io_context.
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/read_size.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "base/log.h"
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
using RequestParser = bhttp::request_parser<bhttp::string_body>;
using TlsStream = ssl::stream<beast::tcp_stream>;

constexpr size_t kReadChunk = 8192;
constexpr size_t kMaxReadChunk = 65536;  // a read while parsing: at most this much at once
// How long a connection we are closing may take to say goodbye (TLS close_notify, or the rest
// of a request we refused): bounded so a silent peer cannot pin the connection.
constexpr std::chrono::seconds kCloseTimeout{2};
constexpr std::chrono::seconds kPacerPeriod{1};  // under every timeout above and in ServerOptions
static_assert(kPacerPeriod < kCloseTimeout);
constexpr size_t kMaxDrainBytes = 1024 * 1024;
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr std::string_view kOverloaded =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    "Content-Length: 41\r\nConnection: close\r\n\r\n{\"errors\":[\"too many open connections\"]}\n";
static_assert(std::string_view("{\"errors\":[\"too many open connections\"]}\n").size() == 41);

// TLS 1.2 suites: forward secret AEADs only. TLS 1.3 keeps OpenSSL's defaults (all AEAD).
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

void configure_parser(RequestParser& parser, size_t max_header_bytes, size_t max_body_bytes) {
  parser.header_limit(static_cast<std::uint32_t>(
      std::min<size_t>(max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
  parser.body_limit(static_cast<std::uint64_t>(max_body_bytes));
}

bool is_parse_error(const ErrorCode& ec) {
  static const auto& category = bhttp::make_error_code(bhttp::error::bad_method).category();
  return ec.category() == category && ec != bhttp::error::end_of_stream &&
         ec != bhttp::error::partial_message && ec != bhttp::error::need_more;
}

Status parse_error_status(const ErrorCode& ec) {
  if (ec == bhttp::error::header_limit) return resource_exhausted(std::string(kHeadersTooLarge));
  if (ec == bhttp::error::body_limit) return resource_exhausted(std::string(kBodyTooLarge));
  return invalid_argument(std::string(kMalformedRequest));
}

// Moves the parsed message into `out`; remote_addr and tls are the connection's and stay.
void fill_request(bhttp::request<bhttp::string_body>& msg, HttpRequest& out) {
  out.method.assign(msg.method_string());
  out.target.assign(msg.target());
  out.headers.clear();
  for (const auto& field : msg) {
    out.headers.push_back({std::string(field.name_string()), std::string(field.value())});
  }
  out.body = std::move(msg.body());
}

bool valid_field_name(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || c == ':') return false;
  }
  return true;
}

bool valid_field_value(std::string_view s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) return false;
  }
  return true;
}

std::string format_endpoint(const tcp::endpoint& ep) {
  std::string addr = ep.address().to_string();
  if (ep.address().is_v6()) addr = "[" + addr + "]";
  return addr + ":" + std::to_string(ep.port());
}

struct ServerCore {
  ServerOptions options;
  Handler handler;
  std::unique_ptr<asio::thread_pool> pool;
  std::atomic<size_t> connections{0};
  std::atomic<bool> stopping{false};

  // Responses whose hold has not released them yet: stop() waits for them, since a release
  // posts into a connection's io_context.
  std::mutex held_mu;
  std::condition_variable held_cv;
  size_t held = 0;  // guarded by held_mu

  void hold_started() {
    std::lock_guard lock(held_mu);
    ++held;
  }
  void hold_released() {
    std::lock_guard lock(held_mu);
    --held;
    held_cv.notify_all();  // under the lock: stop() may destroy us once it sees zero
  }
  bool wait_for_holds(std::chrono::seconds limit) {
    std::unique_lock lock(held_mu);
    return held_cv.wait_for(lock, limit, [&] { return held == 0; });
  }
};

template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

 public:
  Session(ServerCore& core, Stream stream, std::string remote_addr)
      : core_(core), stream_(std::move(stream)) {
    core_.connections.fetch_add(1, std::memory_order_relaxed);
    request_.remote_addr = std::move(remote_addr);
    request_.tls = kTls;
  }
  ~Session() { core_.connections.fetch_sub(1, std::memory_order_relaxed); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  asio::any_io_executor executor() { return stream_.get_executor(); }

  void start() {
    if constexpr (kTls) {
      tcp_layer().expires_after(core_.options.request_timeout);
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](ErrorCode ec) {
                                if (ec) {
                                  // Garbage, truncated or refused handshakes end here quietly.
                                  self->close_now();
                                  return;
                                }
                                self->capture_client_cert();
                                self->wait_for_request();
                              });
    } else {
      wait_for_request();
    }
  }

 private:
  beast::tcp_stream& tcp_layer() {
    if constexpr (kTls) {
      return stream_.next_layer();
    } else {
      return stream_;
    }
  }

  void capture_client_cert() {
    if constexpr (kTls) {
      if (core_.options.tls_config.client_ca_file.empty()) return;
      X509* cert = SSL_get1_peer_certificate(stream_.native_handle());
      if (cert == nullptr) return;
      std::unique_ptr<X509, decltype(&X509_free)> owned(cert, &X509_free);
      int len = i2d_X509(cert, nullptr);
      if (len <= 0) return;
      std::string der(static_cast<size_t>(len), '\0');
      auto* p = reinterpret_cast<unsigned char*>(der.data());
      if (i2d_X509(cert, &p) == len) request_.client_cert_der = std::move(der);
    }
  }

  // Keep-alive phase: wait for the first byte of the next request under the idle timeout; the
  // request timeout starts once something arrives.
  void wait_for_request() {
    if (buffer_.size() > 0) {
      read_header();
      return;
    }
    tcp_layer().expires_after(core_.options.idle_timeout);
    stream_.async_read_some(buffer_.prepare(kReadChunk),
                            [self = this->shared_from_this()](ErrorCode ec, size_t n) {
                              if (ec) {
                                self->close_now();
                                return;
                              }
                              self->buffer_.commit(n);
                              self->read_header();
                            });
  }

  void read_header() {
    parser_.emplace();
    configure_parser(*parser_, core_.options.max_header_bytes, core_.options.max_body_bytes);
    tcp_layer().expires_after(core_.options.request_timeout);
    parse(/*body=*/false);
  }

  // Feeds the parser what the buffer holds and reads from the socket only when it needs more,
  // until the header (then the whole request) is parsed. A request that arrived whole is thus
  // parsed where it was read; Beast's async_read_header and async_read would post their
  // completion even then, one more round through the connection's queue for each.
  void parse(bool body) {
    for (;;) {
      if (body ? parser_->is_done() : parser_->is_header_done()) {
        if (body) {
          dispatch();
        } else {
          on_header(ErrorCode());
        }
        return;
      }
      if (buffer_.size() == 0) break;
      ErrorCode ec;
      size_t used = parser_->put(buffer_.data(), ec);
      buffer_.consume(used);
      if (ec == bhttp::error::need_more) break;
      if (ec) {
        on_read_error(ec);
        return;
      }
      if (used == 0) break;
    }
    stream_.async_read_some(buffer_.prepare(beast::read_size(buffer_, kMaxReadChunk)),
                            [self = this->shared_from_this(), body](ErrorCode ec, size_t n) {
                              if (ec == asio::error::eof) {
                                // As Beast's reads: the peer closed; mid-message that is a partial
                                // message.
                                ec = bhttp::error::end_of_stream;
                                if (self->parser_->got_some()) self->parser_->put_eof(ec);
                                if (!ec) {
                                  self->parse(body);
                                  return;
                                }
                              }
                              if (ec) {
                                self->on_read_error(ec);
                                return;
                              }
                              self->buffer_.commit(n);
                              self->parse(body);
                            });
  }

  void on_header(ErrorCode ec) {
    if (ec) {
      on_read_error(ec);
      return;
    }
    if (parser_->is_done()) {
      dispatch();
      return;
    }
    const auto& msg = parser_->get();
    auto expect = msg[bhttp::field::expect];
    if (!expect.empty() && iequals_ascii(expect, "100-continue") && msg.version() == 11) {
      asio::async_write(stream_, asio::buffer(kContinue.data(), kContinue.size()),
                        [self = this->shared_from_this()](ErrorCode wec, size_t) {
                          if (wec) {
                            self->close_now();
                            return;
                          }
                          self->read_body();
                        });
      return;
    }
    read_body();
  }

  void read_body() {
    parser_->eager(true);  // the body in as few passes as the bytes allow
    parse(/*body=*/true);
  }

  void on_read_error(const ErrorCode& ec) {
    if (!is_parse_error(ec)) {
      close_now();  // timeout, peer gone, TLS failure: nobody to answer
      return;
    }
    Status st = parse_error_status(ec);
    LOG_DEBUG("net", "rejecting request from " << request_.remote_addr << ": " << st.message());
    keep_alive_ = false;
    head_ = false;
    version_ = 11;
    response_ = error_response(http_status_for_parse_error(st), st.message());
    parser_.reset();
    refused_ = true;
    write_response();
  }

  void dispatch() {
    auto& msg = parser_->get();
    keep_alive_ = msg.keep_alive();
    head_ = msg.method() == bhttp::verb::head;
    version_ = msg.version();
    fill_request(msg, request_);
    parser_.reset();
    tcp_layer().expires_never();  // nothing is pending on the socket while the handler runs
    if (core_.options.run_inline && core_.options.run_inline(request_)) {
      response_ = call_handler();
      after_handler(/*on_io_thread=*/true);
      return;
    }
    asio::post(*core_.pool, [self = this->shared_from_this()] { self->run_handler(); });
  }

  HttpResponse call_handler() {
    try {
      return core_.handler(request_);
    } catch (const std::exception& e) {
      LOG_ERROR("net", "handler threw: " << e.what());
      return error_response(500, "internal error");
    } catch (...) {
      LOG_ERROR("net", "handler threw a non-exception");
      return error_response(500, "internal error");
    }
  }

  // Worker thread. The post() into and out of the pool orders every access to request_ and
  // response_ with the connection's own thread.
  void run_handler() {
    response_ = call_handler();
    after_handler(/*on_io_thread=*/false);
  }

  // Sends the handler's response now, or once its hold releases it. Runs on the thread that ran
  // the handler; the response is written on the connection's own thread.
  void after_handler(bool on_io_thread) {
    on_release_ = std::move(response_.on_release);
    response_.on_release = nullptr;
    if (!response_.hold) {
      if (on_io_thread) {
        send_released(ok_status());
      } else {
        asio::post(stream_.get_executor(),
                   [self = this->shared_from_this()] { self->send_released(ok_status()); });
      }
      return;
    }
    std::function<void(Release)> hold = std::move(response_.hold);
    response_.hold = nullptr;
    core_.hold_started();
    // The Release may be copied; every copy shares this slot, and the first call empties it, so
    // that once the count drops (and stop() may destroy the contexts) no copy owns the session.
    struct Slot {
      std::mutex mu;
      std::shared_ptr<Session> session;
    };
    auto slot = std::make_shared<Slot>();
    slot->session = this->shared_from_this();
    hold([slot](Status st) {
      std::shared_ptr<Session> self;
      {
        std::lock_guard lock(slot->mu);
        self = std::move(slot->session);
      }
      if (!self) return;  // released before
      ServerCore& core = self->core_;
      auto executor = self->stream_.get_executor();
      asio::post(executor, [self = std::move(self), st = std::move(st)]() mutable {
        self->send_released(std::move(st));
      });
      core.hold_released();
    });
  }

  // The connection's thread: the response may leave now (HttpResponse::on_release first).
  void send_released(Status st) {
    if (on_release_) {
      st = on_release_(std::move(st));
      on_release_ = nullptr;
    }
    if (!st.ok()) response_ = error_response(500, st.message());
    write_response();
  }

  void build_response() {
    res_.clear();
    res_.version(version_ == 10 ? 10 : 11);
    int status = response_.status;
    if (status < 100 || status > 999) status = 500;
    res_.result(static_cast<unsigned>(status));
    bool has_content_type = false;
    for (const Header& h : response_.headers) {
      // Framing headers are ours; anything that could split the response is dropped.
      if (!valid_field_name(h.name) || !valid_field_value(h.value)) continue;
      if (iequals_ascii(h.name, "content-length") || iequals_ascii(h.name, "transfer-encoding") ||
          iequals_ascii(h.name, "connection")) {
        continue;
      }
      if (iequals_ascii(h.name, "content-type")) has_content_type = true;
      res_.insert(h.name, h.value);
    }
    bool bodiless = status < 200 || status == 204 || status == 304;
    res_.keep_alive(keep_alive_ && !core_.stopping.load(std::memory_order_relaxed));
    if (bodiless) {
      res_.body().clear();
      return;
    }
    if (!response_.body.empty() && !has_content_type) {
      res_.set(bhttp::field::content_type, "application/json");
    }
    res_.body() = std::move(response_.body);
    res_.content_length(res_.body().size());
    if (head_) res_.body().clear();
  }

  void write_response() {
    try {
      build_response();
    } catch (const std::exception& e) {
      LOG_ERROR("net", "building response: " << e.what());
      close_now();
      return;
    }
    response_ = HttpResponse{};
    tcp_layer().expires_after(core_.options.request_timeout);
    bhttp::async_write(stream_, res_, [self = this->shared_from_this()](ErrorCode ec, size_t) {
      self->on_written(ec);
    });
  }

  void on_written(const ErrorCode& ec) {
    if (ec) {
      close_now();
      return;
    }
    if (refused_) {
      close_after_refusal();
      return;
    }
    if (!res_.keep_alive()) {
      close_gracefully();
      return;
    }
    res_.body().clear();
    wait_for_request();
  }

  // After refusing a request the client may still be sending (a body we said is too large).
  // Closing with unread data would reset the connection and could destroy our answer before
  // the client reads it, so stop sending, read and discard for a bounded time, then close.
  void close_after_refusal() {
    if constexpr (kTls) {
      close_gracefully();
    } else {
      ErrorCode ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
      stream_.expires_after(kCloseTimeout);
      buffer_.clear();
      drain();
    }
  }

  void drain() {
    stream_.async_read_some(buffer_.prepare(kReadChunk),
                            [self = this->shared_from_this()](ErrorCode ec, size_t n) {
                              self->drained_ += n;
                              if (ec || self->drained_ > kMaxDrainBytes) {
                                self->close_now();
                                return;
                              }
                              self->drain();
                            });
  }

  void close_gracefully() {
    if constexpr (kTls) {
      tcp_layer().expires_after(kCloseTimeout);
      stream_.async_shutdown([self = this->shared_from_this()](ErrorCode) { self->close_now(); });
    } else {
      ErrorCode ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
      close_now();
    }
  }

  void close_now() {
    tcp_layer().close();
  }

  ServerCore& core_;
  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<RequestParser> parser_;
  HttpRequest request_;
  HttpResponse response_;
  std::function<Status(Status)> on_release_;  // the held response's HttpResponse::on_release
  bhttp::response<bhttp::string_body> res_;
  unsigned version_ = 11;
  bool keep_alive_ = false;
  bool head_ = false;
  bool refused_ = false;
  size_t drained_ = 0;
};

Result<std::unique_ptr<ssl::context>> make_server_tls(const TlsServerConfig& config) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
  SSL_CTX* native = ctx->native_handle();
  int min_version = 0;
  if (config.min_version == "tls12" || config.min_version.empty()) {
    min_version = TLS1_2_VERSION;
  } else if (config.min_version == "tls13") {
    min_version = TLS1_3_VERSION;
  } else {
    return invalid_argument("unsupported TLS minimum version \"" + config.min_version + "\"");
  }
  if (SSL_CTX_set_min_proto_version(native, min_version) != 1 ||
      SSL_CTX_set_cipher_list(native, kTls12Ciphers) != 1) {
    return internal_error("configuring TLS protocol versions and ciphers");
  }
  SSL_CTX_set_options(native, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                  SSL_OP_CIPHER_SERVER_PREFERENCE);
  ErrorCode ec;
  ctx->use_certificate_chain_file(config.cert_file, ec);
  if (ec) return invalid_argument("loading TLS certificate chain: " + ec.message());
  ctx->use_private_key_file(config.key_file, ssl::context::pem, ec);
  if (ec) return invalid_argument("loading TLS private key: " + ec.message());
  if (SSL_CTX_check_private_key(native) != 1) {
    return invalid_argument("TLS private key does not match the certificate");
  }
  if (!config.client_ca_file.empty()) {
    ctx->load_verify_file(config.client_ca_file, ec);
    if (ec) return invalid_argument("loading TLS client CA file: " + ec.message());
    // Advertise which CAs we accept so clients with several certificates pick the right one.
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(config.client_ca_file.c_str());
    if (names != nullptr) SSL_CTX_set_client_CA_list(native, names);  // takes ownership
    ssl::verify_mode mode = ssl::verify_peer;
    if (config.require_client_cert) mode |= ssl::verify_fail_if_no_peer_cert;
    ctx->set_verify_mode(mode, ec);
    if (ec) return internal_error("setting TLS verify mode: " + ec.message());
    // Session resumption with client verification needs a context id, or OpenSSL refuses it.
    static constexpr unsigned char kSessionContext[] = "custos";
    SSL_CTX_set_session_id_context(native, kSessionContext, sizeof kSessionContext - 1);
  }
  return ctx;
}

class ServerImpl final : public HttpServer {
 public:
  ServerImpl(const ServerOptions& options, Handler handler) {
    core_.options = options;
    core_.handler = std::move(handler);
  }
  ~ServerImpl() override { stop(); }
  ServerImpl(const ServerImpl&) = delete;
  ServerImpl& operator=(const ServerImpl&) = delete;

  Status init() {
    const ServerOptions& o = core_.options;
    if (o.tls) {
      ASSIGN_OR_RETURN(ssl_ctx_, make_server_tls(o.tls_config));
    }
    ErrorCode ec;
    std::string host = o.address == "localhost" ? "127.0.0.1" : o.address;
    auto address = asio::ip::make_address(host, ec);
    if (ec) return invalid_argument("listen address \"" + o.address + "\" is not an IP address");

    int io_threads = o.io_threads;
    if (io_threads <= 0) io_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    for (int i = 0; i < io_threads; ++i) {
      contexts_.push_back(std::make_unique<asio::io_context>(1));
      guards_.emplace_back(contexts_.back()->get_executor());
    }

    acceptor_ = std::make_unique<tcp::acceptor>(*contexts_[0]);
    tcp::endpoint endpoint(address, o.port);
    acceptor_->open(endpoint.protocol(), ec);
    if (!ec) acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_->bind(endpoint, ec);
    if (!ec) acceptor_->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return unavailable("listening on " + format_endpoint(endpoint) + ": " + ec.message());
    }
    port_ = acceptor_->local_endpoint(ec).port();

    core_.pool = std::make_unique<asio::thread_pool>(
        static_cast<size_t>(std::max(1, o.worker_threads)));
    accept_timer_ = std::make_unique<asio::steady_timer>(*contexts_[0]);
    asio::post(*contexts_[0], [this] { do_accept(); });
    for (auto& ctx : contexts_) {
      pacers_.push_back(std::make_unique<asio::steady_timer>(*ctx));
      asio::steady_timer* pacer = pacers_.back().get();
      asio::post(*ctx, [pacer] { pace(*pacer); });
    }
    for (auto& ctx : contexts_) {
      asio::io_context* raw = ctx.get();
      threads_.emplace_back([raw] { run_io(*raw); });
    }
    return ok_status();
  }

  uint16_t port() const override { return port_; }

  void stop() override {
    if (stopped_.exchange(true)) return;
    core_.stopping = true;
    for (auto& ctx : contexts_) ctx->stop();
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
    threads_.clear();
    // Handlers may be blocked (a slow write); wait for them. Their responses are posted into
    // stopped contexts and dropped below.
    if (core_.pool) core_.pool->join();
    // Held responses are released by their holder (a storage fsync) and post into the
    // contexts, which must outlive that. Should one never come, leaking the contexts is safer
    // than destroying what a late release would use.
    if (!core_.wait_for_holds(std::chrono::seconds(30))) {
      LOG_ERROR("net", "responses still held after 30 s at shutdown; leaving their connections");
      for (auto& ctx : contexts_) (void)ctx.release();
      contexts_.clear();
    }
    accept_timer_.reset();
    pacers_.clear();
    acceptor_.reset();
    guards_.clear();
    // Destroying a context destroys its pending handlers, and with them every session and
    // socket. The acceptor's context goes first: a cancelled accept may still hold a socket
    // that belongs to another context. ssl_ctx_ outlives them all.
    if (!contexts_.empty()) contexts_.front().reset();
    contexts_.clear();
    core_.pool.reset();
  }

 private:
  // One timer per I/O thread that always expires before any connection's deadline: its period
  // is shorter than every timeout (idle, request, close). Asio reprograms its timerfd only when
  // a newly armed timer is the earliest in the queue; with this one in front, the deadlines
  // each request arms (one for the read, one for the write) never are, and cost no
  // timerfd_settime. A timeout shorter than the period works as before, with the syscall.
  static void pace(asio::steady_timer& pacer) {
    pacer.expires_after(kPacerPeriod);
    pacer.async_wait([&pacer](ErrorCode ec) {
      if (!ec) pace(pacer);
    });
  }

  static void run_io(asio::io_context& ctx) {
    for (;;) {
      try {
        ctx.run();
        return;
      } catch (const std::exception& e) {
        LOG_ERROR("net", "I/O thread caught: " << e.what());
      } catch (...) {
        LOG_ERROR("net", "I/O thread caught a non-exception");
      }
    }
  }

  void do_accept() {
    asio::io_context& target = *contexts_[next_context_++ % contexts_.size()];
    acceptor_->async_accept(target, [this](ErrorCode ec, tcp::socket socket) {
      on_accept(ec, std::move(socket));
    });
  }

  void on_accept(const ErrorCode& ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_->is_open()) return;
    if (ec) {
      // Typically out of file descriptors: back off instead of spinning on the error.
      LOG_WARN("net", "accept failed: " << ec.message());
      accept_timer_->expires_after(std::chrono::milliseconds(50));
      accept_timer_->async_wait([this](ErrorCode) { do_accept(); });
      return;
    }
    try {
      start_session(std::move(socket));
    } catch (const std::exception& e) {
      LOG_ERROR("net", "starting connection: " << e.what());
    }
    do_accept();
  }

  void start_session(tcp::socket socket) {
    if (core_.connections.load(std::memory_order_relaxed) >= core_.options.max_connections) {
      reject(std::move(socket));
      return;
    }
    ErrorCode ec;
    socket.set_option(tcp::no_delay(true), ec);
    auto remote = socket.remote_endpoint(ec);
    if (ec) return;  // already gone
    std::string remote_addr = format_endpoint(remote);
    if (ssl_ctx_) {
      auto session = std::make_shared<Session<TlsStream>>(
          core_, TlsStream(beast::tcp_stream(std::move(socket)), *ssl_ctx_),
          std::move(remote_addr));
      asio::dispatch(session->executor(), [session] { session->start(); });
    } else {
      auto session = std::make_shared<Session<beast::tcp_stream>>(
          core_, beast::tcp_stream(std::move(socket)), std::move(remote_addr));
      asio::dispatch(session->executor(), [session] { session->start(); });
    }
  }

  // Over the connection cap: plain connections get a canned 503, TLS ones are closed (a
  // handshake would cost what the cap is there to save).
  void reject(tcp::socket socket) {
    if (ssl_ctx_) {
      ErrorCode ignored;
      socket.close(ignored);
      return;
    }
    auto owned = std::make_shared<tcp::socket>(std::move(socket));
    asio::async_write(*owned, asio::buffer(kOverloaded.data(), kOverloaded.size()),
                      [owned](ErrorCode, size_t) {
                        ErrorCode ignored;
                        owned->shutdown(tcp::socket::shutdown_both, ignored);
                        owned->close(ignored);
                      });
  }

  ServerCore core_;
  std::unique_ptr<ssl::context> ssl_ctx_;
  std::vector<std::unique_ptr<asio::io_context>> contexts_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards_;
  std::unique_ptr<tcp::acceptor> acceptor_;
  std::unique_ptr<asio::steady_timer> accept_timer_;
  std::vector<std::unique_ptr<asio::steady_timer>> pacers_;  // one per context, see pace()
  std::vector<std::thread> threads_;
  size_t next_context_ = 0;
  uint16_t port_ = 0;
  std::atomic<bool> stopped_{false};
};

}  // namespace

Result<std::unique_ptr<HttpServer>> HttpServer::start(const ServerOptions& options,
                                                      Handler handler) {
  if (!handler) return invalid_argument("HttpServer needs a handler");
  try {
    auto server = std::make_unique<ServerImpl>(options, std::move(handler));
    Status st = server->init();
    if (!st.ok()) return st;
    return std::unique_ptr<HttpServer>(std::move(server));
  } catch (const std::exception& e) {
    return internal_error(std::string("starting HTTP server: ") + e.what());
  }
}

Result<HttpRequest> parse_request_for_fuzz(ByteSpan data, size_t max_header_bytes,
                                           size_t max_body_bytes) {
  try {
    RequestParser parser;
    configure_parser(parser, max_header_bytes, max_body_bytes);
    size_t used = 0;
    while (!parser.is_done()) {
      if (used >= data.size()) return failed_precondition("incomplete request");
      ErrorCode ec;
      size_t n = parser.put(asio::const_buffer(data.data() + used, data.size() - used), ec);
      used += n;
      if (ec == bhttp::error::need_more) {
        // Beast wants the whole header in one buffer; here all input already is, so more
        // input is what is missing.
        if (n == 0) return failed_precondition("incomplete request");
        continue;
      }
      if (ec) return parse_error_status(ec);
      if (n == 0 && !parser.is_done()) return failed_precondition("incomplete request");
    }
    HttpRequest out;
    auto msg = parser.release();
    fill_request(msg, out);
    return out;
  } catch (const std::exception& e) {
    return internal_error(std::string("parser threw: ") + e.what());
  }
}

}  // namespace custos::net
