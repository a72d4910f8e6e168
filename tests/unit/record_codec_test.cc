// The `data` blobs of the store's pod and container records (pod/record.h, container/record.h):
// every field survives a round trip; a blob that is not one is DataLoss naming the record; a blob
// that an older cribd wrote (without the fields added since) decodes with those fields at their
// defaults, and one from a newer cribd (with fields this one does not know) decodes too. And the
// conversion of a record with its data to the value the server reports.
#include <sys/types.h>

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "container/container.h"
#include "container/record.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "network/backend.h"
#include "nlohmann/json.hpp"
#include "pod/record.h"
#include "pod/sandbox.h"
#include "store/records.h"
#include "support/status_matchers.h"

namespace crib {
namespace {

using ::crib::container::ContainerData;
using ::crib::container::DecodeContainerData;
using ::crib::container::EncodeContainerData;
using ::crib::pod::DecodePodData;
using ::crib::pod::EncodePodData;
using ::crib::pod::PodData;
using ::crib::testing::IsOk;
using ::crib::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using json = ::nlohmann::json;

// Every byte value, NUL included: the CRI config is opaque protobuf bytes.
std::string AllBytes() {
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes.push_back(static_cast<char>(i));
  return bytes;
}

// ---- Containers ----

// Fails to compile when a field is added to one of these structs: set the new field to a
// non-default value in FullContainerData() and compare it in ExpectSameContainerData().
[[maybe_unused]] void ContainerFieldsAreAllListed(const ContainerData& d,
                                                  const container::MountSpec& m,
                                                  const container::Resources& r,
                                                  const container::HugepageLimit& h,
                                                  const container::UserIds& u) {
  [[maybe_unused]] const auto& [creating, removing, image, image_name, image_ref, image_id,
                                chain_ids, log_path, labels, annotations, mounts, resources, user,
                                stop_signal, tty, stdin_, stdin_once, termination_message_file,
                                fallback_to_logs, monitor_pid, monitor_start_time, init_pid,
                                init_start_time, started_at_ns, finished_at_ns, exit_code, reason,
                                message, config_bytes] = d;
  // A mount's uid_mappings and gid_mappings are not in the record: they matter only to the
  // spec that CreateContainer builds, and ContainerStatus does not report them.
  [[maybe_unused]] const auto& [container_path, host_path, readonly, recursive_readonly,
                                selinux_relabel, propagation, mount_image, image_sub_path,
                                mount_uid_mappings, mount_gid_mappings] = m;
  [[maybe_unused]] const auto& [cpu_period, cpu_quota, cpu_shares, memory_limit, oom_score_adj,
                                cpuset_cpus, cpuset_mems, hugepage_limits, unified,
                                memory_swap_limit] = r;
  [[maybe_unused]] const auto& [page_size, limit] = h;
  [[maybe_unused]] const auto& [uid, gid, supplemental_groups] = u;
}

ContainerData FullContainerData() {
  ContainerData d;
  d.creating = true;
  d.removing = true;
  d.image = "app:1";
  d.image_name = "registry.example/team/app:1";
  d.image_ref = "registry.example/team/app@sha256:" + std::string(64, 'a');
  d.image_id = "sha256:" + std::string(64, 'b');
  d.chain_ids = {"sha256:" + std::string(64, 'c'), "sha256:" + std::string(64, 'd')};
  d.log_path = "/var/log/pods/ns_web-0_uid/app/0.log";
  d.labels = {{"io.kubernetes.container.name", "app"}, {"tier", "front"}};
  d.annotations = {{"io.kubernetes.container.hash", "1a2b3c"},
                   {"note", "caf\xc3\xa9 \"quoted\" \\ back\nslash\ttab"}};
  container::MountSpec volume;
  volume.container_path = "/data";
  volume.host_path = "/var/lib/kubelet/pods/uid/volumes/data";
  volume.readonly = true;
  volume.recursive_readonly = true;
  volume.selinux_relabel = true;
  volume.propagation = container::Propagation::kBidirectional;
  volume.image = "registry.example/models:2";
  volume.image_sub_path = "weights/v2";
  container::MountSpec hosts;
  hosts.container_path = "/etc/hosts";
  hosts.host_path = "/run/crib/pods/abc/hosts";
  hosts.propagation = container::Propagation::kHostToContainer;
  d.mounts = {volume, hosts};
  d.resources.cpu_period = 100000;
  d.resources.cpu_quota = 50000;
  d.resources.cpu_shares = 512;
  d.resources.memory_limit = int64_t{256} << 20;
  d.resources.oom_score_adj = -997;
  d.resources.cpuset_cpus = "0-1,3";
  d.resources.cpuset_mems = "0";
  d.resources.hugepage_limits = {{"2MB", uint64_t{4} << 20}, {"1GB", uint64_t{1} << 30}};
  d.resources.unified = {{"memory.high", "200000000"}, {"pids.max", "100"}};
  d.resources.memory_swap_limit = int64_t{512} << 20;
  d.user.uid = 1000;
  d.user.gid = 1001;
  d.user.supplemental_groups = {1001, 10, 4294967294};
  d.stop_signal = 3;
  d.tty = true;
  d.stdin = true;
  d.stdin_once = true;
  d.termination_message_file = "/var/lib/crib/containers/abc/termination-log";
  d.fallback_to_logs = true;
  d.monitor_pid = 4242;
  d.monitor_start_time = std::numeric_limits<uint64_t>::max() - 1;  // past int64's range
  d.init_pid = 4243;
  d.init_start_time = 123456789;
  d.started_at_ns = 1700000000123456789;
  d.finished_at_ns = 1700000001987654321;
  d.exit_code = 137;
  d.reason = "OOMKilled";
  d.message = "out of memory\n";
  d.config_bytes = AllBytes();
  return d;
}

void ExpectSameMount(const container::MountSpec& got, const container::MountSpec& want) {
  EXPECT_EQ(got.container_path, want.container_path);
  EXPECT_EQ(got.host_path, want.host_path);
  EXPECT_EQ(got.readonly, want.readonly);
  EXPECT_EQ(got.recursive_readonly, want.recursive_readonly);
  EXPECT_EQ(got.selinux_relabel, want.selinux_relabel);
  EXPECT_EQ(got.propagation, want.propagation);
  EXPECT_EQ(got.image, want.image);
  EXPECT_EQ(got.image_sub_path, want.image_sub_path);
}

void ExpectSameResources(const container::Resources& got, const container::Resources& want) {
  EXPECT_EQ(got.cpu_period, want.cpu_period);
  EXPECT_EQ(got.cpu_quota, want.cpu_quota);
  EXPECT_EQ(got.cpu_shares, want.cpu_shares);
  EXPECT_EQ(got.memory_limit, want.memory_limit);
  EXPECT_EQ(got.oom_score_adj, want.oom_score_adj);
  EXPECT_EQ(got.cpuset_cpus, want.cpuset_cpus);
  EXPECT_EQ(got.cpuset_mems, want.cpuset_mems);
  ASSERT_EQ(got.hugepage_limits.size(), want.hugepage_limits.size());
  for (size_t i = 0; i < want.hugepage_limits.size(); ++i) {
    EXPECT_EQ(got.hugepage_limits[i].page_size, want.hugepage_limits[i].page_size) << i;
    EXPECT_EQ(got.hugepage_limits[i].limit, want.hugepage_limits[i].limit) << i;
  }
  EXPECT_EQ(got.unified, want.unified);
  EXPECT_EQ(got.memory_swap_limit, want.memory_swap_limit);
}

void ExpectSameContainerData(const ContainerData& got, const ContainerData& want) {
  EXPECT_EQ(got.creating, want.creating);
  EXPECT_EQ(got.removing, want.removing);
  EXPECT_EQ(got.image, want.image);
  EXPECT_EQ(got.image_name, want.image_name);
  EXPECT_EQ(got.image_ref, want.image_ref);
  EXPECT_EQ(got.image_id, want.image_id);
  EXPECT_EQ(got.chain_ids, want.chain_ids);
  EXPECT_EQ(got.log_path, want.log_path);
  EXPECT_EQ(got.labels, want.labels);
  EXPECT_EQ(got.annotations, want.annotations);
  ASSERT_EQ(got.mounts.size(), want.mounts.size());
  for (size_t i = 0; i < want.mounts.size(); ++i) {
    SCOPED_TRACE(::testing::Message() << "mount " << i);
    ExpectSameMount(got.mounts[i], want.mounts[i]);
  }
  ExpectSameResources(got.resources, want.resources);
  EXPECT_EQ(got.user.uid, want.user.uid);
  EXPECT_EQ(got.user.gid, want.user.gid);
  EXPECT_EQ(got.user.supplemental_groups, want.user.supplemental_groups);
  EXPECT_EQ(got.stop_signal, want.stop_signal);
  EXPECT_EQ(got.tty, want.tty);
  EXPECT_EQ(got.stdin, want.stdin);
  EXPECT_EQ(got.stdin_once, want.stdin_once);
  EXPECT_EQ(got.termination_message_file, want.termination_message_file);
  EXPECT_EQ(got.fallback_to_logs, want.fallback_to_logs);
  EXPECT_EQ(got.monitor_pid, want.monitor_pid);
  EXPECT_EQ(got.monitor_start_time, want.monitor_start_time);
  EXPECT_EQ(got.init_pid, want.init_pid);
  EXPECT_EQ(got.init_start_time, want.init_start_time);
  EXPECT_EQ(got.started_at_ns, want.started_at_ns);
  EXPECT_EQ(got.finished_at_ns, want.finished_at_ns);
  EXPECT_EQ(got.exit_code, want.exit_code);
  EXPECT_EQ(got.reason, want.reason);
  EXPECT_EQ(got.message, want.message);
  EXPECT_EQ(got.config_bytes, want.config_bytes);
}

// Each encoded value of `full` differs from the same key's value in `empty`, recursively into
// the objects that encode a struct (a map's default is an empty object, compared whole): proof
// that the fixture sets every field the codec writes.
void ExpectEveryKeyDiffers(const json& full, const json& empty, const std::string& where) {
  ASSERT_TRUE(full.is_object()) << where;
  ASSERT_TRUE(empty.is_object()) << where;
  EXPECT_EQ(full.size(), empty.size()) << where;
  for (const auto& [key, value] : empty.items()) {
    ASSERT_TRUE(full.contains(key)) << where << key;
    if (value.is_object() && !value.empty()) {
      ExpectEveryKeyDiffers(full.at(key), value, where + key + ".");
    } else {
      EXPECT_NE(full.at(key), value) << where << key;
    }
  }
}

TEST(ContainerRecordCodec, TheFullFixtureSetsEveryEncodedField) {
  const json full = json::parse(EncodeContainerData(FullContainerData()));
  const json empty = json::parse(EncodeContainerData(ContainerData()));
  // One key per ContainerData field.
  EXPECT_EQ(empty.size(), 29u);
  ExpectEveryKeyDiffers(full, empty, "");
  // The first mount and the first huge page limit against default ones.
  ContainerData defaults;
  defaults.mounts.resize(1);
  defaults.resources.hugepage_limits.resize(1);
  const json one_default = json::parse(EncodeContainerData(defaults));
  ExpectEveryKeyDiffers(full.at("mounts").at(0), one_default.at("mounts").at(0), "mounts[0].");
  ExpectEveryKeyDiffers(full.at("resources").at("hugepage_limits").at(0),
                        one_default.at("resources").at("hugepage_limits").at(0),
                        "hugepage_limits[0].");
}

struct ContainerRoundTrip {
  std::string name;
  ContainerData data;
};

std::vector<ContainerRoundTrip> ContainerRoundTrips() {
  std::vector<ContainerRoundTrip> cases;
  cases.push_back({"defaults", ContainerData()});
  cases.push_back({"every field set", FullContainerData()});
  ContainerData extremes;
  extremes.started_at_ns = std::numeric_limits<int64_t>::min();
  extremes.finished_at_ns = std::numeric_limits<int64_t>::max();
  extremes.monitor_start_time = std::numeric_limits<uint64_t>::max();
  extremes.init_start_time = std::numeric_limits<uint64_t>::max();
  extremes.exit_code = std::numeric_limits<int32_t>::min();
  extremes.stop_signal = 64;
  extremes.user.uid = 4294967294;
  extremes.user.gid = 4294967294;
  extremes.resources.oom_score_adj = -1000;
  extremes.resources.memory_limit = std::numeric_limits<int64_t>::max();
  extremes.resources.cpu_quota = -1;
  extremes.resources.hugepage_limits = {{"", std::numeric_limits<uint64_t>::max()}};
  extremes.labels = {{"", ""}};
  extremes.mounts.resize(1);  // a mount with every field at its default
  extremes.chain_ids = {""};
  cases.push_back({"extremes", extremes});
  ContainerData text;
  text.image = "\xe4\xbd\xa0\xe5\xa5\xbd:1";
  text.labels = {{"emoji", "\xf0\x9f\x90\xb3"}, {"ctl", std::string("a\0b\x01\x1f", 5)}};
  text.reason = "Error";
  text.message = "line 1\r\nline 2 \"q\" \\ \t\xc3\xa9\n";
  text.log_path = "/var/log/pods/with space/0.log";
  cases.push_back({"escapes, control characters and UTF-8 in strings", text});
  ContainerData bytes;
  bytes.config_bytes = std::string(1 << 16, '\0') + AllBytes();
  cases.push_back({"a large config of NULs", bytes});
  return cases;
}

TEST(ContainerRecordCodec, RoundTripsEveryField) {
  for (const ContainerRoundTrip& c : ContainerRoundTrips()) {
    SCOPED_TRACE(c.name);
    const std::string blob = EncodeContainerData(c.data);
    absl::StatusOr<ContainerData> got = DecodeContainerData("c1", blob);
    ASSERT_THAT(got, IsOk());
    ExpectSameContainerData(*got, c.data);
    // The encoding is a function of the value: the same bytes again.
    EXPECT_EQ(EncodeContainerData(*got), blob);
  }
}

struct GarbageCase {
  std::string name;
  std::string blob;
  std::string error;
};

TEST(ContainerRecordCodec, GarbageIsDataLossNamingTheContainer) {
  const std::string full = EncodeContainerData(FullContainerData());
  const std::vector<GarbageCase> cases = {
      {"empty", "", "container c1: bad stored data"},
      {"not JSON", "not json", "container c1: bad stored data"},
      {"binary", std::string("\x00\x01\xff\xfe", 4), "container c1: bad stored data"},
      {"truncated", full.substr(0, full.size() / 2), "container c1: bad stored data"},
      {"trailing garbage", full + "}", "container c1: bad stored data"},
      {"null", "null", "container c1: bad stored data"},
      {"an array", "[]", "container c1: bad stored data"},
      {"a number", "42", "container c1: bad stored data"},
      {"a string", "\"data\"", "container c1: bad stored data"},
      {"a bool that is a string", R"({"creating": "yes"})", "container c1: bad stored data"},
      {"a bool that is a number", R"({"tty": 1})", "container c1: bad stored data"},
      {"a number that is a string", R"({"exit_code": "137"})", "container c1: bad stored data"},
      {"chain_ids not an array", R"({"chain_ids": "sha256:a"})", "container c1: bad stored data"},
      {"chain_ids of numbers", R"({"chain_ids": [1, 2]})", "container c1: bad stored data"},
      {"labels an array", R"({"labels": ["a"]})", "container c1: bad stored data"},
      {"a label value a number", R"({"labels": {"a": 1}})", "container c1: bad stored data"},
      {"a mount not an object", R"({"mounts": [1]})", "container c1: bad stored data"},
      {"mounts a string", R"({"mounts": "x"})", "container c1: bad stored data"},
      {"a mount field mistyped", R"({"mounts": [{"readonly": "no"}]})",
       "container c1: bad stored data"},
      {"resources not an object", R"({"resources": 5})", "container c1: bad stored data"},
      {"a huge page limit not an object", R"({"resources": {"hugepage_limits": ["2MB"]}})",
       "container c1: bad stored data"},
      {"user not an object", R"({"user": []})", "container c1: bad stored data"},
      {"groups of strings", R"({"user": {"groups": ["wheel"]}})", "container c1: bad stored data"},
      {"config not a string", R"({"config": 5})", "container c1: bad stored data"},
      {"config not base64", R"({"config": "!!not base64!!"})",
       "container c1: bad base64 in the stored config"},
  };
  for (const GarbageCase& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_THAT(DecodeContainerData("c1", c.blob),
                StatusIs(absl::StatusCode::kDataLoss, HasSubstr(c.error)));
  }
}

// As the first cribd with containers wrote it (commit f82b85c): no "removing", which came with
// the removal intents. Every other field is read; the new one is at its default.
constexpr char kContainerDataBeforeRemoving[] = R"({
  "creating": false,
  "image": "busybox",
  "image_name": "docker.io/library/busybox:latest",
  "image_ref": "docker.io/library/busybox@sha256:abcd",
  "image_id": "sha256:1234",
  "chain_ids": ["sha256:c1", "sha256:c2"],
  "log_path": "/var/log/pods/p/c/0.log",
  "labels": {"l": "v"},
  "annotations": {"a": "w"},
  "mounts": [{"container_path": "/data", "host_path": "/srv/data", "readonly": true,
              "recursive_readonly": false, "selinux_relabel": false, "propagation": 1,
              "image": "", "image_sub_path": ""}],
  "resources": {"cpu_period": 100000, "cpu_quota": 20000, "cpu_shares": 2, "memory_limit": 0,
                "oom_score_adj": 1000, "cpuset_cpus": "", "cpuset_mems": "",
                "hugepage_limits": [], "unified": {}, "memory_swap_limit": 0},
  "user": {"uid": 1000, "gid": 1000, "groups": [1000, 10]},
  "stop_signal": 15,
  "tty": false,
  "stdin": true,
  "stdin_once": true,
  "termination_message_file": "/var/lib/crib/containers/c/termination-log",
  "fallback_to_logs": true,
  "monitor_pid": 100,
  "monitor_start_time": 5000,
  "init_pid": 101,
  "init_start_time": 5001,
  "started_at_ns": 1700000000000000000,
  "finished_at_ns": 0,
  "exit_code": 0,
  "reason": "",
  "message": "",
  "config": "CgNhcHA="
})";

