// The bridge backend on the real machine: network namespaces made here, the links, addresses,
// routes and nftables rules checked with ip, nft and traffic. Every name carries this test's
// pid (bridge cb<pid>, table crib_t<pid>, netns cn<pid>-*) and everything is removed at the
// end, also when a test fails.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "network/bridge.h"
#include "network/ipam.h"
#include "store/store.h"
#include "support/cribd_process.h"
#include "support/machine.h"
#include "support/status_matchers.h"

extern char** environ;

namespace crib::network {
namespace {

using ::crib::testing::Background;
using ::crib::testing::FreePort;
using ::crib::testing::IsOk;
using ::crib::testing::kPongClient;
using ::crib::testing::kPongServer;
using ::crib::testing::Sh;
using ::crib::testing::StatusIs;
using ::crib::testing::TempDir;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

std::string Out(const std::string& command) { return Sh(command).second; }

// Connects from this process (the host's namespace) and reads what the server says.
std::string ReadFromHost(const std::string& ip, uint16_t port) {
  for (int attempt = 0; attempt < 50; ++attempt) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval timeout{2, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    ::inet_pton(AF_INET, ip.c_str(), &addr.sin_addr);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      char buf[64];
      const ssize_t n = ::read(fd, buf, sizeof buf);
      ::close(fd);
      if (n > 0) return std::string(buf, n);
    } else {
      ::close(fd);
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  return "";
}

class BridgeTest : public ::testing::Test {
 protected:
  BridgeTest()
      : pid_(::getpid()),
        bridge_(absl::StrCat("cb", pid_)),
        table_(absl::StrCat("crib_t", pid_)),
        subnet_(absl::StrCat("10.", 200 + pid_ % 50, ".", (pid_ / 50) % 256, ".")) {
    config_.bridge = bridge_;
    config_.nft_table = table_;
    config_.pod_cidr = subnet_ + "0/24";
  }

  void SetUp() override {
    absl::StatusOr<std::unique_ptr<store::Store>> store =
        store::Store::Open(dir_.path() + "/metadata.db");
    ASSERT_THAT(store, IsOk());
    store_ = *std::move(store);
    backend_ = std::make_unique<BridgeBackend>(config_, *store_);
  }

  void TearDown() override {
    ::unsetenv("CRIB_TEST_FAILPOINT");
    for (const std::string& ns : netns_) Sh("ip netns del " + ns);
    if (backend_ != nullptr) {
      EXPECT_THAT(backend_->RemoveAll(), IsOk());
    }
    // Whatever a failed test left: the bridge, the table.
    Sh("ip link del " + bridge_);
    Sh("nft delete table inet " + table_);
  }

  // A new network namespace, deleted at the end of the test.
  std::string AddNetns() {
    const std::string name = absl::StrCat("cn", pid_, "-", netns_.size());
    EXPECT_EQ(Sh("ip netns add " + name).first, 0);
    netns_.push_back(name);
    return name;
  }

  PodNetworkConfig Pod(const std::string& netns, absl::string_view suffix) {
    PodNetworkConfig pod;
    pod.pod_id = absl::StrCat("pod", pid_, "x", suffix);
    pod.name = pod.pod_id;
    pod.namespace_ = "default";
    pod.netns_path = "/run/netns/" + netns;
    return pod;
  }

  // Rules of the pod in crib's table; 0 also when there is no table.
  int RuleCount(const std::string& pod_id) {
    const std::string listing = Out("nft list table inet " + table_);
    int count = 0;
    for (size_t at = listing.find("\"pod:" + pod_id + "\""); at != std::string::npos;
         at = listing.find("\"pod:" + pod_id + "\"", at + 1)) {
      ++count;
    }
    return count;
  }

  size_t Allocations() {
    absl::StatusOr<std::vector<store::IpAllocation>> ips = store_->ListIps(config_.pod_cidr);
    EXPECT_THAT(ips, IsOk());
    return ips.ok() ? ips->size() : 0;
  }

  bool HostLinkExists(const std::string& pod_id) {
    return Sh("ip link show " + BridgeBackend::HostInterfaceName(pod_id)).first == 0;
  }

  // Ports of the bridge, one name per line.
  std::string BridgePorts() { return Out("ip -o link show master " + bridge_); }

  const int pid_;
  const std::string bridge_;
  const std::string table_;
  const std::string subnet_;
  NetworkConfig config_;
  TempDir dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<BridgeBackend> backend_;
  std::vector<std::string> netns_;
};

TEST_F(BridgeTest, StatusIsReadyWithoutCreatingAnything) {
  const Readiness ready = backend_->Status();
  EXPECT_TRUE(ready.ready) << ready.reason << ": " << ready.message;
  EXPECT_NE(Sh("ip link show " + bridge_).first, 0) << "Status must not create the bridge";
  EXPECT_NE(Sh("nft list table inet " + table_).first, 0) << "nor the table";

  // A link of that name that is not a bridge makes the backend unable to work.
  ASSERT_EQ(Sh("ip link add " + bridge_ + " type veth peer name cbp" + std::to_string(pid_)).first,
            0);
  const Readiness not_ready = backend_->Status();
  EXPECT_FALSE(not_ready.ready);
  EXPECT_EQ(not_ready.reason, "BridgeUnavailable");
  EXPECT_THAT(not_ready.message, HasSubstr(bridge_));
  PodNetworkConfig pod = Pod(AddNetns(), "a");
  EXPECT_THAT(backend_->SetUp(pod),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("prepare the bridge"), HasSubstr("not a bridge"))));
  EXPECT_EQ(Allocations(), 0u);
}

TEST_F(BridgeTest, TwoPodsGetTheirAddressesAndReachEachOtherAndTheGateway) {
  const std::string ns1 = AddNetns(), ns2 = AddNetns();
  PodNetworkConfig pod1 = Pod(ns1, "a"), pod2 = Pod(ns2, "b");
  absl::StatusOr<PodNetworkStatus> s1 = backend_->SetUp(pod1);
  ASSERT_THAT(s1, IsOk());
  absl::StatusOr<PodNetworkStatus> s2 = backend_->SetUp(pod2);
  ASSERT_THAT(s2, IsOk());
  ASSERT_EQ(s1->ips.size(), 1u);
  ASSERT_EQ(s2->ips.size(), 1u);
  EXPECT_EQ(s1->ips[0], subnet_ + "2");
  EXPECT_EQ(s2->ips[0], subnet_ + "3");
  const std::string gateway = subnet_ + "1";

  // The machine agrees: addresses on eth0, the default route, lo up, the bridge and its ports.
  EXPECT_THAT(Out("ip -n " + ns1 + " -4 -o addr show dev eth0"), HasSubstr(s1->ips[0] + "/24"));
  EXPECT_THAT(Out("ip -n " + ns2 + " -4 -o addr show dev eth0"), HasSubstr(s2->ips[0] + "/24"));
  EXPECT_THAT(Out("ip -n " + ns1 + " route show default"),
              HasSubstr("default via " + gateway + " dev eth0"));
  EXPECT_THAT(Out("ip -n " + ns1 + " link show lo"), HasSubstr(",UP"));
  EXPECT_THAT(Out("ip -n " + ns1 + " link show eth0"), HasSubstr("mtu 1500"));
  // IPv6 off on eth0 (nothing for the bridge to flood to every pod), ::1 kept on lo.
  EXPECT_EQ(Out("ip netns exec " + ns1 + " cat /proc/sys/net/ipv6/conf/eth0/disable_ipv6"), "1\n");
  EXPECT_EQ(Out("ip -n " + ns1 + " -6 -o addr show dev eth0"), "");
  EXPECT_THAT(Out("ip -n " + ns1 + " -6 -o addr show dev lo"), HasSubstr("::1/128"));
  EXPECT_THAT(Out("ip -4 -o addr show dev " + bridge_), HasSubstr(gateway + "/24"));
  EXPECT_THAT(BridgePorts(), AllOf(HasSubstr(BridgeBackend::HostInterfaceName(pod1.pod_id)),
                                   HasSubstr(BridgeBackend::HostInterfaceName(pod2.pod_id))));
  EXPECT_EQ(Out("cat /proc/sys/net/ipv4/ip_forward"), "1\n");
  EXPECT_THAT(Out("nft list table inet " + table_),
              AllOf(HasSubstr("masquerade"), HasSubstr(config_.pod_cidr)));

  // Traffic over the bridge.
  EXPECT_EQ(Sh("ip netns exec " + ns1 + " busybox ping -c1 -W2 " + s2->ips[0]).first, 0);
  EXPECT_EQ(Sh("ip netns exec " + ns2 + " busybox ping -c1 -W2 " + s1->ips[0]).first, 0);
  EXPECT_EQ(Sh("ip netns exec " + ns1 + " busybox ping -c1 -W2 " + gateway).first, 0);
  EXPECT_EQ(Sh("ip netns exec " + ns2 + " busybox ping -c1 -W2 " + gateway).first, 0);
  EXPECT_EQ(Sh("busybox ping -c1 -W2 " + s1->ips[0]).first, 0) << "the node reaches its pods";

  ASSERT_THAT(backend_->TearDown(pod1), IsOk());
  ASSERT_THAT(backend_->TearDown(pod2), IsOk());
}

TEST_F(BridgeTest, HostPortReachesThePodFromLoopbackAndFromAnotherPod) {
  const std::string server_ns = AddNetns(), client_ns = AddNetns();
  const uint16_t host_port = FreePort();
  PodNetworkConfig server = Pod(server_ns, "srv");
  server.port_mappings = {{Protocol::kTcp, 8080, host_port, ""},
                          {Protocol::kUdp, 8080, host_port, ""},
                          {Protocol::kTcp, 9999, 0, ""}};
  PodNetworkConfig client = Pod(client_ns, "cli");
  absl::StatusOr<PodNetworkStatus> server_status = backend_->SetUp(server);
  ASSERT_THAT(server_status, IsOk());
  ASSERT_THAT(backend_->SetUp(client), IsOk());
  EXPECT_EQ(RuleCount(server.pod_id), 2);
  EXPECT_EQ(RuleCount(client.pod_id), 0);

  Background listener({"ip", "netns", "exec", server_ns, "python3", "-c", kPongServer});
  ASSERT_GT(listener.pid(), 0);

  // From the node itself, through 127.0.0.1: the pod sees the bridge's address as the source.
  const std::string gateway = subnet_ + "1";
  EXPECT_EQ(ReadFromHost("127.0.0.1", host_port), "pong from " + gateway);
  // From another network namespace on the bridge, through the node's bridge address.
  const auto [rc, out] = Sh(absl::StrCat("ip netns exec ", client_ns, " python3 -c \"", kPongClient,
                                         "\" ", gateway, " ", host_port));
  EXPECT_EQ(rc, 0) << out;
  EXPECT_THAT(out, HasSubstr("pong from " + gateway));
  // The pod reaches its own hostPort (hairpin through the bridge).
  const auto [hairpin_rc, hairpin_out] = Sh(absl::StrCat(
      "ip netns exec ", server_ns, " python3 -c \"", kPongClient, "\" ", gateway, " ", host_port));
  EXPECT_EQ(hairpin_rc, 0) << hairpin_out;
  EXPECT_THAT(hairpin_out, HasSubstr("pong from " + gateway));
  // The pod itself is still reachable directly.
  EXPECT_THAT(ReadFromHost(server_status->ips[0], 8080), HasSubstr("pong"));

  // TearDown takes exactly this pod's rules.
  ASSERT_THAT(backend_->TearDown(server), IsOk());
  EXPECT_EQ(RuleCount(server.pod_id), 0);
  EXPECT_THAT(Out("nft list chain inet " + table_ + " hostports"),
              Not(HasSubstr(absl::StrCat("dport ", host_port))));
  EXPECT_EQ(Sh("nft list chain inet " + table_ + " postrouting").first, 0)
      << "the shared rules stay";
  ASSERT_THAT(backend_->TearDown(client), IsOk());
}

TEST_F(BridgeTest, TearDownLeavesNothingAndIsIdempotent) {
  const std::string ns = AddNetns();
  PodNetworkConfig pod = Pod(ns, "t");
  pod.port_mappings = {{Protocol::kSctp, 80, FreePort(), "127.0.0.1"}};
  ASSERT_THAT(backend_->SetUp(pod), IsOk());
  EXPECT_TRUE(HostLinkExists(pod.pod_id));
  EXPECT_EQ(RuleCount(pod.pod_id), 1);
  EXPECT_EQ(Allocations(), 1u);
  // Setting up an attached pod again fails and undoes nothing of the first set-up.
  EXPECT_THAT(backend_->SetUp(pod),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("already attached")));
  EXPECT_EQ(RuleCount(pod.pod_id), 1);
  EXPECT_EQ(Allocations(), 1u);

