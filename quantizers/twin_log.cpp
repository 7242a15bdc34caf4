// Twin-Log (TLQ) and plain log2 weight quantizers (see twin_log.hpp).
#include "quantizers/twin_log.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "formats/error.hpp"

namespace lowbit::quant {
namespace {

constexpr size_t kCandidates = kTwinLogEtas.size() * kTwinLogClips.size() * kTwinLogClips.size();

void check_bits(int bits, std::string_view what) {
  if (bits < 2 || bits > 8) throw Error(fmt::format("{}: bits = {} is outside [2, 8]", what, bits));
}

bool on_side(float v, bool positive) { return std::isfinite(v) && (positive ? v > 0 : v < 0); }

// Δ and z of one side from its statistics vector (masked row or the side's own log values).
TwinLogSide side_params(std::vector<double>& stats, int bits, double clip) {
  TwinLogSide s;
  if (stats.empty()) return s;
  std::sort(stats.begin(), stats.end());
  const double rank = std::nearbyint(clip * static_cast<double>(stats.size() - 1));
  const double lo = stats.front(), hi = stats[static_cast<size_t>(rank)];
  double delta = (hi - lo) / std::ldexp(1.0, bits - 1);
  // A zero range (one distinct value): any tiny step reproduces lo with code 0.
  if (!(delta > 0)) delta = lo == 0 ? 1.0 : std::fabs(lo) * 0x1p-20;
  s.delta = delta;
  s.zero = std::nearbyint(lo / delta);
  return s;
}

// Statistics vector of one side for one η.
std::vector<double> side_stats(std::span<const float> row, bool positive, double eta, TwinLogStats stats) {
  std::vector<double> v;
  v.reserve(row.size());
  for (float x : row) {
    if (on_side(x, positive))
      v.push_back(std::log2(std::fabs(static_cast<double>(x)) + eta));
    else if (stats == TwinLogStats::Masked)
      v.push_back(0.0);
  }
  return v;
}

double dequant_one(float x, const TwinLogSide& s, double eta, int cmax, bool sign_flip) {
  const double l = std::log2(std::fabs(static_cast<double>(x)) + eta);
  const double code = std::clamp(std::nearbyint(l / s.delta) - s.zero, 0.0, static_cast<double>(cmax));
  double mag = std::exp2((code + s.zero) * s.delta) - eta;
  if (!sign_flip) mag = std::max(mag, 0.0);
  return mag;
}

int side_cmax(int bits, bool positive) { return positive ? (1 << (bits - 1)) - 1 : (1 << (bits - 1)); }

// Squared error of the side's elements for every clip (the other side's elements and zeros
// contribute nothing that depends on this side's parameters).
std::array<double, kTwinLogClips.size()> side_errors(std::span<const float> row, bool positive, double eta,
                                                     const TwinLogOptions& opt) {
  std::array<double, kTwinLogClips.size()> err{};
  std::vector<double> st = side_stats(row, positive, eta, opt.stats);
  const int cmax = side_cmax(opt.bits, positive);
  for (size_t c = 0; c < kTwinLogClips.size(); ++c) {
    const TwinLogSide s = side_params(st, opt.bits, kTwinLogClips[c]);  // sorts st once
    double e = 0;
    for (float x : row) {
      if (!on_side(x, positive)) continue;
      // Scored on the float the quantizer outputs.
      const double q = static_cast<float>(dequant_one(x, s, eta, cmax, opt.sign_flip));
      const double d = (positive ? q : -q) - static_cast<double>(x);
      e += d * d;
    }
    err[c] = e;
  }
  return err;
}

// Error of all 325 candidates of a row, index (η, clip+, clip−) in search order.
std::array<double, kCandidates> row_errors(std::span<const float> row, const TwinLogOptions& opt) {
  std::array<double, kCandidates> out{};
  size_t k = 0;
  for (double eta : kTwinLogEtas) {
    const auto ep = side_errors(row, true, eta, opt);
    const auto en = side_errors(row, false, eta, opt);
    for (double p : ep)
      for (double n : en) out[k++] = p + n;
  }
  return out;
}

TwinLogParams candidate_params(std::span<const float> row, const TwinLogOptions& opt, size_t k) {
  const size_t nc = kTwinLogClips.size();
  return tlq_candidate(row, opt, kTwinLogEtas[k / (nc * nc)], kTwinLogClips[(k / nc) % nc], kTwinLogClips[k % nc]);
}

std::span<const float> row_span(const MatrixF& x, int64_t r) {
  return std::span<const float>(x.data() + r * x.cols(), static_cast<size_t>(x.cols()));
}

}  // namespace

TwinLogParams tlq_candidate(std::span<const float> row, const TwinLogOptions& opt, double eta, double pos_clip,
                            double neg_clip) {
  check_bits(opt.bits, "tlq");
  if (!(eta >= 0) || !std::isfinite(eta)) throw Error(fmt::format("tlq: offset eta = {} must be >= 0", eta));
  for (double c : {pos_clip, neg_clip})
    if (!(c > 0 && c <= 1)) throw Error(fmt::format("tlq: clip percentile {} is outside (0, 1]", c));
  TwinLogParams p;
  p.eta = eta;
  p.pos_clip = pos_clip;
  p.neg_clip = neg_clip;
  std::vector<double> sp = side_stats(row, true, eta, opt.stats), sn = side_stats(row, false, eta, opt.stats);
  p.pos = side_params(sp, opt.bits, pos_clip);
  p.neg = side_params(sn, opt.bits, neg_clip);
  return p;
}

void tlq_dequant_row(std::span<const float> row, const TwinLogOptions& opt, const TwinLogParams& p,
                     std::span<float> out) {
  check_bits(opt.bits, "tlq");
  if (out.size() != row.size())
    throw Error(fmt::format("tlq: output row has {} elements for an input row of {}", out.size(), row.size()));
  for (size_t i = 0; i < row.size(); ++i) {
    const float x = row[i];
    if (on_side(x, true))
      out[i] = static_cast<float>(dequant_one(x, p.pos, p.eta, side_cmax(opt.bits, true), opt.sign_flip));
    else if (on_side(x, false))
      out[i] = static_cast<float>(-dequant_one(x, p.neg, p.eta, side_cmax(opt.bits, false), opt.sign_flip));
    else
      out[i] = x;  // zeros stay zero; NaN/Inf pass through
  }
}

std::vector<TwinLogParams> tlq_search(const MatrixF& x, const TwinLogOptions& opt) {
  check_bits(opt.bits, "tlq");
  const int64_t rows = x.rows();
  // Rows are independent; the tensor total is summed in row order afterwards (deterministic).
  std::vector<std::array<double, kCandidates>> err(static_cast<size_t>(rows));
#pragma omp parallel for schedule(dynamic)
  for (int64_t r = 0; r < rows; ++r) err[static_cast<size_t>(r)] = row_errors(row_span(x, r), opt);
  std::vector<TwinLogParams> out;
  out.reserve(static_cast<size_t>(rows));
  if (opt.select == TwinLogSelect::Row) {
    for (int64_t r = 0; r < rows; ++r) {
      const auto& e = err[static_cast<size_t>(r)];
      const size_t best = static_cast<size_t>(std::min_element(e.begin(), e.end()) - e.begin());
      out.push_back(candidate_params(row_span(x, r), opt, best));
    }
    return out;
  }
  std::array<double, kCandidates> total{};
  for (const auto& e : err)
    for (size_t k = 0; k < kCandidates; ++k) total[k] += e[k];
  const size_t best = static_cast<size_t>(std::min_element(total.begin(), total.end()) - total.begin());
  for (int64_t r = 0; r < rows; ++r) out.push_back(candidate_params(row_span(x, r), opt, best));
  return out;
}

TwinLogQuantizer::TwinLogQuantizer(TwinLogOptions opt) : opt_(opt) { check_bits(opt_.bits, "tlq"); }

std::string TwinLogQuantizer::spec() const {
  std::string s = fmt::format("tlq:bits={}", opt_.bits);
  if (opt_.select == TwinLogSelect::Tensor) s += ":select=tensor";
  if (opt_.stats == TwinLogStats::Side) s += ":stats=side";
  if (opt_.sign_flip) s += ":signflip";
  return s;
}

MatrixF TwinLogQuantizer::quantize(const MatrixF& x) const {
  MatrixF out(x.rows(), x.cols());
  if (x.size() == 0) return out;
  const std::vector<TwinLogParams> params = tlq_search(x, opt_);
  for (int64_t r = 0; r < x.rows(); ++r)
    tlq_dequant_row(row_span(x, r), opt_, params[static_cast<size_t>(r)],
                    std::span<float>(out.data() + r * x.cols(), static_cast<size_t>(x.cols())));
  return out;
}

double TwinLogQuantizer::bits_per_element(int64_t rows, int64_t cols) const {
  if (rows <= 0 || cols <= 0) return opt_.bits;
  const double per_row = opt_.select == TwinLogSelect::Row ? 5 * 32.0 : 4 * 32.0;
  const double per_tensor = opt_.select == TwinLogSelect::Row ? 0.0 : 32.0;
  return opt_.bits + per_row / static_cast<double>(cols) +
         per_tensor / (static_cast<double>(rows) * static_cast<double>(cols));
}

Log2Quantizer::Log2Quantizer(int bits) : bits_(bits) { check_bits(bits, "log2"); }

std::string Log2Quantizer::spec() const { return fmt::format("log2:bits={}", bits_); }

MatrixF Log2Quantizer::quantize(const MatrixF& x) const {
  MatrixF out = x;
  const double levels = std::ldexp(1.0, bits_ - 1);
  for (int64_t r = 0; r < x.rows(); ++r) {
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (int64_t j = 0; j < x.cols(); ++j) {
      const float v = x(r, j);
      if (v == 0 || !std::isfinite(v)) continue;
      const double e = std::log2(std::fabs(static_cast<double>(v)));
      lo = std::min(lo, e);
      hi = std::max(hi, e);
    }
    if (!(lo <= hi)) continue;  // no nonzero finite element
    const double delta = (hi - lo) / (levels - 1);
    for (int64_t j = 0; j < x.cols(); ++j) {
      const float v = x(r, j);
      if (v == 0 || !std::isfinite(v)) continue;
      const double e = std::log2(std::fabs(static_cast<double>(v)));
      const double code = delta > 0 ? std::clamp(std::nearbyint((e - lo) / delta), 0.0, levels - 1) : 0.0;
      const double mag = std::exp2(lo + delta * code);
      out(r, j) = static_cast<float>(v < 0 ? -mag : mag);
    }
  }
  return out;
}

double Log2Quantizer::bits_per_element(int64_t rows, int64_t cols) const {
  if (rows <= 0 || cols <= 0) return bits_;
  return bits_ + 2 * 32.0 / static_cast<double>(cols);
}

QuantizerPtr make_twin_log_quantizer(Spec& spec) {
  const int bits = static_cast<int>(spec.take_int("bits", 2, 8).value_or(4));
  if (spec.name() == "log2") {
    spec.finish("bits=2..8");
    return std::make_shared<Log2Quantizer>(bits);
  }
  if (spec.name() != "tlq") spec.fail("not a log quantizer (tlq or log2)");
  TwinLogOptions opt;
  opt.bits = bits;
  if (const auto s = spec.take("select")) {
    if (*s == "row") opt.select = TwinLogSelect::Row;
    else if (*s == "tensor") opt.select = TwinLogSelect::Tensor;
    else spec.fail(fmt::format("option 'select' must be row or tensor, got '{}'", *s));
  }
  if (const auto s = spec.take("stats")) {
    if (*s == "masked") opt.stats = TwinLogStats::Masked;
    else if (*s == "side") opt.stats = TwinLogStats::Side;
    else spec.fail(fmt::format("option 'stats' must be masked or side, got '{}'", *s));
  }
  opt.sign_flip = spec.take_flag("signflip");
  spec.finish("bits=2..8, select=row|tensor, stats=masked|side, signflip");
  return std::make_shared<TwinLogQuantizer>(opt);
}

}  // namespace lowbit::quant
