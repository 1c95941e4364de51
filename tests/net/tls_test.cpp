// TLS server and client. Certificates come from the openssl CLI into a temp dir (P-256,
// self-signed, SAN 127.0.0.1), so the tests need no crypto/ code.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

#include "net/http.h"
#include "net/net_test_util.h"

namespace custos::net {
namespace {

using namespace std::chrono_literals;
using namespace custos::net::testing;
namespace fs = std::filesystem;

bool make_self_signed(const fs::path& dir, const std::string& name, const std::string& cn) {
  std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1"
                    " -subj /CN=" + cn +
                    " -addext subjectAltName=IP:127.0.0.1,DNS:localhost"
                    " -keyout " + (dir / (name + ".key")).string() +
                    " -out " + (dir / (name + ".pem")).string() + " >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string tmpl = (fs::temp_directory_path() / "custos-net-tls-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = new fs::path(tmpl);
    ASSERT_TRUE(make_self_signed(*dir_, "server", "localhost"));
    ASSERT_TRUE(make_self_signed(*dir_, "client", "workload"));
    ASSERT_TRUE(make_self_signed(*dir_, "other", "stranger"));
  }
  static void TearDownTestSuite() {
    if (dir_ != nullptr) {
      std::error_code ec;
      fs::remove_all(*dir_, ec);
      delete dir_;
      dir_ = nullptr;
    }
  }
  static std::string file(const std::string& name) { return (*dir_ / name).string(); }

  ServerOptions tls_options() {
    ServerOptions o = test_options();
    o.tls = true;
    o.tls_config.cert_file = file("server.pem");
    o.tls_config.key_file = file("server.key");
    return o;
  }
  ClientOptions trusting() {
    ClientOptions c;
    c.ca_file = file("server.pem");
    c.timeout = 10s;
    return c;
  }

  static fs::path* dir_;
};
fs::path* TlsTest::dir_ = nullptr;

TEST_F(TlsTest, GetAndPutOverTls) {
  auto server = start_server(tls_options());
  ASSERT_TRUE(server);
  HttpClient client(trusting());
  auto r = client.request("GET", url(server->port(), "/v1/sys/health", true));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(header_of(*r, "x-tls"), "1");
  auto first = header_of(*r, "x-remote");
  auto put = client.request("PUT", url(server->port(), "/v1/a", true), {}, "{\"a\":1}");
  ASSERT_TRUE(put.ok());
  EXPECT_EQ(put->body, "{\"a\":1}");
  EXPECT_EQ(header_of(*put, "x-remote"), first);  // kept alive
  auto list = client.request("LIST", url(server->port(), "/v1/secret/", true));
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(header_of(*list, "x-method"), "LIST");
}

TEST_F(TlsTest, ClientVerifiesTheServer) {
  auto server = start_server(tls_options());
  ASSERT_TRUE(server);
  ClientOptions wrong_ca = trusting();
  wrong_ca.ca_file = file("other.pem");
  HttpClient untrusting(wrong_ca);
  EXPECT_FALSE(untrusting.request("GET", url(server->port(), "/", true)).ok());

  ClientOptions system_roots;
  system_roots.timeout = 10s;
  HttpClient by_default(system_roots);
  EXPECT_FALSE(by_default.request("GET", url(server->port(), "/", true)).ok());

  ClientOptions insecure;
  insecure.insecure_skip_verify = true;
  HttpClient skipping(insecure);
  auto r = skipping.request("GET", url(server->port(), "/", true));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->status, 200);

  // The name in the URL must match the certificate: localhost is in the SAN, 127.0.0.2 not.
  HttpClient by_name(trusting());
  auto named = by_name.request(
      "GET", "https://localhost:" + std::to_string(server->port()) + "/", {});
  EXPECT_TRUE(named.ok()) << named.status().to_string();
}

TEST_F(TlsTest, Tls13Minimum) {
  auto o = tls_options();
  o.tls_config.min_version = "tls13";
  auto server = start_server(o);
  ASSERT_TRUE(server);
  HttpClient client(trusting());
  auto r = client.request("GET", url(server->port(), "/", true));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  o.tls_config.min_version = "ssl3";
  EXPECT_FALSE(HttpServer::start(o, echo).ok());
}