TEST(ContainerRecordCodec, OlderRecordsDecodeWithTheNewerFieldsAtTheirDefaults) {
  absl::StatusOr<ContainerData> old = DecodeContainerData("c1", kContainerDataBeforeRemoving);
  ASSERT_THAT(old, IsOk());
  EXPECT_FALSE(old->removing);
  EXPECT_FALSE(old->creating);
  EXPECT_EQ(old->image, "busybox");
  EXPECT_EQ(old->image_name, "docker.io/library/busybox:latest");
  EXPECT_EQ(old->chain_ids, (std::vector<std::string>{"sha256:c1", "sha256:c2"}));
  ASSERT_EQ(old->mounts.size(), 1u);
  EXPECT_EQ(old->mounts[0].host_path, "/srv/data");
  EXPECT_TRUE(old->mounts[0].readonly);
  EXPECT_EQ(old->mounts[0].propagation, container::Propagation::kHostToContainer);
  EXPECT_EQ(old->resources.cpu_quota, 20000);
  EXPECT_EQ(old->resources.oom_score_adj, 1000);
  EXPECT_EQ(old->user.supplemental_groups, (std::vector<int64_t>{1000, 10}));
  EXPECT_EQ(old->stop_signal, 15);
  EXPECT_TRUE(old->stdin_once);
  EXPECT_TRUE(old->fallback_to_logs);
  EXPECT_EQ(old->init_pid, 101);
  EXPECT_EQ(old->init_start_time, 5001u);
  EXPECT_EQ(old->started_at_ns, 1700000000000000000);
  EXPECT_EQ(old->config_bytes, std::string("\n\x03") + "app");
}

