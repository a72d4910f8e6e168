// The CNI backend's pure logic: configuration lists and versions, the conf directory's choice,
// the per-plugin configuration, CNI_ARGS and capability arguments, quantities, results and
// errors, the attachment cache, and running (small shell-script) plugins with their pipes,
// environment and timeout.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "network/cni_args.h"
#include "network/cni_cache.h"
#include "network/cni_config.h"
#include "network/cni_invoke.h"
#include "network/cni_result.h"
#include "nlohmann/json.hpp"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace crib::network::cni {
namespace {

using ::crib::testing::IsOk;
using ::crib::testing::StatusIs;
using ::crib::testing::TempDir;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using json = nlohmann::json;

void Write(const std::string& path, const std::string& text, mode_t mode = 0644) {
  std::ofstream(path) << text;
  ::chmod(path.c_str(), mode);
}

TEST(CniVersion, SupportedAndCompared) {
  for (const char* v : {"0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"}) {
    EXPECT_TRUE(IsSupportedVersion(v)) << v;
  }
  for (const char* v : {"", "1.1.0", "0.5.0", "1.0", "2.0.0"}) EXPECT_FALSE(IsSupportedVersion(v));
  EXPECT_LT(CompareVersions("0.3.1", "0.4.0"), 0);
  EXPECT_GT(CompareVersions("1.0.0", "0.4.0"), 0);
  EXPECT_EQ(CompareVersions("1.0", "1.0.0"), 0);
  EXPECT_LT(CompareVersions("0.9.0", "0.10.0"), 0);
  EXPECT_FALSE(HasCheckAndDelPrevResult("0.3.1"));
  EXPECT_TRUE(HasCheckAndDelPrevResult("0.4.0"));
  EXPECT_TRUE(HasCheckAndDelPrevResult("1.0.0"));
}

constexpr char kList[] = R"({
  "cniVersion": "1.0.0", "name": "podnet",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local"}},
    {"type": "portmap", "capabilities": {"portMappings": true, "dns": false}}
  ]})";

TEST(CniConfig, ParsesAList) {
  absl::StatusOr<NetworkConfigList> list = ParseConfigList(kList, "/etc/cni/net.d/10.conflist");
  ASSERT_THAT(list, IsOk());
  EXPECT_EQ(list->name, "podnet");
  EXPECT_EQ(list->cni_version, "1.0.0");
  EXPECT_FALSE(list->disable_check);
  EXPECT_THAT(list->PluginTypes(), ElementsAre("bridge", "portmap"));
  EXPECT_EQ(list->plugins[0]["bridge"], "cni0");
  // ToJson reads back to the same list.
  absl::StatusOr<NetworkConfigList> again = ParseConfigList(list->ToJson().dump(), "again");
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->plugins, list->plugins);
  EXPECT_EQ(again->name, list->name);

  absl::StatusOr<NetworkConfigList> check = ParseConfigList(
      R"({"cniVersion":"0.4.0","name":"n","disableCheck":true,"plugins":[{"type":"x"}]})", "f");
  ASSERT_THAT(check, IsOk());
  EXPECT_TRUE(check->disable_check);
}

