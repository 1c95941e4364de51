#include "net/http.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "net/net_test_util.h"

namespace custos::net {
namespace {

using namespace std::chrono_literals;
using namespace custos::net::testing;

TEST(HttpServer, GetThroughClient) {
  auto server = start_server(test_options());
  ASSERT_TRUE(server);
  HttpClient client;
  auto r = client.request("GET", url(server->port(), "/v1/sys/health?standby=1"),
                          {{"X-Vault-Token", "s.abc"}});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "{\"ok\":true}");
  EXPECT_EQ(header_of(*r, "content-type"), "application/json");
  EXPECT_EQ(header_of(*r, "x-method"), "GET");
  EXPECT_EQ(header_of(*r, "x-target"), "/v1/sys/health?standby=1");
  EXPECT_EQ(header_of(*r, "x-token"), "s.abc");
  EXPECT_EQ(header_of(*r, "x-tls"), "0");
  EXPECT_EQ(header_of(*r, "x-remote").rfind("127.0.0.1:", 0), 0u);
}

TEST(HttpServer, ListMethodAndPutBodyPassThrough) {
  auto server = start_server(test_options());
  ASSERT_TRUE(server);
  HttpClient client;
  auto list = client.request("LIST", url(server->port(), "/v1/secret/metadata/"));
  ASSERT_TRUE(list.ok()) << list.status().to_string();
  EXPECT_EQ(header_of(*list, "x-method"), "LIST");

  std::string body = "{\"data\":{\"password\":\"hunter2\"}}";
  auto put = client.request("PUT", url(server->port(), "/v1/secret/data/a"), {}, body);
  ASSERT_TRUE(put.ok());
  EXPECT_EQ(header_of(*put, "x-method"), "PUT");
  EXPECT_EQ(put->body, body);
}

TEST(HttpServer, ContentTypeDefaultsAndNoContent) {
  auto server = start_server(test_options());
  ASSERT_TRUE(server);
  HttpClient client;
  auto text = client.request("GET", url(server->port(), "/text"));
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(header_of(*text, "content-type"), "text/plain");
  auto empty = client.request("DELETE", url(server->port(), "/empty"));
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->status, 204);
  EXPECT_TRUE(empty->body.empty());
  EXPECT_EQ(header_of(*empty, "content-length"), "");
}

TEST(HttpServer, KeepAliveReusesOneConnection) {
  auto server = start_server(test_options());
  ASSERT_TRUE(server);
  HttpClient client;
  std::string first_remote;
  for (int i = 0; i < 5; ++i) {
    auto r = client.request("GET", url(server->port(), "/x"));
    ASSERT_TRUE(r.ok());
    if (i == 0) first_remote = header_of(*r, "x-remote");
    EXPECT_EQ(header_of(*r, "x-remote"), first_remote);  // same client port: same connection
  }
}

TEST(HttpServer, PipelinedRequestsAnsweredInOrder) {
  auto server = start_server(test_options());
  ASSERT_TRUE(server);
  RawConn c(server->port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send_all("GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string a = c.read_response();
  std::string b = c.read_response();
  std::string both = a + b;
  auto one = both.find("X-Target: /one");
  auto two = both.find("X-Target: /two");
  ASSERT_NE(one, std::string::npos) << both;
  ASSERT_NE(two, std::string::npos) << both;
  EXPECT_LT(one, two);
}

TEST(HttpServer, OversizedBodyGets413BeforeBodyIsSent) {
  auto server = start_server(test_options());
  ASSERT_TRUE(server);
  RawConn c(server->port());
  ASSERT_TRUE(c.send_all("PUT /v1/a HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n"));
  std::string r = c.read_response();
  EXPECT_EQ(status_of(r), 413) << r;
  EXPECT_NE(r.find("{\"errors\":[\"request body too large\"]}"), std::string::npos);
  EXPECT_NE(r.find("application/json"), std::string::npos);

  // Also through the client, with the body actually sent, and the server still serves.
  HttpClient client;
  auto big = client.request("PUT", url(server->port(), "/v1/a"), {}, std::string(100000, 'a'));
  if (big.ok()) {
    EXPECT_EQ(big->status, 413);
  }
  auto ok = client.request("GET", url(server->port(), "/after"));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->status, 200);
}

TEST(HttpServer, ChunkedBodyOverLimitGets413) {
  auto server = start_server(test_options());
  ASSERT_TRUE(server);
  RawConn c(server->port());
  std::string req = "PUT /v1/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  std::string chunk(32 * 1024, 'b');
  for (int i = 0; i < 3; ++i) req += "8000\r\n" + chunk + "\r\n";
  req += "0\r\n\r\n";
  c.send_all(req);
  EXPECT_EQ(status_of(c.read_response()), 413);
}

TEST(HttpServer, OversizedHeadersGet431) {
  auto server = start_server(test_options());
  ASSERT_TRUE(server);
  RawConn c(server->port());
  std::string req = "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(8000, 'h') + "\r\n\r\n";
  c.send_all(req);
  std::string r = c.read_response();
  EXPECT_EQ(status_of(r), 431) << r;
  HttpClient client;
  auto ok = client.request("GET", url(server->port(), "/after"));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->status, 200);
}

