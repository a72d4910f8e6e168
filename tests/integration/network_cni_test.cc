// The CNI backend with Debian's real plugins (bridge, host-local, portmap, loopback in
// /usr/lib/cni) and a few shell-script plugins of the test's own, through a real cribd on its
// socket, checked on the machine: addresses, pings, a hostPort, host-local's allocation files,
// veths, the portmap and masquerade iptables rules, the result cache, a restart between ADD and
// DEL, failing and hanging plugins, and the conf directory changing under a running cribd.
// Every name carries this test's pid (bridge cnb<pid>, network crib-cni-<pid>, the subnet) and
// everything is removed at the end, also when a test fails: pods, pause processes, mounts,
// cgroups, the bridge, netns, and the nat rules and chains the plugins made for this network.
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "network/cni.h"
#include "nlohmann/json.hpp"
#include "support/cribd_process.h"
#include "support/machine.h"
#include "support/pod_fixture.h"
#include "support/status_matchers.h"

extern char** environ;

namespace crib::testing {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using json = nlohmann::json;

void Write(const std::string& path, const std::string& text, mode_t mode = 0644) {
  std::ofstream(path) << text;
  ::chmod(path.c_str(), mode);
}

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

// Plugins of the test's own, in its plugin directory (searched before /usr/lib/cni).
// crib-record writes what it got (stdin and the CNI_ variables) beside itself and, as a
// chained plugin must, passes the previous result on.
constexpr char kRecordPlugin[] =
    "#!/bin/sh\n"
    "dir=$(dirname \"$0\")\n"
    "in=$(cat)\n"
    "printf '%s' \"$in\" > \"$dir/record-$CNI_CONTAINERID-$CNI_COMMAND.json\"\n"
    "env | grep '^CNI_' | sort > \"$dir/record-$CNI_CONTAINERID-$CNI_COMMAND.env\"\n"
    "if [ \"$CNI_COMMAND\" = ADD ]; then\n"
    "  printf '%s' \"$in\" | python3 -c "
    "'import json,sys; print(json.dumps(json.load(sys.stdin)[\"prevResult\"]))'\n"
    "fi\n";

// crib-fail fails every ADD with a CNI error and a line on stderr; its DEL succeeds. Each call
// is logged beside it.
constexpr char kFailPlugin[] =
    "#!/bin/sh\n"
    "dir=$(dirname \"$0\")\n"
    "cat > /dev/null\n"
    "echo \"$CNI_COMMAND\" >> \"$dir/fail-$CNI_CONTAINERID.calls\"\n"
    "if [ \"$CNI_COMMAND\" = ADD ]; then\n"
    "  echo 'crib-fail: the widget is missing' >&2\n"
    "  echo '{\"cniVersion\":\"1.0.0\",\"code\":100,\"msg\":\"injected failure\","
    "\"details\":\"by the test\"}'\n"
    "  exit 1\n"
    "fi\n";

// crib-hang never finishes an ADD (it leaves its pid beside it); its DEL succeeds.
constexpr char kHangPlugin[] =
    "#!/bin/sh\n"
    "dir=$(dirname \"$0\")\n"
    "cat > /dev/null\n"
    "if [ \"$CNI_COMMAND\" = ADD ]; then\n"
    "  echo $$ > \"$dir/hang-$CNI_CONTAINERID.pid\"\n"
    "  exec sleep 60\n"
    "fi\n";

// crib-faildel passes ADD results on and fails every DEL while the file faildel-flag exists.
constexpr char kFailDelPlugin[] =
    "#!/bin/sh\n"
    "dir=$(dirname \"$0\")\n"
    "in=$(cat)\n"
    "if [ \"$CNI_COMMAND\" = ADD ]; then\n"
    "  printf '%s' \"$in\" | python3 -c "
    "'import json,sys; print(json.dumps(json.load(sys.stdin)[\"prevResult\"]))'\n"
    "  exit 0\n"
    "fi\n"
    "if [ \"$CNI_COMMAND\" = DEL ] && [ -e \"$dir/faildel-flag\" ]; then\n"
    "  echo '{\"cniVersion\":\"1.0.0\",\"code\":101,\"msg\":\"refusing DEL\"}'\n"
    "  exit 1\n"
    "fi\n";

class CniTest : public PodFixture {
 protected:
  CniTest() : PodFixture("crib-cni-test") {}

  void SetUp() override {
    ASSERT_TRUE(MakeDirs(conf_dir_).ok());
    ASSERT_TRUE(MakeDirs(plugin_dir_).ok());
    Write(plugin_dir_ + "/crib-record", kRecordPlugin, 0755);
    Write(plugin_dir_ + "/crib-fail", kFailPlugin, 0755);
    Write(plugin_dir_ + "/crib-hang", kHangPlugin, 0755);
    Write(plugin_dir_ + "/crib-faildel", kFailDelPlugin, 0755);
    for (const char* tool : {"iptables", "ip6tables"}) {
      shared_chains_existed_[tool] =
          Sh(absl::StrCat(tool, " -t nat -S CNI-HOSTPORT-DNAT")).first == 0;
    }
    options_.config_text = CribdConfig("30s");
  }