// Any subset of the keys decodes, each missing one at its default: what an older cribd, or a
// record written by hand, leaves out.
TEST(ContainerRecordCodec, EachMissingKeyDecodesToItsDefault) {
  const ContainerData full = FullContainerData();
  const ContainerData defaults;
  const json encoded = json::parse(EncodeContainerData(full));
  for (const auto& [key, unused] : encoded.items()) {
    SCOPED_TRACE(key);
    json without = encoded;
    without.erase(key);
    absl::StatusOr<ContainerData> got = DecodeContainerData("c1", without.dump());
    ASSERT_THAT(got, IsOk());
    // Put back what the full record has for the missing key: the rest must then be the same.
    json got_encoded = json::parse(EncodeContainerData(*got));
    EXPECT_EQ(got_encoded.at(key), json::parse(EncodeContainerData(defaults)).at(key));
    got_encoded[key] = encoded.at(key);
    EXPECT_EQ(got_encoded, encoded);
  }
  // Nothing at all: every field at its default.
  absl::StatusOr<ContainerData> empty = DecodeContainerData("c1", "{}");
  ASSERT_THAT(empty, IsOk());
  ExpectSameContainerData(*empty, defaults);
  // Sub-objects without their keys.
  absl::StatusOr<ContainerData> partial =
      DecodeContainerData("c1", R"({"mounts": [{}], "resources": {}, "user": {}})");
  ASSERT_THAT(partial, IsOk());
  ASSERT_EQ(partial->mounts.size(), 1u);
  ExpectSameMount(partial->mounts[0], container::MountSpec());
  ExpectSameResources(partial->resources, container::Resources());
  EXPECT_EQ(partial->user, container::UserIds());
}

