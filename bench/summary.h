// A Google Benchmark reporter that also prints ratios of CPU time per operation between a
// baseline run in the same process (raw OpenSSL, say) and ours: raw / ours, so 1.0 means nothing
// but the baseline's work, above 1.0 faster than it.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace custos::bench {

class RatioSummary : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.run_type == Run::RT_Iteration && r.iterations > 0) {
        cpu_[r.run_name.function_name] = r.GetAdjustedCPUTime();
      }
    }
  }
  void header() const { std::printf("\nsummary (CPU time per operation; ratio = raw / ours):\n"); }
  // One line: `what`, ours (BM `ours`) against the baseline (BM `raw`, described as raw_name).
  void line(const char* what, const char* raw, const char* ours, const char* raw_name) const {
    auto a = cpu_.find(raw);
    auto b = cpu_.find(ours);
    if (a == cpu_.end() || b == cpu_.end() || b->second <= 0) return;
    std::printf("  %-18s ours %9.2f us (%.0f/s)   %s %9.2f us   ratio %.2fx\n", what,
                b->second / 1e3, 1e9 / b->second, raw_name, a->second / 1e3, a->second / b->second);
  }

 private:
  std::map<std::string, double> cpu_;
};

// main() of a benchmark that prints ratios: runs everything, then `lines` prints the summary.
inline int run_with_ratios(int argc, char** argv,
                           const std::function<void(const RatioSummary&)>& lines) {
  benchmark::Initialize(&argc, argv);
  RatioSummary reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.header();
  lines(reporter);
  benchmark::Shutdown();
  return 0;
}

}  // namespace custos::bench
