// Sweep files (sim/sweep.hpp): template expansion and dedup, stable cell ids, strict errors
// naming the key, output schema, resume after complete / partial / interrupted runs, values
// equal to direct metric calls, and the captured-pair form on the shipped DiT capture.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "formats/error.hpp"
#include "formats/registry.hpp"
#include "quantizers/linear.hpp"
#include "sim/metrics.hpp"
#include "sim/safetensors.hpp"
#include "sim/sweep.hpp"
#include "sim/synthetic.hpp"
#include "sim/tensor.hpp"
#include "tests/sim/temp_dir_test.hpp"

namespace lowbit {
namespace {

using Json = nlohmann::json;

std::vector<std::string> read_lines(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

void write_lines(const std::filesystem::path& p, const std::vector<std::string>& lines) {
  std::ofstream out(p, std::ios::trunc);
  for (const auto& l : lines) out << l << "\n";
}

// Splits one CSV line (no quoted line breaks in these tests).
std::vector<std::string> csv_split(const std::string& line) {
  std::vector<std::string> out(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        out.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        out.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.emplace_back();
    } else {
      out.back() += c;
    }
  }
  return out;
}

std::map<std::string, Json> rows_by_id(const std::filesystem::path& jsonl) {
  std::map<std::string, Json> out;
  for (const auto& l : read_lines(jsonl)) {
    Json r = Json::parse(l);
    out[r["cell_id"].get<std::string>()] = r;
  }
  return out;
}

SweepOptions quiet(int threads = 2) {
  SweepOptions o;
  o.progress = nullptr;
  o.threads = threads;
  return o;
}

const std::string kSmall = R"({
  "name": "small",
  "output": "out",
  "axes": {"bits": [2, 4], "group": [16, 32], "round": ["rne", "sr"]},
  "tensors": [
    {"synthetic": "gaussian", "shape": [8, 64], "seeds": [0, 1]},
    {"synthetic": "laplace", "shape": [4, 32]}
  ],
  "formats": ["int{bits}:g{group}", "mxfp4", "fp8_e4m3:round={round}"]
})";

class SweepTest : public testing::TempDirTest {
 protected:
  SweepPlan plan(const std::string& text) const { return parse_sweep(text, "sweep.json", dir_); }
  std::filesystem::path write(const std::string& name, const std::string& text) const { return write_raw(name, text); }
};

TEST_F(SweepTest, ExpansionCountsTemplatesAxesAndTensors) {
  const SweepPlan p = plan(kSmall);
  EXPECT_EQ(p.name, "small");
  EXPECT_EQ(p.tensors.size(), 3u);
  // (2 bits x 2 groups + 1 + 2 roundings) formats x 3 tensors.
  EXPECT_EQ(p.cells.size(), (4u + 1u + 2u) * 3u);
  EXPECT_EQ(p.duplicates, 0);
  EXPECT_EQ(p.axis_names, (std::vector<std::string>{"bits", "group", "round"}));
  EXPECT_EQ(p.output, (dir_ / "out").lexically_normal());
  std::set<std::string> formats;
  for (const auto& c : p.cells) formats.insert(c.format);
  EXPECT_TRUE(formats.count("int2:g16") && formats.count("int4:g32") && formats.count("mxfp4"));
  EXPECT_TRUE(formats.count("fp8_e4m3:round=sr"));
}

TEST_F(SweepTest, PlaceholderExpandsOnlyTheAxesItUses) {
  const std::vector<std::pair<std::string, std::vector<nlohmann::ordered_json>>> axes = {
      {"bits", {2, 4, 8}}, {"group", {16, 32}}, {"alpha", {0.5, "x"}}};
  EXPECT_EQ(expand_template("mxfp4", axes).size(), 1u);
  EXPECT_TRUE(expand_template("mxfp4", axes)[0].second.empty());
  const auto e = expand_template("int{bits}", axes);
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(e[2].first, "int8");
  ASSERT_EQ(e[2].second.size(), 1u);
  EXPECT_EQ(e[2].second[0].first, "bits");
  const auto g = expand_template("int{bits}:g{group}:a={alpha}", axes);
  ASSERT_EQ(g.size(), 12u);
  EXPECT_EQ(g[0].first, "int2:g16:a=0.5");
  EXPECT_EQ(g[1].first, "int2:g16:a=x");  // the last axis runs fastest
  EXPECT_THROW(expand_template("int{nope}", axes), Error);
  EXPECT_THROW(expand_template("int{bits", axes), Error);
  EXPECT_THROW(expand_template("int}", axes), Error);
}

