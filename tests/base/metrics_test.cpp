#include "base/metrics.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

namespace custos::metrics {
namespace {

TEST(Metrics, CountersAndHistogramsRenderInThePrometheusTextFormat) {
  Registry r;
  Counter& c = r.counter("test_requests_total", "requests\nanswered", {{"code", "2xx"}});
  c.inc();
  c.inc(4);
  EXPECT_EQ(&c, &r.counter("test_requests_total", "ignored", {{"code", "2xx"}}))
      << "the same series is the same object";
  r.counter("test_requests_total", "", {{"code", "5xx"}}).inc();
  Histogram& h = r.histogram("test_latency_seconds", "latency");
  h.observe_seconds(0.00003);  // first bucket (le 5e-05)
  h.observe_seconds(0.003);    // le 0.005
  h.observe_seconds(60);       // beyond every bound: +Inf only
  const std::string text = r.prometheus();
  EXPECT_NE(text.find("# HELP test_requests_total requests\\nanswered\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("# TYPE test_requests_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("test_requests_total{code=\"2xx\"} 5\n"), std::string::npos);
  EXPECT_NE(text.find("test_requests_total{code=\"5xx\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE test_latency_seconds histogram\n"), std::string::npos);
  EXPECT_NE(text.find("test_latency_seconds_bucket{le=\"5e-05\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("test_latency_seconds_bucket{le=\"0.0025\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("test_latency_seconds_bucket{le=\"0.005\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("test_latency_seconds_bucket{le=\"10\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("test_latency_seconds_bucket{le=\"+Inf\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("test_latency_seconds_count 3\n"), std::string::npos);
  EXPECT_NE(text.find("test_latency_seconds_sum 60.00303\n"), std::string::npos) << text;
  // Families in name order.
  EXPECT_LT(text.find("# TYPE test_latency_seconds"), text.find("# TYPE test_requests_total"));
}

TEST(Metrics, LabelValuesAreEscapedAndNamesSanitized) {
  Registry r;
  r.counter("bad-name.total", "", {{"path", "a\"b\\c\nd"}}).inc();
  const std::string text = r.prometheus();
  EXPECT_NE(text.find("bad_name_total{path=\"a\\\"b\\\\c\\nd\"} 1\n"), std::string::npos) << text;
  EXPECT_EQ(sanitize_name("9lives"), "_lives");
  EXPECT_EQ(sanitize_name(""), "_");
}

TEST(Metrics, GaugesReadAtScrapeTimeAndGoWithTheirHandle) {
  Registry r;
  double level = 3;
  {
    GaugeHandle g = r.gauge("test_level", "a level", [&] { return level; });
    level = 7.5;
    EXPECT_NE(r.prometheus().find("test_level 7.5\n"), std::string::npos) << r.prometheus();
    GaugeHandle moved = std::move(g);
    EXPECT_NE(r.prometheus().find("test_level 7.5\n"), std::string::npos);
  }
  EXPECT_EQ(r.prometheus().find("test_level"), std::string::npos) << "a family with no series left";
  EXPECT_THROW(
      {
        r.counter("test_mixed", "");
        (void)r.histogram("test_mixed", "");
      },
      std::logic_error);
}

}  // namespace
}  // namespace custos::metrics