TEST(CniConfig, RefusesBadListsNamingTheFileAndTheProblem) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"not json", "not valid JSON"},
      {"[]", "not a JSON object"},
      {R"({"cniVersion":"1.0.0","plugins":[{"type":"x"}]})", "\"name\""},
      {R"({"cniVersion":"1.0.0","name":"-bad","plugins":[{"type":"x"}]})", "\"name\""},
      {R"({"cniVersion":"1.0.0","name":"n"})", "\"plugins\""},
      {R"({"cniVersion":"1.0.0","name":"n","plugins":[]})", "\"plugins\""},
      {R"({"cniVersion":"1.0.0","name":"n","plugins":[{"bridge":"x"}]})", "plugin 0"},
      {R"({"cniVersion":"1.0.0","name":"n","plugins":[{"type":"x"},{"type":"../x"}]})",
       "plugin 1: type \"../x\""},
      {R"({"cniVersion":"1.0.0","name":"n","plugins":[{"type":"x","capabilities":1}]})",
       "capabilities"},
      {R"({"name":"n","plugins":[{"type":"x"}]})", "cniVersion"},
      {R"({"cniVersion":"1.1.0","name":"n","plugins":[{"type":"x"}]})",
       "\"1.1.0\" is not supported"},
      {R"({"cniVersions":["1.1.0","2.0.0"],"name":"n","plugins":[{"type":"x"}]})",
       "none of \"cniVersions\""},
      {R"({"cniVersion":"1.0.0","name":"n","disableCheck":3,"plugins":[{"type":"x"}]})",
       "disableCheck"},
  };
  for (const auto& [text, problem] : cases) {
    EXPECT_THAT(ParseConfigList(text, "/d/x.conflist"),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr("/d/x.conflist"), HasSubstr(problem))))
        << text;
  }
}

TEST(CniConfig, CniVersionsPicksTheNewestSupported) {
  absl::StatusOr<NetworkConfigList> list = ParseConfigList(
      R"({"cniVersions":["0.3.1","1.1.0","1.0.0"],"name":"n","plugins":[{"type":"x"}]})", "f");
  ASSERT_THAT(list, IsOk());
  EXPECT_EQ(list->cni_version, "1.0.0");
}

TEST(CniConfig, ASingleConfigIsAListOfOne) {
  absl::StatusOr<NetworkConfigList> list = ParseConfigFile(
      R"({"cniVersion":"0.4.0","name":"single","type":"bridge","ipam":{"type":"host-local"}})",
      "/d/10-single.conf");
  ASSERT_THAT(list, IsOk());
  EXPECT_EQ(list->name, "single");
  EXPECT_EQ(list->cni_version, "0.4.0");
  ASSERT_EQ(list->plugins.size(), 1u);
  EXPECT_EQ(list->plugins[0]["type"], "bridge");
  EXPECT_EQ(list->plugins[0]["ipam"]["type"], "host-local");

  // Without a cniVersion a single configuration is 0.1.0, as libcni has it.
  absl::StatusOr<NetworkConfigList> old =
      ParseConfigFile(R"({"name":"old","type":"bridge"})", "/d/old.json");
  ASSERT_THAT(old, IsOk());
  EXPECT_EQ(old->cni_version, "0.1.0");

  // A list written in a .json file is a list; a .conflist must be one.
  absl::StatusOr<NetworkConfigList> list_in_json = ParseConfigFile(kList, "/d/10.json");
  ASSERT_THAT(list_in_json, IsOk());
  EXPECT_EQ(list_in_json->plugins.size(), 2u);
  EXPECT_THAT(
      ParseConfigFile(R"({"cniVersion":"1.0.0","name":"n","type":"bridge"})", "/d/x.conflist"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"plugins\"")));
  EXPECT_THAT(ParseConfigFile(R"({"cniVersion":"1.0.0","name":"n"})", "/d/x.conf"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("type")));
}

TEST(CniConfig, TheFirstConfigFileInLexicalOrderIsTheNetwork) {
  TempDir dir;
  EXPECT_THAT(FindConfigFile(dir.path() + "/missing"),
              StatusIs(absl::StatusCode::kNotFound,
                       AllOf(HasSubstr(dir.path() + "/missing"), HasSubstr("does not exist"))));
  EXPECT_THAT(FindConfigFile(dir.path()),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(dir.path())));
  for (const char* name : {"50-c.json", "20-b.conf", "30-a.conflist", "05-notes.txt",
                           ".00-hidden.conf", "10-a.conflist.bak"}) {
    Write(absl::StrCat(dir.path(), "/", name), "{}");
  }
  EXPECT_THAT(FindConfigFile(dir.path()), IsOk());
  EXPECT_EQ(*FindConfigFile(dir.path()), dir.path() + "/20-b.conf");
  ::unlink((dir.path() + "/20-b.conf").c_str());
  EXPECT_EQ(*FindConfigFile(dir.path()), dir.path() + "/30-a.conflist");
  ::unlink((dir.path() + "/30-a.conflist").c_str());
  EXPECT_EQ(*FindConfigFile(dir.path()), dir.path() + "/50-c.json");
}