TEST_F(SweepTest, DuplicateCellsAreRemoved) {
  // "int4:g32" comes twice from the template, "nvfp4:variant=te" is nvfp4's canonical default.
  const SweepPlan p = plan(R"({"axes": {"bits": [4, 8]},
    "tensors": [{"synthetic": "gaussian", "shape": [4, 64], "seeds": [0, 1]},
                {"synthetic": "gaussian", "shape": [4, 64], "seeds": [1]}],
    "formats": ["int4:g32", "int{bits}:g32", "nvfp4", "nvfp4:variant=te"]})");
  EXPECT_EQ(p.tensors.size(), 2u);
  EXPECT_EQ(p.cells.size(), 3u * 2u);
  EXPECT_EQ(p.duplicates, 2 * 2);
  std::set<std::string> ids;
  for (const auto& c : p.cells) ids.insert(c.id);
  EXPECT_EQ(ids.size(), p.cells.size());
}

TEST_F(SweepTest, CellIdsAreStableHashesOfTheParameters) {
  EXPECT_EQ(sweep_cell_id(""), "cbf29ce484222325");  // FNV-1a 64 offset basis
  EXPECT_EQ(sweep_cell_id("a"), "af63dc4c8601ec8c");
  const SweepPlan a = plan(kSmall);
  // Same cells in another order, another name and thread count: same ids.
  const SweepPlan b = plan(R"({"name": "other", "threads": 3,
    "axes": {"round": ["sr", "rne"], "group": [32, 16], "bits": [4, 2]},
    "tensors": [{"synthetic": "laplace", "shape": [4, 32]},
                {"synthetic": "gaussian", "shape": [8, 64], "seeds": [1, 0]}],
    "formats": ["fp8_e4m3:round={round}", "mxfp4", "int{bits}:g{group}"]})");
  std::set<std::string> ia, ib;
  for (const auto& c : a.cells) ia.insert(c.id);
  for (const auto& c : b.cells) ib.insert(c.id);
  EXPECT_EQ(ia, ib);
  for (const auto& c : a.cells) EXPECT_EQ(c.id, sweep_cell_id(c.canonical));
  EXPECT_EQ(a.cells[0].canonical, "tensor|synthetic:gaussian:8x64:seed=0|int2:g16");
}

TEST_F(SweepTest, OutputSchemaCsvAndJsonl) {
  const SweepPlan p = plan(kSmall);
  const SweepResult r = run_sweep(p, quiet());
  EXPECT_EQ(r.computed, static_cast<int64_t>(p.cells.size()));
  EXPECT_EQ(r.failed, 0);
  const auto csv = read_lines(r.output / "results.csv");
  ASSERT_EQ(csv.size(), p.cells.size() + 1);
  const std::vector<std::string> header = csv_split(csv[0]);
  EXPECT_EQ(header, sweep_columns(p));
  for (const char* col : {"sweep", "cell_id", "kind", "source", "tensor", "step", "layer", "format", "algorithm",
                          "wfmt", "afmt", "bits", "group", "round", "bits_per_element", "mse", "rel_mse", "sqnr_db",
                          "max_abs", "numel", "seconds", "error"})
    EXPECT_NE(std::find(header.begin(), header.end(), col), header.end()) << col;
  for (size_t i = 1; i < csv.size(); ++i) EXPECT_EQ(csv_split(csv[i]).size(), header.size()) << csv[i];
  const auto rows = rows_by_id(r.output / "results.jsonl");
  ASSERT_EQ(rows.size(), p.cells.size());
  for (const auto& c : p.cells) {
    const Json& row = rows.at(c.id);
    for (const auto& col : header) EXPECT_TRUE(row.contains(col)) << col;
    EXPECT_EQ(row["sweep"], "small");
    EXPECT_EQ(row["kind"], "tensor");
    EXPECT_EQ(row["format"], c.format);
    EXPECT_TRUE(row["error"].is_null());
    EXPECT_TRUE(row["mse"].is_number());
    EXPECT_GT(row["bits_per_element"].get<double>(), 0);
    // Axis columns hold the values the cell's template used, null for the others.
    if (c.format.starts_with("int")) {
      EXPECT_TRUE(row["bits"].is_number_integer());
      EXPECT_TRUE(row["round"].is_null());
    }
    if (c.format == "mxfp4") {
      EXPECT_TRUE(row["bits"].is_null() && row["group"].is_null());
    }
  }
}

