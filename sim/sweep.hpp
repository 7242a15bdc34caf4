// Declarative sweeps: a JSON file names tensors (captured or synthetic), (X, W) pairs of linear
// layers, format / algorithm templates and the axes their {placeholders} range over. The file
// is parsed and validated up front (every expanded spec is built once), expanded into cells
// with stable ids, and run in parallel; each finished cell appends one tidy row to
// OUTPUT/results.jsonl and OUTPUT/results.csv, so an interrupted sweep resumes where it stopped.
// Schema, row columns and resume rules: docs/sweeps.md.
#pragma once
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/tensor_format.hpp"

namespace lowbit {

// Glob over tensor names: '*' any run of characters (dots included), '?' any one character.
bool glob_match(std::string_view pattern, std::string_view text);

// One tensor a sweep reads: a tensor of a .safetensors file, a whole .npy file, or a synthetic
// tensor (distribution, shape, seed).
struct SweepTensor {
  bool synthetic = false;
  std::string source;          // file path as written in the sweep file, or "synthetic:<dist>"
  std::filesystem::path path;  // resolved file path (empty for synthetic)
  std::string name;            // tensor name in the file ("" for .npy and synthetic)
  std::string dist;            // synthetic distribution
  Shape shape;                 // synthetic shape (file tensors: filled when loaded)
  uint64_t seed = 0;           // synthetic seed
  std::string step;            // "33" for names like "step033.<layer>.input", else ""
  std::string layer;           // "<layer>" for "stepNNN.<layer>.input" / "<layer>.weight", else ""

  // Canonical identity, part of every cell id that reads this tensor.
  std::string key() const;
  // Short label: the tensor name, the .npy file, or "<dist>(seed=S)".
  std::string label() const;
};

// Axis values a cell's templates used, in the sweep's axis order.
using AxisValues = std::vector<std::pair<std::string, nlohmann::ordered_json>>;

struct SweepCell {
  enum class Kind { Tensor, Linear };
  Kind kind = Kind::Tensor;
  std::string id;         // 16 hex digits: FNV-1a 64 of `canonical`
  std::string canonical;  // the parameter string the id hashes (see sweep_cell_id)
  int tensor = -1;        // index into SweepPlan::tensors (the activations X of a linear cell)
  int weight = -1;        // linear cells: index of W
  std::string format;     // tensor cells: canonical format spec
  std::string algorithm;  // linear cells: algorithm spec as expanded
  std::string wfmt;       // linear cells: canonical weight quantizer spec
  std::string afmt;       // linear cells: canonical activation quantizer spec
  AxisValues axes;
};

struct SweepPlan {
  std::string file;                    // the sweep file as given (prefix of every error)
  std::string name;                    // "name", default the file's stem
  std::filesystem::path output;        // output directory
  int threads = 0;                     // 0: OpenMP's default
  uint64_t seed = 0;                   // LinearProblem::seed of every linear cell
  std::vector<std::string> axis_names; // in file order (one CSV column each)
  std::vector<SweepTensor> tensors;    // every tensor some cell reads, deduplicated
  std::vector<SweepCell> cells;        // expanded, duplicates removed, in file order
  int64_t duplicates = 0;              // cells dropped as duplicates of earlier ones
};

// Reads and validates a sweep file; relative paths resolve against the file's directory
// joined with its "root" key. Throws lowbit::Error "FILE: key.path: what is wrong".
SweepPlan load_sweep(const std::filesystem::path& file);
// Same for JSON text; `label` prefixes errors, `dir` stands for the sweep file's directory.
SweepPlan parse_sweep(std::string_view text, const std::string& label, const std::filesystem::path& dir);

// Id of a canonical parameter string: FNV-1a 64 in 16 lowercase hex digits.
std::string sweep_cell_id(std::string_view canonical);
// Expands one template over the axes it names: every "{axis}" is replaced, the product runs
// over the used axes only (in the order `axes` lists them). Throws lowbit::Error (without a
// file prefix) on an unknown or unterminated placeholder.
std::vector<std::pair<std::string, AxisValues>> expand_template(
    std::string_view tmpl, const std::vector<std::pair<std::string, std::vector<nlohmann::ordered_json>>>& axes);

// The columns of results.csv, in order (the fixed columns with the axis columns after "afmt").
std::vector<std::string> sweep_columns(const SweepPlan& plan);

struct SweepOptions {
  bool fresh = false;                          // ignore and overwrite existing results
  int threads = 0;                             // > 0 overrides the plan's "threads"
  std::optional<std::filesystem::path> output; // overrides the plan's output directory
  std::FILE* progress = stderr;                // null: silent
};

struct SweepResult {
  std::filesystem::path output;  // directory holding results.csv and results.jsonl
  int64_t cells = 0;             // cells in the plan
  int64_t reused = 0;            // successful rows found in results.jsonl and kept
  int64_t computed = 0;          // cells run now
  int64_t failed = 0;            // of those, cells whose row has an error
  int64_t dropped_lines = 0;     // unreadable lines (an interrupted write) and stale rows dropped
  double seconds = 0;
};

// Runs every cell without a successful row in OUTPUT/results.jsonl (all cells with `fresh`).
// Existing rows of cells still in the plan are kept; the CSV is rewritten from the JSONL first.
SweepResult run_sweep(const SweepPlan& plan, const SweepOptions& options = {});

}  // namespace lowbit
