// make_quantizer: registry formats (dynamic), "rtn:..." uniform quantizers, and "none".
#include "quantizers/quantizer.hpp"

#include <fmt/format.h>

#include "formats/error.hpp"
#include "formats/registry.hpp"
#include "quantizers/pts.hpp"
#include "quantizers/twin_log.hpp"
#include "quantizers/uniform.hpp"

namespace lowbit::quant {
namespace {

class IdentityQuantizer final : public MatrixQuantizer {
 public:
  std::string spec() const override { return "none"; }
  MatrixF quantize(const MatrixF& x) const override { return x; }
  double bits_per_element(int64_t, int64_t) const override { return 32; }
  QuantizerPtr calibrate(const MatrixF&) const override { return std::make_shared<IdentityQuantizer>(); }
  bool is_identity() const override { return true; }
};

// A registry format applied to the whole matrix (groups along the rows), scales from the data.
class FormatQuantizer final : public MatrixQuantizer, public std::enable_shared_from_this<FormatQuantizer> {
 public:
  explicit FormatQuantizer(std::unique_ptr<TensorFormat> f) : format_(std::move(f)) {}
  std::string spec() const override { return format_->spec(); }
  MatrixF quantize(const MatrixF& x) const override {
    MatrixF out(x.rows(), x.cols());
    if (x.size() == 0) return out;
    format_->fake_quant(std::span<const float>(x.data(), x.size()), Shape{x.rows(), x.cols()},
                        std::span<float>(out.data(), out.size()));
    return out;
  }
  double bits_per_element(int64_t rows, int64_t cols) const override {
    return format_->bits_per_element(Shape{rows, cols});
  }
  QuantizerPtr calibrate(const MatrixF&) const override { return shared_from_this(); }

 private:
  std::unique_ptr<TensorFormat> format_;
};

}  // namespace

QuantizerPtr make_quantizer(std::string_view text) {
  if (text == "none" || text == "fp32") return std::make_shared<IdentityQuantizer>();
  Spec spec(text);
  if (spec.name() == "rtn") return make_uniform_quantizer(spec);
  if (spec.name() == "pts") return make_pts_quantizer(spec);
  if (spec.name() == "tlq" || spec.name() == "log2") return make_twin_log_quantizer(spec);
  return std::make_shared<FormatQuantizer>(make_format(text));
}

double output_sq_error(const MatrixF& y_ref, const MatrixF& y_hat) { return sq_diff(y_ref, y_hat); }

}  // namespace lowbit::quant