  ASSERT_THAT(backend_->TearDown(pod), IsOk());
  EXPECT_FALSE(HostLinkExists(pod.pod_id));
  EXPECT_NE(Sh("ip -n " + ns + " link show eth0").first, 0);
  EXPECT_EQ(RuleCount(pod.pod_id), 0);
  EXPECT_EQ(Allocations(), 0u);
  EXPECT_THAT(backend_->TearDown(pod), IsOk());

  // With its namespace gone before TearDown.
  PodNetworkConfig gone = Pod(AddNetns(), "g");
  ASSERT_THAT(backend_->SetUp(gone), IsOk());
  ASSERT_EQ(Sh("ip netns del " + netns_.back()).first, 0);
  EXPECT_THAT(backend_->TearDown(gone), IsOk());
  EXPECT_FALSE(HostLinkExists(gone.pod_id));
  EXPECT_EQ(Allocations(), 0u);
  EXPECT_EQ(BridgePorts(), "");

  // A pod that never was.
  EXPECT_THAT(backend_->TearDown(Pod(ns, "never")), IsOk());
}

TEST_F(BridgeTest, AllocationsSurviveANewBackend) {
  PodNetworkConfig a = Pod(AddNetns(), "a"), b = Pod(AddNetns(), "b");
  absl::StatusOr<PodNetworkStatus> sa = backend_->SetUp(a);
  ASSERT_THAT(sa, IsOk());
  // cribd restarted: a new backend on the same store.
  backend_ = std::make_unique<BridgeBackend>(config_, *store_);
  absl::StatusOr<PodNetworkStatus> sb = backend_->SetUp(b);
  ASSERT_THAT(sb, IsOk());
  EXPECT_NE(sa->ips[0], sb->ips[0]);
  EXPECT_EQ(sb->ips[0], subnet_ + "3");
  EXPECT_EQ(Allocations(), 2u);
  EXPECT_THAT(backend_->TearDown(a), IsOk());
  EXPECT_THAT(backend_->TearDown(b), IsOk());
  EXPECT_EQ(Allocations(), 0u);
}