TEST(CniConfig, PluginExecConfigInjectsNameVersionCapabilitiesAndPrevResult) {
  absl::StatusOr<NetworkConfigList> list = ParseConfigList(kList, "f");
  ASSERT_THAT(list, IsOk());
  const json args = {{"portMappings", json::array({{{"hostPort", 8080}}})},
                     {"dns", {{"servers", {"10.0.0.10"}}}},
                     {"bandwidth", {{"ingressRate", 1000}}}};
  const json prev = {{"cniVersion", "1.0.0"}, {"ips", json::array()}};

  const json first = PluginExecConfig(*list, 0, args, json());
  EXPECT_EQ(first["name"], "podnet");
  EXPECT_EQ(first["cniVersion"], "1.0.0");
  EXPECT_EQ(first["type"], "bridge");
  EXPECT_EQ(first["ipam"]["type"], "host-local");
  EXPECT_FALSE(first.contains("runtimeConfig")) << "bridge declares no capability";
  EXPECT_FALSE(first.contains("prevResult"));

  const json second = PluginExecConfig(*list, 1, args, prev);
  EXPECT_FALSE(second.contains("capabilities"));
  EXPECT_EQ(second["runtimeConfig"], json({{"portMappings", args["portMappings"]}}))
      << "dns is declared false and bandwidth not at all";
  EXPECT_EQ(second["prevResult"], prev);
  // Nothing to give: no runtimeConfig at all.
  EXPECT_FALSE(PluginExecConfig(*list, 1, json::object(), prev).contains("runtimeConfig"));
}

PodNetworkConfig Pod() {
  PodNetworkConfig pod;
  pod.pod_id = "4f2a9c";
  pod.name = "web";
  pod.namespace_ = "default";
  pod.uid = "uid-1";
  pod.netns_path = "/run/crib/netns/4f2a9c";
  return pod;
}

TEST(CniArgs, KubeletsKeys) {
  absl::StatusOr<std::string> args = CniArgs(Pod());
  ASSERT_THAT(args, IsOk());
  EXPECT_EQ(*args,
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;"
            "K8S_POD_INFRA_CONTAINER_ID=4f2a9c;K8S_POD_UID=uid-1");
  PodNetworkConfig bad = Pod();
  bad.name = "a;b";
  EXPECT_THAT(CniArgs(bad), StatusIs(absl::StatusCode::kInvalidArgument,
                                     AllOf(HasSubstr("K8S_POD_NAME"), HasSubstr("a;b"))));
}

TEST(CniArgs, CapabilityArgsFromThePod) {
  PodNetworkConfig pod = Pod();
  EXPECT_EQ(*CapabilityArgs(pod), json({{kPodAnnotationsCapability, json::object()}}))
      << "nothing asked for, nothing given but the (empty) annotations";

  pod.port_mappings = {{Protocol::kTcp, 8080, 30080, ""},
                       {Protocol::kUdp, 53, 30053, "127.0.0.1"},
                       {Protocol::kSctp, 9, 0, ""}};
  pod.dns_servers = {"10.96.0.10"};
  pod.dns_searches = {"default.svc.cluster.local"};
  pod.dns_options = {"ndots:5"};
  pod.annotations = {{"kubernetes.io/ingress-bandwidth", "10M"},
                     {"kubernetes.io/egress-bandwidth", "1Mi"},
                     {"cni.crib.io/ips", "10.22.0.9/24, fd00::9"},
                     {"cni.crib.io/mac", "0a:58:0a:16:00:09"},
                     {"note", "kept"}};
  absl::StatusOr<json> args = CapabilityArgs(pod);
  ASSERT_THAT(args, IsOk());
  EXPECT_EQ((*args)["portMappings"],
            json::parse(R"([{"hostPort":30080,"containerPort":8080,"protocol":"tcp","hostIP":""},
                            {"hostPort":30053,"containerPort":53,"protocol":"udp",
                             "hostIP":"127.0.0.1"}])"));
  EXPECT_EQ((*args)["dns"], json::parse(R"({"servers":["10.96.0.10"],
      "searches":["default.svc.cluster.local"],"options":["ndots:5"]})"));
  EXPECT_EQ((*args)["bandwidth"], json::parse(R"({"ingressRate":10000000,"ingressBurst":4294967295,
                            "egressRate":1048576,"egressBurst":4294967295})"));
  EXPECT_EQ((*args)["ips"], json::parse(R"(["10.22.0.9/24","fd00::9"])"));
  EXPECT_EQ((*args)["mac"], "0a:58:0a:16:00:09");
  EXPECT_EQ((*args)[kPodAnnotationsCapability]["note"], "kept");

  // One direction only.
  pod.annotations = {{"kubernetes.io/egress-bandwidth", "2e6"}};
  EXPECT_EQ((*CapabilityArgs(pod))["bandwidth"],
            json::parse(R"({"egressRate":2000000,"egressBurst":4294967295})"));
}

