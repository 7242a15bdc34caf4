// Sweep runner: resume from OUTPUT/results.jsonl, load the tensors the remaining cells need
// once (shared read-only), run the cells in parallel (OpenMP, dynamic schedule, largest
// first), and append one row per finished cell to results.jsonl and results.csv under a lock.
// Row columns: docs/sweeps.md.
#include <fmt/format.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <mutex>
#include <numeric>
#include <set>
#include <unordered_map>

#include "formats/error.hpp"
#include "formats/registry.hpp"
#include "quantizers/linear.hpp"
#include "sim/metrics.hpp"
#include "sim/progress.hpp"
#include "sim/safetensors.hpp"
#include "sim/sweep.hpp"
#include "sim/synthetic.hpp"
#include "sim/tensor_io.hpp"

namespace lowbit {
namespace {

using Json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string shape_text(const Shape& s) {
  std::string out;
  for (int64_t v : s) out += (out.empty() ? "" : "x") + std::to_string(v);
  return out;
}

// JSON has no NaN/Inf: they are written as the strings "nan", "inf", "-inf" (as in the CSV).
Json number(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return v;
}

std::string dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

// RFC 4180 field: quoted when it holds a comma, quote or line break.
std::string csv_field(const Json& v) {
  std::string s;
  if (v.is_null()) return s;
  if (v.is_string()) {
    s = v.get<std::string>();
  } else if (v.is_number_float()) {
    s = fmt::format("{}", v.get<double>());
  } else {
    s = dump(v);
  }
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string csv_line(const std::vector<std::string>& columns, const Json& row) {
  std::string line;
  for (size_t i = 0; i < columns.size(); ++i) {
    if (i) line += ',';
    if (row.contains(columns[i])) line += csv_field(row[columns[i]]);
  }
  return line + "\n";
}

// The columns a cell's row has before it runs (everything but the measurements).
Json describe(const SweepPlan& plan, const SweepCell& c, const std::vector<Shape>& shapes) {
  const std::vector<std::string> columns = sweep_columns(plan);
  Json row = Json::object();
  for (const auto& col : columns) row[col] = nullptr;
  const SweepTensor& x = plan.tensors[c.tensor];
  const bool linear = c.kind == SweepCell::Kind::Linear;
  row["sweep"] = plan.name;
  row["cell_id"] = c.id;
  row["kind"] = linear ? "linear" : "tensor";
  row["source"] = x.source;
  row["tensor"] = x.label();
  if (x.synthetic) row["seed"] = x.seed;
  if (!x.step.empty()) {
    // An integer column; a step too long for int64 stays text.
    row["step"] = x.step.size() <= 18 ? Json(std::stoll(x.step)) : Json(x.step);
  }
  if (!x.layer.empty()) row["layer"] = x.layer;
  if (!shapes.empty() && !shapes[c.tensor].empty()) row["shape"] = shape_text(shapes[c.tensor]);
  if (linear) {
    const SweepTensor& w = plan.tensors[c.weight];
    row["w_source"] = w.source;
    row["weight"] = w.label();
    if (x.layer.empty() && !w.layer.empty()) row["layer"] = w.layer;
    row["algorithm"] = c.algorithm;
    row["wfmt"] = c.wfmt;
    row["afmt"] = c.afmt;
  } else {
    row["format"] = c.format;
  }
  for (const auto& [name, v] : c.axes) row[name] = v;
  return row;
}

struct Loaded {
  std::vector<float> values;
  Shape shape;
};

// Reads every tensor the pending cells need, one read per file.
std::vector<Loaded> load_data(const SweepPlan& plan, const std::vector<bool>& needed) {
  std::vector<Loaded> data(plan.tensors.size());
  std::map<std::filesystem::path, std::vector<int>> by_file;
  for (size_t i = 0; i < plan.tensors.size(); ++i) {
    if (!needed[i]) continue;
    const SweepTensor& t = plan.tensors[i];
    if (t.synthetic) {
      data[i].values = synthetic_tensor(t.dist, t.shape, t.seed);
      data[i].shape = t.shape;
    } else {
      by_file[t.path].push_back(static_cast<int>(i));
    }
  }
  for (const auto& [path, idx] : by_file) {
    std::vector<Tensor> ts;
    if (plan.tensors[idx[0]].name.empty()) {
      ts = load_tensors(path.string());
    } else {
      std::vector<std::string> names;
      for (int i : idx) names.push_back(plan.tensors[i].name);
      ts = read_safetensors(path, names);
    }
    for (size_t k = 0; k < idx.size(); ++k) {
      data[idx[k]].shape = ts[k].shape;
      data[idx[k]].values = to_f32(ts[k]);
    }
  }
  return data;
}

// Rows x last-axis matrix view of a tensor (all leading axes flattened, as the captures are).
quant::MatrixF as_matrix(const Loaded& t, const char* what) {
  if (t.shape.empty() || t.values.empty()) throw Error(fmt::format("{}: expected a non-empty tensor of rank >= 1", what));
  const int64_t cols = t.shape.back();
  return quant::matrix_from(t.values, static_cast<int64_t>(t.values.size()) / cols, cols);
}

// Sweep progress: cells done, failures in the suffix.
class Progress {
 public:
  Progress(std::FILE* out, int64_t total) : bar_(out, total) {}
  void tick(bool failed) {
    ++done_;
    failed_ += failed;
    bar_.update(done_, failed_ ? fmt::format("({} failed)", failed_) : "");
  }

 private:
  ProgressBar bar_;
  int64_t done_ = 0, failed_ = 0;
};

// Writes `lines` to `path` through a temporary file and a rename, so a crash never leaves a
// half-rewritten results file.
void rewrite(const std::filesystem::path& path, const std::string& text) {
  const std::filesystem::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) throw Error(fmt::format("{}: cannot write", tmp.string()));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw Error(fmt::format("{}: cannot replace: {}", path.string(), ec.message()));
}

}  // namespace

SweepResult run_sweep(const SweepPlan& plan, const SweepOptions& options) {
  const Clock::time_point t0 = Clock::now();
  SweepResult result;
  result.output = options.output ? *options.output : plan.output;
  result.cells = static_cast<int64_t>(plan.cells.size());
  std::error_code ec;
  std::filesystem::create_directories(result.output, ec);
  if (ec || !std::filesystem::is_directory(result.output))
    throw Error(fmt::format("{}: cannot create the output directory", result.output.string()));
  const std::filesystem::path jsonl = result.output / "results.jsonl", csv = result.output / "results.csv";
  const std::vector<std::string> columns = sweep_columns(plan);

  std::unordered_map<std::string, size_t> cell_of;
  for (size_t i = 0; i < plan.cells.size(); ++i) cell_of.emplace(plan.cells[i].id, i);

  // Resume: keep the last successful row of every cell still in the plan. A line that does not
  // parse (a write cut short) or belongs to no current cell is dropped; failed cells rerun.
  std::vector<std::optional<Json>> kept(plan.cells.size());
  if (!options.fresh && std::filesystem::exists(jsonl)) {
    std::ifstream in(jsonl, std::ios::binary);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      Json row;
      try {
        row = Json::parse(line);
      } catch (const Json::exception&) {
        ++result.dropped_lines;
        continue;
      }
      if (!row.is_object() || !row.contains("cell_id") || !row["cell_id"].is_string()) {
        ++result.dropped_lines;
        continue;
      }
      const auto it = cell_of.find(row["cell_id"].get<std::string>());
      if (it == cell_of.end()) {
        ++result.dropped_lines;
        continue;
      }
      const bool ok = !row.contains("error") || row["error"].is_null() || row["error"] == "";
      kept[it->second] = ok ? std::optional<Json>(std::move(row)) : std::nullopt;
    }
  }

