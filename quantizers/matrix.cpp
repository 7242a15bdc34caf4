// Matrix helpers of the quantizer layer (see matrix.hpp).
#include "quantizers/matrix.hpp"

#include <fmt/format.h>

#include "formats/error.hpp"
#include "formats/float_format.hpp"

namespace lowbit::quant {

MatrixF matrix_from(std::span<const float> values, int64_t rows, int64_t cols) {
  if (rows < 0 || cols < 0 || (cols != 0 && rows > INT64_MAX / cols) ||
      static_cast<int64_t>(values.size()) != rows * cols)
    throw Error(fmt::format("matrix of {} x {} needs {} values, got {}", rows, cols, rows * cols, values.size()));
  MatrixF m(rows, cols);
  std::copy(values.begin(), values.end(), m.data());
  return m;
}

std::vector<float> matrix_values(const MatrixF& m) { return std::vector<float>(m.data(), m.data() + m.size()); }

MatrixF linear_forward(const MatrixF& x, const MatrixF& w, const VectorF& bias) {
  if (x.cols() != w.cols())
    throw Error(fmt::format("linear layer: activations have {} columns but the weight has {} input features",
                            x.cols(), w.cols()));
  if (bias.size() != 0 && bias.size() != w.rows())
    throw Error(fmt::format("linear layer: bias has {} entries for {} output features", bias.size(), w.rows()));
  MatrixD y = x.cast<double>() * w.cast<double>().transpose();
  if (bias.size() != 0) y.rowwise() += bias.cast<double>().transpose();
  return y.cast<float>();
}

double sq_diff(const MatrixF& a, const MatrixF& b) {
  if (a.rows() != b.rows() || a.cols() != b.cols())
    throw Error(fmt::format("matrices differ in shape: {} x {} vs {} x {}", a.rows(), a.cols(), b.rows(), b.cols()));
  return (a.cast<double>() - b.cast<double>()).squaredNorm();
}

double sq_norm(const MatrixF& a) { return a.cast<double>().squaredNorm(); }

MatrixF round_fp16(const MatrixF& m) {
  return m.unaryExpr([](float v) { return round_to_float(fmt_desc::fp16, v); });
}
MatrixF round_bf16(const MatrixF& m) {
  return m.unaryExpr([](float v) { return round_to_float(fmt_desc::bf16, v); });
}

}  // namespace lowbit::quant