TEST(ContainerRecordCodec, KeysFromANewerCribdAreIgnored) {
  json encoded = json::parse(EncodeContainerData(FullContainerData()));
  encoded["added_later"] = {{"nested", {1, 2, 3}}};
  encoded["resources"]["cpu_burst"] = 7;
  encoded["mounts"][0]["idmap"] = true;
  encoded["user"]["additional_gids_from_image"] = json::array();
  absl::StatusOr<ContainerData> got = DecodeContainerData("c1", encoded.dump());
  ASSERT_THAT(got, IsOk());
  ExpectSameContainerData(*got, FullContainerData());
}

// The termination message and the log tail that stands in for it are bytes a container wrote
// (and cut at a byte count, possibly inside a character). Recording them must not fail, nor
// throw out of the codec (nlohmann's dump() throws on invalid UTF-8), nor lose the rest.
TEST(ContainerRecordCodec, BytesAContainerWroteDoNotBreakTheRecord) {
  struct MessageCase {
    std::string name;
    std::string message;
  };
  const std::vector<MessageCase> cases = {
      {"invalid UTF-8", "exit: \xff\xfe bad bytes"},
      {"cut inside a character", "exit: caf\xc3"},
      {"a lone continuation byte", "exit: \x80"},
      {"an overlong encoding", "exit: \xc0\xaf"},
  };
  for (const MessageCase& c : cases) {
    SCOPED_TRACE(c.name);
    ContainerData data = FullContainerData();
    data.message = c.message;
    std::string blob;
    EXPECT_NO_THROW(blob = EncodeContainerData(data));
    absl::StatusOr<ContainerData> got = DecodeContainerData("c1", blob);
    EXPECT_THAT(got, IsOk());
    if (!got.ok()) continue;
    EXPECT_THAT(got->message, StartsWith("exit: "));
    EXPECT_EQ(got->exit_code, data.exit_code);
    EXPECT_EQ(got->reason, data.reason);
    EXPECT_EQ(got->chain_ids, data.chain_ids);
  }
}

struct ToContainerCase {
  std::string name;
  int state;
  pid_t want_pid;
};

TEST(ToContainer, CopiesTheRecordAndDataAndReportsAPidOnlyWhileTheInitLives) {
  const ContainerData data = FullContainerData();
  const std::vector<ToContainerCase> cases = {
      {"created", static_cast<int>(container::ContainerState::kCreated), data.init_pid},
      {"running", static_cast<int>(container::ContainerState::kRunning), data.init_pid},
      {"exited", static_cast<int>(container::ContainerState::kExited), 0},
      {"unknown", static_cast<int>(container::ContainerState::kUnknown), 0},
  };
  for (const ToContainerCase& c : cases) {
    SCOPED_TRACE(c.name);
    store::ContainerRecord record;
    record.id = "c0ffee";
    record.pod_id = "p0d";
    record.name = "app";
    record.attempt = 3;
    record.state = c.state;
    record.created_at_ns = 1600000000000000000;
    record.data = EncodeContainerData(data);
    const container::Container got =
        container::ToContainer(record, data, "/run/crib/containers/c0ffee");
    EXPECT_EQ(got.id, "c0ffee");
    EXPECT_EQ(got.pod_id, "p0d");
    EXPECT_EQ(got.name, "app");
    EXPECT_EQ(got.attempt, 3u);
    EXPECT_EQ(got.state, static_cast<container::ContainerState>(c.state));
    EXPECT_EQ(got.created_at_ns, 1600000000000000000);
    EXPECT_EQ(got.started_at_ns, data.started_at_ns);
    EXPECT_EQ(got.finished_at_ns, data.finished_at_ns);
    EXPECT_EQ(got.exit_code, data.exit_code);
    EXPECT_EQ(got.reason, data.reason);
    EXPECT_EQ(got.message, data.message);
    EXPECT_EQ(got.image, data.image_name);
    EXPECT_EQ(got.image_ref, data.image_ref);
    EXPECT_EQ(got.image_id, data.image_id);
    EXPECT_EQ(got.labels, data.labels);
    EXPECT_EQ(got.annotations, data.annotations);
    EXPECT_EQ(got.mounts, data.mounts);
    EXPECT_EQ(got.log_path, data.log_path);
    EXPECT_EQ(got.resources, data.resources);
    EXPECT_EQ(got.user, data.user);
    EXPECT_EQ(got.stop_signal, data.stop_signal);
    EXPECT_EQ(got.pid, c.want_pid);
    EXPECT_EQ(got.bundle, "/run/crib/containers/c0ffee");
    EXPECT_EQ(got.config_bytes, data.config_bytes);
  }
}