TEST(HttpServer, GarbageGets400AndServerCarriesOn) {
  auto server = start_server(test_options());
  ASSERT_TRUE(server);
  const char* garbage[] = {"\x01\x02\x03 nonsense\r\n\r\n", "GET / HTTP/9.9\r\n\r\n",
                           "GET / HTTP/1.1\r\nBad Header\r\n\r\n",
                           "POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n"};
  for (const char* g : garbage) {
    RawConn c(server->port());
    c.send_all(g);
    std::string r = c.read_response();
    EXPECT_EQ(status_of(r), 400) << g << " -> " << r;
    EXPECT_NE(r.find("{\"errors\":["), std::string::npos);
  }
  HttpClient client;
  auto ok = client.request("GET", url(server->port(), "/after"));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->status, 200);
}

TEST(HttpServer, IdleConnectionIsClosed) {
  auto o = test_options();
  o.idle_timeout = 1s;
  auto server = start_server(o);
  ASSERT_TRUE(server);
  RawConn c(server->port(), 10000ms);
  c.send_all("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(status_of(c.read_response()), 200);
  auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.wait_closed());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 9s);
}

TEST(HttpServer, SlowRequestTimesOut) {
  auto o = test_options();
  o.request_timeout = 1s;
  auto server = start_server(o);
  ASSERT_TRUE(server);
  RawConn c(server->port(), 10000ms);
  c.send_all("GET / HTTP/1.1\r\nHost:");  // and never finishes
  EXPECT_TRUE(c.wait_closed());
}

// Timeouts longer than the I/O threads' pacer (whose timer stays ahead of every connection's
// deadline, so that arming one costs no timerfd update) still fire, and not early.
TEST(HttpServer, TimeoutsLongerThanThePacerFireOnTime) {
  auto o = test_options();
  o.idle_timeout = 3s;
  o.request_timeout = 3s;
  auto server = start_server(o);
  ASSERT_TRUE(server);
  RawConn idle(server->port(), 10000ms);
  idle.send_all("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(status_of(idle.read_response()), 200);
  RawConn slow(server->port(), 10000ms);
  const auto start = std::chrono::steady_clock::now();
  slow.send_all("GET / HTTP/1.1\r\nHost:");  // and never finishes
  EXPECT_TRUE(idle.wait_closed());
  EXPECT_TRUE(slow.wait_closed());
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, 2s) << "closed before its deadline";
  EXPECT_LT(took, 9s);
}

TEST(HttpServer, ClientReconnectsAfterServerClosedIdleConnection) {
  auto o = test_options();
  o.idle_timeout = 1s;
  auto server = start_server(o);
  ASSERT_TRUE(server);
  HttpClient client;
  auto a = client.request("GET", url(server->port(), "/a"));
  ASSERT_TRUE(a.ok());
  std::this_thread::sleep_for(1500ms);  // the server drops the kept-alive connection
  auto b = client.request("GET", url(server->port(), "/b"));
  ASSERT_TRUE(b.ok()) << b.status().to_string();
  EXPECT_NE(header_of(*a, "x-remote"), header_of(*b, "x-remote"));
}