TEST(CniArgs, BadAnnotationsAreInvalidArgumentNamingThem) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"kubernetes.io/ingress-bandwidth", "fast"},
      {"kubernetes.io/ingress-bandwidth", "999"},  // below kubelet's 1k
      {"kubernetes.io/egress-bandwidth", "2P"},    // above its 1P
      {"cni.crib.io/ips", "10.0.0.300"},
      {"cni.crib.io/ips", "10.0.0.3/33"},
      {"cni.crib.io/mac", "0a:58:0a:16:00"},
  };
  for (const auto& [key, value] : cases) {
    PodNetworkConfig pod = Pod();
    pod.annotations = {{key, value}};
    EXPECT_THAT(CapabilityArgs(pod), StatusIs(absl::StatusCode::kInvalidArgument,
                                              AllOf(HasSubstr(key), HasSubstr(value))))
        << key << "=" << value;
  }
}

TEST(CniArgs, QuantitiesAsKubernetesReadsThem) {
  const std::vector<std::pair<std::string, int64_t>> good = {
      {"0", 0},          {"500", 500},     {"1k", 1000},
      {"10M", 10000000}, {"1Gi", 1 << 30}, {"1.5k", 1500},
      {"100m", 1},       {"2e3", 2000},    {"1E", 1000000000000000000},
      {"+3Ki", 3072},    {".5M", 500000},  {"1.", 1},
      {"1E2", 100},      {"7n", 1},
  };
  for (const auto& [text, value] : good) {
    absl::StatusOr<int64_t> parsed = ParseQuantity(text);
    ASSERT_THAT(parsed, IsOk()) << text;
    EXPECT_EQ(*parsed, value) << text;
  }
  for (const char* bad : {"", "abc", "-1", "1X", "1e", "10MM", "1 M", "10E"}) {
    EXPECT_THAT(ParseQuantity(bad), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_))
        << bad;
  }
}

