// ProgressBar (sim/progress.hpp).
#include "sim/progress.hpp"

#include <fmt/format.h>
#include <unistd.h>

namespace lowbit {

ProgressBar::ProgressBar(std::FILE* out, int64_t total, std::string label)
    : out_(out), total_(total), label_(std::move(label)), t0_(std::chrono::steady_clock::now()) {
  tty_ = out_ && ::isatty(::fileno(out_));
}

void ProgressBar::update(int64_t done, const std::string& suffix) {
  if (!out_ || total_ <= 0) return;
  const int pct = static_cast<int>(100 * done / total_);
  const double now = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  const bool last = done >= total_;
  if (tty_) {
    if (!last && now - last_ < 0.1) return;
    last_ = now;
  } else {
    if (!last && pct / 5 == last_step_) return;
    last_step_ = pct / 5;
  }
  const double eta = done > 0 ? now / static_cast<double>(done) * static_cast<double>(total_ - done) : 0;
  std::string line = fmt::format("{}[{}/{}] {}% eta {:.0f}s", label_.empty() ? "" : label_ + " ", done, total_, pct, eta);
  if (!suffix.empty()) line += " " + suffix;
  if (tty_) std::fprintf(out_, "\r%s\x1b[K%s", line.c_str(), last ? "\n" : "");
  else std::fprintf(out_, "%s\n", line.c_str());
  std::fflush(out_);
}

}  // namespace lowbit