  void TearDown() override {
    RemoveWhatPodsLeft();
    for (const std::string& ns : netns_) Sh("ip netns del " + ns);
    Sh("ip link del " + bridge_);
    for (const char* tool : {"iptables", "ip6tables"}) RemoveOwnNatRules(tool);
  }

  // The nat rules that name this test's network in their comment (bridge's masquerading,
  // portmap's DNAT) and the per-pod chains they jump to; and portmap's shared chains if this
  // test made them and nothing else uses them. Never anything else of the host's rules.
  void RemoveOwnNatRules(const std::string& tool) {
    const std::string mark = absl::StrCat("name: \\\"", network_, "\\\"");
    const std::set<std::string> shared = {"CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ",
                                          "CNI-HOSTPORT-SETMARK"};
    std::set<std::string> chains;
    for (const std::string& line : Lines(Sh(tool + "-save -t nat").second)) {
      if (!absl::StartsWith(line, "-A ") || !absl::StrContains(line, mark)) continue;
      const size_t jump = line.find(" -j ");
      if (jump != std::string::npos) {
        const std::string target = line.substr(jump + 4, line.find(' ', jump + 4) - jump - 4);
        if (absl::StartsWith(target, "CNI-") && !shared.contains(target)) chains.insert(target);
      }
      Sh(absl::StrCat(tool, " -t nat -D", line.substr(2)));
    }
    for (const std::string& chain : chains) {
      Sh(absl::StrCat(tool, " -t nat -F ", chain));
      Sh(absl::StrCat(tool, " -t nat -X ", chain));
    }
    const auto [rc, dnat] = Sh(tool + " -t nat -S CNI-HOSTPORT-DNAT");
    if (shared_chains_existed_[tool] || rc != 0 || Lines(dnat).size() > 1) return;
    for (const std::string& line : Lines(Sh(tool + "-save -t nat").second)) {
      if (absl::StartsWith(line, "-A ") && (absl::EndsWith(line, "-j CNI-HOSTPORT-DNAT") ||
                                            absl::EndsWith(line, "-j CNI-HOSTPORT-MASQ"))) {
        Sh(absl::StrCat(tool, " -t nat -D", line.substr(2)));
      }
    }
    for (const std::string& chain : shared) {
      Sh(absl::StrCat(tool, " -t nat -F ", chain));
      Sh(absl::StrCat(tool, " -t nat -X ", chain));
    }
  }

  std::string CribdConfig(const std::string& timeout) const {
    return absl::StrCat("[network]\nbackend = \"cni\"\ncni_conf_dir = \"", conf_dir_,
                        "\"\ncni_plugin_dirs = [\"", plugin_dir_,
                        "\", \"/usr/lib/cni\"]\ncni_plugin_timeout = \"", timeout, "\"\n");
  }

  json BridgePlugin(bool dual_stack = false) const {
    json ranges = json::array({json::array({{{"subnet", subnet_ + "0/24"}}})});
    json routes = json::array({{{"dst", "0.0.0.0/0"}}});
    if (dual_stack) {
      ranges.push_back(json::array({{{"subnet", subnet6_ + "/64"}}}));
      routes.push_back({{"dst", "::/0"}});
    }
    return {
        {"type", "bridge"},
        {"bridge", bridge_},
        {"isGateway", true},
        {"ipMasq", !dual_stack},
        {"hairpinMode", true},
        {"ipam",
         {{"type", "host-local"}, {"dataDir", ipam_dir_}, {"ranges", ranges}, {"routes", routes}}}};
  }

  static json Portmap() {
    return {{"type", "portmap"}, {"capabilities", {{"portMappings", true}}}};
  }
  static json Loopback() { return {{"type", "loopback"}}; }

  // Writes a configuration list of `plugins` as `file` in the conf directory.
  void WriteConfList(const std::vector<json>& plugins, const std::string& file = "10-crib.conflist",
                     const std::string& version = "1.0.0") {
    const json list = {{"cniVersion", version}, {"name", network_}, {"plugins", plugins}};
    // Through a rename, as a configuration installer would, so cribd never reads half a file.
    Write(conf_dir_ + "/.tmp", list.dump(2));
    ::rename((conf_dir_ + "/.tmp").c_str(), (conf_dir_ + "/" + file).c_str());
  }

  void WriteStandardConfList() { WriteConfList({BridgePlugin(), Portmap(), Loopback()}); }

  cri::PodSandboxStatus PodStatus(const std::string& id) {
    cri::PodSandboxStatusRequest request;
    request.set_pod_sandbox_id(id);
    cri::PodSandboxStatusResponse response;
    EXPECT_TRUE(runtime_->PodSandboxStatus(ContextWithDeadline().get(), request, &response).ok());
    return response.status();
  }

  cri::RuntimeCondition NetworkReady() {
    cri::StatusResponse response;
    EXPECT_TRUE(
        runtime_->Status(ContextWithDeadline().get(), cri::StatusRequest(), &response).ok());
    for (const cri::RuntimeCondition& c : response.status().conditions()) {
      if (c.type() == "NetworkReady") return c;
    }
    ADD_FAILURE() << "no NetworkReady condition";
    return {};
  }

  std::string Netns(const std::string& id) const {
    return absl::StrCat(options_.state_dir, "/netns/", id);
  }

