// Sweep files: strict parsing and validation, template expansion over axes, tensor and pair
// resolution (names, globs, captured-layer pairs), and expansion into deduplicated cells with
// stable ids. The runner is in sim/sweep_run.cpp; the schema in docs/sweeps.md.
#include "sim/sweep.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <optional>
#include <cctype>
#include <string_view>
#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "formats/error.hpp"
#include "sim/json_fields.hpp"
#include "sim/json_strict.hpp"
#include "formats/registry.hpp"
#include "formats/spec.hpp"
#include "quantizers/linear.hpp"
#include "quantizers/quantizer.hpp"
#include "sim/safetensors.hpp"
#include "sim/synthetic.hpp"

namespace lowbit {

bool glob_match(std::string_view pat, std::string_view text) {
  size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (p < pat.size() && (pat[p] == '?' || pat[p] == text[t])) {
      ++p;
      ++t;
    } else if (p < pat.size() && pat[p] == '*') {
      star = p++;
      mark = t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pat.size() && pat[p] == '*') ++p;
  return p == pat.size();
}

namespace {

using Json = nlohmann::ordered_json;
using Axes = std::vector<std::pair<std::string, std::vector<Json>>>;

// Columns every row has; axis names must not shadow them.
const std::vector<std::string> kFixedColumns = {
    "sweep", "cell_id", "kind",  "source", "tensor", "w_source", "weight", "seed", "step", "layer", "shape",
    "format", "algorithm", "wfmt", "afmt"};
const std::vector<std::string> kMetricColumns = {"bits_per_element", "w_bits", "a_bits", "mse",     "rel_mse",
                                                 "sqnr_db",          "max_abs", "numel", "seconds", "error", "info"};

// Largest synthetic tensor a sweep may ask for (elements): 1 GiB of float32.
constexpr int64_t kMaxSyntheticNumel = int64_t{1} << 28;

std::string join(const std::vector<std::string>& v, std::string_view sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : std::string(sep)) + s;
  return out;
}

std::string shape_text(const Shape& s) {
  std::vector<std::string> d;
  for (int64_t v : s) d.push_back(std::to_string(v));
  return join(d, "x");
}

// " (bits=4, group=32)" for the axis values a spec was expanded with, naming it in errors.
std::string axis_suffix(const AxisValues& ax) {
  std::vector<std::string> parts;
  for (const auto& [k, v] : ax) parts.push_back(k + "=" + (v.is_string() ? v.get<std::string>() : v.dump()));
  return parts.empty() ? "" : " (" + join(parts, ", ") + ")";
}

// "'spec': why", unless the message already names the spec.
std::string spec_error(const std::string& spec, const std::string& why) {
  return why.find("'" + spec + "'") != std::string::npos ? why : fmt::format("'{}': {}", spec, why);
}

// "step033.blocks.3.mlp.fc2.input" -> step "33", layer "blocks.3.mlp.fc2" (the capture tool's
// naming, data/captured/README.md; ".output" and a ".callN" suffix too); "<layer>.weight" ->
// layer; a "stepNNN" component elsewhere gives the step only. Steps are decimal without
// leading zeros; more than 18 digits are not a step.
void parse_captured_name(const std::string& name, std::string& step, std::string& layer) {
  auto digits = [](std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  auto step_of = [&](std::string_view comp) -> std::string {
    if (comp.size() < 5 || !comp.starts_with("step") || !digits(comp.substr(4))) return "";
    std::string_view d = comp.substr(4);
    while (d.size() > 1 && d[0] == '0') d.remove_prefix(1);
    return d.size() <= 18 ? std::string(d) : "";
  };
  std::vector<std::string_view> comps;
  for (size_t start = 0;;) {
    const size_t dot = name.find('.', start);
    comps.push_back(std::string_view(name).substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  for (const auto& c : comps) {
    step = step_of(c);
    if (!step.empty()) break;
  }
  size_t end = comps.size();
  if (end > 0 && comps[end - 1].starts_with("call") && digits(comps[end - 1].substr(4))) --end;
  auto join_range = [&](size_t a, size_t b) {
    std::string out;
    for (size_t i = a; i < b; ++i) out += (i > a ? "." : "") + std::string(comps[i]);
    return out;
  };
  if (comps.size() >= 3 && !step_of(comps[0]).empty() && end >= 3 &&
      (comps[end - 1] == "input" || comps[end - 1] == "output")) {
    layer = join_range(1, end - 1);
  } else if (comps.size() >= 2 && comps.back() == "weight") {
    layer = join_range(0, comps.size() - 1);
  }
}

Json parse_json(std::string_view text, const std::string& label) { return parse_json_strict(text, label); }

// Builds a plan from the parsed JSON; every error names the file and the key path.
class Parser : private JsonFields {
 public:
  Parser(std::string label, std::filesystem::path dir) : JsonFields(std::move(label)), dir_(std::move(dir)) {}

  SweepPlan parse(const Json& root);

 private:
  std::vector<int> tensor_source(const Json& j, const std::string& path);
  std::vector<int> file_source(const Json& j, const std::string& path);
  std::vector<int> synthetic_source(const Json& j, const std::string& path);
  std::vector<std::pair<int, int>> pair_entry(const Json& j, const std::string& path);
  std::vector<std::pair<int, int>> captured_pairs(const Json& j, const std::string& path);
  const std::vector<std::string>& names_in(const std::filesystem::path& file, const std::string& path);
  std::filesystem::path resolve(const std::string& p) const { return (base_ / p).lexically_normal(); }
  int add_tensor(SweepTensor t);

  // Expanded templates of one list key, each validated: (spec as canonical, axis values).
  struct Expanded {
    std::string text;
    AxisValues axes;
  };
  std::vector<std::vector<Expanded>> templates(const Json& root, const std::string& key);
  std::string canonical_format(const std::string& spec, const std::string& path);
  std::string canonical_quantizer(const std::string& spec, const std::string& path);
  std::string checked_algorithm(const std::string& spec, const std::string& path);
  void add_cell(SweepCell cell);

  std::filesystem::path dir_, base_;
  SweepPlan plan_;
  Axes axes_;
  std::set<std::string> used_axes_;
  std::unordered_map<std::string, int> tensor_index_;
  std::map<std::filesystem::path, std::vector<std::string>> names_cache_;
  std::unordered_map<std::string, std::string> spec_cache_;
  std::unordered_set<std::string> canonicals_;
};

int Parser::add_tensor(SweepTensor t) {
  const std::string key = t.key();
  const auto it = tensor_index_.find(key);
  if (it != tensor_index_.end()) return it->second;
  if (!t.synthetic) parse_captured_name(t.name, t.step, t.layer);
  plan_.tensors.push_back(std::move(t));
  const int idx = static_cast<int>(plan_.tensors.size()) - 1;
  tensor_index_.emplace(key, idx);
  return idx;
}

const std::vector<std::string>& Parser::names_in(const std::filesystem::path& file, const std::string& path) {
  auto it = names_cache_.find(file);
  if (it != names_cache_.end()) return it->second;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) fail(path, fmt::format("no such file {}", file.string()));
  try {
    return names_cache_.emplace(file, safetensors_names(file)).first->second;
  } catch (const Error& e) {
    fail(path, e.what());
  }
}

std::vector<int> Parser::tensor_source(const Json& j, const std::string& path) {
  object(j, path);
  const bool file = j.contains("file"), synth = j.contains("synthetic");
  if (file == synth) fail(path, "expected exactly one of \"file\" and \"synthetic\"");
  return file ? file_source(j, path) : synthetic_source(j, path);
}

std::vector<int> Parser::file_source(const Json& j, const std::string& path) {
  check_keys(j, path, {"file", "names", "pattern"});
  const std::string source = string(j["file"], path + ".file");
  const std::filesystem::path file = resolve(source);
  std::vector<int> out;
  if (source.ends_with(".npy")) {
    if (j.contains("names") || j.contains("pattern")) fail(path, ".npy files hold one tensor: no names or pattern");
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec)) fail(path + ".file", fmt::format("no such file {}", file.string()));
    SweepTensor t;
    t.source = source;
    t.path = file;
    out.push_back(add_tensor(std::move(t)));
    return out;
  }
  if (!source.ends_with(".safetensors")) fail(path + ".file", "expected a .npy or .safetensors file");
  if (j.contains("names") && j.contains("pattern")) fail(path, "give \"names\" or \"pattern\", not both");
  const std::vector<std::string>& available = names_in(file, path + ".file");
  std::vector<std::string> chosen;
  if (j.contains("names")) {
    const std::vector<std::string> names = string_list(j["names"], path + ".names");
    const std::set<std::string> have(available.begin(), available.end());
    for (size_t i = 0; i < names.size(); ++i) {
      if (!have.count(names[i])) fail(fmt::format("{}.names[{}]", path, i), fmt::format("no tensor '{}' in {}", names[i], source));
      chosen.push_back(names[i]);
    }
  } else if (j.contains("pattern")) {
    const Json& p = j["pattern"];
    const std::vector<std::string> pats =
        p.is_string() ? std::vector<std::string>{string(p, path + ".pattern")} : string_list(p, path + ".pattern");
    for (const auto& name : available) {
      if (std::any_of(pats.begin(), pats.end(), [&](const std::string& g) { return glob_match(g, name); }))
        chosen.push_back(name);
    }
    if (chosen.empty()) fail(path + ".pattern", fmt::format("matches no tensor of {}", source));
  } else {
    chosen = available;
    if (chosen.empty()) fail(path + ".file", "holds no tensors");
  }
  for (const auto& name : chosen) {
    SweepTensor t;
    t.source = source;
    t.path = file;
    t.name = name;
    out.push_back(add_tensor(std::move(t)));
  }
  return out;
}

std::vector<int> Parser::synthetic_source(const Json& j, const std::string& path) {
  check_keys(j, path, {"synthetic", "shape", "seeds"});
  const std::string dist = string(j["synthetic"], path + ".synthetic");
  try {
    synthetic_tensor(dist, Shape{1}, 0);
  } catch (const Error& e) {
    fail(path + ".synthetic", e.what());
  }
  if (!j.contains("shape")) fail(path + ".shape", "missing (a list of positive integers)");
  const std::vector<int64_t> shape = int_list(j["shape"], path + ".shape", 1, "a list of positive integers");
  int64_t numel = 1;
  for (int64_t d : shape) {
    if (d > kMaxSyntheticNumel / numel) fail(path + ".shape", fmt::format("more than {} elements", kMaxSyntheticNumel));
    numel *= d;
  }
  std::vector<int64_t> seeds{0};
  if (j.contains("seeds")) seeds = int_list(j["seeds"], path + ".seeds", 0, "a list of non-negative integers");
  std::vector<int> out;
  for (int64_t s : seeds) {
    SweepTensor t;
    t.synthetic = true;
    t.source = "synthetic:" + dist;
    t.dist = dist;
    t.shape = shape;
    t.seed = static_cast<uint64_t>(s);
    out.push_back(add_tensor(std::move(t)));
  }
  return out;
}

std::vector<std::pair<int, int>> Parser::pair_entry(const Json& j, const std::string& path) {
  object(j, path);
  if (j.contains("captured")) return captured_pairs(j, path);
  check_keys(j, path, {"x", "w"});
  if (!j.contains("x") || !j.contains("w")) fail(path, "expected \"x\" and \"w\" tensor sources (or \"captured\")");
  const std::vector<int> xs = tensor_source(j["x"], path + ".x");
  const std::vector<int> ws = tensor_source(j["w"], path + ".w");
  std::vector<std::pair<int, int>> out;
  for (int w : ws)
    for (int x : xs) out.emplace_back(x, w);
  return out;
}

// {"captured": FILE, "layers": glob(s), "steps": [..]}: every layer with a "<layer>.weight"
// whose name matches, paired with each "stepNNN.<layer>.input" of the chosen steps.
std::vector<std::pair<int, int>> Parser::captured_pairs(const Json& j, const std::string& path) {
  check_keys(j, path, {"captured", "layers", "steps"});
  const std::string source = string(j["captured"], path + ".captured");
  if (!source.ends_with(".safetensors")) fail(path + ".captured", "expected a .safetensors file");
  const std::filesystem::path file = resolve(source);
  const std::vector<std::string>& names = names_in(file, path + ".captured");
  std::vector<std::string> pats{"*"};
  if (j.contains("layers")) {
    const Json& l = j["layers"];
    pats = l.is_string() ? std::vector<std::string>{string(l, path + ".layers")} : string_list(l, path + ".layers");
  }
  std::optional<std::set<int64_t>> steps;
  if (j.contains("steps")) {
    const auto v = int_list(j["steps"], path + ".steps", 0, "a list of non-negative integers");
    steps.emplace(v.begin(), v.end());
  }
  std::set<int64_t> steps_seen;
  std::vector<std::pair<int, int>> out;
  for (const auto& wname : names) {
    std::string step, layer;
    parse_captured_name(wname, step, layer);
    if (!wname.ends_with(".weight") || layer.empty() || !step.empty()) continue;
    if (std::none_of(pats.begin(), pats.end(), [&](const std::string& g) { return glob_match(g, layer); })) continue;
    for (const auto& xname : names) {
      std::string xs, xl;
      parse_captured_name(xname, xs, xl);
      if (xs.empty() || xl != layer || !xname.ends_with(".input")) continue;
      const int64_t s = std::stoll(xs);  // at most 18 digits
      steps_seen.insert(s);
      if (steps && !steps->count(s)) continue;
      SweepTensor x, w;
      x.source = w.source = source;
      x.path = w.path = file;
      x.name = xname;
      w.name = wname;
      const int xi = add_tensor(std::move(x));
      out.emplace_back(xi, add_tensor(std::move(w)));
    }
  }
  if (steps) {
    for (int64_t s : *steps)
      if (!steps_seen.count(s)) fail(path + ".steps", fmt::format("no step {} among the matching layers' inputs", s));
  }
  if (out.empty()) fail(path, fmt::format("no layer of {} has both \"<layer>.weight\" and \"stepNNN.<layer>.input\"", source));
  return out;
}

std::vector<std::vector<Parser::Expanded>> Parser::templates(const Json& root, const std::string& key) {
  std::vector<std::vector<Expanded>> out;
  const std::vector<std::string> list = string_list(root[key], key);
  for (size_t i = 0; i < list.size(); ++i) {
    std::vector<Expanded> e;
    try {
      for (auto& [text, ax] : expand_template(list[i], axes_)) {
        for (const auto& [name, v] : ax) used_axes_.insert(name);
        e.push_back({std::move(text), std::move(ax)});
      }
    } catch (const Error& err) {
      fail(fmt::format("{}[{}]", key, i), err.what());
    }
    out.push_back(std::move(e));
  }
  return out;
}

std::string Parser::canonical_format(const std::string& spec, const std::string& path) {
  const std::string key = "f|" + spec;
  if (auto it = spec_cache_.find(key); it != spec_cache_.end()) return it->second;
  try {
    return spec_cache_[key] = make_format(spec)->spec();
  } catch (const Error& e) {
    fail(path, spec_error(spec, e.what()));
  }
}

std::string Parser::canonical_quantizer(const std::string& spec, const std::string& path) {
  const std::string key = "q|" + spec;
  if (auto it = spec_cache_.find(key); it != spec_cache_.end()) return it->second;
  try {
    return spec_cache_[key] = quant::make_quantizer(spec)->spec();
  } catch (const Error& e) {
    fail(path, spec_error(spec, e.what()));
  }
}

// Algorithm options are consumed only when the algorithm runs (quantize_linear), so an unknown
// option shows as an error row; the name and the spec syntax are checked here.
std::string Parser::checked_algorithm(const std::string& spec, const std::string& path) {
  std::string name;
  try {
    name = Spec(spec).name();
  } catch (const Error& e) {
    fail(path, spec_error(spec, e.what()));
  }
  std::vector<std::string> known;
  for (const auto& e : quant::linear_algorithms()) {
    if (e.name == name) return spec;
    known.push_back(e.name);
  }
  fail(path, fmt::format("'{}': unknown algorithm '{}' (known: {})", spec, name, join(known, ", ")));
}

void Parser::add_cell(SweepCell cell) {
  if (!canonicals_.insert(cell.canonical).second) {
    ++plan_.duplicates;
    return;
  }
  cell.id = sweep_cell_id(cell.canonical);
  plan_.cells.push_back(std::move(cell));
}

SweepPlan Parser::parse(const Json& root) {
  if (!root.is_object()) throw Error(fmt::format("{}: expected a JSON object at the top level", label()));
  check_keys(root, "", {"name", "description", "root", "output", "threads", "seed", "axes", "tensors", "formats",
                        "pairs", "algorithms", "weight_formats", "act_formats"});
  plan_.file = label();
  plan_.name = root.contains("name") ? string(root["name"], "name") : std::filesystem::path(label()).stem().string();
  if (!std::all_of(plan_.name.begin(), plan_.name.end(),
                   [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'; }))
    fail("name", "expected letters, digits, '_', '-' and '.' only");
  if (root.contains("description") && !root["description"].is_string()) fail("description", "expected a string");
  base_ = dir_;
  if (root.contains("root")) base_ = dir_ / string(root["root"], "root");
  plan_.output = root.contains("output") ? resolve(string(root["output"], "output"))
                                         : (dir_ / "results" / plan_.name).lexically_normal();
  if (root.contains("threads")) plan_.threads = static_cast<int>(integer(root["threads"], "threads", 1, 4096, "a positive integer"));
  if (root.contains("seed")) plan_.seed = static_cast<uint64_t>(integer(root["seed"], "seed", 0, INT64_MAX, "a non-negative integer"));

  if (root.contains("axes")) {
    const Json& ax = object(root["axes"], "axes");
    for (const auto& [name, values] : ax.items()) {
      const std::string path = "axes." + name;
      const auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
      if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0])) || !std::all_of(name.begin(), name.end(), word))
        fail(path, "axis names are identifiers (letters, digits, '_')");
      if (std::find(kFixedColumns.begin(), kFixedColumns.end(), name) != kFixedColumns.end() ||
          std::find(kMetricColumns.begin(), kMetricColumns.end(), name) != kMetricColumns.end())
        fail(path, "clashes with a result column of the same name");
      if (!values.is_array() || values.empty()) fail(path, "expected a non-empty list of strings or numbers");
      std::vector<Json> vs;
      std::set<std::string> seen;
      for (size_t i = 0; i < values.size(); ++i) {
        const Json& v = values[i];
        const bool ok = v.is_string() || v.is_number_integer() || v.is_number_unsigned() ||
                        (v.is_number_float() && std::isfinite(v.get<double>()));
        if (!ok) fail(fmt::format("{}[{}]", path, i), "expected a string or a finite number");
        if (!seen.insert(v.dump()).second) fail(fmt::format("{}[{}]", path, i), "duplicate value");
        vs.push_back(v);
      }
      axes_.emplace_back(name, std::move(vs));
      plan_.axis_names.push_back(name);
    }
  }