TEST_F(SweepTest, ResumeSkipsFinishedCellsAndRecomputesTheRest) {
  const SweepPlan p = plan(kSmall);
  const int64_t n = static_cast<int64_t>(p.cells.size());
  const SweepResult first = run_sweep(p, quiet());
  EXPECT_EQ(first.computed, n);
  const auto before = rows_by_id(first.output / "results.jsonl");

  const SweepResult again = run_sweep(p, quiet());
  EXPECT_EQ(again.computed, 0);
  EXPECT_EQ(again.reused, n);
  EXPECT_EQ(read_lines(again.output / "results.csv").size(), static_cast<size_t>(n + 1));

  // Delete three rows: exactly those cells run again, with the same values.
  const std::filesystem::path jsonl = first.output / "results.jsonl";
  auto lines = read_lines(jsonl);
  lines.erase(lines.begin() + 2, lines.begin() + 5);
  write_lines(jsonl, lines);
  const SweepResult partial = run_sweep(p, quiet());
  EXPECT_EQ(partial.computed, 3);
  EXPECT_EQ(partial.reused, n - 3);
  const auto after = rows_by_id(jsonl);
  ASSERT_EQ(after.size(), static_cast<size_t>(n));
  for (const auto& [id, row] : before) EXPECT_EQ(after.at(id)["mse"], row["mse"]) << id;

  // An interrupted write: the last line cut in half is dropped and its cell recomputed.
  lines = read_lines(jsonl);
  std::ofstream(jsonl, std::ios::trunc) << [&] {
    std::string s;
    for (size_t i = 0; i + 1 < lines.size(); ++i) s += lines[i] + "\n";
    return s + lines.back().substr(0, lines.back().size() / 2);
  }();
  const SweepResult cut = run_sweep(p, quiet());
  EXPECT_EQ(cut.dropped_lines, 1);
  EXPECT_EQ(cut.computed, 1);
  EXPECT_EQ(rows_by_id(jsonl).size(), static_cast<size_t>(n));
  EXPECT_EQ(read_lines(first.output / "results.csv").size(), static_cast<size_t>(n + 1));

  const SweepOptions fresh = [] {
    SweepOptions o = quiet();
    o.fresh = true;
    return o;
  }();
  EXPECT_EQ(run_sweep(p, fresh).computed, n);
  EXPECT_EQ(read_lines(jsonl).size(), static_cast<size_t>(n));
}

TEST_F(SweepTest, FailedCellsRecordTheErrorAndRunAgain) {
  // Groups of 48 do not divide 64 columns: that cell fails, the sweep goes on.
  const SweepPlan p = plan(R"({"tensors": [{"synthetic": "gaussian", "shape": [4, 64]}],
                               "formats": ["int4:g48", "int4:g32"]})");
  const SweepResult r = run_sweep(p, quiet());
  EXPECT_EQ(r.computed, 2);
  EXPECT_EQ(r.failed, 1);
  const auto rows = rows_by_id(r.output / "results.jsonl");
  const Json& bad = rows.at(p.cells[0].id);
  ASSERT_TRUE(bad["error"].is_string());
  EXPECT_NE(bad["error"].get<std::string>().find("48"), std::string::npos);
  EXPECT_TRUE(bad["mse"].is_null());
  EXPECT_TRUE(rows.at(p.cells[1].id)["error"].is_null());
  const SweepResult again = run_sweep(p, quiet());
  EXPECT_EQ(again.computed, 1);
  EXPECT_EQ(again.reused, 1);
}

