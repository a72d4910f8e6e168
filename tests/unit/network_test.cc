// The bridge backend's pure logic: CIDRs, IPAM over a real store, port mapping checks.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "network/ipam.h"
#include "network/port_mapping.h"
#include "store/store.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace crib::network {
namespace {

using ::crib::testing::IsOk;
using ::crib::testing::StatusIs;
using ::crib::testing::TempDir;
using ::testing::AllOf;
using ::testing::HasSubstr;

TEST(Ipv4Cidr, ParsesAndRefusesBadOnes) {
  absl::StatusOr<Ipv4Cidr> cidr = Ipv4Cidr::Parse("10.88.0.0/16");
  ASSERT_THAT(cidr, IsOk());
  EXPECT_EQ(Ipv4ToString(cidr->gateway()), "10.88.0.1");
  EXPECT_EQ(Ipv4ToString(cidr->broadcast()), "10.88.255.255");
  EXPECT_EQ(cidr->ToString(), "10.88.0.0/16");
  EXPECT_THAT(Ipv4Cidr::Parse("10.88.0.1/16"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("10.88.0.0/16")));
  for (const char* bad : {"10.88.0.0", "10.88.0.0/31", "10.88.0.0/x", "fd00::/64", "", "/8"}) {
    EXPECT_THAT(Ipv4Cidr::Parse(bad), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(bad)))
        << bad;
  }
}

class IpamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<store::Store>> store =
        store::Store::Open(dir_.path() + "/metadata.db");
    ASSERT_THAT(store, IsOk());
    store_ = *std::move(store);
  }

  std::string AllocateText(Ipam& ipam, const Ipv4Cidr& cidr, const std::string& owner) {
    absl::StatusOr<IpLease> lease = ipam.Allocate(cidr, owner);
    EXPECT_THAT(lease, IsOk());
    return lease.ok() ? Ipv4ToString(lease->ip) : "";
  }

  TempDir dir_;
  std::unique_ptr<store::Store> store_;
};

TEST_F(IpamTest, HandsOutTheNextFreeAddressAndNeverTheReservedOnes) {
  const Ipv4Cidr cidr = *Ipv4Cidr::Parse("10.9.0.0/29");  // .2 to .6 for pods
  Ipam ipam(*store_);
  EXPECT_EQ(AllocateText(ipam, cidr, "a"), "10.9.0.2");
  EXPECT_EQ(AllocateText(ipam, cidr, "b"), "10.9.0.3");
  // The same owner keeps its address, and is told it is not new.
  absl::StatusOr<IpLease> again = ipam.Allocate(cidr, "a");
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(Ipv4ToString(again->ip), "10.9.0.2");
  EXPECT_FALSE(again->fresh);
  // A just-released address is not reused at once.
  ASSERT_THAT(ipam.Release("b"), IsOk());
  EXPECT_EQ(AllocateText(ipam, cidr, "c"), "10.9.0.4");
  EXPECT_EQ(AllocateText(ipam, cidr, "d"), "10.9.0.5");
  EXPECT_EQ(AllocateText(ipam, cidr, "e"), "10.9.0.6");
  // Wraps around past the broadcast address, skipping network and gateway, to the free .3.
  EXPECT_EQ(AllocateText(ipam, cidr, "f"), "10.9.0.3");
  EXPECT_THAT(ipam.Allocate(cidr, "g"), StatusIs(absl::StatusCode::kResourceExhausted,
                                                 AllOf(HasSubstr("10.9.0.0/29"), HasSubstr("g"))));
  absl::StatusOr<std::vector<store::IpAllocation>> rows = store_->ListIps("10.9.0.0/29");
  ASSERT_THAT(rows, IsOk());
  EXPECT_EQ(rows->size(), 5u);
  ASSERT_THAT(ipam.Release("nobody"), IsOk());
}

