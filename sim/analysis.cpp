// Error analysis, code entropy and LZS FLAG histograms (see analysis.hpp).
#include "sim/analysis.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>

#include "formats/error.hpp"
#include "formats/lzs.hpp"

namespace lowbit {

namespace {

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

double ratio(double num, double den) { return den > 0 ? num / den : kNan; }

// Binary entropy h(p) in bits; h(0) = h(1) = 0.
double binary_entropy(double p) {
  if (p <= 0 || p >= 1) return 0;
  return -p * std::log2(p) - (1 - p) * std::log2(1 - p);
}

}  // namespace

nlohmann::json json_number(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

TensorAnalysis analyze_tensor(std::span<const float> x, std::span<const float> q) {
  if (x.size() != q.size())
    throw Error(fmt::format("tensor analysis: {} reference vs {} quantised values", x.size(), q.size()));
  if (x.empty()) throw Error("tensor analysis: empty tensor");
  TensorAnalysis a;
  std::vector<int64_t> idx;  // compared elements
  idx.reserve(x.size());
  double se = 0, sx = 0, sq = 0, dot = 0, sabs = 0, mx = 0;
  int64_t zeros = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i])) {
      ++a.skipped;
      continue;
    }
    if (!std::isfinite(q[i])) {
      ++a.nonfinite_out;
      continue;
    }
    const double xv = x[i], qv = q[i], d = xv - qv;
    se += d * d;
    sx += xv * xv;
    sq += qv * qv;
    dot += xv * qv;
    sabs += std::abs(d);
    mx = std::max(mx, std::abs(d));
    zeros += qv == 0;
    idx.push_back(static_cast<int64_t>(i));
  }
  a.count = static_cast<int64_t>(idx.size());
  if (a.count == 0) {
    a.mse = a.rel_mse = a.sqnr_db = a.cosine = a.max_abs = a.mean_abs = kNan;
    a.small_threshold = a.small_rel_mse = a.small_flushed = a.zero_fraction = kNan;
    return a;
  }
  const double n = static_cast<double>(a.count);
  a.mse = se / n;
  a.rel_mse = ratio(se, sx);
  a.sqnr_db = sx > 0 ? (se > 0 ? -10.0 * std::log10(se / sx) : std::numeric_limits<double>::infinity()) : kNan;
  a.cosine = (sx > 0 && sq > 0) ? dot / (std::sqrt(sx) * std::sqrt(sq)) : kNan;
  a.max_abs = mx;
  a.mean_abs = sabs / n;
  a.zero_fraction = static_cast<double>(zeros) / n;

  // The floor(count/2) smallest |x|, order (|x|, index): a strict total order, so the set is unique.
  const int64_t k = a.count / 2;
  a.small_count = k;
  if (k == 0) {
    a.small_threshold = a.small_rel_mse = a.small_flushed = kNan;
    return a;
  }
  auto less = [&](int64_t i, int64_t j) {
    const float ai = std::fabs(x[i]), aj = std::fabs(x[j]);
    return ai < aj || (ai == aj && i < j);
  };
  std::nth_element(idx.begin(), idx.begin() + (k - 1), idx.end(), less);
  a.small_threshold = std::fabs(x[idx[k - 1]]);
  double sse = 0, ssx = 0;
  int64_t nonzero = 0, flushed = 0;
  for (int64_t j = 0; j < k; ++j) {
    const int64_t i = idx[j];
    const double xv = x[i], d = xv - static_cast<double>(q[i]);
    sse += d * d;
    ssx += xv * xv;
    if (x[i] != 0.0f) {
      ++nonzero;
      flushed += q[i] == 0.0f;
    }
  }
  a.small_rel_mse = ratio(sse, ssx);
  a.small_nonzero = nonzero;
  a.small_flushed = nonzero ? static_cast<double>(flushed) / static_cast<double>(nonzero) : kNan;
  return a;
}

TensorAnalysis analyze_output(const quant::MatrixF& y, const quant::MatrixF& y_hat) {
  if (y.rows() != y_hat.rows() || y.cols() != y_hat.cols())
    throw Error(fmt::format("layer output analysis: reference is {} x {} but the quantised output is {} x {}",
                            y.rows(), y.cols(), y_hat.rows(), y_hat.cols()));
  return analyze_tensor(std::span<const float>(y.data(), static_cast<size_t>(y.size())),
                        std::span<const float>(y_hat.data(), static_cast<size_t>(y_hat.size())));
}