TEST_F(SweepTest, ValuesEqualDirectMetricCalls) {
  const SweepPlan p = plan(R"({"tensors": [{"synthetic": "student_t:3", "shape": [16, 64], "seeds": [7]}],
    "formats": ["int4:g32"],
    "pairs": [{"x": {"synthetic": "outlier_channels", "shape": [16, 64], "seeds": [1]},
               "w": {"synthetic": "gaussian", "shape": [24, 64], "seeds": [2]}}],
    "weight_formats": ["int4:g32"], "act_formats": ["nvfp4"]})");
  ASSERT_EQ(p.cells.size(), 2u);
  const SweepResult r = run_sweep(p, quiet());
  const auto rows = rows_by_id(r.output / "results.jsonl");

  const std::vector<float> x = synthetic_tensor("student_t:3", {16, 64}, 7);
  std::vector<float> y(x.size());
  const auto f = make_format("int4:g32");
  f->fake_quant(x, {16, 64}, y);
  const ErrorMetrics m = error_metrics(x, y);
  const SweepCell& tc = p.cells[0].kind == SweepCell::Kind::Tensor ? p.cells[0] : p.cells[1];
  const Json& t = rows.at(tc.id);
  EXPECT_EQ(t["mse"].get<double>(), m.mse);
  EXPECT_EQ(t["rel_mse"].get<double>(), m.rel_mse);
  EXPECT_EQ(t["sqnr_db"].get<double>(), m.sqnr_db);
  EXPECT_EQ(t["max_abs"].get<double>(), m.max_abs);
  EXPECT_EQ(t["bits_per_element"].get<double>(), f->bits_per_element({16, 64}));
  EXPECT_EQ(t["numel"], 16 * 64);
  EXPECT_EQ(t["seed"], 7);

  quant::LinearProblem lp{quant::matrix_from(synthetic_tensor("outlier_channels", {16, 64}, 1), 16, 64),
                          quant::matrix_from(synthetic_tensor("gaussian", {24, 64}, 2), 24, 64), quant::VectorF(),
                          quant::make_quantizer("int4:g32"), quant::make_quantizer("nvfp4")};
  const quant::QuantizedLinear q = quant::quantize_linear("rtn", lp);
  const quant::MatrixF yr = quant::linear_forward(lp.x, lp.w), yq = q.forward(lp.x);
  const ErrorMetrics lm = error_metrics(std::span<const float>(yr.data(), yr.size()),
                                        std::span<const float>(yq.data(), yq.size()));
  const SweepCell& lc = p.cells[0].kind == SweepCell::Kind::Linear ? p.cells[0] : p.cells[1];
  const Json& l = rows.at(lc.id);
  EXPECT_EQ(l["kind"], "linear");
  EXPECT_EQ(l["rel_mse"].get<double>(), lm.rel_mse);
  EXPECT_EQ(l["sqnr_db"].get<double>(), lm.sqnr_db);
  EXPECT_EQ(l["w_bits"].get<double>(), q.weight_bits_per_element());
  EXPECT_EQ(l["a_bits"].get<double>(), q.act_bits);
  EXPECT_EQ(l["numel"], 16 * 24);
  EXPECT_TRUE(l["info"].is_string());
}

TEST_F(SweepTest, SyntheticSourcesAreDeterministicBySeed) {
  const std::string text = R"({"tensors": [{"synthetic": "laplace", "shape": [32, 64], "seeds": [0, 1]}],
                               "formats": ["int4:g16", "nvfp4"]})";
  SweepPlan a = plan(text), b = plan(text);
  b.output = dir_ / "other";
  const SweepResult ra = run_sweep(a, quiet(1)), rb = run_sweep(b, quiet(4));
  const auto x = rows_by_id(ra.output / "results.jsonl"), y = rows_by_id(rb.output / "results.jsonl");
  ASSERT_EQ(x.size(), 4u);
  for (const auto& [id, row] : x) EXPECT_EQ(row["mse"], y.at(id)["mse"]);
  // Different seeds: different data, different error.
  std::map<std::pair<std::string, int>, double> mse;
  for (const auto& [id, row] : x) mse[{row["format"], row["seed"]}] = row["mse"];
  const double s0 = mse[{"nvfp4", 0}], s1 = mse[{"nvfp4", 1}];
  EXPECT_NE(s0, s1);
}

