// Tests for the shipped captured tensors (data/captured/): every tensor listed in manifest.json
// exists in its file with the listed shape and dtype and has finite values; the DiT capture
// covers >= 4 distinct sampling steps and the input of every linear layer (the layers are counted
// from the stored weights) at each of them.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sim/safetensors.hpp"
#include "sim/tensor.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const fs::path kDir = fs::path(LOWBIT_SOURCE_DIR) / "data" / "captured";

json load_manifest() {
  std::ifstream in(kDir / "manifest.json");
  EXPECT_TRUE(in.good()) << "cannot open " << (kDir / "manifest.json");
  return json::parse(in);
}

TEST(CapturedTest, ManifestMatchesFiles) {
  const json m = load_manifest();
  ASSERT_TRUE(m.contains("tensors"));
  ASSERT_GT(m["tensors"].size(), 0u);
  std::map<std::string, std::vector<json>> by_file;
  for (const auto& e : m["tensors"]) {
    for (const char* k : {"file", "name", "layer", "kind", "step", "timestep", "shape", "dtype", "model", "seed"})
      ASSERT_TRUE(e.contains(k)) << "manifest entry lacks " << k << ": " << e.dump();
    by_file[e["file"].get<std::string>()].push_back(e);
  }
  size_t total = 0;
  for (const auto& [file, entries] : by_file) {
    const fs::path p = kDir / file;
    ASSERT_TRUE(fs::exists(p)) << p;
    const auto names = lowbit::safetensors_names(p);
    const std::set<std::string> in_file(names.begin(), names.end());
    EXPECT_EQ(in_file.size(), entries.size()) << file << ": manifest and file list different tensor counts";
    std::vector<std::string> want;
    for (const auto& e : entries) {
      want.push_back(e["name"].get<std::string>());
      ASSERT_TRUE(in_file.count(want.back())) << file << " lacks " << want.back();
    }
    const auto tensors = lowbit::read_safetensors(p, want);
    ASSERT_EQ(tensors.size(), entries.size());
    for (size_t i = 0; i < entries.size(); ++i) {
      const auto& e = entries[i];
      const auto& t = tensors[i];
      EXPECT_EQ(t.shape, e["shape"].get<std::vector<int64_t>>()) << want[i];
      EXPECT_EQ(std::string(lowbit::dtype_name(t.dtype)), e["dtype"].get<std::string>()) << want[i];
      const auto v = lowbit::to_f32(t);
      size_t bad = 0;
      for (float x : v) bad += !std::isfinite(x);
      EXPECT_EQ(bad, 0u) << want[i] << " has non-finite values";
      EXPECT_GT(v.size(), 0u) << want[i];
      ++total;
    }
  }
  EXPECT_EQ(total, m["tensors"].size());
}

TEST(CapturedTest, DitCoversStepsAndEveryLinear) {
  const json m = load_manifest();
  std::set<std::string> weight_layers;
  std::map<long, std::set<std::string>> inputs_by_step;
  std::set<double> timesteps;
  for (const auto& e : m["tensors"]) {
    if (e["model"] != "tinydit") continue;
    const auto kind = e["kind"].get<std::string>();
    const auto layer = e["layer"].get<std::string>();
    if (kind == "weight") {
      EXPECT_TRUE(weight_layers.insert(layer).second) << "weight of " << layer << " stored twice";
      EXPECT_EQ(e["shape"].size(), 2u) << layer;
    } else if (kind == "input") {
      inputs_by_step[e["step"].get<long>()].insert(layer);
      timesteps.insert(e["timestep"].get<double>());
      EXPECT_EQ(e["shape"].size(), 2u) << e["name"];
    }
  }
  // 8 blocks x (qkv, proj, fc1, fc2, adaLN) + 2 timestep-MLP + final linear + final adaLN.
  EXPECT_EQ(weight_layers.size(), 44u);
  ASSERT_GE(inputs_by_step.size(), 4u) << "DiT inputs must cover >= 4 sampling steps";
  ASSERT_GE(timesteps.size(), 4u);
  for (const auto& [step, layers] : inputs_by_step)
    EXPECT_EQ(layers, weight_layers) << "step " << step << " does not cover every linear layer";
  // Spread over the trajectory: first and last quarter both present.
  EXPECT_LE(inputs_by_step.begin()->first, 12);
  EXPECT_GE(inputs_by_step.rbegin()->first, 37);
}

TEST(CapturedTest, MiniLmHasLinearInputs) {
  const json m = load_manifest();
  std::set<std::string> inputs, weights;
  for (const auto& e : m["tensors"]) {
    if (e["model"] != "sentence-transformers/all-MiniLM-L6-v2") continue;
    (e["kind"] == "weight" ? weights : inputs).insert(e["layer"].get<std::string>());
  }
  EXPECT_GE(inputs.size(), 36u);  // 6 layers x 6 linears (+ pooler)
  EXPECT_GE(weights.size(), 6u);
  for (const auto& w : weights) EXPECT_TRUE(inputs.count(w)) << w;
}

}  // namespace
