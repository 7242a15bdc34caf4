// The format registry: the one list of formats lowbit knows, and spec string -> format.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "formats/tensor_format.hpp"

namespace lowbit {

struct FormatEntry {
  std::string name;     // spec name, e.g. "mxfp4"
  std::string family;   // "int", "float", "mx", "nvfp4", "codebook", "lzs"
  std::string summary;  // one line
  std::string options;  // the options it accepts, with defaults
};

// Every registered format, in listing order.
const std::vector<FormatEntry>& format_entries();

// Builds a format from a spec string; throws lowbit::Error with a clear message on a bad spec.
std::unique_ptr<TensorFormat> make_format(std::string_view spec);

// Splits "a,b,c" into specs (commas never occur inside a spec).
std::vector<std::string> split_specs(std::string_view list);

}  // namespace lowbit
