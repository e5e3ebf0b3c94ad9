#include "common/stats.h"

#include <vector>

#include "gtest/gtest.h"

namespace busyfleet {
namespace {

TEST(QuantileTest, InterpolatesLinearlyBetweenRanks) {
  const std::vector<double> v = {1, 2, 3, 4};
  EXPECT_DOUBLE_EQ(Quantile(v, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(Quantile(v, 0.5), 2.5);
  EXPECT_DOUBLE_EQ(Quantile(v, 0.9), 3.7);
  EXPECT_DOUBLE_EQ(Quantile(v, 1.0), 4.0);
  EXPECT_DOUBLE_EQ(Quantile(v, 0.25), 1.75);
  EXPECT_DOUBLE_EQ(Quantile(v, 0.99), 3.97);
}

TEST(QuantileTest, ExactRanksNeedNoInterpolation) {
  const std::vector<double> v = {10, 20, 30, 40, 50};
  EXPECT_DOUBLE_EQ(Quantile(v, 0.25), 20.0);
  EXPECT_DOUBLE_EQ(Quantile(v, 0.5), 30.0);
  EXPECT_DOUBLE_EQ(Quantile(v, 0.75), 40.0);
}

TEST(QuantileTest, SingleValueIsEveryQuantile) {
  const std::vector<double> v = {7.5};
  EXPECT_DOUBLE_EQ(Quantile(v, 0.0), 7.5);
  EXPECT_DOUBLE_EQ(Quantile(v, 0.5), 7.5);
  EXPECT_DOUBLE_EQ(Quantile(v, 0.99), 7.5);
  EXPECT_DOUBLE_EQ(Quantile(v, 1.0), 7.5);
}

TEST(QuantileTest, EmptyIsZero) {
  const std::vector<double> v;
  EXPECT_DOUBLE_EQ(Quantile(v, 0.0), 0.0);
  EXPECT_DOUBLE_EQ(Quantile(v, 0.5), 0.0);
  EXPECT_DOUBLE_EQ(Quantile(v, 1.0), 0.0);
}

TEST(SummarizeTest, SortsUnsortedInput) {
  const Summary s = Summarize({4, 1, 3, 2});
  EXPECT_EQ(s.count, 4u);
  EXPECT_DOUBLE_EQ(s.min, 1.0);
  EXPECT_DOUBLE_EQ(s.max, 4.0);
  EXPECT_DOUBLE_EQ(s.p50, 2.5);
  EXPECT_DOUBLE_EQ(s.p90, 3.7);
  EXPECT_DOUBLE_EQ(s.p99, 3.97);
  EXPECT_DOUBLE_EQ(s.sum, 10.0);
  EXPECT_DOUBLE_EQ(s.mean, 2.5);
}

TEST(SummarizeTest, TaskDurationsWithOneStraggler) {
  const Summary s = Summarize({2.0, 1.0, 1.0, 1.0});
  EXPECT_DOUBLE_EQ(s.min, 1.0);
  EXPECT_DOUBLE_EQ(s.p50, 1.0);
  EXPECT_DOUBLE_EQ(s.p90, 1.7);
  EXPECT_DOUBLE_EQ(s.max, 2.0);
  EXPECT_DOUBLE_EQ(s.mean, 1.25);
}

TEST(SummarizeTest, SingleValue) {
  const Summary s = Summarize({3.0});
  EXPECT_EQ(s.count, 1u);
  EXPECT_DOUBLE_EQ(s.min, 3.0);
  EXPECT_DOUBLE_EQ(s.p50, 3.0);
  EXPECT_DOUBLE_EQ(s.p90, 3.0);
  EXPECT_DOUBLE_EQ(s.p99, 3.0);
  EXPECT_DOUBLE_EQ(s.max, 3.0);
  EXPECT_DOUBLE_EQ(s.mean, 3.0);
  EXPECT_DOUBLE_EQ(s.sum, 3.0);
}

TEST(SummarizeTest, EmptyIsAllZero) {
  const Summary s = Summarize({});
  EXPECT_EQ(s.count, 0u);
  EXPECT_DOUBLE_EQ(s.min, 0.0);
  EXPECT_DOUBLE_EQ(s.p50, 0.0);
  EXPECT_DOUBLE_EQ(s.p90, 0.0);
  EXPECT_DOUBLE_EQ(s.p99, 0.0);
  EXPECT_DOUBLE_EQ(s.max, 0.0);
  EXPECT_DOUBLE_EQ(s.mean, 0.0);
  EXPECT_DOUBLE_EQ(s.sum, 0.0);
}

}  // namespace
}  // namespace busyfleet