  // Rewrite both files from the kept rows; the descriptive columns come from the current plan
  // (sweep name, axis columns), the measured ones from the stored row.
  std::string jsonl_text, csv_text;
  {
    std::string header;
    for (size_t i = 0; i < columns.size(); ++i) header += (i ? "," : "") + csv_field(columns[i]);
    csv_text = header + "\n";
  }
  std::vector<size_t> pending;
  for (size_t i = 0; i < plan.cells.size(); ++i) {
    if (!kept[i]) {
      pending.push_back(i);
      continue;
    }
    Json row = describe(plan, plan.cells[i], {});
    for (auto& [k, v] : row.items())
      if (kept[i]->contains(k) && (v.is_null() || k == "shape")) v = (*kept[i])[k];
    ++result.reused;
    jsonl_text += dump(row) + "\n";
    csv_text += csv_line(columns, row);
  }
  rewrite(jsonl, jsonl_text);
  rewrite(csv, csv_text);
  if (pending.empty()) {
    result.seconds = seconds_since(t0);
    return result;
  }

  // Tensors and matrices of the pending cells, loaded once.
  std::vector<bool> needed(plan.tensors.size(), false);
  for (size_t i : pending) {
    needed[plan.cells[i].tensor] = true;
    if (plan.cells[i].weight >= 0) needed[plan.cells[i].weight] = true;
  }
  const std::vector<Loaded> data = load_data(plan, needed);
  std::vector<Shape> shapes(plan.tensors.size());
  for (size_t i = 0; i < data.size(); ++i) shapes[i] = data[i].shape;