  const bool has_tensors = root.contains("tensors"), has_pairs = root.contains("pairs");
  if (!has_tensors && !has_pairs) fail("tensors", "missing: a sweep needs \"tensors\" (with \"formats\") or \"pairs\"");
  if (has_tensors != root.contains("formats"))
    fail(has_tensors ? "formats" : "tensors", "\"tensors\" and \"formats\" go together");
  for (const char* k : {"algorithms", "weight_formats", "act_formats"})
    if (!has_pairs && root.contains(k)) fail(k, "only meaningful with \"pairs\"");
  if (has_pairs)
    for (const char* k : {"weight_formats", "act_formats"})
      if (!root.contains(k)) fail(k, "missing (required with \"pairs\"; \"none\" keeps a side unquantized)");

  // Tensor cells: format template x its axis values x tensor.
  if (has_tensors) {
    const Json& ts = root["tensors"];
    if (!ts.is_array() || ts.empty()) fail("tensors", "expected a non-empty list of tensor sources");
    std::vector<int> tensors;
    for (size_t i = 0; i < ts.size(); ++i) {
      for (int t : tensor_source(ts[i], fmt::format("tensors[{}]", i)))
        if (std::find(tensors.begin(), tensors.end(), t) == tensors.end()) tensors.push_back(t);
    }
    const auto formats = templates(root, "formats");
    for (size_t i = 0; i < formats.size(); ++i) {
      for (const Expanded& e : formats[i]) {
        const std::string spec = canonical_format(e.text, fmt::format("formats[{}]{}", i, axis_suffix(e.axes)));
        for (int t : tensors) {
          SweepCell c;
          c.kind = SweepCell::Kind::Tensor;
          c.tensor = t;
          c.format = spec;
          c.axes = e.axes;
          c.canonical = fmt::format("tensor|{}|{}", plan_.tensors[t].key(), spec);
          add_cell(std::move(c));
        }
      }
    }
  }

