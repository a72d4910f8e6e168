#include "cribd/flags.h"

#include <initializer_list>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "support/status_matchers.h"

namespace crib {
namespace {

using ::crib::testing::IsOk;
using ::crib::testing::StatusIs;
using ::testing::HasSubstr;

absl::StatusOr<Flags> Parse(std::initializer_list<const char*> args) {
  std::vector<std::string> storage = {"cribd"};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : storage) argv.push_back(s.data());
  argv.push_back(nullptr);
  return ParseFlags(static_cast<int>(storage.size()), argv.data());
}

TEST(Flags, NoneGiven) {
  absl::StatusOr<Flags> flags = Parse({});
  ASSERT_THAT(flags, IsOk());
  EXPECT_EQ(flags->config_path, "/etc/crib/config.toml");
  EXPECT_FALSE(flags->config_path_given);
  EXPECT_FALSE(flags->overrides.socket.has_value());
}

TEST(Flags, EveryOverrideInBothSpellings) {
  absl::StatusOr<Flags> flags =
      Parse({"--config", "/c.toml", "--socket=/s.sock", "--root", "/r", "--state=/st",
             "--log-level", "debug", "--cgroup-driver=systemd"});
  ASSERT_THAT(flags, IsOk());
  EXPECT_EQ(flags->config_path, "/c.toml");
  EXPECT_TRUE(flags->config_path_given);
  EXPECT_EQ(flags->overrides.socket, "/s.sock");
  EXPECT_EQ(flags->overrides.root_dir, "/r");
  EXPECT_EQ(flags->overrides.state_dir, "/st");
  EXPECT_EQ(flags->overrides.log_level, "debug");
  EXPECT_EQ(flags->overrides.cgroup_driver, "systemd");
}

TEST(Flags, ActionsAreRecognized) {
  EXPECT_TRUE(Parse({"--print-default-config"})->print_default_config);
  EXPECT_TRUE(Parse({"--version"})->print_version);
  EXPECT_TRUE(Parse({"--help"})->help);
}

TEST(Flags, MistakesAreNamed) {
  EXPECT_THAT(Parse({"--sokcet", "/x"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown flag --sokcet")));
  EXPECT_THAT(Parse({"--root"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--root needs a value")));
  EXPECT_THAT(Parse({"stray"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unexpected argument stray")));
}

}  // namespace
}  // namespace crib