TEST_F(BridgeTest, AnExhaustedCidrIsResourceExhaustedAndLeavesNothing) {
  config_.pod_cidr = subnet_ + "0/29";  // .2 to .6
  backend_ = std::make_unique<BridgeBackend>(config_, *store_);
  std::vector<PodNetworkConfig> pods;
  for (int i = 0; i < 5; ++i) {
    pods.push_back(Pod(AddNetns(), absl::StrCat(i)));
    ASSERT_THAT(backend_->SetUp(pods.back()), IsOk());
  }
  PodNetworkConfig extra = Pod(AddNetns(), "extra");
  EXPECT_THAT(backend_->SetUp(extra),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       AllOf(HasSubstr(config_.pod_cidr), HasSubstr("allocate address"))));
  EXPECT_FALSE(HostLinkExists(extra.pod_id));
  EXPECT_EQ(Allocations(), 5u);
  for (const PodNetworkConfig& pod : pods) EXPECT_THAT(backend_->TearDown(pod), IsOk());
  EXPECT_EQ(Allocations(), 0u);
}

TEST_F(BridgeTest, SetPodCidrMovesNewPodsToTheNewRange) {
  PodNetworkConfig old_pod = Pod(AddNetns(), "old"), new_pod = Pod(AddNetns(), "new");
  ASSERT_THAT(backend_->SetUp(old_pod), IsOk());
  const std::string other = absl::StrCat("10.", 200 + pid_ % 50, ".", (pid_ / 50 + 128) % 256, ".");
  EXPECT_THAT(backend_->SetPodCidr("10.1.2.3/24"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("host bits")));
  ASSERT_THAT(backend_->SetPodCidr(other + "0/24"), IsOk());
  absl::StatusOr<PodNetworkStatus> s = backend_->SetUp(new_pod);
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ(s->ips[0], other + "2");
  EXPECT_THAT(Out("ip -4 -o addr show dev " + bridge_), HasSubstr(other + "1/24"));
  EXPECT_EQ(Sh("ip netns exec " + netns_[1] + " busybox ping -c1 -W2 " + other + "1").first, 0);
  EXPECT_THAT(backend_->TearDown(old_pod), IsOk());
  EXPECT_THAT(backend_->TearDown(new_pod), IsOk());
  EXPECT_EQ(Allocations(), 0u);
}