  // host-local's allocation files for this network: one per address, holding the pod id.
  std::map<std::string, std::string> Allocations() const {
    std::map<std::string, std::string> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(ipam_dir_ + "/" + network_, ec)) {
      const std::string name = e.path().filename().string();
      if (absl::StartsWith(name, "last_reserved_ip") || name == "lock") continue;
      out[name] = Slurp(e.path().string());
    }
    return out;
  }

  // Links enslaved to the test's bridge.
  int Veths() const {
    const auto [rc, out] = Sh("ip -o link show master " + bridge_);
    return rc != 0 ? 0 : static_cast<int>(Lines(out).size());
  }

  // nat rules (IPv4 and IPv6) that the plugins made for pod `id`.
  int NatRules(const std::string& id) const {
    int n = 0;
    for (const char* tool : {"iptables-save", "ip6tables-save"}) {
      for (const std::string& line : Lines(Sh(absl::StrCat(tool, " -t nat")).second)) {
        if (absl::StrContains(line, absl::StrCat("id: \\\"", id, "\\\""))) ++n;
      }
    }
    return n;
  }

  std::string CacheDir() const { return options_.root_dir + "/cni/results"; }

  // Everything a pod can leave behind, counted.
  struct Leftovers {
    size_t pauses = 0, mounts = 0, allocations = 0;
    int pod_dirs = 0, pins = 0, records = 0, veths = 0, nat_rules = 0, cached = 0;
    bool operator==(const Leftovers&) const = default;
  };
  Leftovers Count() {
    Leftovers l;
    l.pauses = PauseProcesses(options_.state_dir).size();
    for (const std::string& m : MountsUnder(dir_.path())) {
      if (!IsPinDir(options_.state_dir, m)) ++l.mounts;
    }
    l.allocations = Allocations().size();
    l.pod_dirs = EntriesIn(options_.state_dir + "/pods");
    l.pins = PinsIn(options_.state_dir);
    l.records = static_cast<int>(List().size());
    l.veths = Veths();
    for (const std::string& line : Lines(Sh("iptables-save -t nat").second)) {
      if (absl::StrContains(line, absl::StrCat("name: \\\"", network_, "\\\""))) ++l.nat_rules;
    }
    l.cached = EntriesIn(CacheDir());
    return l;
  }
  static std::string Describe(const Leftovers& l) {
    return absl::StrCat("pauses ", l.pauses, ", mounts ", l.mounts, ", allocations ", l.allocations,
                        ", pod dirs ", l.pod_dirs, ", pins ", l.pins, ", records ",
                        l.records, ", veths ", l.veths, ", nat rules ", l.nat_rules,
                        ", cached attachments ", l.cached);
  }

  std::pair<int, std::string> Ping(const std::string& from_netns, const std::string& ip) {
    return Sh(absl::StrCat("nsenter --net=", from_netns, " ping -c 1 -W 3 ", ip));
  }

  const std::string bridge_ = absl::StrCat("cnb", pid_);
  const std::string network_ = absl::StrCat("crib-cni-", pid_);
  const std::string subnet_ = absl::StrCat("10.", 100 + pid_ % 50, ".", (pid_ / 50) % 256, ".");
  const std::string subnet6_ = absl::StrFormat("fd00:c1b:%x::", pid_ % 65536);
  const std::string conf_dir_ = dir_.path() + "/net.d";
  const std::string plugin_dir_ = dir_.path() + "/bin";
  const std::string ipam_dir_ = dir_.path() + "/ipam";
  std::map<std::string, bool> shared_chains_existed_;
  std::vector<std::string> netns_;  // made with `ip netns add` by a test
};

TEST_F(CniTest, TwoPodsGetAddressesFromHostLocalAndPingEachOther) {
  WriteStandardConfList();
  ASSERT_TRUE(Start());
  const cri::RuntimeCondition ready = NetworkReady();
  EXPECT_TRUE(ready.status()) << ready.reason() << ": " << ready.message();

  const std::string a = RunOk(NetnsPod("ping-a"));
  const std::string b = RunOk(NetnsPod("ping-b"));
  ASSERT_FALSE(a.empty());
  ASSERT_FALSE(b.empty());
  const std::string ip_a = PodStatus(a).network().ip();
  const std::string ip_b = PodStatus(b).network().ip();
  EXPECT_TRUE(absl::StartsWith(ip_a, subnet_)) << ip_a;
  EXPECT_TRUE(absl::StartsWith(ip_b, subnet_)) << ip_b;
  EXPECT_NE(ip_a, ip_b);
  EXPECT_EQ(PodStatus(a).network().additional_ips_size(), 0);

  // host-local's allocation files name the pods (CNI_CONTAINERID is the pod id).
  const std::map<std::string, std::string> allocations = Allocations();
  ASSERT_EQ(allocations.size(), 2u);
  EXPECT_THAT(allocations.at(ip_a), HasSubstr(a));
  EXPECT_THAT(allocations.at(ip_b), HasSubstr(b));
  // The machine agrees: eth0 in each namespace has its address, lo is up, the veths are on the
  // bridge, and each pod has its cached attachment.
  EXPECT_THAT(Sh(absl::StrCat("nsenter --net=", Netns(a), " ip -4 -o addr show eth0")).second,
              HasSubstr(absl::StrCat("inet ", ip_a, "/24")));
  EXPECT_THAT(Sh(absl::StrCat("nsenter --net=", Netns(a), " ip link show lo")).second,
              HasSubstr(",UP"));
  EXPECT_EQ(Veths(), 2);
  EXPECT_TRUE(std::filesystem::exists(CacheDir() + "/" + a + ".json"));
  // The pod's hosts file has the address too.
  EXPECT_THAT(Slurp(absl::StrCat(options_.state_dir, "/pods/", a, "/hosts")), HasSubstr(ip_a));

  auto [rc, out] = Ping(Netns(a), ip_b);
  EXPECT_EQ(rc, 0) << out;
  std::tie(rc, out) = Ping(Netns(b), ip_a);
  EXPECT_EQ(rc, 0) << out;
  std::tie(rc, out) = Ping(Netns(a), subnet_ + "1");
  EXPECT_EQ(rc, 0) << "the bridge's gateway address: " << out;

  EXPECT_TRUE(Remove(a).ok());
  EXPECT_TRUE(Remove(b).ok());
  EXPECT_TRUE(Allocations().empty());
  EXPECT_EQ(Veths(), 0);
}