CodeEntropy code_entropy(std::span<const uint32_t> codes, int code_bits) {
  if (code_bits < 1 || code_bits > 32) throw Error(fmt::format("code entropy: code width {} is outside 1..32", code_bits));
  if (codes.empty()) throw Error("code entropy: no codes");
  const uint64_t limit = uint64_t{1} << code_bits;
  CodeEntropy e;
  e.code_bits = code_bits;
  e.count = static_cast<int64_t>(codes.size());
  std::vector<int64_t> ones(static_cast<size_t>(code_bits), 0);
  std::unordered_map<uint32_t, int64_t> sparse;
  if (code_bits <= 16) e.histogram.assign(static_cast<size_t>(limit), 0);
  for (size_t i = 0; i < codes.size(); ++i) {
    const uint32_t c = codes[i];
    if (c >= limit) throw Error(fmt::format("code entropy: code {} at element {} does not fit {} bits", c, i, code_bits));
    if (code_bits <= 16) ++e.histogram[c];
    else ++sparse[c];
    for (int b = 0; b < code_bits; ++b) ones[static_cast<size_t>(b)] += (c >> b) & 1u;
  }
  const double n = static_cast<double>(e.count);
  auto add = [&](int64_t cnt) {
    if (cnt == 0) return;
    ++e.distinct;
    const double p = static_cast<double>(cnt) / n;
    e.entropy_bits -= p * std::log2(p);
  };
  if (code_bits <= 16)
    for (const int64_t cnt : e.histogram) add(cnt);
  else
    for (const auto& [c, cnt] : sparse) add(cnt);
  e.entropy_bits = std::max(0.0, e.entropy_bits);  // a single code gives −1·log2(1) = −0
  double sum = 0;
  for (int b = 0; b < code_bits; ++b) {
    e.bit_entropy.push_back(binary_entropy(static_cast<double>(ones[static_cast<size_t>(b)]) / n));
    sum += e.bit_entropy.back();
  }
  e.mean_bit_entropy = sum / code_bits;
  return e;
}

CodeEntropy code_entropy(const TensorFormat& format, const PackedTensor& packed) {
  const std::vector<uint32_t> codes = format.unpacked_codes(packed);
  return code_entropy(codes, packed.code_bits);
}

FlagHistogram lzs_flags(const PackedTensor& packed) {
  FlagHistogram h;
  h.counts = lzs_flag_histogram(packed);
  for (const int64_t c : h.counts) h.groups += c;
  for (int f = 0; f < 5; ++f) h.fraction[f] = h.groups ? static_cast<double>(h.counts[f]) / h.groups : kNan;
  h.p_flag_positive = h.groups ? static_cast<double>(h.groups - h.counts[0]) / h.groups : kNan;
  return h;
}

nlohmann::json to_json(const TensorAnalysis& a) {
  return {{"count", a.count},
          {"skipped_nonfinite", a.skipped},
          {"nonfinite_out", a.nonfinite_out},
          {"mse", json_number(a.mse)},
          {"rel_mse", json_number(a.rel_mse)},
          {"sqnr_db", json_number(a.sqnr_db)},
          {"cosine", json_number(a.cosine)},
          {"max_abs_err", json_number(a.max_abs)},
          {"mean_abs_err", json_number(a.mean_abs)},
          {"zero_fraction", json_number(a.zero_fraction)},
          {"small",
           {{"count", a.small_count},
            {"threshold", json_number(a.small_threshold)},
            {"rel_mse", json_number(a.small_rel_mse)},
            {"nonzero", a.small_nonzero},
            {"flushed_fraction", json_number(a.small_flushed)}}}};
}

nlohmann::json to_json(const CodeEntropy& e) {
  nlohmann::json bits = nlohmann::json::array();
  for (const double b : e.bit_entropy) bits.push_back(json_number(b));
  return {{"code_bits", e.code_bits},       {"count", e.count},
          {"distinct", e.distinct},         {"histogram", e.histogram},
          {"entropy_bits", e.entropy_bits}, {"bit_entropy", bits},
          {"mean_bit_entropy", e.mean_bit_entropy}};
}

nlohmann::json to_json(const FlagHistogram& h) {
  nlohmann::json frac = nlohmann::json::array();
  for (const double f : h.fraction) frac.push_back(json_number(f));
  return {{"counts", h.counts}, {"groups", h.groups}, {"fraction", frac}, {"p_flag_positive", json_number(h.p_flag_positive)}};
}

}  // namespace lowbit