TEST_F(SweepTest, CapturedPatternsAndPairs) {
  const std::string src = LOWBIT_SOURCE_DIR;
  const SweepPlan p = plan(fmt::format(R"({{"root": "{}",
    "tensors": [{{"file": "data/captured/dit/tinydit_capture.safetensors", "pattern": "step*.blocks.3.mlp.fc2.input"}}],
    "formats": ["mxfp4"],
    "pairs": [{{"captured": "data/captured/dit/tinydit_capture.safetensors", "layers": "blocks.3.mlp.*",
               "steps": [0, 33]}}],
    "weight_formats": ["int4:g64"], "act_formats": ["int8:row"]}})", src));
  int tensor = 0, linear = 0;
  std::set<std::string> steps;
  for (const auto& c : p.cells) {
    const SweepTensor& x = p.tensors[c.tensor];
    if (c.kind == SweepCell::Kind::Tensor) {
      ++tensor;
      EXPECT_EQ(x.layer, "blocks.3.mlp.fc2");
      steps.insert(x.step);
    } else {
      ++linear;
      EXPECT_EQ(p.tensors[c.weight].name, x.layer + ".weight");
      EXPECT_TRUE(x.step == "0" || x.step == "33");
    }
  }
  EXPECT_EQ(tensor, 4);  // steps 0, 16, 33, 49
  EXPECT_EQ(steps, (std::set<std::string>{"0", "16", "33", "49"}));
  EXPECT_EQ(linear, 2 * 2);  // fc1, fc2 x steps 0, 33
  const SweepResult r = run_sweep(p, quiet());
  EXPECT_EQ(r.failed, 0);
  for (const auto& [id, row] : rows_by_id(r.output / "results.jsonl")) {
    EXPECT_TRUE(row["step"].is_number_integer());
    EXPECT_TRUE(row["shape"].is_string());
    EXPECT_GT(row["sqnr_db"].get<double>(), 5.0);
  }
}