TEST_F(CniTest, PluginsGetCniArgsCapabilitiesAndThePreviousResult) {
  json record = {{"type", "crib-record"},
                 {"capabilities",
                  {{"portMappings", true},
                   {"dns", true},
                   {"bandwidth", true},
                   {"ips", true},
                   {"mac", true},
                   {"io.kubernetes.cri.pod-annotations", true}}}};
  WriteConfList({BridgePlugin(), record});
  ASSERT_TRUE(Start());
  cri::RunPodSandboxRequest request = NetnsPod("recorded");
  cri::PodSandboxConfig* config = request.mutable_config();
  cri::PortMapping* port = config->add_port_mappings();
  port->set_protocol(cri::UDP);
  port->set_container_port(53);
  port->set_host_port(FreePort());
  port->set_host_ip("127.0.0.1");
  config->mutable_dns_config()->add_servers("10.96.0.10");
  config->mutable_dns_config()->add_searches("default.svc.cluster.local");
  config->mutable_dns_config()->add_options("ndots:5");
  (*config->mutable_annotations())["kubernetes.io/ingress-bandwidth"] = "10M";
  (*config->mutable_annotations())["kubernetes.io/egress-bandwidth"] = "1Mi";
  (*config->mutable_annotations())["cni.crib.io/mac"] = "0a:58:0a:16:00:09";
  (*config->mutable_annotations())["cni.crib.io/ips"] = subnet_ + "77/24";
  const std::string id = RunOk(request);
  ASSERT_FALSE(id.empty());

  const json add =
      json::parse(Slurp(absl::StrCat(plugin_dir_, "/record-", id, "-ADD.json")), nullptr, false);
  ASSERT_TRUE(add.is_object()) << "crib-record did not run";
  EXPECT_EQ(add["name"], network_);
  EXPECT_EQ(add["cniVersion"], "1.0.0");
  EXPECT_FALSE(add.contains("capabilities"));
  const json& rc = add["runtimeConfig"];
  EXPECT_EQ(rc["portMappings"], json::array({{{"hostPort", port->host_port()},
                                              {"containerPort", 53},
                                              {"protocol", "udp"},
                                              {"hostIP", "127.0.0.1"}}}));
  EXPECT_EQ(rc["dns"], json::parse(R"({"servers":["10.96.0.10"],
      "searches":["default.svc.cluster.local"],"options":["ndots:5"]})"));
  EXPECT_EQ(rc["bandwidth"], json::parse(R"({"ingressRate":10000000,"ingressBurst":4294967295,
      "egressRate":1048576,"egressBurst":4294967295})"));
  EXPECT_EQ(rc["mac"], "0a:58:0a:16:00:09");
  EXPECT_EQ(rc["ips"], json::array({subnet_ + "77/24"}));
  EXPECT_EQ(rc["io.kubernetes.cri.pod-annotations"]["cni.crib.io/mac"], "0a:58:0a:16:00:09");
  // prevResult is what the bridge plugin returned: the pod's interface and address.
  const json& prev = add["prevResult"];
  EXPECT_EQ(prev["cniVersion"], "1.0.0");
  const std::string ip = PodStatus(id).network().ip();
  EXPECT_TRUE(absl::StartsWith(ip, subnet_)) << ip;
  EXPECT_THAT(prev.dump(), HasSubstr(absl::StrCat("\"", ip, "/24\"")));
  EXPECT_THAT(prev.dump(), HasSubstr(absl::StrCat("\"sandbox\":\"", Netns(id), "\"")));
  EXPECT_EQ(Slurp(absl::StrCat(plugin_dir_, "/record-", id, "-ADD.env")),
            absl::StrCat("CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=recorded;"
                         "K8S_POD_INFRA_CONTAINER_ID=",
                         id, ";K8S_POD_UID=uid-recorded\nCNI_COMMAND=ADD\nCNI_CONTAINERID=", id,
                         "\nCNI_IFNAME=eth0\nCNI_NETNS=", Netns(id), "\nCNI_PATH=", plugin_dir_,
                         ":/usr/lib/cni"));

  // DEL runs in reverse order with the final ADD result as prevResult.
  ASSERT_TRUE(Stop(id).ok());
  const json del =
      json::parse(Slurp(absl::StrCat(plugin_dir_, "/record-", id, "-DEL.json")), nullptr, false);
  ASSERT_TRUE(del.is_object()) << "crib-record got no DEL";
  EXPECT_EQ(del["prevResult"], prev);
  EXPECT_EQ(del["runtimeConfig"], rc);
  EXPECT_THAT(Slurp(absl::StrCat(plugin_dir_, "/record-", id, "-DEL.env")),
              HasSubstr("CNI_COMMAND=DEL"));
  EXPECT_TRUE(Allocations().empty());
  EXPECT_TRUE(Remove(id).ok());
}