TEST(HttpServer, ConnectionCapAnswers503) {
  auto o = test_options();
  o.max_connections = 2;
  auto server = start_server(o);
  ASSERT_TRUE(server);
  RawConn a(server->port());
  RawConn b(server->port());
  for (RawConn* c : {&a, &b}) {
    c->send_all("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_EQ(status_of(c->read_response()), 200);
  }
  RawConn extra(server->port());
  extra.send_all("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string r = extra.read_response();
  EXPECT_TRUE(r.empty() || status_of(r) == 503) << r;
}

TEST(HttpServer, BlockingHandlerDoesNotBlockOthers) {
  std::mutex mu;
  std::condition_variable cv;
  bool slow_started = false;
  bool fast_done = false;
  std::vector<std::string> order;
  auto handler = [&](HttpRequest& req) {
    HttpResponse r;
    if (req.target == "/slow") {
      std::unique_lock<std::mutex> lock(mu);
      slow_started = true;
      cv.notify_all();
      // Blocks for 200 ms at least, longer if the fast request has not finished by then.
      cv.wait_for(lock, 200ms);
      cv.wait_for(lock, 10s, [&] { return fast_done; });
      order.push_back("slow");
    }
    return r;
  };
  auto o = test_options();
  o.io_threads = 1;
  auto server = start_server(o, handler);
  ASSERT_TRUE(server);
  std::thread slow([&] {
    HttpClient c;
    auto r = c.request("GET", url(server->port(), "/slow"));
    EXPECT_TRUE(r.ok());
  });
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return slow_started; }));
  }
  HttpClient c;
  auto r = c.request("GET", url(server->port(), "/fast"));
  ASSERT_TRUE(r.ok());
  {
    std::lock_guard<std::mutex> lock(mu);
    order.push_back("fast");
    fast_done = true;
    cv.notify_all();
  }
  slow.join();
  ASSERT_EQ(order.size(), 2u);
  EXPECT_EQ(order[0], "fast");
  EXPECT_EQ(order[1], "slow");
}

TEST(HttpServer, SixtyFourConcurrentClients) {
  auto o = test_options();
  o.worker_threads = 16;
  auto server = start_server(o);
  ASSERT_TRUE(server);
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 64; ++i) {
    threads.emplace_back([&, i] {
      HttpClient c;
      for (int j = 0; j < 10; ++j) {
        std::string body = "client-" + std::to_string(i) + "-" + std::to_string(j);
        auto r = c.request("PUT", url(server->port(), "/v1/k"), {}, body);
        if (r.ok() && r->status == 200 && r->body == body) ok.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 640);
}

TEST(HttpServer, HandlerExceptionBecomes500) {
  auto server = start_server(test_options(), [](HttpRequest&) -> HttpResponse {
    throw std::runtime_error("boom");
  });
  ASSERT_TRUE(server);
  HttpClient c;
  auto r = c.request("GET", url(server->port(), "/"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 500);
  EXPECT_EQ(r->body, "{\"errors\":[\"internal error\"]}\n");
}

TEST(HttpServer, StopIsIdempotentAndRefusesAfterwards) {
  auto server = start_server(test_options());
  ASSERT_TRUE(server);
  uint16_t port = server->port();
  HttpClient c;
  ASSERT_TRUE(c.request("GET", url(port, "/")).ok());
  server->stop();
  server->stop();
  ClientOptions co;
  co.timeout = 2s;
  HttpClient c2(co);
  EXPECT_FALSE(c2.request("GET", url(port, "/")).ok());
}

TEST(HttpServer, PortInUseIsAnError) {
  auto a = start_server(test_options());
  ASSERT_TRUE(a);
  auto o = test_options();
  o.port = a->port();
  auto b = HttpServer::start(o, echo);
  EXPECT_FALSE(b.ok());
}

TEST(HttpClient, RejectsBadUrls) {
  HttpClient c;
  EXPECT_FALSE(c.request("GET", "not a url").ok());
  EXPECT_FALSE(c.request("GET", "ftp://127.0.0.1/").ok());
  EXPECT_FALSE(c.request("GET", "http://127.0.0.1:1/", {{"Bad\r\nName", "v"}}).ok());
}

TEST(ParseRequest, LimitsAndMethods) {
  auto ok = parse_request_for_fuzz(as_bytes("LIST /v1/secret/ HTTP/1.1\r\nHost: a\r\n\r\n"));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->method, "LIST");
  EXPECT_EQ(ok->target, "/v1/secret/");
  EXPECT_EQ(ok->header("HOST"), "a");

  auto body = parse_request_for_fuzz(
      as_bytes("PUT / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"));
  ASSERT_TRUE(body.ok());
  EXPECT_EQ(body->body, "hello");

  auto big = parse_request_for_fuzz(
      as_bytes("PUT / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n"), 1024, 100);
  EXPECT_EQ(http_status_for_parse_error(big.status()), 413);
  std::string huge = "GET / HTTP/1.1\r\nX: " + std::string(2000, 'a') + "\r\n\r\n";
  auto hdr = parse_request_for_fuzz(as_bytes(huge), 1024, 100);
  EXPECT_EQ(http_status_for_parse_error(hdr.status()), 431);
  auto bad = parse_request_for_fuzz(as_bytes("GET\x01 / HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(http_status_for_parse_error(bad.status()), 400);
  auto partial = parse_request_for_fuzz(as_bytes("GET / HTTP/1.1\r\nHost"));
  EXPECT_EQ(partial.status().code(), Code::kFailedPrecondition);
}

}  // namespace
}  // namespace custos::net

namespace custos::net {
namespace {

// run_inline: the requests it picks run on the connection's I/O thread, the others on the
// workers, and a blocked worker does not hold up an inline request on another connection.
TEST(HttpServer, InlineRequestsRunOnTheIoThreadAndPassABlockedWorker) {
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  bool slow_entered = false;
  std::vector<std::thread::id> fast_threads, slow_threads;
  ServerOptions o = testing::test_options();
  o.io_threads = 1;
  o.worker_threads = 2;
  o.run_inline = [](const HttpRequest& r) { return r.target.rfind("/fast", 0) == 0; };
  auto server = HttpServer::start(o, [&](HttpRequest& r) {
    HttpResponse resp;
    std::unique_lock lock(mu);
    if (r.target == "/slow/wait") {
      slow_entered = true;
      cv.notify_all();
      cv.wait(lock, [&] { return release; });  // held until the inline requests were answered
    }
    (r.target.rfind("/fast", 0) == 0 ? fast_threads : slow_threads).push_back(std::this_thread::get_id());
    resp.body = "{}";
    return resp;
  });
  ASSERT_TRUE(server.ok()) << server.status().to_string();
  const uint16_t port = (*server)->port();

  std::thread blocked([&] {
    HttpClient c;
    auto r = c.request("GET", testing::url(port, "/slow/wait"));
    EXPECT_TRUE(r.ok() && r->status == 200);
  });
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return slow_entered; });  // a worker is now parked in the handler
  }
  HttpClient fast;
  for (int i = 0; i < 20; ++i) {
    auto r = fast.request("GET", testing::url(port, "/fast/" + std::to_string(i)));
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(r->status, 200);
  }
  {
    std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
  blocked.join();
  HttpClient slow;
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(slow.request("GET", testing::url(port, "/slow/x")).ok());

  std::lock_guard lock(mu);
  ASSERT_EQ(fast_threads.size(), 20U);
  ASSERT_EQ(slow_threads.size(), 11U);
  for (const auto& t : fast_threads) EXPECT_EQ(t, fast_threads[0]);  // the one I/O thread
  for (const auto& t : slow_threads) EXPECT_NE(t, fast_threads[0]);  // always a worker
  (*server)->stop();
}

}  // namespace
}  // namespace custos::net

