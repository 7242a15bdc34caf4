// A progress bar on a stream for long runs (sweeps, sampling): "[done/total] pct% eta Ns" plus an
// optional suffix, rewritten in place on a terminal, otherwise one line per ~5 %.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace lowbit {

class ProgressBar {
 public:
  ProgressBar(std::FILE* out, int64_t total, std::string label = "");
  // Sets the count of finished units (monotone) and redraws when due; suffix goes after the ETA.
  void update(int64_t done, const std::string& suffix = "");

 private:
  std::FILE* out_;
  int64_t total_;
  std::string label_;
  bool tty_ = false;
  int last_step_ = -1;
  double last_ = -1;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace lowbit
