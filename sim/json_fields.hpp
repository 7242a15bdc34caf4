// Typed, validated access to the fields of lowbit's own JSON files (sweep files, recipes): every
// error is a lowbit::Error "LABEL: key.path: what is wrong", naming the file and the key, as
// docs/sweeps.md promises.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lowbit {

class JsonFields {
 public:
  explicit JsonFields(std::string label) : label_(std::move(label)) {}

  const std::string& label() const { return label_; }
  [[noreturn]] void fail(const std::string& path, const std::string& what) const;
  // Rejects keys of `obj` outside `allowed`.
  void check_keys(const nlohmann::json& obj, const std::string& path, const std::vector<std::string>& allowed) const;
  const nlohmann::json& object(const nlohmann::json& j, const std::string& path) const;
  std::string string(const nlohmann::json& j, const std::string& path) const;  // non-empty
  std::vector<std::string> string_list(const nlohmann::json& j, const std::string& path) const;  // non-empty
  // An integer in [lo, hi]; `what` completes "expected ..." in the error.
  int64_t integer(const nlohmann::json& j, const std::string& path, int64_t lo, int64_t hi, const std::string& what) const;
  std::vector<int64_t> int_list(const nlohmann::json& j, const std::string& path, int64_t lo, const std::string& what) const;
  // A finite number in [lo, hi].
  double number(const nlohmann::json& j, const std::string& path, double lo, double hi) const;
  bool boolean(const nlohmann::json& j, const std::string& path) const;

 private:
  std::string label_;
};

}  // namespace lowbit
