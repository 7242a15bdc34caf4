// Quantization recipes: which weight format, activation format and algorithm each linear layer of
// a model gets (issue 6, docs/recipes.md). A recipe is a JSON file in the family of sweep files:
//
//   {
//     "name": "w4a4-svdquant",
//     "description": "free text",
//     "seed": 0,
//     "products": "float64",
//     "default": {"weight": "int4:g64", "act": "int4:g64", "algorithm": "rtn"},
//     "layers": [
//       {"match": "t_embedder.*", "keep": "bf16"},
//       {"match": "*.adaLN_modulation.*", "keep": "bf16"},
//       {"match": "blocks.*.attn.qkv", "algorithm": "svdquant:rank=32"}
//     ],
//     "calibration": {"images": 4, "seed": 1000, "steps": [0, 16, 33, 49], "rows": 512}
//   }
//
// A layer takes the first rule whose glob `match` (sim/sweep.hpp glob_match: '*' spans dots)
// matches its name, else "default"; fields a rule leaves out come from "default". "keep": D
// (fp32 | fp16 | bf16) keeps a layer in D: weight and activations rounded to D, algorithm rtn.
// Weight and activation specs are quantizer specs (quantizers/quantizer.hpp: any registry
// format with dynamic scales, "rtn:...:static" for calibrated static scales, "pts:...",
// "none"); algorithms are quantizers/linear.hpp's registry. Calibration: activations of every
// linear captured while the full-precision model samples `images` images (labels and noise from
// `seed`) at the listed Euler step indices, `rows` token rows per layer kept (evenly spaced).
// "products" (float64 | float32, default float64): how quantized layers multiply while sampling
// (quant::QuantizedLinear::float32_products); quantization itself does not depend on it.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "quantizers/linear.hpp"

namespace lowbit {

struct LayerPlan {
  std::string weight = "none";    // canonical quantizer spec
  std::string act = "none";       // canonical quantizer spec
  std::string algorithm = "rtn";  // linear algorithm spec
  std::string rule = "default";   // which rule chose it: "default" or "layers[i]"
};

struct CalibrationPlan {
  int64_t images = 4;
  uint64_t seed = 1000;
  std::vector<int64_t> steps = {0, 16, 33, 49};  // Euler step indices (0 = the pure-noise step)
  int64_t rows = 512;                             // token rows kept per layer
};

struct Recipe {
  std::string name;
  std::string description;
  uint64_t seed = 0;  // LinearProblem::seed of every layer
  bool float32_products = false;  // "products": "float32"
  LayerPlan defaults;
  std::vector<std::pair<std::string, LayerPlan>> rules;  // (glob, resolved plan), in file order
  CalibrationPlan calibration;

  // The plan of a layer: the first matching rule, else the default.
  LayerPlan plan_for(std::string_view layer) const;
  // True when no layer can be quantized (every plan keeps fp32): no calibration is needed.
  bool full_precision() const;
};

// Parses a recipe; lowbit::Error "LABEL: key.path: what is wrong" on any problem (unknown keys,
// bad specs, unknown algorithms, duplicate keys, bad calibration values).
Recipe parse_recipe(std::string_view json_text, const std::string& label);
Recipe load_recipe(const std::filesystem::path& path);
// The full-precision recipe (every layer "none"/"none"/"rtn"), name "fp32".
Recipe full_precision_recipe();
// A recipe file path, or "fp32" for full_precision_recipe().
Recipe recipe_from_arg(const std::string& arg);

// Quantizes one layer as its plan says, from calibration activations x (rows × in), weight w
// (out × in, PyTorch layout) and bias b (out or empty).
quant::QuantizedLinear quantize_layer(const LayerPlan& plan, const quant::MatrixF& x, const quant::MatrixF& w,
                                      const quant::VectorF& b, uint64_t seed);

}  // namespace lowbit