TEST_F(CniTest, AHostPortReachesAListenerInThePod) {
  WriteStandardConfList();
  ASSERT_TRUE(Start());
  const uint16_t host_port = FreePort();
  cri::RunPodSandboxRequest request = NetnsPod("web");
  cri::PortMapping* port = request.mutable_config()->add_port_mappings();
  port->set_protocol(cri::TCP);
  port->set_container_port(8080);
  port->set_host_port(host_port);
  const std::string server = RunOk(request);
  const std::string client = RunOk(NetnsPod("client"));
  ASSERT_FALSE(server.empty());
  ASSERT_FALSE(client.empty());
  EXPECT_GT(NatRules(server), 0) << "portmap's DNAT rules for the pod";
  Background listener(
      {"nsenter", absl::StrCat("--net=", Netns(server)), "python3", "-c", kPongServer});
  ASSERT_GT(listener.pid(), 0);

  // From the node, through 127.0.0.1 and through the bridge's address.
  auto [rc, out] = Sh(absl::StrCat("python3 -c \"", kPongClient, "\" 127.0.0.1 ", host_port));
  EXPECT_EQ(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("pong from"));
  std::tie(rc, out) =
      Sh(absl::StrCat("python3 -c \"", kPongClient, "\" ", subnet_, "1 ", host_port));
  EXPECT_EQ(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("pong from"));
  // From another pod, through the node's bridge address.
  std::tie(rc, out) = Sh(absl::StrCat("nsenter --net=", Netns(client), " python3 -c \"",
                                      kPongClient, "\" ", subnet_, "1 ", host_port));
  EXPECT_EQ(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("pong from"));

  EXPECT_TRUE(Remove(server).ok());
  EXPECT_EQ(NatRules(server), 0);
  std::tie(rc, out) = Sh(absl::StrCat("python3 -c \"", kPongClient, "\" 127.0.0.1 ", host_port));
  EXPECT_NE(rc, 0) << "the hostPort still answers after the pod is gone: " << out;
  EXPECT_TRUE(Remove(client).ok());
}

TEST_F(CniTest, StopAndRemoveReleaseTheAllocationAndLeaveNothing) {
  WriteStandardConfList();
  ASSERT_TRUE(Start());
  const Leftovers before = Count();
  cri::RunPodSandboxRequest request = NetnsPod("tidy");
  cri::PortMapping* port = request.mutable_config()->add_port_mappings();
  port->set_container_port(80);
  port->set_host_port(FreePort());
  const std::string id = RunOk(request);
  ASSERT_FALSE(id.empty());
  const std::string ip = PodStatus(id).network().ip();
  EXPECT_EQ(Allocations().size(), before.allocations + 1);
  EXPECT_TRUE(Allocations().contains(ip));
  EXPECT_EQ(Veths(), before.veths + 1);
  EXPECT_GT(NatRules(id), 0);
  EXPECT_EQ(EntriesIn(CacheDir()), 1);

  ASSERT_TRUE(Stop(id).ok());
  EXPECT_FALSE(Allocations().contains(ip)) << "host-local still holds " << ip;
  EXPECT_EQ(Veths(), before.veths);
  EXPECT_EQ(NatRules(id), 0);
  EXPECT_EQ(EntriesIn(CacheDir()), 0);
  const cri::PodSandboxStatus stopped = PodStatus(id);
  EXPECT_EQ(stopped.state(), cri::SANDBOX_NOTREADY);
  EXPECT_EQ(stopped.network().ip(), "");
  EXPECT_TRUE(Stop(id).ok()) << "a second Stop has nothing to do";
  ASSERT_TRUE(Remove(id).ok());
  EXPECT_EQ(Count(), before) << Describe(Count());
}

TEST_F(CniTest, AFailingPluginGivesItsMessageAndLeavesNothing) {
  WriteConfList({BridgePlugin(), Portmap(), {{"type", "crib-fail"}}});
  ASSERT_TRUE(Start());
  const Leftovers before = Count();
  cri::RunPodSandboxRequest request = NetnsPod("doomed");
  cri::PortMapping* port = request.mutable_config()->add_port_mappings();
  port->set_container_port(80);
  port->set_host_port(FreePort());
  std::string id;
  const grpc::Status status = Run(request, &id);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNKNOWN) << status.error_message();
  EXPECT_THAT(status.error_message(),
              AllOf(HasSubstr("run pod sandbox doomed"), HasSubstr("set up network"),
                    HasSubstr("cni plugin crib-fail ADD: injected failure: by the test: "
                              "crib-fail: the widget is missing")));
  // The whole list got its DEL: bridge and host-local undid theirs, crib-fail saw a DEL.
  EXPECT_EQ(Count(), before) << Describe(Count());
  bool deleted = false;
  for (const auto& e : std::filesystem::directory_iterator(plugin_dir_)) {
    const std::string name = e.path().filename().string();
    if (absl::StartsWith(name, "fail-")) {
      EXPECT_EQ(Slurp(e.path().string()), "ADD\nDEL") << name;
      deleted = true;
    }
  }
  EXPECT_TRUE(deleted) << "crib-fail never ran";
}

