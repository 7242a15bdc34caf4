// Moving an axis last and back, and quantising along a chosen axis.
#include <gtest/gtest.h>

#include <numeric>

#include "formats/registry.hpp"
#include "sim/axis.hpp"

using namespace lowbit;

TEST(Axis, MovesMiddleAxisLastAndBack) {
  const Shape shape{2, 3, 4};
  std::vector<int> x(24);
  std::iota(x.begin(), x.end(), 0);
  const AxisMove m = axis_move(shape, 1);
  EXPECT_EQ(m.moved, (Shape{2, 4, 3}));
  const auto y = move_axis(m, x, false);
  // y[o][i][k] = x[o][k][i]
  for (int o = 0; o < 2; ++o)
    for (int i = 0; i < 4; ++i)
      for (int k = 0; k < 3; ++k) EXPECT_EQ(y[(o * 4 + i) * 3 + k], x[(o * 3 + k) * 4 + i]);
  EXPECT_EQ(move_axis(m, y, true), x);
  EXPECT_EQ(axis_move(shape, -1).moved, shape);
  EXPECT_EQ(axis_move(shape, -3).moved, (Shape{3, 4, 2}));
  EXPECT_THROW(axis_move(shape, 3), Error);
  EXPECT_THROW(axis_move(shape, -4), Error);
}

TEST(Axis, QuantisingAlongAxisZeroIsQuantisingTheTranspose) {
  const int64_t r = 64, c = 8;
  std::vector<float> x(r * c), xt(r * c);
  for (int64_t i = 0; i < r * c; ++i) x[i] = std::sin(0.37f * static_cast<float>(i)) * (1 + i % 7);
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < c; ++j) xt[j * r + i] = x[i * c + j];
  const auto f = make_format("int4:g32");
  const AxisMove m = axis_move({r, c}, 0);
  std::vector<float> y(x.size()), yt(x.size());
  f->fake_quant(move_axis(m, x, false), m.moved, y);
  f->fake_quant(xt, {c, r}, yt);
  EXPECT_EQ(y, yt);
}