TEST(ToContainer, TheImageIsTheRequestedOneWhenItHasNoTag) {
  ContainerData data = FullContainerData();
  data.image_name.clear();
  const container::Container got = container::ToContainer(store::ContainerRecord(), data, "");
  EXPECT_EQ(got.image, data.image);
}

// ---- Pods ----

// Fails to compile when a field is added to one of these structs: set it in FullPodData() and
// compare it in ExpectSamePodData().
[[maybe_unused]] void PodFieldsAreAllListed(const PodData& d, const pod::NamespaceOptions& n,
                                            const pod::IdMapping& i,
                                            const network::PortMapping& p) {
  [[maybe_unused]] const auto& [creating, removing, hostname, log_directory, runtime_handler,
                                labels, annotations, namespaces, port_mappings, cgroup_path,
                                netns_path, ipc_ns_path, uts_ns_path, user_ns_path, pod_dir, pid,
                                pid_start_time, ips, config_bytes] = d;
  [[maybe_unused]] const auto& [network_mode, pid_mode, ipc_mode, user_mode, uid_mappings,
                                gid_mappings] = n;
  [[maybe_unused]] const auto& [container_id, host_id, length] = i;
  [[maybe_unused]] const auto& [protocol, container_port, host_port, host_ip] = p;
}

PodData FullPodData() {
  PodData d;
  d.creating = true;
  d.removing = true;
  d.hostname = "web-0";
  d.log_directory = "/var/log/pods/ns_web-0_uid";
  d.runtime_handler = "fast";
  d.labels = {{"app", "web"}, {"io.kubernetes.pod.name", "web-0"}};
  d.annotations = {{"kubernetes.io/config.seen", "2024-01-02T03:04:05Z"},
                   {"note", "caf\xc3\xa9 \"q\"\n"}};
  d.namespaces.network = pod::NamespaceMode::kNode;
  d.namespaces.pid = pod::NamespaceMode::kPod;
  d.namespaces.ipc = pod::NamespaceMode::kNode;
  d.namespaces.user = pod::NamespaceMode::kPod;
  d.namespaces.uid_mappings = {{0, 1 << 20, 1000}, {1000, 3 << 20, 64536}};
  d.namespaces.gid_mappings = {{0, 5 << 20, 1000}, {1000, 7 << 20, 64536}};
  network::PortMapping dns;
  dns.protocol = network::Protocol::kUdp;
  dns.container_port = 53;
  dns.host_port = 5353;
  dns.host_ip = "10.0.0.1";
  network::PortMapping sctp;
  sctp.protocol = network::Protocol::kSctp;
  sctp.container_port = 65535;
  sctp.host_port = 0;
  network::PortMapping web;
  web.container_port = 80;
  web.host_port = 8080;
  web.host_ip = "::1";
  d.port_mappings = {dns, sctp, web};
  d.cgroup_path = "/kubepods/burstable/poduid";
  d.netns_path = "/run/crib/netns/abc";
  d.ipc_ns_path = "/run/crib/ipcns/abc";
  d.uts_ns_path = "/run/crib/utsns/abc";
  d.user_ns_path = "/run/crib/userns/abc";
  d.pod_dir = "/run/crib/pods/abc";
  d.pid = 4242;
  d.pid_start_time = std::numeric_limits<uint64_t>::max() - 1;
  d.ips = {"10.88.0.5", "fd00::5"};
  d.config_bytes = AllBytes();
  return d;
}

void ExpectSamePodData(const PodData& got, const PodData& want) {
  EXPECT_EQ(got.creating, want.creating);
  EXPECT_EQ(got.removing, want.removing);
  EXPECT_EQ(got.hostname, want.hostname);
  EXPECT_EQ(got.log_directory, want.log_directory);
  EXPECT_EQ(got.runtime_handler, want.runtime_handler);
  EXPECT_EQ(got.labels, want.labels);
  EXPECT_EQ(got.annotations, want.annotations);
  EXPECT_EQ(got.namespaces.network, want.namespaces.network);
  EXPECT_EQ(got.namespaces.pid, want.namespaces.pid);
  EXPECT_EQ(got.namespaces.ipc, want.namespaces.ipc);
  EXPECT_EQ(got.namespaces.user, want.namespaces.user);
  EXPECT_EQ(got.namespaces.uid_mappings, want.namespaces.uid_mappings);
  EXPECT_EQ(got.namespaces.gid_mappings, want.namespaces.gid_mappings);
  ASSERT_EQ(got.port_mappings.size(), want.port_mappings.size());
  for (size_t i = 0; i < want.port_mappings.size(); ++i) {
    SCOPED_TRACE(::testing::Message() << "port mapping " << i);
    EXPECT_EQ(got.port_mappings[i].protocol, want.port_mappings[i].protocol);
    EXPECT_EQ(got.port_mappings[i].container_port, want.port_mappings[i].container_port);
    EXPECT_EQ(got.port_mappings[i].host_port, want.port_mappings[i].host_port);
    EXPECT_EQ(got.port_mappings[i].host_ip, want.port_mappings[i].host_ip);
  }
  EXPECT_EQ(got.cgroup_path, want.cgroup_path);
  EXPECT_EQ(got.netns_path, want.netns_path);
  EXPECT_EQ(got.ipc_ns_path, want.ipc_ns_path);
  EXPECT_EQ(got.uts_ns_path, want.uts_ns_path);
  EXPECT_EQ(got.user_ns_path, want.user_ns_path);
  EXPECT_EQ(got.pod_dir, want.pod_dir);
  EXPECT_EQ(got.pid, want.pid);
  EXPECT_EQ(got.pid_start_time, want.pid_start_time);
  EXPECT_EQ(got.ips, want.ips);
  EXPECT_EQ(got.config_bytes, want.config_bytes);
}

TEST(PodRecordCodec, TheFullFixtureSetsEveryEncodedField) {
  const json full = json::parse(EncodePodData(FullPodData()));
  const json empty = json::parse(EncodePodData(PodData()));
  // One key per PodData field.
  EXPECT_EQ(empty.size(), 19u);
  ExpectEveryKeyDiffers(full, empty, "");
  PodData defaults;
  defaults.port_mappings.resize(1);
  ExpectEveryKeyDiffers(full.at("port_mappings").at(0),
                        json::parse(EncodePodData(defaults)).at("port_mappings").at(0),
                        "port_mappings[0].");
}

