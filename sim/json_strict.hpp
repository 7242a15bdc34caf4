// Strict JSON parsing for lowbit's own files (safetensors headers, sweep files): nlohmann::json
// silently keeps one of two duplicate keys, which would hide a malformed file, so duplicates
// are rejected in every object.
#pragma once
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace lowbit {

// Parses `text`; throws lowbit::Error "WHERE: not valid JSON: ..." or
// "WHERE: duplicate key 'k'" where WHERE is `where` (e.g. "FILE: header", "FILE").
nlohmann::json parse_json_strict(std::string_view text, const std::string& where);

}  // namespace lowbit
