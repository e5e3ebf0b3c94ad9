#include "common/trials.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "common/stats.h"

namespace busyfleet {
namespace {

// The same seed every time: a report's intervals do not change on a re-read.
constexpr uint64_t kSeed = 0x6275737966ULL;

double MedianOf(std::vector<double>& values) {
  std::sort(values.begin(), values.end());
  return Quantile(values, 0.5);
}

// One bootstrap resample's median of `values`, drawn with `rng`.
double ResampledMedian(const std::vector<double>& values, std::mt19937_64& rng, std::vector<double>& scratch) {
  std::uniform_int_distribution<size_t> pick(0, values.size() - 1);
  scratch.resize(values.size());
  for (double& v : scratch) v = values[pick(rng)];
  return MedianOf(scratch);
}

// The percentile interval of `statistics` (sorted here).
Interval PercentileInterval(std::vector<double>& statistics, double confidence) {
  std::sort(statistics.begin(), statistics.end());
  const double tail = (1 - std::clamp(confidence, 0.0, 1.0)) / 2;
  return {Quantile(statistics, tail), Quantile(statistics, 1 - tail)};
}

}  // namespace

TrialStats SummarizeTrials(const std::vector<double>& values, double confidence) {
  TrialStats s;
  if (values.empty()) return s;
  std::vector<double> sorted = values;
  s.n = values.size();
  s.median = MedianOf(sorted);
  s.min = sorted.front();
  s.max = sorted.back();
  s.mean = std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(s.n);
  if (s.n > 1) {
    double squares = 0;
    for (double v : values) squares += (v - s.mean) * (v - s.mean);
    s.stdev = std::sqrt(squares / static_cast<double>(s.n - 1));
  }
  s.cv = s.mean != 0 ? s.stdev / std::fabs(s.mean) : 0;
  s.ci = MedianInterval(values, confidence, &s.coverage);
  return s;
}

Interval MedianInterval(const std::vector<double>& values, double confidence, double* coverage) {
  if (coverage != nullptr) *coverage = 0;
  if (values.empty()) return {};
  std::vector<double> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  const size_t n = sorted.size();
  if (n == 1) return {sorted[0], sorted[0]};
  // tail(j) = P(X <= j) for X ~ Binomial(n, 1/2), summed in log space.
  const double tail_allowed = (1 - std::clamp(confidence, 0.0, 1.0)) / 2;
  const double log_half_n = static_cast<double>(n) * std::log(0.5);
  const double lgamma_n1 = std::lgamma(static_cast<double>(n) + 1);
  double tail = 0;
  size_t k = 1;  // the 1-based rank of the lower end: [x(k), x(n+1-k)]
  double kept_tail = std::exp(log_half_n);  // P(X <= k - 1) for k = 1
  for (size_t j = 0; j < n / 2; ++j) {
    tail += std::exp(lgamma_n1 - std::lgamma(static_cast<double>(j) + 1) -
                     std::lgamma(static_cast<double>(n - j) + 1) + log_half_n);
    if (tail > tail_allowed) break;
    k = j + 1;
    kept_tail = tail;
  }
  if (coverage != nullptr) *coverage = std::max(0.0, 1 - 2 * kept_tail);
  return {sorted[k - 1], sorted[n - k]};
}

Interval BootstrapMedianRatio(const std::vector<double>& num, const std::vector<double>& den, double confidence) {
  if (num.empty() || den.empty()) return {};
  std::mt19937_64 rng(kSeed);
  std::vector<double> ratios;
  ratios.reserve(kBootstrapResamples);
  std::vector<double> scratch;
  for (int i = 0; i < kBootstrapResamples; ++i) {
    const double n = ResampledMedian(num, rng, scratch);
    const double d = ResampledMedian(den, rng, scratch);
    if (d == 0) return {};
    ratios.push_back(n / d);
  }
  return PercentileInterval(ratios, confidence);
}

Verdict Judge(const Interval& ci, double reference, size_t trials) {
  if (trials < 2) return Verdict::kSingleTrial;
  if (ci.Contains(reference)) return Verdict::kWithinNoise;
  return ci.low > reference ? Verdict::kHigher : Verdict::kLower;
}

const char* VerdictName(Verdict verdict) {
  switch (verdict) {
    case Verdict::kSingleTrial:
      return "single_trial";
    case Verdict::kWithinNoise:
      return "within_noise";
    case Verdict::kHigher:
      return "higher";
    case Verdict::kLower:
      return "lower";
  }
  return "single_trial";
}

}  // namespace busyfleet