struct PodRoundTrip {
  std::string name;
  PodData data;
};

TEST(PodRecordCodec, RoundTripsEveryField) {
  std::vector<PodRoundTrip> cases;
  cases.push_back({"defaults", PodData()});
  cases.push_back({"every field set", FullPodData()});
  PodData extremes;
  extremes.pid = std::numeric_limits<pid_t>::max();
  extremes.pid_start_time = std::numeric_limits<uint64_t>::max();
  extremes.namespaces.network = pod::NamespaceMode::kPod;
  extremes.namespaces.pid = pod::NamespaceMode::kTarget;
  extremes.namespaces.ipc = pod::NamespaceMode::kContainer;
  extremes.namespaces.user = pod::NamespaceMode::kTarget;
  extremes.namespaces.uid_mappings = {{0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}, {0, 0, 0}};
  extremes.namespaces.gid_mappings = {{0, 0, 1}};
  network::PortMapping top;
  top.container_port = 65535;
  top.host_port = 65535;
  extremes.port_mappings = {top, network::PortMapping()};
  extremes.labels = {{"", ""}};
  extremes.ips = {""};
  cases.push_back({"extremes", extremes});
  PodData text;
  text.hostname = "\xe4\xbd\xa0\xe5\xa5\xbd";
  text.annotations = {{"ctl", std::string("a\0b\x01\x1f", 5)}, {"emoji", "\xf0\x9f\x90\xb3"}};
  cases.push_back({"escapes, control characters and UTF-8 in strings", text});
  for (const PodRoundTrip& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string blob = EncodePodData(c.data);
    absl::StatusOr<PodData> got = DecodePodData("p1", blob);
    ASSERT_THAT(got, IsOk());
    ExpectSamePodData(*got, c.data);
    EXPECT_EQ(EncodePodData(*got), blob);
  }
}

TEST(PodRecordCodec, GarbageIsDataLossNamingThePod) {
  const std::string full = EncodePodData(FullPodData());
  const std::vector<GarbageCase> cases = {
      {"empty", "", "pod p1: bad stored data"},
      {"not JSON", "{not json", "pod p1: bad stored data"},
      {"binary", std::string("\x00\xff", 2), "pod p1: bad stored data"},
      {"truncated", full.substr(0, full.size() - 2), "pod p1: bad stored data"},
      {"null", "null", "pod p1: bad stored data"},
      {"an array", "[{}]", "pod p1: bad stored data"},
      {"a number", "7", "pod p1: bad stored data"},
      {"a bool that is a string", R"({"removing": "true"})", "pod p1: bad stored data"},
      {"hostname a number", R"({"hostname": 5})", "pod p1: bad stored data"},
      {"labels an array", R"({"labels": []})", "pod p1: bad stored data"},
      {"namespaces not an object", R"({"namespaces": 2})", "pod p1: bad stored data"},
      {"a namespace mode a string", R"({"namespaces": {"network": "node"}})",
       "pod p1: bad stored data"},
      {"a port mapping not an object", R"({"port_mappings": [80]})", "pod p1: bad stored data"},
      {"a port a string", R"({"port_mappings": [{"host_port": "80"}]})", "pod p1: bad stored data"},
      {"ips of numbers", R"({"ips": [10]})", "pod p1: bad stored data"},
      {"pid a string", R"({"pid": "42"})", "pod p1: bad stored data"},
      {"config not a string", R"({"config": []})", "pod p1: bad stored data"},
      {"config not base64", R"({"config": "***"})", "pod p1: bad base64 in the stored config"},
  };
  for (const GarbageCase& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_THAT(DecodePodData("p1", c.blob),
                StatusIs(absl::StatusCode::kDataLoss, HasSubstr(c.error)));
  }
}

// As the first cribd with pods wrote it (commit aa1e3ab): no "creating" and "removing", which
// came with the recovery intents.
constexpr char kPodDataBeforeIntents[] = R"({
  "hostname": "web-0",
  "log_directory": "/var/log/pods/ns_web-0_uid",
  "runtime_handler": "",
  "labels": {"app": "web"},
  "annotations": {},
  "namespaces": {"network": 0, "pid": 1, "ipc": 0},
  "port_mappings": [{"protocol": 1, "container_port": 53, "host_port": 5353, "host_ip": ""}],
  "cgroup_path": "/kubepods/poduid",
  "netns_path": "/run/crib/netns/abc",
  "pod_dir": "/run/crib/pods/abc",
  "pid": 321,
  "pid_start_time": 98765,
  "ips": ["10.88.0.7"],
  "config": ""
})";

TEST(PodRecordCodec, OlderRecordsDecodeWithTheNewerFieldsAtTheirDefaults) {
  absl::StatusOr<PodData> old = DecodePodData("p1", kPodDataBeforeIntents);
  ASSERT_THAT(old, IsOk());
  EXPECT_FALSE(old->creating);
  EXPECT_FALSE(old->removing);
  EXPECT_EQ(old->hostname, "web-0");
  EXPECT_EQ(old->labels, (std::map<std::string, std::string>{{"app", "web"}}));
  EXPECT_EQ(old->namespaces.pid, pod::NamespaceMode::kContainer);
  ASSERT_EQ(old->port_mappings.size(), 1u);
  EXPECT_EQ(old->port_mappings[0].protocol, network::Protocol::kUdp);
  EXPECT_EQ(old->port_mappings[0].host_port, 5353);
  EXPECT_EQ(old->netns_path, "/run/crib/netns/abc");
  EXPECT_EQ(old->ipc_ns_path, "") << "its namespaces are crib-pause's";
  EXPECT_EQ(old->uts_ns_path, "");
  EXPECT_EQ(old->namespaces.user, pod::NamespaceMode::kNode) << "the host's user namespace";
  EXPECT_THAT(old->namespaces.uid_mappings, ::testing::IsEmpty());
  EXPECT_THAT(old->namespaces.gid_mappings, ::testing::IsEmpty());
  EXPECT_EQ(old->user_ns_path, "");
  EXPECT_EQ(old->pid, 321);
  EXPECT_EQ(old->pid_start_time, 98765u);
  EXPECT_EQ(old->ips, (std::vector<std::string>{"10.88.0.7"}));
  EXPECT_EQ(old->config_bytes, "");
}

