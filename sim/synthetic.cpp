// Synthetic tensors (see synthetic.hpp).
#include "sim/synthetic.hpp"

#include <fmt/format.h>

#include <cmath>
#include <numbers>

#include "formats/error.hpp"
#include "formats/philox.hpp"

namespace lowbit {

namespace {

// Uniform double in (0, 1) from stream position k.
double uniform(uint64_t seed, uint64_t k) {
  const uint64_t hi = sr_bits(seed, 2 * k), lo = sr_bits(seed, 2 * k + 1);
  const uint64_t bits53 = ((hi << 32) | lo) >> 11;
  return (static_cast<double>(bits53) + 0.5) * 0x1p-53;
}

double gaussian(uint64_t seed, uint64_t k) {
  const double u1 = uniform(seed, 2 * k), u2 = uniform(seed, 2 * k + 1);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

}  // namespace

std::string synthetic_distributions() { return "gaussian, laplace, student_t:NU, outlier_channels"; }

std::vector<float> synthetic_tensor(const std::string& dist, const Shape& shape, uint64_t seed) {
  const int64_t n = shape_numel(shape);
  if (n > (int64_t{1} << 31)) throw Error(fmt::format("synthetic tensor of {} elements is too large", n));
  std::vector<float> x(static_cast<size_t>(n));
  if (dist == "gaussian") {
    for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(gaussian(seed, i));
  } else if (dist == "laplace") {
    const double b = 1.0 / std::sqrt(2.0);
    for (int64_t i = 0; i < n; ++i) {
      const double u = uniform(seed, i) - 0.5;
      x[i] = static_cast<float>(-b * (u < 0 ? -1.0 : 1.0) * std::log(1.0 - 2.0 * std::abs(u)));
    }
  } else if (dist.rfind("student_t:", 0) == 0) {
    int nu = 0;
    try {
      nu = std::stoi(dist.substr(10));
    } catch (const std::exception&) {
      nu = 0;
    }
    if (nu < 1 || nu > 1000) throw Error(fmt::format("'{}': degrees of freedom must be an integer in 1..1000", dist));
    for (int64_t i = 0; i < n; ++i) {
      const uint64_t base = static_cast<uint64_t>(i) * (nu + 1);
      double chi2 = 0;
      for (int j = 1; j <= nu; ++j) {
        const double g = gaussian(seed, base + j);
        chi2 += g * g;
      }
      x[i] = static_cast<float>(gaussian(seed, base) / std::sqrt(chi2 / nu));
    }
  } else if (dist == "outlier_channels") {
    const int64_t cols = shape.empty() ? 1 : shape.back();
    const int64_t n_out = std::max<int64_t>(1, cols / 100);
    std::vector<double> gain(static_cast<size_t>(cols), 1.0);
    // Outlier channels chosen by the generator too (stream offset past the data).
    for (int64_t j = 0; j < n_out; ++j) {
      const uint64_t pick = static_cast<uint64_t>(uniform(seed, static_cast<uint64_t>(n) + j) * static_cast<double>(cols));
      gain[static_cast<size_t>(std::min<int64_t>(static_cast<int64_t>(pick), cols - 1))] = 50.0;
    }
    for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(gaussian(seed, i) * gain[static_cast<size_t>(i % cols)]);
  } else {
    throw Error(fmt::format("unknown distribution '{}' ({})", dist, synthetic_distributions()));
  }
  return x;
}

}  // namespace lowbit
