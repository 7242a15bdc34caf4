// QuantizedLinear, RTN and the linear-algorithm registry (see linear.hpp).
#include "quantizers/linear.hpp"

#include <fmt/format.h>

#include "formats/error.hpp"
#include "quantizers/hadamard.hpp"
#include "quantizers/pts.hpp"
#include "quantizers/quartz.hpp"
#include "quantizers/smoothing.hpp"
#include "quantizers/svd_lowrank.hpp"

namespace lowbit::quant {

MatrixF QuantizedLinear::transform(const MatrixF& x) const {
  MatrixF t = x;
  if (smooth.size() != 0) {
    if (smooth.size() != x.cols())
      throw Error(fmt::format("{}: smoothing factors have {} entries for {} input features", algorithm,
                              smooth.size(), x.cols()));
    t = (t.array().rowwise() / smooth.transpose().array()).matrix();
  }
  if (rotation) rotation->apply(t);
  return t;
}

MatrixF QuantizedLinear::forward(const MatrixF& x) const {
  if (x.cols() != weight.cols())
    throw Error(fmt::format("{}: activations have {} columns but the layer has {} input features", algorithm,
                            x.cols(), weight.cols()));
  const MatrixF xt = transform(x);
  const MatrixF xq = (act && !act->is_identity()) ? act->quantize(xt) : xt;
  if (float32_products) {
    MatrixF y = xq * weight.transpose();
    if (rank() > 0) {
      const MatrixF xb = branch_fp16 ? round_fp16(xt) : xt;
      MatrixF down = xb * lr_down.transpose();
      if (branch_fp16) down = round_fp16(down);
      y += down * lr_up.transpose();
    }
    if (bias.size() != 0) y.rowwise() += bias.transpose();
    return y;
  }
  MatrixD y = xq.cast<double>() * weight.cast<double>().transpose();
  if (rank() > 0) {
    const MatrixF xb = branch_fp16 ? round_fp16(xt) : xt;
    MatrixF down = (xb.cast<double>() * lr_down.cast<double>().transpose()).cast<float>();
    if (branch_fp16) down = round_fp16(down);
    y += down.cast<double>() * lr_up.cast<double>().transpose();
  }
  if (bias.size() != 0) y.rowwise() += bias.cast<double>().transpose();
  return y.cast<float>();
}

double QuantizedLinear::weight_bits_per_element() const {
  const double m = static_cast<double>(weight.cols()), n = static_cast<double>(weight.rows());
  if (m == 0 || n == 0) return weight_bits;
  return weight_bits + 16.0 * static_cast<double>(rank()) * (m + n) / (m * n);
}

double calibration_error(const LinearProblem& p, const QuantizedLinear& q) {
  return output_sq_error(linear_forward(p.x, p.w, p.bias), q.forward(p.x));
}

namespace {
void check_problem(const LinearProblem& p) {
  if (!p.wq || !p.aq) throw Error("linear problem: weight and activation quantizers must be set");
  if (p.w.size() == 0 || p.x.size() == 0) throw Error("linear problem: empty activations or weight");
  if (p.x.cols() != p.w.cols())
    throw Error(fmt::format("linear problem: activations have {} columns but the weight has {} input features",
                            p.x.cols(), p.w.cols()));
  if (p.bias.size() != 0 && p.bias.size() != p.w.rows())
    throw Error(fmt::format("linear problem: bias has {} entries for {} output features", p.bias.size(), p.w.rows()));
}
}  // namespace

QuantizedLinear rtn_linear(const LinearProblem& p) {
  check_problem(p);
  QuantizedLinear q;
  q.algorithm = "rtn";
  q.act = p.aq->calibrate(p.x);
  q.weight = p.wq->quantize(p.w);
  q.bias = p.bias;
  q.weight_bits = p.wq->bits_per_element(p.w.rows(), p.w.cols());
  q.act_bits = p.aq->bits_per_element(p.x.rows(), p.x.cols());
  return q;
}

const std::vector<LinearAlgorithmEntry>& linear_algorithms() {
  static const std::vector<LinearAlgorithmEntry> entries = {
      {"rtn", "round-to-nearest of both sides, no transform (the naive baseline)", "",
       [](const LinearProblem& p, Spec&) { return rtn_linear(p); }},
      {"smoothquant", "SmoothQuant smoothing λ = span_x^α / span_w^β, then RTN; alpha=search runs SVDQuant's 39-candidate grid",
       "alpha=0.5|search, beta=1-alpha, span=absmax|rms, grid=20", smoothquant_linear},
      {"svdquant", "SVDQuant: smoothing (low-rank-aware search) + rank-r 16-bit SVD branch + quantised residual, refinement",
       "rank=32, smooth=search|off|ALPHA, iters=1, early_stop=on|off, grid=20, span=absmax|rms", svdquant_linear},
      {"svd", "the SVD low-rank branch alone (no smoothing, one shot): SVDQuant's 'SVD only' ablation", "rank=32",
       svd_only_linear},
      {"quartz", "QuaRTZ: lzs4 activations (INT8 stage + LZS) with a chosen weight scheme",
       "g=16, s8=token|tensor, calib=absmax|minmax, round=trunc|rne, w=given|int4_row|int4_g64|lzs", quartz_linear},
      {"rotate", "one orthogonal rotation of both sides: Hadamard (H_m ⊗ H_2^k), randomized Hadamard, block Hadamard or DuQuant (ALGORITHMS.md §7, §4.2)",
       "kind=hadamard|rht|block|duquant, block=128, seed=<problem seed>, steps=256, shared", rotate_linear},
      {"ars", "LRQ-DiT adaptive rotation: SmoothQuant balancing, then block Hadamard if J < tau else DuQuant (ALGORITHMS.md §4.2)",
       "tau=1, block=128, alpha=0.5, small=block|rht, steps=256, shared, seed=<problem seed>", ars_linear},
      {"pts", "DMQ channel-wise power-of-two activation scaling with kappa voting (ALGORITHMS.md §5.3)",
       kPtsLinearOptions, [](const LinearProblem& p, Spec& s) { return pts_linear(p, s); }},
      {"lorc", "LoRC: RTN weights plus a rank-r 16-bit branch of the weight error W - Q(W)", "rank=32", lorc_linear},
  };
  return entries;
}

QuantizedLinear quantize_linear(std::string_view text, const LinearProblem& p) {
  check_problem(p);
  Spec spec(text);
  for (const auto& e : linear_algorithms()) {
    if (e.name != spec.name()) continue;
    QuantizedLinear q = e.run(p, spec);
    spec.finish(e.options);
    if (q.algorithm.empty()) q.algorithm = spec.text();
    return q;
  }
  std::string names;
  for (const auto& e : linear_algorithms()) names += (names.empty() ? "" : ", ") + e.name;
  throw Error(fmt::format("unknown algorithm '{}' (known: {})", spec.name(), names));
}

}  // namespace lowbit::quant