// As the cribd before user namespaces wrote it: every other key, no "user", "uid_mappings",
// "gid_mappings" in "namespaces" and no "user_ns_path".
constexpr char kPodDataBeforeUserNamespaces[] = R"({
  "creating": false,
  "removing": false,
  "hostname": "web-0",
  "log_directory": "/var/log/pods/ns_web-0_uid",
  "runtime_handler": "",
  "labels": {},
  "annotations": {},
  "namespaces": {"network": 0, "pid": 0, "ipc": 0},
  "port_mappings": [],
  "cgroup_path": "/kubepods/poduid",
  "netns_path": "/run/crib/netns/abc",
  "ipc_ns_path": "/run/crib/ipcns/abc",
  "uts_ns_path": "/run/crib/utsns/abc",
  "pod_dir": "/run/crib/pods/abc",
  "pid": 321,
  "pid_start_time": 98765,
  "ips": ["10.88.0.7"],
  "config": ""
})";

TEST(PodRecordCodec, ARecordFromBeforeUserNamespacesHasTheHostsUserNamespace) {
  absl::StatusOr<PodData> old = DecodePodData("p1", kPodDataBeforeUserNamespaces);
  ASSERT_THAT(old, IsOk());
  EXPECT_EQ(old->namespaces.user, pod::NamespaceMode::kNode);
  EXPECT_THAT(old->namespaces.uid_mappings, ::testing::IsEmpty());
  EXPECT_THAT(old->namespaces.gid_mappings, ::testing::IsEmpty());
  EXPECT_EQ(old->user_ns_path, "");
  EXPECT_EQ(old->namespaces.pid, pod::NamespaceMode::kPod);
  EXPECT_EQ(old->ipc_ns_path, "/run/crib/ipcns/abc");
  EXPECT_EQ(old->Pins(), (std::vector<std::string>{"/run/crib/netns/abc", "/run/crib/ipcns/abc",
                                                   "/run/crib/utsns/abc"}));
  // Written again, it has the new keys at their defaults.
  const json again = json::parse(EncodePodData(*old));
  EXPECT_EQ(again.at("namespaces").at("user"), 2);
  EXPECT_EQ(again.at("namespaces").at("uid_mappings"), json::array());
  EXPECT_EQ(again.at("user_ns_path"), "");
}

// Each key of "namespaces" left out (as by an older cribd) decodes to its default, the
// others stay.
TEST(PodRecordCodec, EachMissingNamespacesKeyDecodesToItsDefault) {
  const json encoded = json::parse(EncodePodData(FullPodData()));
  const json defaults = json::parse(EncodePodData(PodData()));
  for (const auto& [key, unused] : encoded.at("namespaces").items()) {
    SCOPED_TRACE(key);
    json without = encoded;
    without["namespaces"].erase(key);
    absl::StatusOr<PodData> got = DecodePodData("p1", without.dump());
    ASSERT_THAT(got, IsOk());
    json got_encoded = json::parse(EncodePodData(*got));
    EXPECT_EQ(got_encoded.at("namespaces").at(key), defaults.at("namespaces").at(key));
    got_encoded["namespaces"][key] = encoded.at("namespaces").at(key);
    EXPECT_EQ(got_encoded, encoded);
  }
}

// The stored form of a mapping, [container_id, host_id, length]: records on disk have it, so it
// must not change.
TEST(PodRecordCodec, MappingsAreStoredAsTriples) {
  PodData data;
  data.namespaces.user = pod::NamespaceMode::kPod;
  data.namespaces.uid_mappings = {{0, 1048576, 65536}};
  data.namespaces.gid_mappings = {{0, 2097152, 1000}, {1000, 3145728, 64536}};
  data.user_ns_path = "/run/crib/userns/abc";
  const json encoded = json::parse(EncodePodData(data));
  EXPECT_EQ(encoded.at("namespaces").at("user"), 0);
  EXPECT_EQ(encoded.at("namespaces").at("uid_mappings"), json::parse("[[0, 1048576, 65536]]"));
  EXPECT_EQ(encoded.at("namespaces").at("gid_mappings"),
            json::parse("[[0, 2097152, 1000], [1000, 3145728, 64536]]"));
  EXPECT_EQ(encoded.at("user_ns_path"), "/run/crib/userns/abc");
  absl::StatusOr<PodData> got = DecodePodData("p1", R"({
    "namespaces": {"user": 0, "uid_mappings": [[0, 1048576, 65536]],
                   "gid_mappings": [[0, 2097152, 1000], [1000, 3145728, 64536]]},
    "user_ns_path": "/run/crib/userns/abc"})");
  ASSERT_THAT(got, IsOk());
  ExpectSamePodData(*got, data);
}

TEST(PodRecordCodec, BadMappingsAreDataLoss) {
  const std::vector<GarbageCase> cases = {
      {"mappings not a list", R"({"namespaces": {"uid_mappings": 5}})", "pod p1: bad stored data"},
      {"a mapping of two numbers", R"({"namespaces": {"uid_mappings": [[0, 1]]}})",
       "pod p1: bad stored data"},
      {"a mapping of strings", R"({"namespaces": {"gid_mappings": [["0", "1", "2"]]}})",
       "pod p1: bad stored data"},
      {"a mapping an object",
       R"({"namespaces": {"gid_mappings": [{"container_id": 0, "host_id": 1, "length": 2}]}})",
       "pod p1: bad stored data"},
      {"the user mode a string", R"({"namespaces": {"user": "pod"}})", "pod p1: bad stored data"},
      {"user_ns_path a number", R"({"user_ns_path": 1})", "pod p1: bad stored data"},
  };
  for (const GarbageCase& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_THAT(DecodePodData("p1", c.blob),
                StatusIs(absl::StatusCode::kDataLoss, HasSubstr(c.error)));
  }
}

// Pins: the pinned namespaces, the user namespace's among them; empty paths left out.
TEST(PodRecordPins, IncludeTheUserNamespaceWhenPinned) {
  EXPECT_THAT(PodData().Pins(), ::testing::IsEmpty());
  EXPECT_EQ(FullPodData().Pins(),
            (std::vector<std::string>{"/run/crib/netns/abc", "/run/crib/ipcns/abc",
                                      "/run/crib/utsns/abc", "/run/crib/userns/abc"}));
  PodData only_user;
  only_user.user_ns_path = "/run/crib/userns/abc";
  EXPECT_EQ(only_user.Pins(), (std::vector<std::string>{"/run/crib/userns/abc"}));
  PodData no_user = FullPodData();
  no_user.user_ns_path.clear();
  EXPECT_EQ(no_user.Pins(), (std::vector<std::string>{"/run/crib/netns/abc", "/run/crib/ipcns/abc",
                                                      "/run/crib/utsns/abc"}));
}

