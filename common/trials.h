#ifndef BUSYFLEET_COMMON_TRIALS_H_
#define BUSYFLEET_COMMON_TRIALS_H_

// Repeated trials of one measurement: their middle, their spread, how sure
// we are of the middle, and the verdict against a reference ("within noise"
// when the interval holds it). Pure, deterministic functions.
//
// The interval of a median is distribution-free: the order statistics
// x(k) .. x(n+1-k) with the largest k whose binomial tail leaves at most
// (1 - confidence) / 2 on each side, so it holds the true median at least
// `confidence` of the time whatever the noise's shape (a bootstrap
// percentile interval of a median undercovers with few trials: 87.5% for
// 7). With too few trials for the confidence asked it is [min, max], and
// `coverage` says how sure that is (1 - 2^(1-n): 93.75% for 5 trials).

#include <cstddef>
#include <string>
#include <vector>

namespace busyfleet {

struct Interval {
  double low = 0;
  double high = 0;
  bool Contains(double x) const { return low <= x && x <= high; }
};

struct TrialStats {
  size_t n = 0;
  double median = 0;
  double min = 0;
  double max = 0;
  double mean = 0;
  double stdev = 0;  // sample standard deviation (n - 1); 0 with one trial
  double cv = 0;     // stdev / mean; 0 when the mean is 0
  // Interval of the median at the confidence asked ([v, v] with one trial:
  // no spread is known, see Judge), and its actual coverage.
  Interval ci;
  double coverage = 0;
};

// Confidence of the intervals below.
inline constexpr double kConfidence = 0.95;
// Resamples per bootstrap interval.
inline constexpr int kBootstrapResamples = 10'000;
// A coefficient of variation above this is "unstable" (pyperf warns at 10%).
inline constexpr double kHighCv = 0.10;

// All zero when `values` is empty.
TrialStats SummarizeTrials(const std::vector<double>& values, double confidence = kConfidence);

// The distribution-free interval of the median of `values` (see above),
// and its coverage in `coverage` when not null.
Interval MedianInterval(const std::vector<double>& values, double confidence = kConfidence,
                        double* coverage = nullptr);

// Bootstrap percentile interval of median(num) / median(den), each side
// resampled on its own with replacement, kBootstrapResamples times, fixed
// seed (unpaired trials, e.g. two sets of jobs). Empty or zero medians give
// {0, 0}.
Interval BootstrapMedianRatio(const std::vector<double>& num, const std::vector<double>& den,
                              double confidence = kConfidence);

// What an interval says about a figure against `reference` (1.0 for a
// speedup or a ratio, 1.0 = 100% for an efficiency).
enum class Verdict {
  kSingleTrial,  // one trial: no interval, nothing can be said
  kWithinNoise,  // the interval holds the reference: no difference shown
  kHigher,       // the whole interval is above it
  kLower,        // the whole interval is below it
};
Verdict Judge(const Interval& ci, double reference, size_t trials);
// "single_trial", "within_noise", "higher", "lower" (the JSON contract).
const char* VerdictName(Verdict verdict);

}  // namespace busyfleet

#endif  // BUSYFLEET_COMMON_TRIALS_H_