  // Linear cells: (algorithm, weight format, act format) templates expanded jointly over the
  // union of their axes (so "int{bits}" on both sides ties W and A bits), x pair.
  if (has_pairs) {
    const Json& ps = root["pairs"];
    if (!ps.is_array() || ps.empty()) fail("pairs", "expected a non-empty list of (x, w) pairs");
    std::vector<std::pair<int, int>> pairs;
    for (size_t i = 0; i < ps.size(); ++i) {
      for (const auto& p : pair_entry(ps[i], fmt::format("pairs[{}]", i)))
        if (std::find(pairs.begin(), pairs.end(), p) == pairs.end()) pairs.push_back(p);
    }
    const Json algos = root.contains("algorithms") ? root["algorithms"] : Json::array({"rtn"});
    const std::vector<std::string> alg = string_list(algos, "algorithms");
    const std::vector<std::string> wf = string_list(root["weight_formats"], "weight_formats");
    const std::vector<std::string> af = string_list(root["act_formats"], "act_formats");
    // '\x1f' cannot occur in a spec: the three templates expand as one string, then split.
    for (size_t ia = 0; ia < alg.size(); ++ia)
      for (size_t iw = 0; iw < wf.size(); ++iw)
        for (size_t ix = 0; ix < af.size(); ++ix) {
          const std::string joined = alg[ia] + '\x1f' + wf[iw] + '\x1f' + af[ix];
          std::vector<std::pair<std::string, AxisValues>> expanded;
          try {
            expanded = expand_template(joined, axes_);
          } catch (const Error& err) {
            // Name the template that holds the bad placeholder.
            for (const auto& [key, list, i] : {std::tuple{"algorithms", &alg, ia}, std::tuple{"weight_formats", &wf, iw},
                                               std::tuple{"act_formats", &af, ix}}) {
              try {
                expand_template((*list)[i], axes_);
              } catch (const Error& e) {
                fail(fmt::format("{}[{}]", key, i), e.what());
              }
            }
            fail("algorithms", err.what());
          }
          for (auto& [text, ax] : expanded) {
            for (const auto& [name, v] : ax) used_axes_.insert(name);
            const size_t s1 = text.find('\x1f'), s2 = text.find('\x1f', s1 + 1);
            const std::string sfx = axis_suffix(ax);
            const std::string a = checked_algorithm(text.substr(0, s1), fmt::format("algorithms[{}]{}", ia, sfx));
            const std::string w =
                canonical_quantizer(text.substr(s1 + 1, s2 - s1 - 1), fmt::format("weight_formats[{}]{}", iw, sfx));
            const std::string x = canonical_quantizer(text.substr(s2 + 1), fmt::format("act_formats[{}]{}", ix, sfx));
            for (const auto& [xi, wi] : pairs) {
              SweepCell c;
              c.kind = SweepCell::Kind::Linear;
              c.tensor = xi;
              c.weight = wi;
              c.algorithm = a;
              c.wfmt = w;
              c.afmt = x;
              c.axes = ax;
              c.canonical = fmt::format("linear|x={}|w={}|alg={}|wq={}|aq={}|seed={}", plan_.tensors[xi].key(),
                                        plan_.tensors[wi].key(), a, w, x, plan_.seed);
              add_cell(std::move(c));
            }
          }
        }
  }

