// Process-wide metrics for `sys/metrics` (docs/api.md, "Metrics"): counters, latency histograms
// and gauges read on demand, rendered in the Prometheus text format (0.0.4). The hot path is one
// relaxed atomic add per counter and two per histogram observation; registration takes a lock
// and happens once per series.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace custos::metrics {

// Label name -> value, rendered in name order.
using Labels = std::map<std::string, std::string>;

class Counter {
 public:
  void inc(uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

// Latency histogram: cumulative buckets (upper bounds in seconds) as Prometheus wants them.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe_seconds(double s);
  void observe_ns(int64_t ns) { observe_seconds(static_cast<double>(ns) / 1e9); }

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> cumulative;  // one per bound, then +Inf
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot snapshot() const;

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1 (the last: +Inf)
  std::atomic<uint64_t> sum_ns_{0};
  std::atomic<uint64_t> count_{0};
};

// 50 µs .. 10 s: from a cached read to a slow fsync.
std::vector<double> latency_bounds();

class Registry;

// Keeps a gauge registered while it lives (the gauge's callback usually reads an object that
// may go away: a sealed core's lease manager).
class GaugeHandle {
 public:
  GaugeHandle() = default;
  GaugeHandle(Registry* r, uint64_t id) : registry_(r), id_(id) {}
  GaugeHandle(GaugeHandle&& o) noexcept
      : registry_(std::exchange(o.registry_, nullptr)), id_(o.id_) {}
  GaugeHandle& operator=(GaugeHandle&& o) noexcept;
  GaugeHandle(const GaugeHandle&) = delete;
  GaugeHandle& operator=(const GaugeHandle&) = delete;
  ~GaugeHandle();

 private:
  Registry* registry_ = nullptr;
  uint64_t id_ = 0;
};

class Registry {
 public:
  static Registry& global();

  // The same name and labels return the same object, valid for the registry's life.
  Counter& counter(const std::string& name, const std::string& help, const Labels& labels = {});
  Histogram& histogram(const std::string& name, const std::string& help, const Labels& labels = {});
  // `read` runs at every scrape, under the registry's lock: it must be quick and must not
  // register metrics.
  [[nodiscard]] GaugeHandle gauge(const std::string& name, const std::string& help,
                                  std::function<double()> read, const Labels& labels = {});

  // Prometheus text exposition format, families in name order.
  std::string prometheus() const;

  struct Sample {
    std::string name;
    Labels labels;
    double value = 0;                      // counters and gauges
    const Histogram* histogram = nullptr;  // histograms
  };
  enum class Kind { kCounter, kGauge, kHistogram };
  // Every series of every family, for other renderings (sys/metrics' JSON).
  void visit(const std::function<void(Kind, const Sample&)>& fn) const;

 private:
  friend class GaugeHandle;
  void remove_gauge(uint64_t id);

  struct Family {
    Kind kind = Kind::kCounter;
    std::string help;
    std::map<Labels, std::unique_ptr<Counter>> counters;
    std::map<Labels, std::unique_ptr<Histogram>> histograms;
    std::map<uint64_t, std::pair<Labels, std::function<double()>>> gauges;
  };
  Family& family(const std::string& name, const std::string& help, Kind kind);

  mutable std::mutex mu_;
  std::map<std::string, Family> families_;
  uint64_t next_gauge_ = 1;
};

// Series names and label values as Prometheus accepts them (invalid characters become '_';
// label values are escaped when rendered).
std::string sanitize_name(const std::string& name);

}  // namespace custos::metrics
