// Strict JSON parsing: duplicate keys rejected (see json_strict.hpp).
#include "sim/json_strict.hpp"

#include <fmt/format.h>

#include <optional>
#include <set>
#include <vector>

#include "formats/error.hpp"

namespace lowbit {

nlohmann::json parse_json_strict(std::string_view text, const std::string& where) {
  using Json = nlohmann::json;
  std::vector<std::set<std::string>> keys;
  std::optional<std::string> duplicate;
  Json::parser_callback_t cb = [&](int, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start: keys.emplace_back(); break;
      case Json::parse_event_t::object_end:
        if (!keys.empty()) keys.pop_back();
        break;
      case Json::parse_event_t::key:
        if (!keys.empty() && parsed.is_string() && !keys.back().insert(parsed.get<std::string>()).second &&
            !duplicate)
          duplicate = parsed.get<std::string>();
        break;
      default: break;
    }
    return true;
  };
  Json j;
  try {
    j = Json::parse(text.begin(), text.end(), cb);
  } catch (const Json::exception& e) {
    throw Error(fmt::format("{}: not valid JSON: {}", where, e.what()));
  }
  if (duplicate) throw Error(fmt::format("{}: duplicate key '{}'", where, *duplicate));
  return j;
}

}  // namespace lowbit