  for (const auto& [name, v] : axes_)
    if (!used_axes_.count(name)) fail("axes." + name, "not used by any template");
  return std::move(plan_);
}

std::string axis_text(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) return fmt::format("{}", v.get<double>());
  return v.dump();
}

}  // namespace

std::string SweepTensor::key() const {
  if (synthetic) return fmt::format("synthetic:{}:{}:seed={}", dist, shape_text(shape), seed);
  return name.empty() ? "file:" + source : fmt::format("file:{}:{}", source, name);
}

std::string SweepTensor::label() const {
  if (synthetic) return fmt::format("{}(seed={})", dist, seed);
  return name.empty() ? source : name;
}

std::string sweep_cell_id(std::string_view canonical) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : canonical) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return fmt::format("{:016x}", h);
}

std::vector<std::pair<std::string, AxisValues>> expand_template(
    std::string_view tmpl, const std::vector<std::pair<std::string, std::vector<Json>>>& axes) {
  // Split into literal pieces and axis references.
  struct Piece {
    std::string text;
    int axis = -1;
  };
  std::vector<Piece> pieces;
  std::vector<bool> used(axes.size(), false);
  std::string lit;
  for (size_t i = 0; i < tmpl.size(); ++i) {
    if (tmpl[i] == '}') throw Error(fmt::format("'{}': unmatched '}}'", tmpl));
    if (tmpl[i] != '{') {
      lit += tmpl[i];
      continue;
    }
    const size_t close = tmpl.find('}', i);
    if (close == std::string_view::npos) throw Error(fmt::format("'{}': unterminated '{{'", tmpl));
    const std::string name(tmpl.substr(i + 1, close - i - 1));
    int idx = -1;
    for (size_t a = 0; a < axes.size(); ++a)
      if (axes[a].first == name) idx = static_cast<int>(a);
    if (idx < 0) {
      std::vector<std::string> names;
      for (const auto& a : axes) names.push_back(a.first);
      throw Error(fmt::format("'{}': unknown axis '{{{}}}' (axes: {})", tmpl, name,
                              names.empty() ? std::string("none declared") : join(names, ", ")));
    }
    pieces.push_back({std::move(lit), -1});
    lit.clear();
    pieces.push_back({"", idx});
    used[idx] = true;
    i = close;
  }
  pieces.push_back({std::move(lit), -1});

  std::vector<size_t> dims;  // indices of used axes, in axis order
  for (size_t a = 0; a < axes.size(); ++a)
    if (used[a]) dims.push_back(a);
  std::vector<size_t> at(dims.size(), 0);
  std::vector<std::pair<std::string, AxisValues>> out;
  while (true) {
    std::map<size_t, size_t> choice;
    AxisValues values;
    for (size_t d = 0; d < dims.size(); ++d) {
      choice[dims[d]] = at[d];
      values.emplace_back(axes[dims[d]].first, axes[dims[d]].second[at[d]]);
    }
    std::string s;
    for (const Piece& p : pieces) s += p.axis < 0 ? p.text : axis_text(axes[p.axis].second[choice[p.axis]]);
    out.emplace_back(std::move(s), std::move(values));
    // Odometer over the used axes, the last one fastest.
    size_t d = dims.size();
    while (d > 0 && ++at[d - 1] == axes[dims[d - 1]].second.size()) at[--d] = 0;
    if (d == 0) break;
  }
  return out;
}

std::vector<std::string> sweep_columns(const SweepPlan& plan) {
  std::vector<std::string> cols = kFixedColumns;
  cols.insert(cols.end(), plan.axis_names.begin(), plan.axis_names.end());
  cols.insert(cols.end(), kMetricColumns.begin(), kMetricColumns.end());
  return cols;
}

SweepPlan parse_sweep(std::string_view text, const std::string& label, const std::filesystem::path& dir) {
  return Parser(label, dir).parse(parse_json(text, label));
}

SweepPlan load_sweep(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::error_code ec;
  if (!in || std::filesystem::is_directory(file, ec)) throw Error(fmt::format("{}: cannot open the sweep file", file.string()));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::filesystem::path dir = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
  return parse_sweep(ss.str(), file.string(), dir);
}

}  // namespace lowbit
