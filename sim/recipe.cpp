// Quantization recipes (sim/recipe.hpp).
#include "sim/recipe.hpp"

#include <fmt/format.h>

#include <fstream>
#include <sstream>
#include <variant>

#include "formats/error.hpp"
#include "formats/registry.hpp"
#include "formats/spec.hpp"
#include "quantizers/quantizer.hpp"
#include "sim/json_fields.hpp"
#include "sim/json_strict.hpp"
#include "sim/sweep.hpp"

namespace lowbit {

using Json = nlohmann::json;

namespace {

class RecipeParser : private JsonFields {
 public:
  explicit RecipeParser(std::string label) : JsonFields(std::move(label)) {}

  Recipe parse(const Json& root) {
    if (!root.is_object()) throw Error(label() + ": expected a JSON object at the top level");
    check_keys(root, "", {"name", "description", "seed", "products", "default", "layers", "calibration"});
    Recipe r;
    r.name = root.contains("name") ? string(root["name"], "name") : std::filesystem::path(label()).stem().string();
    for (const char c : r.name)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'))
        fail("name", fmt::format("'{}': use letters, digits, '_', '-' and '.' only", r.name));
    if (root.contains("description")) {
      if (!root["description"].is_string()) fail("description", "expected a string");
      r.description = root["description"].get<std::string>();
    }
    if (root.contains("seed")) r.seed = static_cast<uint64_t>(integer(root["seed"], "seed", 0, INT64_MAX, "a non-negative integer"));
    if (root.contains("products")) {
      const std::string p = string(root["products"], "products");
      if (p != "float64" && p != "float32") fail("products", fmt::format("'{}': expected float64 or float32", p));
      r.float32_products = p == "float32";
    }
    if (!root.contains("default")) fail("default", "missing (the plan of layers no rule matches)");
    LayerPlan base;
    r.defaults = plan(root["default"], "default", base, false);
    if (root.contains("layers")) {
      const Json& layers = root["layers"];
      if (!layers.is_array()) fail("layers", "expected a list of rules");
      for (size_t i = 0; i < layers.size(); ++i) {
        const std::string path = fmt::format("layers[{}]", i);
        object(layers[i], path);
        if (!layers[i].contains("match")) fail(path + ".match", "missing (a glob over layer names)");
        const std::string match = string(layers[i]["match"], path + ".match");
        LayerPlan p = plan(layers[i], path, r.defaults, true);
        p.rule = path;
        r.rules.emplace_back(match, std::move(p));
      }
    }
    if (root.contains("calibration")) r.calibration = calibration(root["calibration"], "calibration");
    return r;
  }

 private:
  // A plan object: weight / act / algorithm over `base`, or keep (rules also have match).
  LayerPlan plan(const Json& j, const std::string& path, const LayerPlan& base, bool rule) {
    object(j, path);
    std::vector<std::string> keys = {"weight", "act", "algorithm", "keep"};
    if (rule) keys.push_back("match");
    check_keys(j, path, keys);
    LayerPlan p = base;
    if (j.contains("keep")) {
      for (const char* k : {"weight", "act", "algorithm"})
        if (j.contains(k)) fail(path + "." + k, "not allowed with \"keep\" (a kept layer is rounded to that dtype)");
      const std::string d = string(j["keep"], path + ".keep");
      if (d != "fp32" && d != "fp16" && d != "bf16") fail(path + ".keep", fmt::format("'{}': expected fp32, fp16 or bf16", d));
      p.weight = p.act = d == "fp32" ? "none" : d;
      p.algorithm = "rtn";
      return p;
    }
    if (j.contains("weight")) p.weight = quantizer(string(j["weight"], path + ".weight"), path + ".weight");
    if (j.contains("act")) p.act = quantizer(string(j["act"], path + ".act"), path + ".act");
    if (j.contains("algorithm")) p.algorithm = algorithm(string(j["algorithm"], path + ".algorithm"), path + ".algorithm");
    return p;
  }

  std::string quantizer(const std::string& spec, const std::string& path) {
    try {
      return quant::make_quantizer(spec)->spec();
    } catch (const Error& e) {
      fail(path, fmt::format("'{}': {}", spec, e.what()));
    }
  }