struct NamespacesCase {
  std::string name;
  std::string blob;
  pod::NamespaceMode network, pid, ipc;
  pod::NamespaceMode user = pod::NamespaceOptions().user;
};

// A missing namespace mode is the same as PodData's default for it (pid: CONTAINER, not POD).
TEST(PodRecordCodec, MissingNamespaceModesAreTheDefaultOptions) {
  const pod::NamespaceOptions defaults;
  const std::vector<NamespacesCase> cases = {
      {"no namespaces", "{}", defaults.network, defaults.pid, defaults.ipc},
      {"empty namespaces", R"({"namespaces": {}})", defaults.network, defaults.pid, defaults.ipc},
      {"only network", R"({"namespaces": {"network": 2}})", pod::NamespaceMode::kNode, defaults.pid,
       defaults.ipc},
      {"only pid", R"({"namespaces": {"pid": 0}})", defaults.network, pod::NamespaceMode::kPod,
       defaults.ipc},
      {"only ipc", R"({"namespaces": {"ipc": 2}})", defaults.network, defaults.pid,
       pod::NamespaceMode::kNode},
      {"only user", R"({"namespaces": {"user": 0}})", defaults.network, defaults.pid, defaults.ipc,
       pod::NamespaceMode::kPod},
      {"no user: the host's", R"({"namespaces": {"network": 0, "pid": 0, "ipc": 0}})",
       pod::NamespaceMode::kPod, pod::NamespaceMode::kPod, pod::NamespaceMode::kPod,
       pod::NamespaceMode::kNode},
  };
  for (const NamespacesCase& c : cases) {
    SCOPED_TRACE(c.name);
    absl::StatusOr<PodData> got = DecodePodData("p1", c.blob);
    ASSERT_THAT(got, IsOk());
    EXPECT_EQ(got->namespaces.network, c.network);
    EXPECT_EQ(got->namespaces.pid, c.pid);
    EXPECT_EQ(got->namespaces.ipc, c.ipc);
    EXPECT_EQ(got->namespaces.user, c.user);
  }
  absl::StatusOr<PodData> empty = DecodePodData("p1", "{}");
  ASSERT_THAT(empty, IsOk());
  ExpectSamePodData(*empty, PodData());
}

TEST(PodRecordCodec, EachMissingKeyDecodesToItsDefault) {
  const json encoded = json::parse(EncodePodData(FullPodData()));
  const json defaults = json::parse(EncodePodData(PodData()));
  for (const auto& [key, unused] : encoded.items()) {
    SCOPED_TRACE(key);
    json without = encoded;
    without.erase(key);
    absl::StatusOr<PodData> got = DecodePodData("p1", without.dump());
    ASSERT_THAT(got, IsOk());
    json got_encoded = json::parse(EncodePodData(*got));
    EXPECT_EQ(got_encoded.at(key), defaults.at(key));
    got_encoded[key] = encoded.at(key);
    EXPECT_EQ(got_encoded, encoded);
  }
}

TEST(PodRecordCodec, KeysFromANewerCribdAreIgnored) {
  json encoded = json::parse(EncodePodData(FullPodData()));
  encoded["added_later"] = "x";
  encoded["namespaces"]["time"] = 2;
  encoded["port_mappings"][0]["range"] = 10;
  absl::StatusOr<PodData> got = DecodePodData("p1", encoded.dump());
  ASSERT_THAT(got, IsOk());
  ExpectSamePodData(*got, FullPodData());
}

struct ToPodCase {
  std::string name;
  int state;
  pod::PodState want;
};

TEST(ToPodSandbox, CopiesTheRecordAndDataAndReadsAnyOtherStateAsNotReady) {
  const PodData data = FullPodData();
  const std::vector<ToPodCase> cases = {
      {"ready", static_cast<int>(pod::PodState::kReady), pod::PodState::kReady},
      {"not ready", static_cast<int>(pod::PodState::kNotReady), pod::PodState::kNotReady},
      {"a state this cribd does not know", 7, pod::PodState::kNotReady},
      {"negative", -1, pod::PodState::kNotReady},
  };
  for (const ToPodCase& c : cases) {
    SCOPED_TRACE(c.name);
    store::PodRecord record;
    record.id = "p0d";
    record.name = "web-0";
    record.namespace_ = "default";
    record.uid = "1234-5678";
    record.attempt = 2;
    record.state = c.state;
    record.created_at_ns = 1600000000000000000;
    record.data = EncodePodData(data);
    const pod::PodSandbox got = pod::ToPodSandbox(record, data);
    EXPECT_EQ(got.id, "p0d");
    EXPECT_EQ(got.name, "web-0");
    EXPECT_EQ(got.namespace_, "default");
    EXPECT_EQ(got.uid, "1234-5678");
    EXPECT_EQ(got.attempt, 2u);
    EXPECT_EQ(got.state, c.want);
    EXPECT_EQ(got.created_at_ns, 1600000000000000000);
    EXPECT_EQ(got.labels, data.labels);
    EXPECT_EQ(got.annotations, data.annotations);
    EXPECT_EQ(got.runtime_handler, data.runtime_handler);
    EXPECT_EQ(got.namespaces.network, data.namespaces.network);
    EXPECT_EQ(got.namespaces.pid, data.namespaces.pid);
    EXPECT_EQ(got.namespaces.ipc, data.namespaces.ipc);
    EXPECT_EQ(got.namespaces.user, data.namespaces.user);
    EXPECT_EQ(got.namespaces.uid_mappings, data.namespaces.uid_mappings);
    EXPECT_EQ(got.namespaces.gid_mappings, data.namespaces.gid_mappings);
    EXPECT_EQ(got.ips, data.ips);
    EXPECT_EQ(got.pid, data.pid);
    EXPECT_EQ(got.pid_start_time, data.pid_start_time);
    EXPECT_EQ(got.hostname, data.hostname);
    EXPECT_EQ(got.log_directory, data.log_directory);
    EXPECT_EQ(got.netns_path, data.netns_path);
    EXPECT_EQ(got.ipc_ns_path, data.ipc_ns_path);
    EXPECT_EQ(got.uts_ns_path, data.uts_ns_path);
    EXPECT_EQ(got.user_ns_path, data.user_ns_path);
    EXPECT_EQ(got.cgroup_path, data.cgroup_path);
    EXPECT_EQ(got.pod_dir, data.pod_dir);
    EXPECT_EQ(got.config_bytes, data.config_bytes);
  }
}

}  // namespace
}  // namespace crib