// Each malformed file is rejected before anything runs, naming the file and the key path.
TEST_F(SweepTest, BadFilesGetErrorsNamingTheKey) {
  const std::string tensors = R"("tensors": [{"synthetic": "gaussian", "shape": [4, 64]}])";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{", "not valid JSON"},
      {"[1, 2]", "expected a JSON object"},
      {"{" + tensors + R"(, "formats": ["mxfp4"], "fromats": []})", "fromats: unknown key"},
      {"{" + tensors + R"(, "formats": ["mxfp4"], "formats": ["nvfp4"]})", "duplicate key 'formats'"},
      {R"({"tensors": [{"synthetic": "gaussian", "shape": [4, 64]}, {"synthetic": "gaussian", "shape": [4, -1]}],
           "formats": ["mxfp4"]})", "tensors[1].shape: expected a list of positive integers"},
      {R"({"tensors": [{"synthetic": "gaussian", "shape": "4x64"}], "formats": ["mxfp4"]})",
       "tensors[0].shape: expected a list of positive integers"},
      {R"({"tensors": [{"synthetic": "cauchy", "shape": [4, 64]}], "formats": ["mxfp4"]})",
       "tensors[0].synthetic: unknown distribution"},
      {R"({"tensors": [{"synthetic": "gaussian", "shape": [4, 64], "seeds": [-1]}], "formats": ["mxfp4"]})",
       "tensors[0].seeds: expected a list of non-negative integers"},
      {R"({"tensors": [{"synthetic": "gaussian", "shape": [4, 64], "shpe": 1}], "formats": ["mxfp4"]})",
       "tensors[0].shpe: unknown key"},
      {"{" + tensors + R"(, "formats": []})", "formats: expected a non-empty list"},
      {"{" + tensors + R"(, "formats": [4]})", "formats[0]: expected a non-empty string"},
      {"{" + tensors + R"(, "formats": ["mxfp4", "int{bits}"], "axes": {"bits": [4, 99]}})", "formats[1] (bits=99): format spec 'int99'"},
      {"{" + tensors + R"(, "formats": ["mxfp4", "int4:g{group}"]})", "formats[1]: 'int4:g{group}': unknown axis"},
      {"{" + tensors + R"(, "formats": ["int{bits}"], "axes": {"bits": [4], "round": ["sr"]}})",
       "axes.round: not used by any template"},
      {"{" + tensors + R"(, "formats": ["int{bits}"], "axes": {"bits": []}})", "axes.bits: expected a non-empty list"},
      {"{" + tensors + R"(, "formats": ["int{bits}"], "axes": {"bits": [4, 4]}})", "axes.bits[1]: duplicate value"},
      {"{" + tensors + R"(, "formats": ["int{mse}"], "axes": {"mse": [4]}})", "axes.mse: clashes"},
      {"{" + tensors + R"(, "formats": ["mxfp4"], "threads": 0})", "threads: expected a positive integer"},
      {"{" + tensors + R"(})", "formats: \"tensors\" and \"formats\" go together"},
      {R"({"formats": ["mxfp4"]})", "tensors: missing"},
      {R"({"tensors": [{"file": "nope.safetensors"}], "formats": ["mxfp4"]})", "tensors[0].file: no such file"},
      {R"({"tensors": [{"file": "x.txt"}], "formats": ["mxfp4"]})", "tensors[0].file: expected a .npy or .safetensors"},
      {R"({"tensors": [{"file": "t.safetensors", "names": ["a", "nope"]}], "formats": ["mxfp4"]})",
       "tensors[0].names[1]: no tensor 'nope'"},
      {R"({"tensors": [{"file": "t.safetensors", "pattern": "blocks.*"}], "formats": ["mxfp4"]})",
       "tensors[0].pattern: matches no tensor"},
      {R"({"pairs": [{"x": {"synthetic": "gaussian", "shape": [4, 64]}}], "weight_formats": ["int4"], "act_formats": ["int8"]})",
       "pairs[0]: expected \"x\" and \"w\""},
      {R"({"pairs": [{"x": {"synthetic": "gaussian", "shape": [4, 64]}, "w": {"synthetic": "gaussian", "shape": [8, 64]}}],
           "act_formats": ["int8"]})", "weight_formats: missing"},
      {R"({"pairs": [{"x": {"synthetic": "gaussian", "shape": [4, 64]}, "w": {"synthetic": "gaussian", "shape": [8, 64]}}],
           "algorithms": ["nosuch:rank=3"], "weight_formats": ["int4"], "act_formats": ["int8"]})",
       "algorithms[0]: 'nosuch:rank=3': unknown algorithm"},
      {R"({"pairs": [{"x": {"synthetic": "gaussian", "shape": [4, 64]}, "w": {"synthetic": "gaussian", "shape": [8, 64]}}],
           "weight_formats": ["int4"], "act_formats": ["int8:g7:bogus"]})", "act_formats[0]: format spec 'int8:g7:bogus'"},
      {R"({"pairs": [{"captured": "t.safetensors", "layers": "attn*"}], "weight_formats": ["int4"], "act_formats": ["int8"]})",
       "pairs[0]: no layer of t.safetensors"},
      {R"({"pairs": [{"captured": "t.safetensors", "steps": [5]}], "weight_formats": ["int4"], "act_formats": ["int8"]})",
       "pairs[0].steps: no step 5"},
      {"{" + tensors + R"(, "formats": ["mxfp4"], "algorithms": ["rtn"]})", "algorithms: only meaningful with \"pairs\""},
  };
  // A small capture-style file for the name / pattern / pair cases.
  {
    std::vector<Tensor> ts;
    const std::vector<float> v(4 * 8, 0.5f);
    ts.push_back(tensor_from_f32({4, 8}, v, "a"));
    ts.push_back(tensor_from_f32({4, 8}, v, "fc.weight"));
    ts.push_back(tensor_from_f32({4, 8}, v, "step001.fc.input"));
    write_safetensors(file("t.safetensors"), ts);
  }
  ASSERT_GE(cases.size(), 8u);
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::filesystem::path f = write(fmt::format("bad{}.json", i), cases[i].first);
    try {
      load_sweep(f);
      ADD_FAILURE() << "accepted: " << cases[i].first;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_TRUE(msg.starts_with(f.string() + ": ")) << msg;
      EXPECT_NE(msg.find(cases[i].second), std::string::npos) << "expected '" << cases[i].second << "' in: " << msg;
    }
  }
  EXPECT_THROW(load_sweep(file("missing.json")), Error);
}

}  // namespace
}  // namespace lowbit