  // Reference outputs Y = X·Wᵀ, one per (X, W) pair, computed before the cells.
  std::map<std::pair<int, int>, size_t> pair_index;
  for (size_t i : pending)
    if (plan.cells[i].kind == SweepCell::Kind::Linear)
      pair_index.emplace(std::pair{plan.cells[i].tensor, plan.cells[i].weight}, pair_index.size());
  struct PairData {
    quant::MatrixF x, w, y;
    std::string error;
  };
  std::vector<PairData> pairs(pair_index.size());
  std::vector<std::pair<int, int>> pair_keys(pair_index.size());
  for (const auto& [k, i] : pair_index) pair_keys[i] = k;
  const int threads = options.threads > 0 ? options.threads : (plan.threads > 0 ? plan.threads : omp_get_max_threads());
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t i = 0; i < static_cast<int64_t>(pairs.size()); ++i) {
    PairData& p = pairs[i];
    try {
      p.x = as_matrix(data[pair_keys[i].first], "x");
      if (data[pair_keys[i].second].shape.size() != 2)
        throw Error(fmt::format("w: expected a 2-D weight (out x in), got shape {}", shape_str(data[pair_keys[i].second].shape)));
      p.w = as_matrix(data[pair_keys[i].second], "w");
      if (p.x.cols() != p.w.cols())
        throw Error(fmt::format("x has {} features but w has {} input features", p.x.cols(), p.w.cols()));
      p.y = quant::linear_forward(p.x, p.w);
    } catch (const std::exception& e) {
      p.error = e.what();
    }
  }

  // Largest cells first: with a dynamic schedule that keeps the tail short.
  auto cost = [&](size_t i) {
    const SweepCell& c = plan.cells[i];
    const double n = static_cast<double>(data[c.tensor].values.size());
    return c.kind == SweepCell::Kind::Linear ? n * static_cast<double>(data[c.weight].shape.empty() ? 1 : data[c.weight].shape[0]) : n;
  };
  std::stable_sort(pending.begin(), pending.end(), [&](size_t a, size_t b) { return cost(a) > cost(b); });

  std::ofstream jout(jsonl, std::ios::binary | std::ios::app), cout_(csv, std::ios::binary | std::ios::app);
  if (!jout || !cout_) throw Error(fmt::format("{}: cannot open the results files for appending", result.output.string()));
  std::mutex lock;
  Progress progress(options.progress, static_cast<int64_t>(pending.size()));
  std::string write_error;

  auto run_cell = [&](size_t ci) {
    const SweepCell& c = plan.cells[ci];
    Json row = describe(plan, c, shapes);
    const Clock::time_point c0 = Clock::now();
    try {
      if (c.kind == SweepCell::Kind::Tensor) {
        const Loaded& t = data[c.tensor];
        const auto f = make_format(c.format);
        std::vector<float> y(t.values.size());
        f->fake_quant(t.values, t.shape, y);
        const ErrorMetrics m = error_metrics(t.values, y);
        row["bits_per_element"] = number(f->bits_per_element(t.shape));
        row["mse"] = number(m.mse);
        row["rel_mse"] = number(m.rel_mse);
        row["sqnr_db"] = number(m.sqnr_db);
        row["max_abs"] = number(m.max_abs);
        row["numel"] = static_cast<int64_t>(t.values.size());
        if (m.skipped || m.nonfinite_out)
          row["info"] = dump(Json{{"skipped_nonfinite", m.skipped}, {"nonfinite_out", m.nonfinite_out}});
      } else {
        const PairData& p = pairs[pair_index.at({c.tensor, c.weight})];
        if (!p.error.empty()) throw Error(p.error);
        quant::LinearProblem prob{p.x, p.w, quant::VectorF(), quant::make_quantizer(c.wfmt),
                                  quant::make_quantizer(c.afmt), plan.seed};
        const quant::QuantizedLinear q = quant::quantize_linear(c.algorithm, prob);
        const quant::MatrixF yq = q.forward(p.x);
        const ErrorMetrics m = error_metrics(std::span<const float>(p.y.data(), p.y.size()),
                                             std::span<const float>(yq.data(), yq.size()));
        row["w_bits"] = number(q.weight_bits_per_element());
        row["a_bits"] = number(q.act_bits);
        row["mse"] = number(m.mse);
        row["rel_mse"] = number(m.rel_mse);
        row["sqnr_db"] = number(m.sqnr_db);
        row["max_abs"] = number(m.max_abs);
        row["numel"] = static_cast<int64_t>(p.y.size());
        row["info"] = dump(q.info);
      }
    } catch (const std::exception& e) {
      row["error"] = e.what();
    }
    row["seconds"] = seconds_since(c0);
    const bool failed = !row["error"].is_null();
    const std::string jl = dump(row) + "\n", cl = csv_line(columns, row);
    std::lock_guard<std::mutex> g(lock);
    jout << jl;
    jout.flush();
    cout_ << cl;
    cout_.flush();
    if ((!jout || !cout_) && write_error.empty()) write_error = "cannot append to the results files";
    ++result.computed;
    result.failed += failed;
    progress.tick(failed);
  };

  // Cells in parallel; the parallel loops inside the formats and Eigen run on one thread each
  // (with --threads 1 the whole sweep uses one core).
  // A team of one thread is not an active region, so with one thread no region may be active.
  const int saved_levels = omp_get_max_active_levels();
  omp_set_max_active_levels(threads > 1 ? 1 : 0);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t k = 0; k < static_cast<int64_t>(pending.size()); ++k) run_cell(pending[k]);
  omp_set_max_active_levels(saved_levels);
  if (!write_error.empty()) throw Error(fmt::format("{}: {}", result.output.string(), write_error));
  result.seconds = seconds_since(t0);
  return result;
}

}  // namespace lowbit