  // The name and spec syntax are checked here; options when the algorithm runs.
  std::string algorithm(const std::string& spec, const std::string& path) {
    std::string name;
    try {
      name = Spec(spec).name();
    } catch (const Error& e) {
      fail(path, fmt::format("'{}': {}", spec, e.what()));
    }
    std::vector<std::string> known;
    for (const auto& e : quant::linear_algorithms()) {
      if (e.name == name) return spec;
      known.push_back(e.name);
    }
    fail(path, fmt::format("'{}': unknown algorithm '{}' (known: {})", spec, name, fmt::join(known, ", ")));
  }

  CalibrationPlan calibration(const Json& j, const std::string& path) {
    object(j, path);
    check_keys(j, path, {"images", "seed", "steps", "rows"});
    CalibrationPlan c;
    if (j.contains("images")) c.images = integer(j["images"], path + ".images", 1, 4096, "an integer in [1, 4096]");
    if (j.contains("seed")) c.seed = static_cast<uint64_t>(integer(j["seed"], path + ".seed", 0, INT64_MAX, "a non-negative integer"));
    if (j.contains("steps")) c.steps = int_list(j["steps"], path + ".steps", 0, "a non-empty list of step indices >= 0");
    if (j.contains("rows")) c.rows = integer(j["rows"], path + ".rows", 1, 1 << 20, "an integer in [1, 1048576]");
    return c;
  }
};

}  // namespace

LayerPlan Recipe::plan_for(std::string_view layer) const {
  for (const auto& [match, plan] : rules)
    if (glob_match(match, layer)) return plan;
  return defaults;
}

bool Recipe::full_precision() const {
  auto fp = [](const LayerPlan& p) { return p.weight == "none" && p.act == "none" && p.algorithm == "rtn"; };
  if (!fp(defaults)) return false;
  for (const auto& [m, p] : rules)
    if (!fp(p)) return false;
  return true;
}

Recipe parse_recipe(std::string_view json_text, const std::string& label) {
  return RecipeParser(label).parse(parse_json_strict(json_text, label));
}

Recipe load_recipe(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot open the recipe file", path.string()));
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_recipe(ss.str(), path.string());
}

Recipe full_precision_recipe() {
  Recipe r;
  r.name = "fp32";
  r.description = "full precision: every layer in float32";
  return r;
}

Recipe recipe_from_arg(const std::string& arg) { return arg == "fp32" ? full_precision_recipe() : load_recipe(arg); }

namespace {

// Whether two activation quantizers are the same: equal specs, or two spellings of one lzs4 format
// (lzs4 specs are not canonical: "lzs4:g16:s8=token" = "lzs4:g16:s8=token:calib=absmax:round=trunc").
bool same_quantizer(const quant::MatrixQuantizer& a, const quant::MatrixQuantizer& b) {
  if (a.spec() == b.spec()) return true;
  try {
    const FormatParams pa = make_format(a.spec())->params(), pb = make_format(b.spec())->params();
    return std::holds_alternative<LzsParams>(pa) && std::holds_alternative<LzsParams>(pb) &&
           std::get<LzsParams>(pa) == std::get<LzsParams>(pb);
  } catch (const Error&) {  // not registry formats
    return false;
  }
}

}  // namespace

quant::QuantizedLinear quantize_layer(const LayerPlan& plan, const quant::MatrixF& x, const quant::MatrixF& w,
                                      const quant::VectorF& b, uint64_t seed) {
  quant::LinearProblem p;
  p.x = x;
  p.w = w;
  p.bias = b;
  p.wq = quant::make_quantizer(plan.weight);
  p.aq = quant::make_quantizer(plan.act);
  p.seed = seed;
  quant::QuantizedLinear q = quant::quantize_linear(plan.algorithm, p);
  // Algorithms with their own activation quantizer (quartz, pts) replace the one given. A recipe
  // names its act explicitly, so one that would be dropped is an error, not a silent change.
  if (!p.aq->is_identity() && q.act && !same_quantizer(*p.aq, *q.act))
    throw Error(fmt::format("algorithm '{}' quantizes activations as '{}', not as the act '{}' given: give act "
                            "\"none\" or that format",
                            plan.algorithm, q.act->spec(), plan.act));
  return q;
}

}  // namespace lowbit