TEST_F(CniTest, APluginThatHangsIsKilledAtTheTimeoutAndLeavesNothing) {
  options_.config_text = CribdConfig("2s");
  WriteConfList({BridgePlugin(), {{"type", "crib-hang"}}});
  ASSERT_TRUE(Start());
  const Leftovers before = Count();
  const absl::Time start = absl::Now();
  const grpc::Status status = Run(NetnsPod("stuck"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("cni plugin crib-hang ADD: timed out after 2s"));
  EXPECT_EQ(Count(), before) << Describe(Count());
  int hung = 0;
  for (const auto& e : std::filesystem::directory_iterator(plugin_dir_)) {
    if (!absl::StartsWith(e.path().filename().string(), "hang-")) continue;
    pid_t pid = 0;
    ASSERT_TRUE(absl::SimpleAtoi(Slurp(e.path().string()), &pid));
    for (int i = 0; i < 100 && !Exited(pid); ++i) absl::SleepFor(absl::Milliseconds(20));
    EXPECT_TRUE(Exited(pid)) << "crib-hang " << pid << " still runs";
    ++hung;
  }
  EXPECT_EQ(hung, 1);
}

TEST_F(CniTest, ACribdRestartBetweenAddAndDelStillCleansUp) {
  WriteConfList({BridgePlugin(),
                 Portmap(),
                 Loopback(),
                 {{"type", "crib-record"}, {"capabilities", {{"portMappings", true}}}}});
  ASSERT_TRUE(Start());
  const Leftovers before = Count();
  cri::RunPodSandboxRequest request = NetnsPod("survivor");
  cri::PortMapping* port = request.mutable_config()->add_port_mappings();
  port->set_container_port(80);
  port->set_host_port(FreePort());
  const std::string id = RunOk(request);
  ASSERT_FALSE(id.empty());
  const std::string ip = PodStatus(id).network().ip();
  ASSERT_TRUE(Allocations().contains(ip));
  ASSERT_GT(NatRules(id), 0);

  cribd_->SignalAndWait(SIGKILL);
  cribd_.reset();
  // The network is gone from the conf directory meanwhile: DEL must use what ADD used.
  ASSERT_EQ(::unlink((conf_dir_ + "/10-crib.conflist").c_str()), 0);
  ASSERT_TRUE(Start());
  EXPECT_FALSE(NetworkReady().status());
  EXPECT_EQ(PodStatus(id).network().ip(), ip);
  ASSERT_TRUE(Stop(id).ok()) << cribd_->Log();
  EXPECT_FALSE(Allocations().contains(ip));
  EXPECT_EQ(NatRules(id), 0);
  // The DEL had ADD's configuration and, as prevResult, ADD's final result (crib-record's,
  // which is the result it was given).
  const json add =
      json::parse(Slurp(absl::StrCat(plugin_dir_, "/record-", id, "-ADD.json")), nullptr, false);
  const json del =
      json::parse(Slurp(absl::StrCat(plugin_dir_, "/record-", id, "-DEL.json")), nullptr, false);
  ASSERT_TRUE(add.is_object() && del.is_object()) << "crib-record did not run for ADD and DEL";
  EXPECT_EQ(del["prevResult"], add["prevResult"]);
  EXPECT_EQ(del["runtimeConfig"], add["runtimeConfig"]);
  EXPECT_EQ(del["name"], network_);
  ASSERT_TRUE(Remove(id).ok());
  EXPECT_EQ(Count(), before) << Describe(Count());
}

TEST_F(CniTest, ChangingTheConfDirWhileRunningSwitchesNetworkReady) {
  ASSERT_TRUE(Start());
  cri::RuntimeCondition ready = NetworkReady();
  EXPECT_FALSE(ready.status());
  EXPECT_EQ(ready.reason(), "NoCniConfig");
  EXPECT_THAT(ready.message(), HasSubstr(conf_dir_));
  // Host-network pods run without a network; others fail, naming the directory, and leave
  // nothing.
  const Leftovers before = Count();
  const std::string host = RunOk(HostPod("host"));
  EXPECT_FALSE(host.empty());
  grpc::Status status = Run(NetnsPod("early"));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr(conf_dir_));
  ASSERT_TRUE(Remove(host).ok());
  EXPECT_EQ(Count(), before) << Describe(Count());

  // A broken file is named.
  Write(conf_dir_ + "/50-broken.conf", "{\"cniVersion\": \"1.0.0\", ");
  ready = NetworkReady();
  EXPECT_FALSE(ready.status());
  EXPECT_EQ(ready.reason(), "InvalidCniConfig");
  EXPECT_THAT(ready.message(), HasSubstr(conf_dir_ + "/50-broken.conf"));

  // A good list, first in lexical order, is the network.
  WriteStandardConfList();
  ready = NetworkReady();
  EXPECT_TRUE(ready.status()) << ready.reason() << ": " << ready.message();
  const std::string id = RunOk(NetnsPod("late"));
  EXPECT_TRUE(absl::StartsWith(PodStatus(id).network().ip(), subnet_));

  // One that names a plugin no directory has is not usable.
  WriteConfList({BridgePlugin(), {{"type", "crib-nonexistent"}}}, "05-missing.conflist");
  ready = NetworkReady();
  EXPECT_FALSE(ready.status());
  EXPECT_EQ(ready.reason(), "CniPluginNotFound");
  EXPECT_THAT(ready.message(), AllOf(HasSubstr("crib-nonexistent"), HasSubstr(plugin_dir_)));
  // The pod attached before still detaches with the configuration it was attached with.
  ASSERT_TRUE(Remove(id).ok());
  EXPECT_TRUE(Allocations().empty());

  for (const char* file : {"05-missing.conflist", "10-crib.conflist", "50-broken.conf"}) {
    ::unlink((conf_dir_ + "/" + file).c_str());
  }
  ready = NetworkReady();
  EXPECT_FALSE(ready.status());
  EXPECT_EQ(ready.reason(), "NoCniConfig");
}

