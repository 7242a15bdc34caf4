// Moving one axis of a C-order tensor to the end and back: formats group along the last
// axis, so quantising along axis A is quantising the tensor with A moved last.
#pragma once
#include <fmt/format.h>

#include <vector>

#include "formats/error.hpp"
#include "formats/tensor_format.hpp"

namespace lowbit {

// [outer, A, inner] viewed as [outer, inner, A]; axis may be negative (from the end).
struct AxisMove {
  int64_t outer = 1, mid = 1, inner = 1;
  Shape moved;
};

inline AxisMove axis_move(const Shape& shape, int axis) {
  const int rank = static_cast<int>(shape.size());
  if (rank == 0) {
    if (axis != -1 && axis != 0) throw Error(fmt::format("axis {} is out of range for a scalar", axis));
    return {1, 1, 1, shape};
  }
  const int a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw Error(fmt::format("axis {} is out of range for shape {}", axis, shape_str(shape)));
  AxisMove m;
  for (int d = 0; d < a; ++d) m.outer *= shape[d];
  m.mid = shape[a];
  for (int d = a + 1; d < rank; ++d) m.inner *= shape[d];
  for (int d = 0; d < rank; ++d)
    if (d != a) m.moved.push_back(shape[d]);
  m.moved.push_back(shape[a]);
  return m;
}

// Copies x into the moved layout, or (back) from it into the original one.
template <class T>
std::vector<T> move_axis(const AxisMove& m, const std::vector<T>& x, bool back) {
  if (m.inner == 1) return x;  // already last
  std::vector<T> y(x.size());
  for (int64_t o = 0; o < m.outer; ++o)
    for (int64_t k = 0; k < m.mid; ++k)
      for (int64_t i = 0; i < m.inner; ++i) {
        const int64_t src = (o * m.mid + k) * m.inner + i, dst = (o * m.inner + i) * m.mid + k;
        if (back) y[src] = x[dst];
        else y[dst] = x[src];
      }
  return y;
}

}  // namespace lowbit
