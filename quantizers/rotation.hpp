// Rotation — an orthogonal transform H applied on the right of both sides of a linear layer:
// X·Wᵀ = (X·H)·(W·H)ᵀ because H·Hᵀ = I. Concrete rotations (Hadamard family, DuQuant-style) live
// in hadamard.hpp and are built by make_rotation.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "quantizers/matrix.hpp"

namespace lowbit::quant {

class Rotation {
 public:
  virtual ~Rotation() = default;
  virtual std::string spec() const = 0;
  virtual int64_t dim() const = 0;
  // x ← x·H for every row of x (x.cols() == dim(), lowbit::Error otherwise).
  virtual void apply(MatrixF& x) const = 0;
  // The dense dim × dim matrix H (for tests and small dims).
  MatrixF matrix() const;
};

using RotationPtr = std::shared_ptr<const Rotation>;

}  // namespace lowbit::quant
