// Synthetic test tensors, reproducible bit for bit on any platform with IEEE libm: uniform
// variates come from Philox4x32-10 keyed by the seed (formats/philox.hpp), Gaussians from
// Box-Muller. Distributions (all zero-mean):
//   gaussian           N(0, 1)
//   laplace            Laplace with unit variance
//   student_t:NU       Student-t with integer NU degrees of freedom (heavy tails)
//   outlier_channels   N(0, 1) with 1% of the last-axis channels (at least one) scaled by 50,
//                      the channel-outlier pattern of LLM / DiT activations (SmoothQuant)
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "formats/tensor_format.hpp"

namespace lowbit {

std::vector<float> synthetic_tensor(const std::string& dist, const Shape& shape, uint64_t seed);
std::string synthetic_distributions();

}  // namespace lowbit