namespace custos::net {
namespace {

// A handler that holds every response and hands its Release to the test.
struct Holder {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Release> releases;
  std::vector<std::thread::id> handler_threads;

  Handler handler() {
    return [this](HttpRequest& req) {
      HttpResponse resp;
      resp.body = "{\"path\":\"" + req.target + "\"}";
      resp.hold = [this](Release release) {
        std::lock_guard lock(mu);
        releases.push_back(std::move(release));
        handler_threads.push_back(std::this_thread::get_id());
        cv.notify_all();
      };
      return resp;
    };
  }
  Release next(size_t index) {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return releases.size() > index; });
    return releases[index];
  }
};

// A held response leaves when, and only when, its Release is called (from any thread), on both
// the inline and the worker path; a Release with an error sends a 500 in Vault's shape instead.
TEST(HttpServer, HeldResponsesLeaveWhenReleased) {
  Holder holder;
  ServerOptions o = testing::test_options();
  o.run_inline = [](const HttpRequest& r) { return r.target.rfind("/inline", 0) == 0; };
  auto server = HttpServer::start(o, holder.handler());
  ASSERT_TRUE(server.ok()) << server.status().to_string();
  const uint16_t port = (*server)->port();
  const std::vector<std::string> paths = {"/inline/a", "/worker/b", "/inline/c"};
  for (size_t i = 0; i < paths.size(); ++i) {
    std::atomic<bool> answered{false};
    Result<HttpResponse> got = internal_error("no answer");
    std::thread client([&] {
      HttpClient c;
      got = c.request("GET", testing::url(port, paths[i]));
      answered = true;
    });
    Release release = holder.next(i);
    std::this_thread::sleep_for(50ms);  // a negative: held, so nothing may arrive meanwhile
    EXPECT_FALSE(answered.load()) << paths[i];
    std::thread releaser([&] { release(i == 2 ? unavailable("disk gone") : ok_status()); });
    releaser.join();
    client.join();
    ASSERT_TRUE(got.ok()) << got.status().to_string();
    if (i == 2) {
      EXPECT_EQ(got->status, 500);
      EXPECT_EQ(got->body, "{\"errors\":[\"disk gone\"]}\n");
    } else {
      EXPECT_EQ(got->status, 200);
      EXPECT_EQ(got->body, "{\"path\":\"" + paths[i] + "\"}");
    }
  }
  std::lock_guard lock(holder.mu);
  EXPECT_EQ(holder.handler_threads[0], holder.handler_threads[2]) << "both on the I/O thread";
  EXPECT_NE(holder.handler_threads[0], holder.handler_threads[1]);
}

