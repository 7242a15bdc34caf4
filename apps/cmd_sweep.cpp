// `lowbit sweep FILE`: run a declarative sweep file (docs/sweeps.md), resuming from the rows
// already in its output directory; --dry-run prints the expanded cells without running them.
#include <fmt/format.h>

#include <algorithm>
#include <memory>
#include <string>

#include "apps/commands.hpp"
#include "sim/sweep.hpp"

namespace lowbit::cli {
namespace {

struct SweepArgs {
  std::string file, out;
  bool fresh = false, dry_run = false;
  int threads = 0;
};

std::string describe_cell(const SweepPlan& plan, const SweepCell& c) {
  const SweepTensor& x = plan.tensors[c.tensor];
  std::string s = c.kind == SweepCell::Kind::Tensor
                      ? fmt::format("tensor  {:<28} {}", c.format, x.key())
                      : fmt::format("linear  {} W={} A={}  x={} w={}", c.algorithm, c.wfmt, c.afmt, x.key(),
                                    plan.tensors[c.weight].key());
  for (const auto& [name, v] : c.axes) s += fmt::format(" {}={}", name, v.is_string() ? v.get<std::string>() : v.dump());
  return s;
}

int run(const SweepArgs& a) {
  SweepPlan plan = load_sweep(a.file);
  if (!a.out.empty()) plan.output = a.out;
  const auto linear = std::count_if(plan.cells.begin(), plan.cells.end(),
                                    [](const SweepCell& c) { return c.kind == SweepCell::Kind::Linear; });
  if (a.dry_run) {
    fmt::print("{}: {} cells ({} tensor, {} linear; {} duplicates removed) over {} tensors -> {}\n", plan.name,
               plan.cells.size(), static_cast<int64_t>(plan.cells.size()) - linear, linear, plan.duplicates,
               plan.tensors.size(), plan.output.string());
    const size_t shown = std::min<size_t>(plan.cells.size(), 10);
    for (size_t i = 0; i < shown; ++i) fmt::print("  {}  {}\n", plan.cells[i].id, describe_cell(plan, plan.cells[i]));
    if (shown < plan.cells.size()) fmt::print("  ... {} more\n", plan.cells.size() - shown);
    return 0;
  }
  SweepOptions opt;
  opt.fresh = a.fresh;
  opt.threads = a.threads;
  const SweepResult r = run_sweep(plan, opt);
  fmt::print("{}: {} cells: {} computed ({} failed), {} reused, in {:.1f} s -> {}\n", plan.name, r.cells, r.computed,
             r.failed, r.reused, r.seconds, (r.output / "results.csv").string());
  if (r.dropped_lines)
    fmt::print("{}: dropped {} unreadable or stale lines of results.jsonl\n", plan.name, r.dropped_lines);
  if (r.failed) fmt::print("{}: {} cells failed: see the \"error\" column\n", plan.name, r.failed);
  return 0;
}

}  // namespace

void add_sweep_commands(CLI::App& app, Commands& out) {
  auto args = std::make_shared<SweepArgs>();
  auto* sub = app.add_subcommand("sweep", "run a sweep file: formats x tensors, algorithms x (X, W) pairs "
                                          "(docs/sweeps.md); resumes from OUTPUT/results.jsonl");
  sub->add_option("file", args->file, "sweep file (JSON)")->required();
  sub->add_flag("--fresh", args->fresh, "ignore existing results and start over");
  sub->add_option("--threads", args->threads, "cells run in parallel (default: the file's \"threads\", else all cores)")
      ->check(CLI::Range(1, 4096));
  sub->add_flag("--dry-run", args->dry_run, "print the number of expanded cells and the first few, run nothing");
  sub->add_option("--out", args->out, "output directory (default: the file's \"output\")");
  out.push_back({sub, [args] { return run(*args); }});
}

}  // namespace lowbit::cli
