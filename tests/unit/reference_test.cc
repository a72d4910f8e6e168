#include "image/reference.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "support/status_matchers.h"

namespace crib::image {
namespace {

using ::crib::testing::IsOk;
using ::crib::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

const std::string kHex(64, 'a');
const std::string kDigest = "sha256:" + std::string(64, 'a');

struct Case {
  std::string text;
  std::string domain, path, tag, digest;
};

class Normalizes : public ::testing::TestWithParam<Case> {};

TEST_P(Normalizes, ToDomainPathTagDigest) {
  const Case& c = GetParam();
  absl::StatusOr<Reference> ref = ParseReference(c.text);
  ASSERT_THAT(ref, IsOk()) << c.text;
  EXPECT_EQ(ref->domain, c.domain) << c.text;
  EXPECT_EQ(ref->path, c.path) << c.text;
  EXPECT_EQ(ref->tag, c.tag) << c.text;
  EXPECT_EQ(ref->digest, c.digest) << c.text;
  // The normalized form parses back to itself.
  absl::StatusOr<Reference> again = ParseReference(ref->String());
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(*again, *ref);
}

INSTANTIATE_TEST_SUITE_P(
    Reference, Normalizes,
    ::testing::Values(
        Case{"busybox", "docker.io", "library/busybox", "latest", ""},
        Case{"busybox:1.36", "docker.io", "library/busybox", "1.36", ""},
        Case{"busybox@" + kDigest, "docker.io", "library/busybox", "", kDigest},
        Case{"busybox:1.36@" + kDigest, "docker.io", "library/busybox", "1.36", kDigest},
        Case{"library/busybox", "docker.io", "library/busybox", "latest", ""},
        Case{"docker.io/busybox", "docker.io", "library/busybox", "latest", ""},
        Case{"docker.io/library/busybox:musl", "docker.io", "library/busybox", "musl", ""},
        Case{"index.docker.io/busybox", "docker.io", "library/busybox", "latest", ""},
        Case{"user/app", "docker.io", "user/app", "latest", ""},
        Case{"user/app/sub", "docker.io", "user/app/sub", "latest", ""},
        Case{"localhost/app", "localhost", "app", "latest", ""},
        Case{"localhost:5000/app:v1", "localhost:5000", "app", "v1", ""},
        Case{"127.0.0.1:41234/busybox", "127.0.0.1:41234", "busybox", "latest", ""},
        Case{"registry.k8s.io/pause:3.9", "registry.k8s.io", "pause", "3.9", ""},
        Case{"quay.io/coreos/etcd:v3.5.0", "quay.io", "coreos/etcd", "v3.5.0", ""},
        Case{"gcr.io/google-containers/a_b__c.d-e--f", "gcr.io", "google-containers/a_b__c.d-e--f",
             "latest", ""},
        Case{"Example.COM/app", "Example.COM", "app", "latest", ""},
        Case{"my-registry.example.com:443/team/app:1.0_rc-1", "my-registry.example.com:443",
             "team/app", "1.0_rc-1", ""},
        Case{"[::1]:5000/app", "[::1]:5000", "app", "latest", ""},
        Case{"app:" + std::string(128, 'x'), "docker.io", "library/app", std::string(128, 'x'), ""},
        Case{"app:_tag", "docker.io", "library/app", "_tag", ""},
        Case{"app:TAG.Upper-1", "docker.io", "library/app", "TAG.Upper-1", ""},
        Case{"app@sha512:" + std::string(128, 'b'), "docker.io", "library/app", "",
             "sha512:" + std::string(128, 'b')},
        Case{"host:5000/app@" + kDigest, "host:5000", "app", "", kDigest}));

class Rejects : public ::testing::TestWithParam<std::string> {};

TEST_P(Rejects, WithInvalidArgumentNamingTheReference) {
  const std::string& text = GetParam();
  EXPECT_THAT(ParseReference(text),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("invalid image reference"), HasSubstr(text))))
      << text;
}

INSTANTIATE_TEST_SUITE_P(
    Reference, Rejects,
    ::testing::Values("", ":latest", "@" + kDigest, "Busybox", "docker.io/Library/busybox",
                      "busybox:", "busybox:-tag", "busybox:.tag", "busybox:a/b",
                      "busybox:" + std::string(129, 'x'), "busybox@", "busybox@sha256:abc",
                      "busybox@sha256:" + std::string(64, 'A'),
                      "busybox@sha256:" + std::string(63, 'a'),
                      "busybox@sha256:" + std::string(65, 'a'), "busybox@md5:" + kHex,
                      "busybox@" + kHex, "busy__-box", "busy..box", "-busybox", "busybox-",
                      "busybox_", "a//b", "a/", "/a", "localhost:/a", "localhost:port/a",
                      "-bad.example.com/a", "bad-.example.com/a", "exa_mple.com/a", "host:123456/a",
                      "a b", "a\tb", "busybox:tag@sha256:zz", kHex, "docker.io/" + kHex,
                      "example.com/" + std::string(250, 'a')));

TEST(Reference, MessagesSayWhatIsWrong) {
  EXPECT_THAT(ParseReference("Busybox"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must be lowercase")));
  EXPECT_THAT(ParseReference("busybox:-x"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid tag \"-x\"")));
  EXPECT_THAT(
      ParseReference("busybox@sha256:abc"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("wants 64 hex digits, got 3")));
  EXPECT_THAT(ParseReference("busybox@md5:" + kHex),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unsupported algorithm")));
}

TEST(Reference, StringAndName) {
  absl::StatusOr<Reference> ref = ParseReference("busybox:1.36@" + kDigest);
  ASSERT_THAT(ref, IsOk());
  EXPECT_EQ(ref->Name(), "docker.io/library/busybox");
  EXPECT_EQ(ref->String(), "docker.io/library/busybox:1.36@" + kDigest);
  EXPECT_EQ(ref->Familiar(), "busybox:1.36@" + kDigest);
  ref = ParseReference("localhost:5000/app");
  ASSERT_THAT(ref, IsOk());
  EXPECT_EQ(ref->String(), "localhost:5000/app:latest");
  EXPECT_EQ(ref->Familiar(), "localhost:5000/app:latest");
  ref = ParseReference("user/app@" + kDigest);
  ASSERT_THAT(ref, IsOk());
  EXPECT_EQ(ref->String(), "docker.io/user/app@" + kDigest);
  EXPECT_EQ(ref->Familiar(), "user/app@" + kDigest);
}

TEST(Reference, ValidateDigest) {
  EXPECT_THAT(ValidateDigest(kDigest), IsOk());
  EXPECT_THAT(ValidateDigest("sha256"), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(ValidateDigest("sha256:" + std::string(64, 'g')),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not lowercase hex")));
}

}  // namespace
}  // namespace crib::image