// The same failpoints as cribd's (CRIB_TEST_FAILPOINT), in this process.
TEST_F(BridgeTest, AFailureAfterEachStepLeavesNothing) {
  const std::string ns = AddNetns();
  for (const char* step :
       {"allocate address", "create veth pair", "configure pod interface", "add nftables rules"}) {
    SCOPED_TRACE(step);
    ::setenv("CRIB_TEST_FAILPOINT",
             absl::StrCat("network.bridge.after_", absl::StrReplaceAll(step, {{" ", "_"}})).c_str(),
             1);
    PodNetworkConfig pod = Pod(ns, "f");
    pod.port_mappings = {{Protocol::kTcp, 80, FreePort(), ""}};
    EXPECT_THAT(backend_->SetUp(pod), StatusIs(absl::StatusCode::kInternal,
                                               AllOf(HasSubstr(step), HasSubstr("failpoint"))));
    EXPECT_FALSE(HostLinkExists(pod.pod_id));
    EXPECT_NE(Sh("ip -n " + ns + " link show eth0").first, 0);
    EXPECT_EQ(RuleCount(pod.pod_id), 0);
    EXPECT_EQ(Allocations(), 0u);
    EXPECT_EQ(BridgePorts(), "");
  }
  // And with the failpoint off, the same pod sets up fine.
  ::unsetenv("CRIB_TEST_FAILPOINT");
  PodNetworkConfig pod = Pod(ns, "f");
  ASSERT_THAT(backend_->SetUp(pod), IsOk());
  EXPECT_THAT(backend_->TearDown(pod), IsOk());
}

