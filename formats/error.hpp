// lowbit::Error — the one exception type thrown at API boundaries (bad specs, bad files,
// bad shapes). The CLI prints what() on one line and exits non-zero.
#pragma once
#include <stdexcept>
#include <string>

namespace lowbit {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace lowbit
