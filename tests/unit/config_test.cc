#include "config/config.h"

#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace crib {
namespace {

using ::crib::testing::IsOk;
using ::crib::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

TEST(Config, ShippedSampleParsesToTheBuiltInDefaults) {
  absl::StatusOr<Config> config = ParseConfig(kDefaultConfigText, "sample");
  ASSERT_THAT(config, IsOk());
  EXPECT_EQ(*config, Config{});
  EXPECT_EQ(config->socket, "/run/crib/crib.sock");
  EXPECT_EQ(config->root_dir, "/var/lib/crib");
  EXPECT_EQ(config->state_dir, "/run/crib");
  EXPECT_EQ(config->cgroup_driver, CgroupDriver::kCgroupfs);
}

TEST(Config, EveryDefaultIsWrittenOutInTheSample) {
  // Each key of the JSON form (which lists every field) appears as a key line in the sample.
  const nlohmann::json j = nlohmann::json::parse(ConfigToJson(Config{}));
  for (const auto& [key, value] : j.items()) {
    if (value.is_object()) {
      EXPECT_THAT(std::string(kDefaultConfigText), HasSubstr("[" + key + "]"));
      for (const auto& [sub, unused] : value.items()) {
        EXPECT_THAT(std::string(kDefaultConfigText), HasSubstr("\n" + sub + " = "));
      }
    } else {
      EXPECT_THAT(std::string(kDefaultConfigText), HasSubstr("\n" + key + " = ")) << key;
    }
  }
}

TEST(Config, StreamKeys) {
  absl::StatusOr<Config> config = ParseConfig(
      "[stream]\naddress = \"::1\"\nport = 10010\ntls = true\n"
      "tls_cert_file = \"/etc/crib/stream.crt\"\ntls_key_file = \"/etc/crib/stream.key\"\n"
      "idle_timeout = \"30m\"\nstream_creation_timeout = \"10s\"\nmax_streams = 9\n"
      "max_streams_per_container = 3\n",
      "f");
  ASSERT_THAT(config, IsOk());
  EXPECT_EQ(config->stream.address, "::1");
  EXPECT_EQ(config->stream.port, 10010);
  EXPECT_TRUE(config->stream.tls);
  EXPECT_EQ(config->stream.tls_cert_file, "/etc/crib/stream.crt");
  EXPECT_EQ(config->stream.idle_timeout, absl::Minutes(30));
  EXPECT_EQ(config->stream.stream_creation_timeout, absl::Seconds(10));
  EXPECT_EQ(config->stream.max_streams, 9);
  EXPECT_EQ(config->stream.max_streams_per_container, 3);
  EXPECT_EQ(Config{}.stream.address, "127.0.0.1");
  EXPECT_EQ(Config{}.stream.port, 0);
  EXPECT_FALSE(Config{}.stream.tls);
  EXPECT_THAT(ParseConfig("[stream]\naddress = \"localhost\"\n", "f"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("stream.address")));
  EXPECT_THAT(ParseConfig("[stream]\nport = 70000\n", "f"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("stream.port")));
  EXPECT_THAT(ParseConfig("[stream]\ntls = \"yes\"\n", "f"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("want a boolean")));
  EXPECT_THAT(ParseConfig("[stream]\nmax_streams = 0\n", "f"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("stream.max_streams")));
  EXPECT_THAT(ParseConfig("[stream]\ntls_cert_file = \"/x.crt\"\n", "f"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("both or neither")));
  EXPECT_THAT(ParseConfig("[stream]\nidle_timeout = \"soon\"\n", "f"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("stream.idle_timeout")));
  EXPECT_THAT(ParseConfig("[stream]\nbogus = 1\n", "f"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown key")));
}

TEST(Config, ValuesFromTheFile) {
  absl::StatusOr<Config> config = ParseConfig(R"(
socket = "/tmp/x.sock"
root_dir = "/srv/crib"
log_level = "debug"
cgroup_driver = "systemd"
shutdown_timeout = "1m30s"
[network]
backend = "cni"
)",
                                              "test.toml");
  ASSERT_THAT(config, IsOk());
  EXPECT_EQ(config->socket, "/tmp/x.sock");
  EXPECT_EQ(config->root_dir, "/srv/crib");
  EXPECT_EQ(config->state_dir, "/run/crib");
  EXPECT_EQ(config->log_level, "debug");
  EXPECT_EQ(config->cgroup_driver, CgroupDriver::kSystemd);
  EXPECT_EQ(config->shutdown_timeout, absl::Seconds(90));
  EXPECT_EQ(config->network.backend, NetworkBackendKind::kCni);
}

TEST(Config, NetworkKeys) {
  absl::StatusOr<Config> config = ParseConfig(
      "[network]\nbridge = \"br-x\"\npod_cidr = \"10.1.0.0/24\"\nmtu = 9000\n"
      "nft_table = \"crib_x\"\n",
      "f");
  ASSERT_THAT(config, IsOk());
  EXPECT_EQ(config->network.bridge, "br-x");
  EXPECT_EQ(config->network.pod_cidr, "10.1.0.0/24");
  EXPECT_EQ(config->network.mtu, 9000);
  EXPECT_EQ(config->network.nft_table, "crib_x");
  EXPECT_THAT(ParseConfig("[network]\nbridge = \"a-bridge-name-too-long\"\n", "f"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("network.bridge")));
  EXPECT_THAT(ParseConfig("[network]\npod_cidr = \"10.1.0.0/31\"\n", "f"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("network.pod_cidr")));
  EXPECT_THAT(ParseConfig("[network]\nmtu = 10\n", "f"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("network.mtu")));
  EXPECT_THAT(ParseConfig("[network]\nnft_table = \"a b\"\n", "f"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("network.nft_table")));
}

TEST(Config, CniKeys) {
  const Config defaults;
  EXPECT_EQ(defaults.network.cni_conf_dir, "/etc/cni/net.d");
  EXPECT_EQ(defaults.network.cni_plugin_dirs,
            (std::vector<std::string>{"/opt/cni/bin", "/usr/lib/cni"}));
  EXPECT_EQ(defaults.network.cni_plugin_timeout, absl::Seconds(30));
  absl::StatusOr<Config> config = ParseConfig(
      "[network]\nbackend = \"cni\"\ncni_conf_dir = \"/srv/net.d\"\n"
      "cni_plugin_dirs = [\"/a\", \"/b/c\"]\ncni_plugin_timeout = \"5s\"\n",
      "f");
  ASSERT_THAT(config, IsOk());
  EXPECT_EQ(config->network.backend, NetworkBackendKind::kCni);
  EXPECT_EQ(config->network.cni_conf_dir, "/srv/net.d");
  EXPECT_EQ(config->network.cni_plugin_dirs, (std::vector<std::string>{"/a", "/b/c"}));
  EXPECT_EQ(config->network.cni_plugin_timeout, absl::Seconds(5));
  const nlohmann::json j = nlohmann::json::parse(ConfigToJson(*config));
  EXPECT_EQ(j["network"]["cni_plugin_dirs"], nlohmann::json::array({"/a", "/b/c"}));
  EXPECT_EQ(j["network"]["cni_plugin_timeout"], "5s");

  EXPECT_THAT(ParseConfig("[network]\ncni_conf_dir = \"net.d\"\n", "f"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("network.cni_conf_dir"), HasSubstr("absolute"))));
  EXPECT_THAT(ParseConfig("[network]\ncni_plugin_dirs = []\n", "f"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("network.cni_plugin_dirs")));
  EXPECT_THAT(ParseConfig("[network]\ncni_plugin_dirs = [\"/a:/b\"]\n", "f"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("network.cni_plugin_dirs"), HasSubstr("':'"))));
  EXPECT_THAT(ParseConfig("[network]\ncni_plugin_dirs = \"/a\"\n", "f"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("network.cni_plugin_dirs"), HasSubstr("array"))));
  EXPECT_THAT(
      ParseConfig("[network]\ncni_plugin_timeout = \"0s\"\n", "f"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("network.cni_plugin_timeout")));
}

