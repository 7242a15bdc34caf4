// Matrix types of the quantizer layer and the conventions every quantizer follows.
//
// A linear layer is Y = X·Wᵀ + b with X: tokens × in (b × m) and W: out × in (n × m), the
// PyTorch `weight` layout. Both X and W therefore have the reduction axis K = in-features as
// their last (column) axis, so groups "along K" are runs of consecutive columns of a row, the
// same axis the tensor formats group along. ALGORITHMS.md writes W as m × n; its "per output
// channel" is a row here, its "per input channel j" a column here.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include <Eigen/Dense>

namespace lowbit::quant {

using MatrixF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatrixD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using VectorF = Eigen::VectorXf;
using VectorD = Eigen::VectorXd;

// Copies a row-major rows × cols buffer into a matrix (lowbit::Error if the sizes disagree).
MatrixF matrix_from(std::span<const float> values, int64_t rows, int64_t cols);
std::vector<float> matrix_values(const MatrixF& m);

// Y = X·Wᵀ (+ bias on every row), accumulated in double, returned as float.
MatrixF linear_forward(const MatrixF& x, const MatrixF& w, const VectorF& bias = VectorF());

// ‖a − b‖²_F and ‖a‖²_F accumulated in double.
double sq_diff(const MatrixF& a, const MatrixF& b);
double sq_norm(const MatrixF& a);

// Rounds every element to IEEE binary16 (RNE, saturating to ±65504) — the "16-bit" arithmetic
// of low-rank branches and 16-bit activations.
MatrixF round_fp16(const MatrixF& m);
MatrixF round_bf16(const MatrixF& m);

}  // namespace lowbit::quant