// on_release runs once per answer, on the connection's thread, just before the answer leaves:
// with the release's status when held, with ok otherwise; what it returns is the answer's.
TEST(HttpServer, OnReleaseRunsOnTheConnectionThreadAndDecidesTheAnswer) {
  struct Call {
    std::thread::id handler_thread;
    std::thread::id release_thread;
    int calls = 0;
    Status received = internal_error("not called");
  };
  std::mutex mu;
  std::map<std::string, Call> seen;
  Holder holder;
  ServerOptions o = testing::test_options();
  o.run_inline = [](const HttpRequest& r) { return r.target.rfind("/inline", 0) == 0; };
  auto server = HttpServer::start(o, [&](HttpRequest& req) {
    HttpResponse resp;
    resp.body = "{}";
    const std::string target = req.target;
    {
      std::lock_guard lock(mu);
      seen[target].handler_thread = std::this_thread::get_id();
    }
    resp.on_release = [&, target](Status st) {
      std::lock_guard lock(mu);
      Call& c = seen[target];
      ++c.calls;
      c.release_thread = std::this_thread::get_id();
      c.received = st;
      if (target == "/worker/refuse") return internal_error("audit device full");
      return st;
    };
    if (target == "/worker/held") resp.hold = holder.handler()(req).hold;
    return resp;
  });
  ASSERT_TRUE(server.ok()) << server.status().to_string();
  const uint16_t port = (*server)->port();
  HttpClient c;
  auto inline_ok = c.request("GET", testing::url(port, "/inline/ok"));
  ASSERT_TRUE(inline_ok.ok());
  EXPECT_EQ(inline_ok->status, 200);
  auto refused = c.request("GET", testing::url(port, "/worker/refuse"));
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->status, 500);
  EXPECT_EQ(refused->body, "{\"errors\":[\"audit device full\"]}\n");
  Result<HttpResponse> held = internal_error("no answer");
  std::thread client([&] {
    HttpClient hc;
    held = hc.request("GET", testing::url(port, "/worker/held"));
  });
  holder.next(0)(unavailable("disk gone"));
  client.join();
  ASSERT_TRUE(held.ok());
  EXPECT_EQ(held->status, 500);
  EXPECT_EQ(held->body, "{\"errors\":[\"disk gone\"]}\n");

  std::lock_guard lock(mu);
  for (const auto& [target, call] : seen) {
    EXPECT_EQ(call.calls, 1) << target;
  }
  EXPECT_TRUE(seen["/inline/ok"].received.ok());
  EXPECT_TRUE(seen["/worker/refuse"].received.ok()) << "without a hold it gets ok";
  EXPECT_EQ(seen["/worker/held"].received.message(), "disk gone");
  // Inline, the handler ran on the connection's thread, and so does on_release; a worker's
  // answer is finished back on the connection's thread, not on the worker.
  EXPECT_EQ(seen["/inline/ok"].release_thread, seen["/inline/ok"].handler_thread);
  EXPECT_NE(seen["/worker/refuse"].release_thread, seen["/worker/refuse"].handler_thread);
  EXPECT_EQ(seen["/worker/refuse"].release_thread, seen["/inline/ok"].release_thread)
      << "one connection, one I/O thread";
  EXPECT_NE(seen["/worker/held"].release_thread, seen["/worker/held"].handler_thread);
}

// stop() waits for held responses: a Release that comes during stop() still finds the
// connection's context alive (under ASan a use after free would show here).
TEST(HttpServer, StopWaitsForHeldResponses) {
  Holder holder;
  auto server = HttpServer::start(testing::test_options(), holder.handler());
  ASSERT_TRUE(server.ok());
  const uint16_t port = (*server)->port();
  std::thread client([&] {
    HttpClient c(ClientOptions{.timeout = 10s});
    (void)c.request("GET", testing::url(port, "/held"));  // the answer may or may not come
  });
  Release release = holder.next(0);
  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    (*server)->stop();
    stopped = true;
  });
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(stopped.load()) << "stop() returned while a response was held";
  release(ok_status());
  release(ok_status());  // only the first call counts
  stopper.join();
  client.join();  // the connection closed with the server, though a copy of the Release lives
  EXPECT_TRUE(stopped.load());
}

}  // namespace
}  // namespace custos::net
