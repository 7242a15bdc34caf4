// JsonFields (sim/json_fields.hpp).
#include "sim/json_fields.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "formats/error.hpp"

namespace lowbit {

using Json = nlohmann::json;

void JsonFields::fail(const std::string& path, const std::string& what) const {
  throw Error(fmt::format("{}: {}: {}", label_, path, what));
}

void JsonFields::check_keys(const Json& obj, const std::string& path, const std::vector<std::string>& allowed) const {
  for (const auto& [k, v] : obj.items()) {
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end())
      fail(path.empty() ? k : path + "." + k, fmt::format("unknown key (expected one of: {})", fmt::join(allowed, ", ")));
  }
}

const Json& JsonFields::object(const Json& j, const std::string& path) const {
  if (!j.is_object()) fail(path, "expected an object");
  return j;
}

std::string JsonFields::string(const Json& j, const std::string& path) const {
  if (!j.is_string() || j.get<std::string>().empty()) fail(path, "expected a non-empty string");
  return j.get<std::string>();
}

std::vector<std::string> JsonFields::string_list(const Json& j, const std::string& path) const {
  if (!j.is_array() || j.empty()) fail(path, "expected a non-empty list of strings");
  std::vector<std::string> out;
  for (size_t i = 0; i < j.size(); ++i) {
    if (!j[i].is_string() || j[i].get<std::string>().empty())
      fail(fmt::format("{}[{}]", path, i), "expected a non-empty string");
    out.push_back(j[i].get<std::string>());
  }
  return out;
}

int64_t JsonFields::integer(const Json& j, const std::string& path, int64_t lo, int64_t hi, const std::string& what) const {
  if (j.is_number_unsigned()) {
    const uint64_t v = j.get<uint64_t>();
    if (v <= static_cast<uint64_t>(hi) && static_cast<int64_t>(v) >= lo) return static_cast<int64_t>(v);
  } else if (j.is_number_integer()) {
    const int64_t v = j.get<int64_t>();
    if (v >= lo && v <= hi) return v;
  }
  fail(path, "expected " + what);
}

std::vector<int64_t> JsonFields::int_list(const Json& j, const std::string& path, int64_t lo, const std::string& what) const {
  if (!j.is_array() || j.empty()) fail(path, "expected " + what);
  std::vector<int64_t> out;
  for (const auto& v : j) {
    if (!(v.is_number_integer() || v.is_number_unsigned())) fail(path, "expected " + what);
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) fail(path, "expected " + what);
    if (v.get<int64_t>() < lo) fail(path, "expected " + what);
    out.push_back(v.get<int64_t>());
  }
  return out;
}

double JsonFields::number(const Json& j, const std::string& path, double lo, double hi) const {
  if (!j.is_number()) fail(path, fmt::format("expected a number in [{}, {}]", lo, hi));
  const double v = j.get<double>();
  if (!std::isfinite(v) || v < lo || v > hi) fail(path, fmt::format("expected a number in [{}, {}]", lo, hi));
  return v;
}

bool JsonFields::boolean(const Json& j, const std::string& path) const {
  if (!j.is_boolean()) fail(path, "expected true or false");
  return j.get<bool>();
}

}  // namespace lowbit