TEST(CniResult, IpsOfThePodInterfaceIpv4First) {
  const json result = json::parse(R"({
    "cniVersion": "1.0.0",
    "interfaces": [{"name": "cni0", "mac": "aa:aa:aa:aa:aa:aa"},
                   {"name": "veth1", "mac": "bb:bb:bb:bb:bb:bb"},
                   {"name": "eth0", "mac": "cc:cc:cc:cc:cc:cc", "sandbox": "/run/netns/x"},
                   {"name": "net1", "sandbox": "/run/netns/x"}],
    "ips": [{"address": "fd00:0:0:0::5/64", "interface": 2},
            {"address": "10.22.0.5/24", "gateway": "10.22.0.1", "interface": 2},
            {"address": "10.22.0.1/24", "interface": 0},
            {"address": "192.168.5.5/24", "interface": 3}]})");
  absl::StatusOr<std::vector<std::string>> ips = ResultIps(result, "eth0");
  ASSERT_THAT(ips, IsOk());
  EXPECT_THAT(*ips, ElementsAre("10.22.0.5", "fd00::5"));

  // An IPAM-style result ties no address to an interface: all are the pod's.
  EXPECT_THAT(*ResultIps(json::parse(R"({"cniVersion":"0.4.0",
      "ips":[{"version":"4","address":"10.1.0.7/16"}]})"),
                         "eth0"),
              ElementsAre("10.1.0.7"));
  // Spec 0.2.0 and before: ip4 and ip6.
  EXPECT_THAT(*ResultIps(json::parse(R"({"cniVersion":"0.2.0",
      "ip6":{"ip":"fd00::7/64"},"ip4":{"ip":"10.1.0.7/16","gateway":"10.1.0.1"}})"),
                         "eth0"),
              ElementsAre("10.1.0.7", "fd00::7"));
  EXPECT_THAT(*ResultIps(json::parse(R"({"cniVersion":"1.0.0"})"), "eth0"), ElementsAre());

  EXPECT_THAT(
      ResultIps(json::parse(R"({"cniVersion":"1.0.0","ips":[{"address":"x/24"}]})"), "eth0"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"x/24\"")));
  EXPECT_THAT(ResultIps(json::parse(R"({"cniVersion":"1.0.0",
      "ips":[{"address":"10.0.0.1/24","interface":4}]})"),
                        "eth0"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("interface 4")));
  EXPECT_THAT(ResultIps(json::parse(R"({"cniVersion":"1.0.0",
      "interfaces":[{"name":3}],"ips":[{"address":"10.0.0.1/24","interface":0}]})"),
                        "eth0"),
              IsOk())
      << "wrong types never throw";
  EXPECT_THAT(ResultIps(json::array(), "eth0"),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
}

TEST(CniResult, ErrorsCarryMessageDetailsAndStderr) {
  PluginError error;
  ASSERT_TRUE(ParseError(R"({"cniVersion":"1.0.0","code":7,"msg":"bad config",
                             "details":"no bridge"})",
                         &error));
  EXPECT_EQ(error.code, 7);
  EXPECT_EQ(error.msg, "bad config");
  EXPECT_EQ(error.details, "no bridge");
  EXPECT_THAT(ErrorStatus("cni plugin bridge ADD", error, "  log line\n"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "cni plugin bridge ADD: bad config: no bridge: log line"));
  EXPECT_FALSE(ParseError("plain text", &error));
  EXPECT_FALSE(ParseError(R"({"cniVersion":"1.0.0","ips":[]})", &error));
  EXPECT_THAT(ErrorStatus("x", PluginError{11, "busy", ""}, ""),
              StatusIs(absl::StatusCode::kUnavailable, "x: busy"));
  EXPECT_THAT(ErrorStatus("x", PluginError{100, "own", ""}, "err"),
              StatusIs(absl::StatusCode::kUnknown, "x: own: err"));
}

