// The p-quantile (0..1) of benchmark samples, by the nearest rank; 0 for no samples.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

namespace crib::testing {

inline double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace crib::testing