TEST_F(IpamTest, AllocationsSurviveANewIpamOnTheSameStore) {
  const Ipv4Cidr cidr = *Ipv4Cidr::Parse("10.9.1.0/24");
  {
    Ipam ipam(*store_);
    EXPECT_EQ(AllocateText(ipam, cidr, "a"), "10.9.1.2");
    EXPECT_EQ(AllocateText(ipam, cidr, "b"), "10.9.1.3");
  }
  Ipam restarted(*store_);
  // Continues after the newest allocation; never hands out what is recorded.
  EXPECT_EQ(AllocateText(restarted, cidr, "c"), "10.9.1.4");
  absl::StatusOr<IpLease> a = restarted.Allocate(cidr, "a");
  ASSERT_THAT(a, IsOk());
  EXPECT_EQ(Ipv4ToString(a->ip), "10.9.1.2");
}

TEST_F(IpamTest, SkipsTheAddressesOthersHoldAfterTheLastOne) {
  const Ipv4Cidr cidr = *Ipv4Cidr::Parse("10.9.2.0/24");
  Ipam ipam(*store_);
  EXPECT_EQ(AllocateText(ipam, cidr, "a"), "10.9.2.2");
  // Held past the few addresses tried first after the last one: the others are read then.
  for (int i = 3; i <= 9; ++i) {
    ASSERT_THAT(store_->ReserveIp("10.9.2.0/24", absl::StrCat("10.9.2.", i), "other"), IsOk());
  }
  EXPECT_EQ(AllocateText(ipam, cidr, "b"), "10.9.2.10");
  ASSERT_THAT(store_->ReserveIp("10.9.2.0/24", "10.9.2.11", "other"), IsOk());
  EXPECT_EQ(AllocateText(ipam, cidr, "c"), "10.9.2.12");
  absl::StatusOr<IpLease> b = ipam.Allocate(cidr, "b");
  ASSERT_THAT(b, IsOk());
  EXPECT_EQ(Ipv4ToString(b->ip), "10.9.2.10");
  EXPECT_FALSE(b->fresh);
}

TEST(PortMappings, BadOnesAreInvalidArgument) {
  EXPECT_THAT(ValidatePortMappings({}), IsOk());
  PortMapping ok{Protocol::kTcp, 80, 8080, ""};
  PortMapping no_host_port{Protocol::kUdp, 53, 0, ""};
  EXPECT_THAT(ValidatePortMappings({ok, no_host_port}), IsOk());
  PortMapping zero_with_ip{Protocol::kTcp, 80, 0, "127.0.0.1"};
  EXPECT_THAT(ValidatePortMappings({zero_with_ip}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("host port 0")));
  PortMapping no_container_port{Protocol::kTcp, 0, 8080, ""};
  EXPECT_THAT(ValidatePortMappings({no_container_port}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("container port 0")));
  PortMapping bad_ip{Protocol::kTcp, 80, 8080, "localhost"};
  EXPECT_THAT(ValidatePortMappings({bad_ip}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("localhost")));
  PortMapping bad_protocol{static_cast<Protocol>(7), 80, 8080, ""};
  EXPECT_THAT(ValidatePortMappings({bad_protocol}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("protocol")));
  PortMapping twice{Protocol::kTcp, 81, 8080, "0.0.0.0"};
  EXPECT_THAT(ValidatePortMappings({ok, twice}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("mapped twice")));
  PortMapping other_protocol{Protocol::kSctp, 81, 8080, ""};
  EXPECT_THAT(ValidatePortMappings({ok, other_protocol}), IsOk());

  EXPECT_THAT(MakePortMapping("tcp", 80, 70000, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("70000")));
  EXPECT_THAT(MakePortMapping("tcp", -1, 80, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("container port")));
  EXPECT_THAT(MakePortMapping("icmp", 80, 80, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("icmp")));
  absl::StatusOr<PortMapping> made = MakePortMapping("SCTP", 9, 10, "192.0.2.1");
  ASSERT_THAT(made, IsOk());
  EXPECT_EQ(made->protocol, Protocol::kSctp);
  EXPECT_EQ(made->host_port, 10);
  EXPECT_EQ(made->container_port, 9);
}

}  // namespace
}  // namespace crib::network
