// Error metrics (see metrics.hpp).
#include "sim/metrics.hpp"

#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "formats/error.hpp"

namespace lowbit {

ErrorMetrics error_metrics(std::span<const float> x, std::span<const float> q) {
  if (x.size() != q.size()) throw Error(fmt::format("error metrics: {} reference vs {} quantised values", x.size(), q.size()));
  if (x.empty()) throw Error("error metrics: empty tensor");
  ErrorMetrics m;
  double se = 0, sp = 0, mx = 0;
  int64_t count = 0, skipped = 0, bad = 0;
  const int64_t n = static_cast<int64_t>(x.size());
#pragma omp parallel for reduction(+ : se, sp, count, skipped, bad) reduction(max : mx) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) {
      ++skipped;
      continue;
    }
    if (!std::isfinite(q[i])) {
      ++bad;
      continue;
    }
    const double d = static_cast<double>(x[i]) - static_cast<double>(q[i]);
    se += d * d;
    sp += static_cast<double>(x[i]) * static_cast<double>(x[i]);
    mx = std::max(mx, std::abs(d));
    ++count;
  }
  m.count = count;
  m.skipped = skipped;
  m.nonfinite_out = bad;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  m.mse = count ? se / static_cast<double>(count) : nan;
  m.signal_power = count ? sp / static_cast<double>(count) : nan;
  m.rel_mse = (count && sp > 0) ? se / sp : nan;
  m.sqnr_db = (count && sp > 0) ? (se > 0 ? 10.0 * std::log10(sp / se) : std::numeric_limits<double>::infinity()) : nan;
  m.max_abs = count ? mx : nan;
  return m;
}

}  // namespace lowbit