TEST_F(BridgeTest, TwentyPodsConcurrentlyLeaveNothingBehind) {
  constexpr int kPods = 20;
  std::vector<PodNetworkConfig> pods;
  for (int i = 0; i < kPods; ++i) {
    pods.push_back(Pod(AddNetns(), absl::StrCat("c", i)));
    pods.back().port_mappings = {{Protocol::kTcp, 8080, static_cast<uint16_t>(20000 + i), ""}};
  }
  std::vector<absl::StatusOr<PodNetworkStatus>> results(kPods);
  {
    std::vector<std::thread> threads;
    for (int i = 0; i < kPods; ++i) {
      threads.emplace_back([&, i] { results[i] = backend_->SetUp(pods[i]); });
    }
    for (std::thread& t : threads) t.join();
  }
  std::set<std::string> ips;
  for (int i = 0; i < kPods; ++i) {
    ASSERT_THAT(results[i], IsOk());
    ips.insert(results[i]->ips[0]);
    EXPECT_THAT(Out("ip -n " + netns_[i] + " -4 -o addr show dev eth0"),
                HasSubstr(results[i]->ips[0] + "/24"));
    EXPECT_EQ(RuleCount(pods[i].pod_id), 1);
  }
  EXPECT_EQ(ips.size(), static_cast<size_t>(kPods));
  EXPECT_EQ(Allocations(), static_cast<size_t>(kPods));
  EXPECT_EQ(Sh("ip netns exec " + netns_[0] + " busybox ping -c1 -W2 " + results[kPods - 1]->ips[0])
                .first,
            0);

  std::vector<absl::Status> torn(kPods);
  {
    std::vector<std::thread> threads;
    for (int i = 0; i < kPods; ++i) {
      threads.emplace_back([&, i] { torn[i] = backend_->TearDown(pods[i]); });
    }
    for (std::thread& t : threads) t.join();
  }
  for (const absl::Status& s : torn) EXPECT_THAT(s, IsOk());
  EXPECT_EQ(BridgePorts(), "");
  EXPECT_THAT(Out("nft list table inet " + table_), Not(HasSubstr("pod:")));
  EXPECT_EQ(Allocations(), 0u);
  for (const std::string& ns : netns_) {
    EXPECT_NE(Sh("ip -n " + ns + " link show eth0").first, 0) << ns;
  }
}

TEST_F(BridgeTest, RemoveAllTakesTheTableAndTheBridge) {
  PodNetworkConfig pod = Pod(AddNetns(), "r");
  ASSERT_THAT(backend_->SetUp(pod), IsOk());
  ASSERT_THAT(backend_->TearDown(pod), IsOk());
  ASSERT_THAT(backend_->RemoveAll(), IsOk());
  EXPECT_NE(Sh("ip link show " + bridge_).first, 0);
  EXPECT_NE(Sh("nft list table inet " + table_).first, 0);
  EXPECT_THAT(backend_->RemoveAll(), IsOk());
}

}  // namespace
}  // namespace crib::network