TEST(CniCache, AttachmentsRoundTripAndAreRemoved) {
  TempDir dir;
  AttachmentCache cache(dir.path() + "/cni/results");
  EXPECT_THAT(cache.Load("p1"), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  Attachment a;
  a.pod_id = "p1";
  a.network = *ParseConfigList(kList, "/etc/cni/net.d/10.conflist");
  a.netns = "/run/crib/netns/p1";
  a.ifname = "eth0";
  a.cni_args = "IgnoreUnknown=1";
  a.capability_args = {{"portMappings", json::array({{{"hostPort", 1}}})}};
  ASSERT_THAT(cache.Save(a), IsOk());
  struct stat st;
  ASSERT_EQ(::stat(cache.dir().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  absl::StatusOr<Attachment> loaded = cache.Load("p1");
  ASSERT_THAT(loaded, IsOk());
  EXPECT_TRUE(loaded->result.is_null());
  EXPECT_EQ(loaded->network.plugins, a.network.plugins);
  EXPECT_EQ(loaded->network.source, "/etc/cni/net.d/10.conflist");
  EXPECT_EQ(loaded->netns, a.netns);
  EXPECT_EQ(loaded->cni_args, a.cni_args);
  EXPECT_EQ(loaded->capability_args, a.capability_args);

  a.result = {{"cniVersion", "1.0.0"}, {"ips", json::array()}};
  a.del_failures = 2;
  ASSERT_THAT(cache.Save(a), IsOk());
  loaded = cache.Load("p1");
  ASSERT_THAT(loaded, IsOk());
  EXPECT_EQ(loaded->result, a.result);
  EXPECT_EQ(loaded->del_failures, 2);

  Write(cache.PathOf("p2"), "{\"kind\": \"other\"}");
  EXPECT_THAT(cache.Load("p2"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(cache.PathOf("p2"))));
  ASSERT_THAT(cache.Remove("p1"), IsOk());
  EXPECT_THAT(cache.Load("p1"), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  EXPECT_THAT(cache.Remove("p1"), IsOk());
}

class CniInvokeTest : public ::testing::Test {
 protected:
  // A plugin script in the temporary plugin directory.
  std::string Plugin(const std::string& name, const std::string& body) {
    const std::string path = absl::StrCat(dir_.path(), "/", name);
    Write(path, "#!/bin/sh\n" + body, 0755);
    return path;
  }

  PluginCall Call(const std::string& name) {
    PluginCall call;
    call.type = name;
    call.executable = absl::StrCat(dir_.path(), "/", name);
    call.command = "ADD";
    call.container_id = "c1";
    call.netns = "/run/netns/x";
    call.ifname = "eth0";
    call.args = "IgnoreUnknown=1;K8S_POD_NAME=web";
    call.path = dir_.path() + ":/usr/lib/cni";
    call.stdin_data = R"({"cniVersion":"1.0.0","name":"n","type":"echo"})";
    call.timeout = absl::Seconds(10);
    return call;
  }

  TempDir dir_;
};

TEST_F(CniInvokeTest, FindPluginSearchesTheDirectoriesInOrder) {
  TempDir other;
  Write(other.path() + "/p", "#!/bin/sh\n", 0755);
  Write(other.path() + "/q", "not executable", 0644);
  Plugin("p", "");
  EXPECT_EQ(*FindPlugin("p", {dir_.path(), other.path()}), dir_.path() + "/p");
  EXPECT_EQ(*FindPlugin("p", {"/nonexistent", other.path()}), other.path() + "/p");
  EXPECT_THAT(FindPlugin("q", {dir_.path(), other.path()}),
              StatusIs(absl::StatusCode::kNotFound,
                       AllOf(HasSubstr("cni plugin q not found"), HasSubstr(other.path()))));
}

TEST_F(CniInvokeTest, ThePluginGetsItsEnvironmentAndStdinAndItsResultIsRead) {
  Plugin("echo",
         "cat > \"$(dirname \"$0\")/stdin\"\n"
         "env | grep ^CNI_ | sort > \"$(dirname \"$0\")/env\"\n"
         "echo '{\"cniVersion\":\"1.0.0\",\"ips\":[{\"address\":\"10.9.0.2/24\"}]}'\n"
         "echo 'a log line' >&2\n");
  PluginCall call = Call("echo");
  absl::StatusOr<json> result = InvokePlugin(call);
  ASSERT_THAT(result, IsOk());
  EXPECT_EQ((*result)["ips"][0]["address"], "10.9.0.2/24");
  EXPECT_EQ(*ReadFile(dir_.path() + "/stdin"), call.stdin_data);
  EXPECT_EQ(*ReadFile(dir_.path() + "/env"),
            absl::StrCat("CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAME=web\nCNI_COMMAND=ADD\n"
                         "CNI_CONTAINERID=c1\nCNI_IFNAME=eth0\nCNI_NETNS=/run/netns/x\nCNI_PATH=",
                         dir_.path(), ":/usr/lib/cni\n"));
}

TEST_F(CniInvokeTest, ALargeConfigAndOutputGoThroughThePipes) {
  Plugin("big", "wc -c >&2\nhead -c 300000 /dev/zero | tr '\\0' x\n");
  PluginCall call = Call("big");
  call.stdin_data = std::string(500000, 'y');
  absl::StatusOr<PluginOutput> output = RunPlugin(call);
  ASSERT_THAT(output, IsOk());
  EXPECT_EQ(output->exit_code, 0);
  EXPECT_EQ(absl::StripAsciiWhitespace(output->stderr_data), "500000");
  EXPECT_EQ(output->stdout_data.size(), 300000u);

  // A plugin that exits without reading its stdin: EPIPE for crib, never a SIGPIPE (this test
  // binary does not ignore it, so it would die here).
  Plugin("deaf", "exit 0\n");
  PluginCall deaf = Call("deaf");
  deaf.stdin_data = std::string(500000, 'z');
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<PluginOutput> ignored = RunPlugin(deaf);
    ASSERT_THAT(ignored, IsOk());
    EXPECT_EQ(ignored->exit_code, 0);
  }
}

TEST_F(CniInvokeTest, APluginErrorReachesTheStatusWithItsStderr) {
  Plugin("fail",
         "echo 'failed to frobnicate: no such widget' >&2\n"
         "echo '{\"cniVersion\":\"1.0.0\",\"code\":100,\"msg\":\"widget missing\","
         "\"details\":\"looked in /x\"}'\n"
         "exit 1\n");
  EXPECT_THAT(InvokePlugin(Call("fail")),
              StatusIs(absl::StatusCode::kUnknown,
                       "cni plugin fail ADD: widget missing: looked in /x: failed to frobnicate: "
                       "no such widget"));
  Plugin("crash", "echo 'panic: oops' >&2\necho 'garbage'\nexit 3\n");
  EXPECT_THAT(InvokePlugin(Call("crash")),
              StatusIs(absl::StatusCode::kUnknown,
                       AllOf(HasSubstr("cni plugin crash ADD: exited with status 3 without an "
                                       "error result (stdout: garbage)"),
                             HasSubstr("panic: oops"))));
  Plugin("notjson", "echo 'hello'\n");
  EXPECT_THAT(InvokePlugin(Call("notjson")),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("no JSON object")));
  Plugin("quiet", "exit 0\n");
  PluginCall del = Call("quiet");
  del.command = "DEL";
  absl::StatusOr<json> nothing = InvokePlugin(del);
  ASSERT_THAT(nothing, IsOk());
  EXPECT_TRUE(nothing->is_null());
  PluginCall missing = Call("missing");
  EXPECT_THAT(InvokePlugin(missing), StatusIs(absl::StatusCode::kNotFound, HasSubstr("spawn")));
}

TEST_F(CniInvokeTest, ATimeoutKillsThePluginAndItsChildren) {
  // The plugin starts a child (as bridge starts host-local) and both hang.
  Plugin("hang",
         "sleep 60 &\n"
         "echo $! > \"$(dirname \"$0\")/child\"\n"
         "echo 'waiting for godot' >&2\n"
         "wait\n");
  PluginCall call = Call("hang");
  call.timeout = absl::Milliseconds(500);
  const absl::Time start = absl::Now();
  EXPECT_THAT(RunPlugin(call),
              StatusIs(absl::StatusCode::kDeadlineExceeded,
                       AllOf(HasSubstr("cni plugin hang ADD: timed out after 500ms"),
                             HasSubstr("waiting for godot"))));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  pid_t child = 0;
  ASSERT_TRUE(
      absl::SimpleAtoi(absl::StripAsciiWhitespace(*ReadFile(dir_.path() + "/child")), &child));
  // The child was in the plugin's group: killed too (it is gone or a zombie of the test's pid 1).
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    absl::StatusOr<std::string> stat = ReadFile(absl::StrCat("/proc/", child, "/stat"));
    gone = !stat.ok() || stat->find(") Z") != std::string::npos;
    if (!gone) absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_TRUE(gone) << "child " << child << " survived";
  if (!gone) ::kill(child, SIGKILL);
}

}  // namespace
}  // namespace crib::network::cni
