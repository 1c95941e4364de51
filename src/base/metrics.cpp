#include "base/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace custos::metrics {
namespace {

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 9.0e15) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.0f", v);
    return buf;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.9g", v);
  return buf;
}

std::string escape_label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string escape_help(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// {a="1",b="2"}, with `extra` (le="...") last; empty when there is nothing to say.
std::string render_labels(const Labels& labels, const std::string& extra = "") {
  if (labels.empty() && extra.empty()) return "";
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out += ",";
    first = false;
    out += sanitize_name(k) + "=\"" + escape_label(v) + "\"";
  }
  if (!extra.empty()) {
    if (!first) out += ",";
    out += extra;
  }
  return out + "}";
}

}  // namespace

std::string sanitize_name(const std::string& name) {
  std::string out = name.empty() ? "_" : name;
  for (size_t i = 0; i < out.size(); ++i) {
    char c = out[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) out[i] = '_';
  }
  return out;
}

std::vector<double> latency_bounds() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,    0.1,    0.25,    0.5,    1,     2.5,    5,     10};
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      buckets_(std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1)) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::observe_seconds(double s) {
  if (!(s >= 0)) s = 0;
  size_t i =
      static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), s) - bounds_.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<uint64_t>(std::min(s, 1.0e9) * 1e9), std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.bounds = bounds_;
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(running);
  }
  // Read apart from the buckets: under load a scrape may see count and +Inf differ by the
  // observations that landed in between, which Prometheus tolerates.
  s.count = running;
  s.sum = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
  return s;
}

GaugeHandle& GaugeHandle::operator=(GaugeHandle&& o) noexcept {
  if (this != &o) {
    if (registry_) registry_->remove_gauge(id_);
    registry_ = std::exchange(o.registry_, nullptr);
    id_ = o.id_;
  }
  return *this;
}

GaugeHandle::~GaugeHandle() {
  if (registry_) registry_->remove_gauge(id_);
}

Registry& Registry::global() {
  static Registry* r = new Registry;  // never destroyed: metrics may be touched during exit
  return *r;
}

Registry::Family& Registry::family(const std::string& name, const std::string& help, Kind kind) {
  auto [it, inserted] = families_.try_emplace(sanitize_name(name));
  if (inserted) {
    it->second.kind = kind;
    it->second.help = help;
  } else if (it->second.kind != kind) {
    throw std::logic_error("metric " + name + " registered with two kinds");
  }
  return it->second;
}

Counter& Registry::counter(const std::string& name, const std::string& help, const Labels& labels) {
  std::lock_guard lock(mu_);
  auto& slot = family(name, help, Kind::kCounter).counters[labels];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Histogram& Registry::histogram(const std::string& name, const std::string& help,
                               const Labels& labels) {
  std::lock_guard lock(mu_);
  auto& slot = family(name, help, Kind::kHistogram).histograms[labels];
  if (!slot) slot = std::make_unique<Histogram>(latency_bounds());
  return *slot;
}

GaugeHandle Registry::gauge(const std::string& name, const std::string& help,
                            std::function<double()> read, const Labels& labels) {
  std::lock_guard lock(mu_);
  const uint64_t id = next_gauge_++;
  family(name, help, Kind::kGauge).gauges[id] = {labels, std::move(read)};
  return GaugeHandle(this, id);
}

void Registry::remove_gauge(uint64_t id) {
  std::lock_guard lock(mu_);
  for (auto& [name, f] : families_) {
    if (f.gauges.erase(id) > 0) return;
  }
}

void Registry::visit(const std::function<void(Kind, const Sample&)>& fn) const {
  std::lock_guard lock(mu_);
  for (const auto& [name, f] : families_) {
    for (const auto& [labels, c] : f.counters) {
      fn(Kind::kCounter, Sample{name, labels, static_cast<double>(c->value()), nullptr});
    }
    for (const auto& [id, g] : f.gauges)
      fn(Kind::kGauge, Sample{name, g.first, g.second(), nullptr});
    for (const auto& [labels, h] : f.histograms) {
      fn(Kind::kHistogram, Sample{name, labels, 0, h.get()});
    }
  }
}

std::string Registry::prometheus() const {
  std::string out;
  std::lock_guard lock(mu_);
  for (const auto& [name, f] : families_) {
    if (f.counters.empty() && f.gauges.empty() && f.histograms.empty()) continue;
    const char* type = f.kind == Kind::kCounter ? "counter"
                       : f.kind == Kind::kGauge ? "gauge"
                                                : "histogram";
    out += "# HELP " + name + " " + escape_help(f.help) + "\n";
    out += "# TYPE " + name + " " + type + "\n";
    for (const auto& [labels, c] : f.counters) {
      out +=
          name + render_labels(labels) + " " + format_value(static_cast<double>(c->value())) + "\n";
    }
    for (const auto& [id, g] : f.gauges) {
      out += name + render_labels(g.first) + " " + format_value(g.second()) + "\n";
    }
    for (const auto& [labels, h] : f.histograms) {
      Histogram::Snapshot s = h->snapshot();
      for (size_t i = 0; i < s.cumulative.size(); ++i) {
        std::string le =
            i < s.bounds.size() ? "le=\"" + format_value(s.bounds[i]) + "\"" : "le=\"+Inf\"";
        out += name + "_bucket" + render_labels(labels, le) + " " +
               format_value(static_cast<double>(s.cumulative[i])) + "\n";
      }
      out += name + "_sum" + render_labels(labels) + " " + format_value(s.sum) + "\n";
      out += name + "_count" + render_labels(labels) + " " +
             format_value(static_cast<double>(s.count)) + "\n";
    }
  }
  return out;
}

}  // namespace custos::metrics