TEST_F(CniTest, AFailedDelIsRetriedByTheNextStopAndNeverBlocksRemoveForever) {
  WriteConfList({BridgePlugin(), {{"type", "crib-faildel"}}});
  ASSERT_TRUE(Start());
  const Leftovers before = Count();
  const std::string flag = plugin_dir_ + "/faildel-flag";

  // A DEL that fails once: Stop reports it, the next Stop does it.
  const std::string retried = RunOk(NetnsPod("retried"));
  ASSERT_FALSE(retried.empty());
  const std::string ip = PodStatus(retried).network().ip();
  Write(flag, "");
  grpc::Status status = Stop(retried);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.error_message(),
              AllOf(HasSubstr("tear down network"), HasSubstr("cni plugin crib-faildel DEL: "
                                                              "refusing DEL")));
  EXPECT_TRUE(Allocations().contains(ip)) << "DEL stopped at the failing plugin";
  ::unlink(flag.c_str());
  EXPECT_TRUE(Stop(retried).ok());
  EXPECT_FALSE(Allocations().contains(ip));
  ASSERT_TRUE(Remove(retried).ok());

  // A DEL that always fails: Stop and the first Removes fail, then Remove gives up on it (the
  // other plugins still get their DEL) and the pod goes.
  const std::string stuck = RunOk(NetnsPod("stuck"));
  ASSERT_FALSE(stuck.empty());
  const std::string stuck_ip = PodStatus(stuck).network().ip();
  Write(flag, "");
  EXPECT_FALSE(Stop(stuck).ok());
  EXPECT_FALSE(Remove(stuck).ok());
  EXPECT_EQ(List().size(), 1u);
  status = Remove(stuck);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(List().empty());
  EXPECT_FALSE(Allocations().contains(stuck_ip));
  EXPECT_THAT(cribd_->Log(), HasSubstr("giving up"));
  ::unlink(flag.c_str());
  EXPECT_EQ(Count(), before) << Describe(Count());
}

TEST_F(CniTest, EightPodsAttachedAndDetachedConcurrentlyLeaveNothing) {
  WriteStandardConfList();
  ASSERT_TRUE(Start());
  const Leftovers before = Count();
  constexpr int kPods = 8;
  std::vector<std::string> ids(kPods);
  std::vector<grpc::Status> runs(kPods);
  {
    std::vector<std::thread> threads;
    for (int i = 0; i < kPods; ++i) {
      threads.emplace_back([&, i] {
        cri::RunPodSandboxRequest request = NetnsPod(absl::StrCat("many-", i));
        cri::PortMapping* port = request.mutable_config()->add_port_mappings();
        port->set_container_port(80);
        port->set_host_port(static_cast<int32_t>(FreePort()));
        runs[i] = Run(request, &ids[i]);
      });
    }
    for (std::thread& t : threads) t.join();
  }
  std::set<std::string> ips;
  for (int i = 0; i < kPods; ++i) {
    ASSERT_TRUE(runs[i].ok()) << runs[i].error_message();
    ips.insert(PodStatus(ids[i]).network().ip());
  }
  EXPECT_EQ(ips.size(), static_cast<size_t>(kPods));
  EXPECT_EQ(Allocations().size(), static_cast<size_t>(kPods));
  EXPECT_EQ(Veths(), kPods);
  std::vector<grpc::Status> removes(kPods);
  {
    std::vector<std::thread> threads;
    for (int i = 0; i < kPods; ++i) {
      threads.emplace_back([&, i] { removes[i] = Remove(ids[i]); });
    }
    for (std::thread& t : threads) t.join();
  }
  for (const grpc::Status& s : removes) EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(Count(), before) << Describe(Count());
}

