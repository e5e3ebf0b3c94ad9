#ifndef BUSYFLEET_COMMON_STATS_H_
#define BUSYFLEET_COMMON_STATS_H_

#include <cstddef>
#include <vector>

namespace busyfleet {

// The q-quantile (0 <= q <= 1) of `sorted` (ascending), interpolating
// linearly between the two closest ranks (NumPy's default). 0 when empty.
double Quantile(const std::vector<double>& sorted, double q);

struct Summary {
  double min = 0;
  double p50 = 0;
  double p90 = 0;
  double p99 = 0;
  double max = 0;
  double mean = 0;
  double sum = 0;
  size_t count = 0;
};

// Summary of `values` in any order. All zero when empty.
Summary Summarize(std::vector<double> values);

}  // namespace busyfleet

#endif  // BUSYFLEET_COMMON_STATS_H_
