// Every built-in model: registered once, with a valid parameter table, programmable with its
// defaults.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

#include "core/card.hpp"
#include "core/error.hpp"
#include "devices/registry.hpp"
#include "tests/support/cards.hpp"

using namespace xbar;

namespace {

// A card for `model` with all its defaults, a 1-40 uS window.
core::Card default_card(const std::string& model) { return testing_support::device_card(model, {}, 4, 6); }

}  // namespace

TEST(DeviceRegistry, ListsEveryBuiltinModelOnceWithDocumentedParameters) {
  const auto& registry = devices::builtin_devices();
  const std::vector<std::string> names = registry.names();
  EXPECT_THAT(names, testing::IsSupersetOf({"ideal", "pcm-joshi2020", "pcm-hermes2023", "rram-wan2022",
                                             "rram-hfox-ibm", "rram-stanford-pku"}));
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()).size(), names.size());
  for (const auto& model : registry.models()) {
    EXPECT_FALSE(model.description.empty()) << model.name;
    if (model.name != "ideal") {
      EXPECT_FALSE(model.reference.empty()) << model.name << " cites no source";
    }
    std::set<std::string> keys;
    for (const auto& spec : model.params) {
      EXPECT_TRUE(keys.insert(spec.key).second) << model.name << ": " << spec.key << " declared twice";
      EXPECT_FALSE(spec.description.empty()) << model.name << ": " << spec.key;
      EXPECT_NE(spec.key.rfind("g_m", 0), 0u) << "g_min/g_max are common keys";
    }
  }
}

TEST(DeviceRegistry, EveryModelProgramsAndReadsWithItsDefaults) {
  const auto& registry = devices::builtin_devices();
  for (const std::string& name : registry.names()) {
    const core::Card card = default_card(name);
    const auto device = registry.create(card.device);
    Eigen::MatrixXd target(4, 6);
    for (int k = 0; k < 24; ++k) target(k / 6, k % 6) = 1e-6 + 39e-6 * k / 23.0;
    core::RandomStream rng(1, "programming");
    const devices::ProgrammedArray programmed = device->program(target, rng);
    ASSERT_EQ(programmed.g_programmed.rows(), 4) << name;
    ASSERT_EQ(programmed.g_programmed.cols(), 6) << name;
    EXPECT_TRUE(programmed.g_programmed.allFinite()) << name;
    EXPECT_GE(programmed.g_programmed.minCoeff(), 0.0) << name;
    core::RandomStream read_rng(1, "read");
    const Eigen::MatrixXd g = device->read_conductance(programmed, 86400.0, read_rng);
    EXPECT_TRUE(g.allFinite()) << name;
    EXPECT_GE(g.minCoeff(), 0.0) << name;
    // Programming tracks the target: the programmed map correlates strongly with it.
    const Eigen::ArrayXd a = (target.array() - target.mean()).reshaped();
    const Eigen::ArrayXd b = (programmed.g_programmed.array() - programmed.g_programmed.mean()).reshaped();
    EXPECT_GT((a * b).sum() / std::sqrt((a * a).sum() * (b * b).sum()), 0.95) << name;
  }
}

TEST(DeviceRegistry, UnknownModelIsAUserError) {
  core::DeviceOptions options;
  options.model = "nope";
  EXPECT_THROW(devices::builtin_devices().create(options), core::UserError);
}
