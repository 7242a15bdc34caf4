// Rotation::matrix — the dense form of any rotation, by transforming the identity.
#include "quantizers/rotation.hpp"

namespace lowbit::quant {

MatrixF Rotation::matrix() const {
  MatrixF h = MatrixF::Identity(dim(), dim());
  apply(h);
  return h;
}

}  // namespace lowbit::quant
