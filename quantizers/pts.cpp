// DMQ power-of-two channel scaling (see pts.hpp).
#include "quantizers/pts.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <tuple>

#include "formats/error.hpp"

namespace lowbit::quant {
namespace {

float code_max(int bits) { return static_cast<float>((int64_t{1} << bits) - 1); }

// x̂ for one element on the grid step·(q − zp), q ∈ [0, qmax]; all in fp32 like DMQ's torch code.
inline float fake_quant_one(float x, float step, float zp, float qmax) {
  if (std::isnan(x)) return x;
  const float q = std::clamp(std::nearbyint(x / step) + zp, 0.0f, qmax);
  return step * (q - zp);
}

void check_bits(int bits) {
  if (bits < 2 || bits > 16) throw Error(fmt::format("pts: bits = {} is outside [2, 16]", bits));
}

std::string_view mode_name(PtsMode m) { return m == PtsMode::Vote ? "vote" : "mse"; }

}  // namespace

PtsVote pts_vote(std::span<const int> best, int64_t samples, int64_t channels, double kappa) {
  if (samples <= 0 || channels < 0 || static_cast<int64_t>(best.size()) != samples * channels)
    throw Error(fmt::format("pts vote: {} choices for {} samples x {} channels", best.size(), samples, channels));
  if (!(kappa >= 0 && kappa <= 1)) throw Error(fmt::format("pts vote: kappa = {} is outside [0, 1]", kappa));
  PtsVote v;
  v.delta.resize(channels);
  v.voted.resize(channels);
  v.agreement.resize(channels);
  for (int64_t k = 0; k < channels; ++k) {
    std::array<int64_t, kPtsShifts> count{};
    for (int64_t n = 0; n < samples; ++n) {
      const int d = best[n * channels + k];
      if (d < 0 || d >= kPtsShifts)
        throw Error(fmt::format("pts vote: choice {} of sample {}, channel {} is outside [0, {}]", d, n, k,
                                kPtsShifts - 1));
      ++count[d];
    }
    // Mode; among equally frequent shifts the larger δ (torch.mode returns the smallest DMQ
    // index, and index 0 is Δ/8).
    int mode = kPtsShifts - 1;
    for (int j = kPtsShifts - 2; j >= 0; --j)
      if (count[j] > count[mode]) mode = j;
    const double r = static_cast<double>(count[mode]) / static_cast<double>(samples);
    v.voted[k] = mode;
    v.agreement[k] = r;
    v.delta[k] = r < kappa ? 0 : mode;
  }
  return v;
}

std::pair<float, float> pts_base_scale(const MatrixF& x, int bits) {
  check_bits(bits);
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  for (int64_t i = 0; i < x.size(); ++i) {
    const float v = x.data()[i];
    if (!std::isfinite(v)) continue;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  const float qmax = code_max(bits);
  if (!(lo <= hi)) return {1.0f / qmax, 0.0f};  // no finite value
  float range = hi - lo;
  if (!(range > 0) || !std::isfinite(range)) {
    // Constant tensor (DMQ would divide by zero) or a range overflowing fp32.
    range = std::isfinite(range) ? std::max(std::abs(lo), std::abs(hi)) : std::numeric_limits<float>::max();
    if (!(range > 0)) range = 1;
  }
  const float scale = range / qmax;
  return {scale, std::nearbyint(-lo / scale)};
}

std::vector<double> pts_shift_errors(const MatrixF& x, float scale, float zero_point, int bits,
                                     int64_t sample_rows, int64_t* samples) {
  check_bits(bits);
  if (sample_rows <= 0) throw Error(fmt::format("pts: sample_rows = {} must be positive", sample_rows));
  if (x.rows() == 0) throw Error("pts: calibration needs at least one row");
  const int64_t rows = x.rows(), cols = x.cols();
  const int64_t n_samples = (rows + sample_rows - 1) / sample_rows;
  const float qmax = code_max(bits);
  std::array<float, kPtsShifts> step{};
  for (int j = 0; j < kPtsShifts; ++j) step[j] = std::ldexp(scale, -j);
  std::vector<double> err(static_cast<size_t>(n_samples * cols * kPtsShifts), 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < n_samples; ++n) {
    const int64_t r_end = std::min(rows, (n + 1) * sample_rows);
    double* e = err.data() + n * cols * kPtsShifts;
    for (int64_t r = n * sample_rows; r < r_end; ++r)
      for (int64_t k = 0; k < cols; ++k) {
        const float v = x(r, k);
        if (!std::isfinite(v)) continue;
        for (int j = 0; j < kPtsShifts; ++j) {
          const double d = static_cast<double>(v) - fake_quant_one(v, step[j], zero_point, qmax);
          e[k * kPtsShifts + j] += d * d;
        }
      }
  }
  if (samples) *samples = n_samples;
  return err;
}

std::vector<int> pts_best_shifts(std::span<const double> errors, int64_t samples, int64_t channels) {
  if (samples <= 0 || channels < 0 || static_cast<int64_t>(errors.size()) != samples * channels * kPtsShifts)
    throw Error(fmt::format("pts: {} error entries for {} samples x {} channels x {} shifts", errors.size(),
                            samples, channels, kPtsShifts));
  std::vector<int> best(static_cast<size_t>(samples * channels));
  for (int64_t i = 0; i < samples * channels; ++i) {
    const double* e = errors.data() + i * kPtsShifts;
    int b = kPtsShifts - 1;  // ties to the larger shift (DMQ argmin over [Δ/8, Δ/4, Δ/2, Δ])
    for (int j = kPtsShifts - 2; j >= 0; --j)
      if (e[j] < e[b]) b = j;
    best[i] = b;
  }
  return best;
}

MatrixF pts_fake_quant(const MatrixF& x, float scale, float zero_point, std::span<const int> delta, int bits) {
  check_bits(bits);
  if (static_cast<int64_t>(delta.size()) != x.cols())
    throw Error(fmt::format("pts: {} channel shifts for a matrix with {} columns", delta.size(), x.cols()));
  const float qmax = code_max(bits);
  std::vector<float> step(delta.size());
  for (size_t k = 0; k < delta.size(); ++k) {
    if (delta[k] < 0 || delta[k] >= kPtsShifts)
      throw Error(fmt::format("pts: shift {} of channel {} is outside [0, {}]", delta[k], k, kPtsShifts - 1));
    step[k] = std::ldexp(scale, -delta[k]);
  }
  MatrixF out(x.rows(), x.cols());
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < x.rows(); ++r)
    for (int64_t k = 0; k < x.cols(); ++k) out(r, k) = fake_quant_one(x(r, k), step[k], zero_point, qmax);
  return out;
}

PtsCalibration pts_calibrate(const MatrixF& x, const PtsOptions& o) {
  if (!(o.kappa >= 0 && o.kappa <= 1)) throw Error(fmt::format("pts: kappa = {} is outside [0, 1]", o.kappa));
  PtsCalibration c;
  std::tie(c.scale, c.zero_point) = pts_base_scale(x, o.bits);
  const int64_t cols = x.cols();
  const std::vector<double> err = pts_shift_errors(x, c.scale, c.zero_point, o.bits, o.sample_rows, &c.samples);
  const std::vector<int> best = pts_best_shifts(err, c.samples, cols);
  PtsVote v = pts_vote(best, c.samples, cols, o.kappa);
  c.voted = std::move(v.voted);
  c.agreement = std::move(v.agreement);
  if (o.mode == PtsMode::Vote) {
    c.delta = std::move(v.delta);
  } else {
    // Whole-set MSE: sum the per-sample scores, one argmin per channel.
    std::vector<double> total(static_cast<size_t>(cols * kPtsShifts), 0.0);
    for (int64_t n = 0; n < c.samples; ++n)
      for (int64_t i = 0; i < cols * kPtsShifts; ++i) total[i] += err[n * cols * kPtsShifts + i];
    c.delta = pts_best_shifts(total, 1, cols);
  }
  return c;
}

PtsQuantizer::PtsQuantizer(PtsOptions o, std::optional<PtsCalibration> c) : opt_(o), cal_(std::move(c)) {
  check_bits(o.bits);
  if (!(o.kappa >= 0 && o.kappa <= 1)) throw Error(fmt::format("pts: kappa = {} is outside [0, 1]", o.kappa));
  if (o.sample_rows <= 0) throw Error(fmt::format("pts: sample_rows = {} must be positive", o.sample_rows));
}

std::string PtsQuantizer::spec() const {
  return fmt::format("pts:bits={}:kappa={}:mode={}:sample_rows={}", opt_.bits, opt_.kappa, mode_name(opt_.mode),
                     opt_.sample_rows);
}

MatrixF PtsQuantizer::quantize(const MatrixF& x) const {
  if (!cal_) {
    const PtsCalibration c = pts_calibrate(x, opt_);
    return pts_fake_quant(x, c.scale, c.zero_point, c.delta, opt_.bits);
  }
  if (static_cast<int64_t>(cal_->delta.size()) != x.cols())
    throw Error(fmt::format("{}: calibrated for {} channels, got a matrix with {} columns", spec(),
                            cal_->delta.size(), x.cols()));
  return pts_fake_quant(x, cal_->scale, cal_->zero_point, cal_->delta, opt_.bits);
}

double PtsQuantizer::bits_per_element(int64_t rows, int64_t cols) const {
  if (rows <= 0 || cols <= 0) return opt_.bits;
  const double r = static_cast<double>(rows), c = static_cast<double>(cols);
  return opt_.bits + kPtsShiftBits / r + 64.0 / (r * c);
}

QuantizerPtr PtsQuantizer::calibrate(const MatrixF& calib) const {
  return std::make_shared<PtsQuantizer>(opt_, pts_calibrate(calib, opt_));
}

PtsOptions take_pts_options(Spec& spec, std::string_view bits_key) {
  PtsOptions o;
  if (const auto b = spec.take_int(bits_key, 2, 16)) o.bits = static_cast<int>(*b);
  if (const auto k = spec.take("kappa")) {
    double v = 0;
    const auto [ptr, ec] = std::from_chars(k->data(), k->data() + k->size(), v);
    if (k->empty() || ec != std::errc() || ptr != k->data() + k->size())
      spec.fail(fmt::format("option 'kappa' needs a number in [0, 1], got '{}'", *k));
    if (!(v >= 0 && v <= 1)) spec.fail(fmt::format("option 'kappa' = {} is outside [0, 1]", *k));
    o.kappa = v;
  }
  if (const auto m = spec.take("mode")) {
    if (*m == "vote") o.mode = PtsMode::Vote;
    else if (*m == "mse") o.mode = PtsMode::Mse;
    else spec.fail(fmt::format("option 'mode' is vote or mse, got '{}'", *m));
  }
  if (const auto s = spec.take_int("sample_rows", 1, std::numeric_limits<int64_t>::max())) o.sample_rows = *s;
  return o;
}

QuantizerPtr make_pts_quantizer(Spec& spec) {
  const PtsOptions o = take_pts_options(spec, "bits");
  spec.finish("bits=8, kappa=0.85, mode=vote|mse, sample_rows=64");
  return std::make_shared<PtsQuantizer>(o);
}

QuantizedLinear pts_linear(const LinearProblem& p, Spec& spec) {
  const PtsOptions o = take_pts_options(spec, "abits");
  if (!p.wq) throw Error("pts: the weight quantizer must be set");
  if (p.x.size() == 0 || p.w.size() == 0) throw Error("pts: empty activations or weight");
  if (p.x.cols() != p.w.cols())
    throw Error(fmt::format("pts: activations have {} columns but the weight has {} input features", p.x.cols(),
                            p.w.cols()));
  auto act = std::make_shared<PtsQuantizer>(o, pts_calibrate(p.x, o));
  const PtsCalibration& c = *act->calibration();

  QuantizedLinear q;
  q.algorithm = fmt::format("pts:abits={}:kappa={}:mode={}:sample_rows={}", o.bits, o.kappa, mode_name(o.mode),
                            o.sample_rows);
  q.act = act;
  q.weight = p.wq->quantize(p.w);
  q.bias = p.bias;
  q.weight_bits = p.wq->bits_per_element(p.w.rows(), p.w.cols());
  q.act_bits = act->bits_per_element(p.x.rows(), p.x.cols());

  std::array<int64_t, kPtsShifts> hist{}, voted_hist{};
  int64_t fallback = 0, unanimous = 0;
  double r_min = 1, r_max = 0, r_sum = 0;
  for (size_t k = 0; k < c.delta.size(); ++k) {
    ++hist[c.delta[k]];
    ++voted_hist[c.voted[k]];
    if (c.voted[k] != 0 && c.delta[k] == 0) ++fallback;
    if (c.agreement[k] == 1) ++unanimous;
    r_min = std::min(r_min, c.agreement[k]);
    r_max = std::max(r_max, c.agreement[k]);
    r_sum += c.agreement[k];
  }
  const double channels = static_cast<double>(c.delta.size());
  q.info = {
      {"act_quantizer", act->spec()},
      {"replaced_act_quantizer", p.aq ? p.aq->spec() : std::string("(none given)")},
      {"kappa", o.kappa},
      {"mode", mode_name(o.mode)},
      {"samples", c.samples},
      {"sample_rows", o.sample_rows},
      {"scale", c.scale},
      {"zero_point", c.zero_point},
      {"delta_histogram", hist},
      {"voted_histogram", voted_hist},
      {"kappa_fallback_channels", o.mode == PtsMode::Vote ? fallback : 0},
      {"agreement", {{"min", channels > 0 ? r_min : 0.0},
                     {"mean", channels > 0 ? r_sum / channels : 0.0},
                     {"max", r_max},
                     {"unanimous_channels", unanimous}}},
  };
  return q;
}

}  // namespace lowbit::quant