TEST_F(TlsTest, BadCertificateFilesFailToStart) {
  auto o = tls_options();
  o.tls_config.cert_file = file("missing.pem");
  EXPECT_FALSE(HttpServer::start(o, echo).ok());
  o = tls_options();
  o.tls_config.key_file = file("other.key");  // does not match server.pem
  EXPECT_FALSE(HttpServer::start(o, echo).ok());
}

TEST_F(TlsTest, TruncatedAndGarbageHandshakesDoNotDisturbTheServer) {
  auto o = tls_options();
  o.request_timeout = 2s;
  auto server = start_server(o);
  ASSERT_TRUE(server);
  std::mt19937 rng(7);
  for (int i = 0; i < 8; ++i) {
    RawConn c(server->port());
    std::string junk;
    for (int j = 0; j < 5 + i * 7; ++j) junk += static_cast<char>(rng() & 0xff);
    if (i % 2 == 0) junk[0] = 0x16;  // looks like a handshake record, then stops
    c.send_all(junk);
  }  // each closes here, mid-handshake
  {
    RawConn c(server->port());
    c.send_all("GET / HTTP/1.1\r\nHost: x\r\n\r\n");  // plain HTTP to the TLS port
    EXPECT_TRUE(c.wait_closed());
  }
  HttpClient client(trusting());
  auto r = client.request("GET", url(server->port(), "/after", true));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->status, 200);
}

TEST_F(TlsTest, LimitsApplyOverTls) {
  auto server = start_server(tls_options());
  ASSERT_TRUE(server);
  HttpClient client(trusting());
  auto big = client.request("PUT", url(server->port(), "/", true), {},
                            std::string(100 * 1024, 'x'));
  if (big.ok()) {
    EXPECT_EQ(big->status, 413);
  }
  auto hdr = client.request("GET", url(server->port(), "/", true),
                            {{"X-Big", std::string(8000, 'h')}});
  if (hdr.ok()) {
    EXPECT_EQ(hdr->status, 431);
  }
  auto ok = client.request("GET", url(server->port(), "/", true));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->status, 200);
}

TEST_F(TlsTest, ClientCertificates) {
  std::string seen_cert;
  auto o = tls_options();
  o.tls_config.client_ca_file = file("client.pem");
  auto server = start_server(o, [&seen_cert](HttpRequest& req) {
    seen_cert = req.client_cert_der;
    return HttpResponse{};
  });
  ASSERT_TRUE(server);

  ClientOptions with_cert = trusting();
  with_cert.client_cert_file = file("client.pem");
  with_cert.client_key_file = file("client.key");
  HttpClient good(with_cert);
  auto r = good.request("GET", url(server->port(), "/", true));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->status, 200);
  EXPECT_FALSE(seen_cert.empty());

  HttpClient none(trusting());
  EXPECT_FALSE(none.request("GET", url(server->port(), "/", true)).ok());

  ClientOptions stranger = trusting();
  stranger.client_cert_file = file("other.pem");
  stranger.client_key_file = file("other.key");
  HttpClient bad(stranger);
  EXPECT_FALSE(bad.request("GET", url(server->port(), "/", true)).ok());
}

TEST_F(TlsTest, OptionalClientCertificate) {
  auto o = tls_options();
  o.tls_config.client_ca_file = file("client.pem");
  o.tls_config.require_client_cert = false;
  auto server = start_server(o, [](HttpRequest& req) {
    HttpResponse r;
    r.body = req.client_cert_der.empty() ? "none" : "cert";
    return r;
  });
  ASSERT_TRUE(server);
  HttpClient none(trusting());
  auto r = none.request("GET", url(server->port(), "/", true));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->body, "none");
  ClientOptions with_cert = trusting();
  with_cert.client_cert_file = file("client.pem");
  with_cert.client_key_file = file("client.key");
  HttpClient good(with_cert);
  auto c = good.request("GET", url(server->port(), "/", true));
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->body, "cert");
}

}  // namespace
}  // namespace custos::net