TEST_F(CniTest, ADualStackPodHasItsIpv6AddressInAdditionalIps) {
  // Without the loopback plugin: crib brings lo up itself.
  WriteConfList({BridgePlugin(/*dual_stack=*/true)});
  ASSERT_TRUE(Start());
  const std::string id = RunOk(NetnsPod("dual"));
  ASSERT_FALSE(id.empty());
  const cri::PodSandboxStatus status = PodStatus(id);
  EXPECT_TRUE(absl::StartsWith(status.network().ip(), subnet_)) << status.network().ip();
  ASSERT_EQ(status.network().additional_ips_size(), 1);
  const std::string ip6 = status.network().additional_ips(0).ip();
  EXPECT_TRUE(absl::StartsWith(ip6, subnet6_)) << ip6;
  EXPECT_THAT(Sh(absl::StrCat("nsenter --net=", Netns(id), " ip -6 -o addr show eth0")).second,
              HasSubstr(ip6 + "/64"));
  EXPECT_THAT(Sh(absl::StrCat("nsenter --net=", Netns(id), " ip link show lo")).second,
              HasSubstr(",UP"));
  EXPECT_TRUE(Allocations().contains(ip6));
  ASSERT_TRUE(Remove(id).ok());
  EXPECT_TRUE(Allocations().empty());
}

// The backend on its own, without cribd: for CHECK (which no RPC runs) and for SetUp's own
// undo (through cribd, the pod room's TearDown after a failed SetUp would hide it).
class CniBackendTest : public CniTest {
 protected:
  std::unique_ptr<network::CniBackend> Backend() {
    NetworkConfig config;
    config.backend = NetworkBackendKind::kCni;
    config.cni_conf_dir = conf_dir_;
    config.cni_plugin_dirs = {plugin_dir_, "/usr/lib/cni"};
    return std::make_unique<network::CniBackend>(config, cache_dir_);
  }

  // A pod in a network namespace of the test's own.
  network::PodNetworkConfig Pod(const std::string& name) {
    const std::string ns = absl::StrCat("cnc", pid_, "-", netns_.size());
    EXPECT_EQ(Sh("ip netns add " + ns).first, 0);
    netns_.push_back(ns);
    network::PodNetworkConfig pod;
    pod.pod_id = absl::StrCat(name, pid_);
    pod.name = name;
    pod.namespace_ = "default";
    pod.uid = "uid-" + name;
    pod.netns_path = "/run/netns/" + ns;
    return pod;
  }

  const std::string cache_dir_ = dir_.path() + "/cache";
};

TEST_F(CniBackendTest, AFailedAddIsUndoneBySetUpItself) {
  WriteConfList({BridgePlugin(), Portmap(), {{"type", "crib-fail"}}});
  std::unique_ptr<network::CniBackend> backend = Backend();
  network::PodNetworkConfig pod = Pod("undone");
  pod.port_mappings = {{network::Protocol::kTcp, 80, FreePort(), ""}};
  EXPECT_THAT(backend->SetUp(pod),
              StatusIs(absl::StatusCode::kUnknown,
                       AllOf(HasSubstr("set up the network of pod " + pod.pod_id),
                             HasSubstr("cni plugin crib-fail ADD: injected failure"))));
  // No TearDown here: SetUp left nothing.
  EXPECT_TRUE(Allocations().empty());
  EXPECT_EQ(Veths(), 0);
  EXPECT_EQ(NatRules(pod.pod_id), 0);
  EXPECT_EQ(EntriesIn(cache_dir_), 0);
  EXPECT_NE(Sh("ip -n " + netns_.back() + " link show eth0").first, 0);
  EXPECT_EQ(Slurp(absl::StrCat(plugin_dir_, "/fail-", pod.pod_id, ".calls")), "ADD\nDEL");
}

TEST_F(CniBackendTest, CheckConfirmsAnAttachmentAndFindsWhatIsMissing) {
  WriteConfList({BridgePlugin(), Portmap()}, "10-crib.conflist", "0.4.0");
  std::unique_ptr<network::CniBackend> backend_ptr = Backend();
  network::CniBackend& backend = *backend_ptr;
  ASSERT_TRUE(backend.Status().ready) << backend.Status().message;
  network::PodNetworkConfig pod = Pod("checked");
  const std::string ns = netns_.back();
  EXPECT_THAT(backend.Check(pod),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not attached")));
  absl::StatusOr<network::PodNetworkStatus> attached = backend.SetUp(pod);
  ASSERT_THAT(attached, IsOk());
  ASSERT_EQ(attached->ips.size(), 1u);
  EXPECT_THAT(backend.Check(pod), IsOk());
  EXPECT_THAT(backend.SetUp(pod),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("already attached")));

  // host-local's reservation taken away: CHECK says so.
  ASSERT_EQ(::unlink(absl::StrCat(ipam_dir_, "/", network_, "/", attached->ips[0]).c_str()), 0);
  EXPECT_THAT(backend.Check(pod),
              StatusIs(absl::StatusCode::kUnknown, AllOf(HasSubstr("check the network of pod"),
                                                         HasSubstr("cni plugin bridge CHECK"))));
  EXPECT_THAT(backend.TearDown(pod), IsOk());
  EXPECT_THAT(backend.Check(pod),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not attached")));
  EXPECT_NE(Sh("ip -n " + ns + " link show eth0").first, 0);
  EXPECT_THAT(backend.TearDown(pod), IsOk()) << "a second TearDown has nothing to do";
}

}  // namespace
}  // namespace crib::testing