TEST(Config, UnknownKeysAreRejectedByName) {
  EXPECT_THAT(ParseConfig("socket = \"/a\"\nsokcet = \"/b\"\n", "f.toml"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("f.toml"), HasSubstr("key sokcet"), HasSubstr("line 2"),
                             HasSubstr("unknown key"))));
  EXPECT_THAT(ParseConfig("[network]\nbakend = \"cni\"\n", "f.toml"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("key network.bakend")));
  EXPECT_THAT(ParseConfig("[nework]\n", "f.toml"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("key nework")));
}

TEST(Config, BadValuesAreRejectedByName) {
  EXPECT_THAT(ParseConfig("cgroup_driver = \"cgroupv3\"", "f"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("key cgroup_driver"), HasSubstr("cgroupv3"))));
  EXPECT_THAT(ParseConfig("log_level = \"loud\"", "f"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("key log_level"), HasSubstr("loud"))));
  EXPECT_THAT(ParseConfig("socket = 5", "f"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("key socket"), HasSubstr("want a string, got an integer"))));
  EXPECT_THAT(ParseConfig("root_dir = \"relative/dir\"", "f"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("key root_dir"), HasSubstr("not an absolute path"))));
  EXPECT_THAT(ParseConfig("shutdown_timeout = \"soon\"", "f"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("key shutdown_timeout")));
  EXPECT_THAT(ParseConfig("network = 1", "f"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("key network")));
  EXPECT_THAT(ParseConfig("socket = \"/" + std::string(120, 'x') + "\"", "f"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("107 bytes")));
  EXPECT_THAT(ParseConfig("socket = \"/a\"\nsocket", "f"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 2")));
}

TEST(Config, FlagsOverrideTheFile) {
  Config config = *ParseConfig("socket = \"/from/file.sock\"\nlog_level = \"warn\"", "f");
  ConfigOverrides flags;
  flags.socket = "/from/flag.sock";
  flags.cgroup_driver = "systemd";
  ASSERT_THAT(ApplyOverrides(flags, config), IsOk());
  EXPECT_EQ(config.socket, "/from/flag.sock");
  EXPECT_EQ(config.log_level, "warn");
  EXPECT_EQ(config.cgroup_driver, CgroupDriver::kSystemd);

  ConfigOverrides bad;
  bad.cgroup_driver = "nope";
  EXPECT_THAT(ApplyOverrides(bad, config),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--cgroup-driver")));
  ConfigOverrides relative;
  relative.state_dir = "run";
  EXPECT_THAT(ApplyOverrides(relative, config),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("state_dir")));
}

TEST(Config, MissingFileIsDefaultsUnlessNamed) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/absent.toml";
  EXPECT_EQ(*LoadConfig(path, /*must_exist=*/false), Config{});
  EXPECT_THAT(LoadConfig(path, /*must_exist=*/true),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(path)));
  std::ofstream(path) << "state_dir = \"/run/other\"\n";
  EXPECT_EQ(LoadConfig(path, true)->state_dir, "/run/other");
}

TEST(Config, RuntimeHandlers) {
  absl::StatusOr<Config> config = ParseConfig(
      "state_dir = \"/run/x\"\n"
      "[runtimes.runc]\npath = \"/usr/sbin/runc\"\nrecursive_read_only_mounts = true\n"
      "[runtimes.kata-qemu]\npath = \"/opt/kata/bin/kata-runtime\"\nroot = \"/run/kata\"\n"
      "args = [\"--systemd-cgroup=false\"]\ntimeout = \"2m\"\n",
      "f");
  ASSERT_THAT(config, IsOk());
  ASSERT_EQ(config->runtimes.size(), 2u);
  EXPECT_TRUE(config->runtimes["runc"].recursive_read_only_mounts);
  EXPECT_EQ(config->runtimes["runc"].timeout, absl::Minutes(1));
  EXPECT_EQ(config->runtimes["kata-qemu"].timeout, absl::Minutes(2));
  // The executable, its --root (crib's state dir unless named), then the extra args.
  EXPECT_THAT(RuntimeHandlerArgv(*config, "runc"),
              ::testing::ElementsAre("/usr/sbin/runc", "--root", "/run/x/runtimes/runc"));
  EXPECT_THAT(RuntimeHandlerArgv(*config, "kata-qemu"),
              ::testing::ElementsAre("/opt/kata/bin/kata-runtime", "--root", "/run/kata",
                                     "--systemd-cgroup=false"));
  // crib's own launcher: "" and its name; nothing else that is not configured.
  EXPECT_EQ(FindRuntimeHandler(*config, ""), nullptr);
  EXPECT_EQ(FindRuntimeHandler(*config, "crib"), nullptr);
  EXPECT_NE(FindRuntimeHandler(*config, "runc"), nullptr);
  EXPECT_THAT(KnownRuntimeHandler(*config, ""), IsOk());
  EXPECT_THAT(KnownRuntimeHandler(*config, "crib"), IsOk());
  EXPECT_THAT(KnownRuntimeHandler(*config, "gvisor"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("\"gvisor\" is not configured"), HasSubstr("\"runc\""),
                             HasSubstr("\"kata-qemu\""), HasSubstr("\"crib\""))));
  // With the systemd driver every runtime has systemd make the containers' cgroups.
  absl::StatusOr<Config> systemd = ParseConfig(
      "cgroup_driver = \"systemd\"\nstate_dir = \"/run/x\"\n[runtimes.runc]\npath = \"/r\"\n"
      "args = [\"--debug\"]\n",
      "f");
  ASSERT_THAT(systemd, IsOk());
  EXPECT_THAT(RuntimeHandlerArgv(*systemd, "runc"),
              ::testing::ElementsAre("/r", "--root", "/run/x/runtimes/runc", "--systemd-cgroup",
                                     "--debug"));
  const nlohmann::json j = nlohmann::json::parse(ConfigToJson(*config));
  EXPECT_EQ(j["runtimes"]["kata-qemu"]["root"], "/run/kata");
  EXPECT_EQ(j["default_runtime_name"], "crib");

  for (const auto& [text, key] : std::vector<std::pair<std::string, std::string>>{
           {"[runtimes.runc]\npath = \"runc\"\n", "runtimes.runc.path"},
           {"[runtimes.runc]\npath = \"/r\"\nroot = \"rel\"\n", "runtimes.runc.root"},
           {"[runtimes.runc]\npath = \"/r\"\nshim = \"x\"\n", "runtimes.runc.shim"},
           {"[runtimes.runc]\npath = \"/r\"\ntimeout = \"0s\"\n", "runtimes.runc.timeout"},
           {"[runtimes.Runc]\npath = \"/r\"\n", "runtimes.Runc"},
           {"[runtimes.crib]\npath = \"/r\"\n", "runtimes.crib"},
           {"default_runtime_name = \"\"\n", "default_runtime_name"},
       }) {
    EXPECT_THAT(ParseConfig(text, "f"),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(key)))
        << text;
  }
}

TEST(Config, JsonFormIsTheEffectiveConfig) {
  Config config;
  config.socket = "/s.sock";
  config.shutdown_timeout = absl::Seconds(3);
  const nlohmann::json j = nlohmann::json::parse(ConfigToJson(config));
  EXPECT_EQ(j["socket"], "/s.sock");
  EXPECT_EQ(j["cgroup_driver"], "cgroupfs");
  EXPECT_EQ(j["shutdown_timeout"], "3s");
  EXPECT_EQ(j["network"]["backend"], "bridge");
}

}  // namespace
}  // namespace crib
