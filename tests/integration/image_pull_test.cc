// PullImage and the other image RPCs through a real cribd against a real docker-registry on
// loopback, with the results checked on disk: blobs, snapshots, whiteouts, GC. Bad input (a
// traversing layer, a blob with the wrong digest, a connection dropped mid-blob) must leave the
// store as it was.
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "image/fs_util.h"
#include "image/image_store.h"
#include "image/unpack.h"
#include "store/store.h"
#include "support/cribd_process.h"
#include "support/machine.h"
#include "support/registry.h"
#include "support/status_matchers.h"

namespace crib::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;
using ::testing::UnorderedElementsAre;

std::string Hex(const std::string& digest) { return digest.substr(digest.find(':') + 1); }

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// Every entry under `dir`, relative, sorted: the store's state to compare before and after.
std::set<std::string> Tree(const std::string& dir) {
  std::set<std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    out.insert(std::filesystem::relative(it->path(), dir).string());
  }
  return out;
}

std::string RegistryBlobPath(const LocalRegistry& registry, const std::string& digest) {
  return absl::StrCat(registry.dir(), "/data/docker/registry/v2/blobs/sha256/",
                      Hex(digest).substr(0, 2), "/", Hex(digest), "/data");
}

class ImagePullTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto registry = LocalRegistry::Start();
    ASSERT_THAT(registry.status(), IsOk());
    registry_ = registry->release();
    auto images = registry_->Push();
    ASSERT_THAT(images.status(), IsOk());
    images_ = new TestImages(*std::move(images));
  }
  static void TearDownTestSuite() {
    delete registry_;
    registry_ = nullptr;
    delete images_;
    images_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(registry_, nullptr);
    auto cribd = CribdProcess::Start(options_);
    ASSERT_THAT(cribd.status(), IsOk());
    cribd_ = *std::move(cribd);
    root_ = options_.root_dir;
  }

  std::string Ref(const std::string& name) const {
    return absl::StrCat(registry_->host(), "/", name);
  }

  grpc::Status Pull(const std::string& ref, std::string* image_ref = nullptr,
                    absl::Duration deadline = absl::Seconds(60)) {
    cri::PullImageRequest request;
    request.mutable_image()->set_image(ref);
    cri::PullImageResponse response;
    grpc::Status status =
        cribd_->Image()->PullImage(ContextWithDeadline(deadline).get(), request, &response);
    if (image_ref != nullptr) *image_ref = response.image_ref();
    return status;
  }

  grpc::Status Remove(const std::string& ref) {
    cri::RemoveImageRequest request;
    request.mutable_image()->set_image(ref);
    cri::RemoveImageResponse response;
    return cribd_->Image()->RemoveImage(ContextWithDeadline().get(), request, &response);
  }

  std::vector<cri::Image> List(const std::string& filter = "") {
    cri::ListImagesRequest request;
    if (!filter.empty()) request.mutable_filter()->mutable_image()->set_image(filter);
    cri::ListImagesResponse response;
    EXPECT_TRUE(cribd_->Image()->ListImages(ContextWithDeadline().get(), request, &response).ok());
    return {response.images().begin(), response.images().end()};
  }

  cri::ImageStatusResponse Status(const std::string& ref, bool verbose = false) {
    cri::ImageStatusRequest request;
    request.mutable_image()->set_image(ref);
    request.set_verbose(verbose);
    cri::ImageStatusResponse response;
    EXPECT_TRUE(cribd_->Image()->ImageStatus(ContextWithDeadline().get(), request, &response).ok());
    return response;
  }

  std::string Snapshot(const std::string& chain_id) const {
    return absl::StrCat(root_, "/snapshots/", Hex(chain_id));
  }
  std::string Blob(const std::string& digest) const {
    return absl::StrCat(root_, "/content/blobs/sha256/", Hex(digest));
  }
  std::set<std::string> StoreTree() const {
    std::set<std::string> tree = Tree(root_ + "/content");
    for (const std::string& s : Tree(root_ + "/snapshots")) tree.insert("snapshots/" + s);
    return tree;
  }

  static LocalRegistry* registry_;
  static TestImages* images_;
  TempDir dir_;
  CribdOptions options_ = CribdProcess::OptionsIn(dir_.path());
  std::unique_ptr<CribdProcess> cribd_;
  std::string root_;
};

LocalRegistry* ImagePullTest::registry_ = nullptr;
TestImages* ImagePullTest::images_ = nullptr;

TEST_F(ImagePullTest, PullListStatusRemoveAndRepullOnDisk) {
  const TestImage& layers = images_->at("layers:latest");
  const std::string ref = Ref("layers:latest");
  std::string id;
  grpc::Status status = Pull(ref, &id);
  ASSERT_TRUE(status.ok()) << status.error_message() << cribd_->Log();
  EXPECT_EQ(id, layers.config);
  // The download ran in crib-fetch: cribd has neither libcurl nor its TLS stacks mapped.
  const std::string maps = Slurp(absl::StrCat("/proc/", cribd_->pid(), "/maps"));
  EXPECT_THAT(maps, Not(HasSubstr("libcurl")));
  EXPECT_THAT(maps, Not(HasSubstr("libgnutls")));

  std::vector<cri::Image> listed = List();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].id(), layers.config);
  EXPECT_THAT(listed[0].repo_tags(), ElementsAre(ref));
  EXPECT_THAT(listed[0].repo_digests(), ElementsAre(Ref("layers@" + layers.digest)));
  int64_t layer_bytes = 0;
  for (int64_t size : layers.layer_sizes) layer_bytes += size;
  EXPECT_GT(listed[0].size(), static_cast<uint64_t>(layer_bytes));

  cri::ImageStatusResponse verbose = Status(ref, /*verbose=*/true);
  ASSERT_TRUE(verbose.has_image());
  EXPECT_EQ(verbose.image().id(), layers.config);
  EXPECT_THAT(verbose.info().at("info"), HasSubstr("diff_ids"));
  EXPECT_EQ(Status(layers.config).image().id(), layers.config);
  EXPECT_EQ(Status(Ref("layers@" + layers.digest)).image().id(), layers.config);
  EXPECT_EQ(List(ref).size(), 1u);

  // Blobs and snapshots on disk, with the layers' special files.
  const std::vector<std::string> chain_ids = image::ChainIds(layers.diff_ids);
  ASSERT_EQ(chain_ids.size(), 5u);
  EXPECT_TRUE(Exists(Blob(layers.config)));
  EXPECT_TRUE(Exists(Blob(layers.digest)));
  for (const std::string& layer : layers.layers) EXPECT_TRUE(Exists(Blob(layer))) << layer;
  for (const std::string& c : chain_ids) EXPECT_TRUE(Exists(Snapshot(c))) << c;
  EXPECT_TRUE(Exists(Snapshot(chain_ids[0]) + "/bin/busybox"));
  struct stat st;
  const std::string changes = Snapshot(chain_ids[1]);
  ASSERT_EQ(::lstat((changes + "/data/hardlink").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 2u);
  ASSERT_EQ(::lstat((changes + "/data/setuid").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 04755u);
  ASSERT_EQ(::lstat((changes + "/data/owned").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000u);
  char target[64] = {};
  ASSERT_GT(::readlink((changes + "/data/abs-symlink").c_str(), target, sizeof target - 1), 0);
  EXPECT_STREQ(target, "/bin/busybox");
  // xattrs on a file and on a symlink itself; the kernel refuses user.* on a symlink.
  char value[64] = {};
  EXPECT_EQ(::lgetxattr((changes + "/data/keep").c_str(), "user.crib-test", value, sizeof value),
            9);
  EXPECT_STREQ(value, "on a file");
  std::memset(value, 0, sizeof value);
  EXPECT_EQ(
      ::lgetxattr((changes + "/data/symlink").c_str(), "trusted.crib-test", value, sizeof value),
      12);
  EXPECT_STREQ(value, "on a symlink");
  EXPECT_LT(::lgetxattr((changes + "/data/symlink").c_str(), "user.crib-test", value, sizeof value),
            0);
  EXPECT_THAT(cribd_->Log(), HasSubstr("data/symlink: xattr user.crib-test skipped"));
  const std::string whiteouts = Snapshot(chain_ids[2]);
  for (const char* name : {"/data/remove-me", "/data/gone"}) {
    ASSERT_EQ(::lstat((whiteouts + name).c_str(), &st), 0) << name;
    EXPECT_TRUE(S_ISCHR(st.st_mode));
    EXPECT_EQ(st.st_rdev, makedev(0, 0));
  }
  char opaque[8] = {};
  EXPECT_EQ(::getxattr((whiteouts + "/data/opaque").c_str(), "trusted.overlay.opaque", opaque,
                       sizeof opaque),
            1);
  EXPECT_STREQ(opaque, "y");
  EXPECT_EQ(*ReadFile(Snapshot(chain_ids[3]) + "/zstd/hello"), [] {
    std::string s;
    for (int i = 0; i < 100; ++i) s += "from a zstd layer\n";
    return s;
  }());
  EXPECT_EQ(*ReadFile(Snapshot(chain_ids[4]) + "/plain/hello"), "from an uncompressed layer\n");
  EXPECT_THAT(cribd_->Log(), HasSubstr(absl::StrCat("layer ", layers.layers[1])));

  // Remove by tag (its only one): everything goes.
  status = Remove(ref);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(List(), IsEmpty());
  EXPECT_FALSE(Status(ref).has_image());
  EXPECT_THAT(Tree(root_ + "/content/blobs/sha256"), IsEmpty());
  EXPECT_THAT(Tree(root_ + "/snapshots"), IsEmpty());
  EXPECT_TRUE(Remove(ref).ok());  // idempotent

  // And it comes back.
  status = Pull(ref, &id);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(id, layers.config);
  for (const std::string& c : chain_ids) EXPECT_TRUE(Exists(Snapshot(c))) << c;
}

TEST_F(ImagePullTest, UntagKeepsTheImageAndSharedLayersSurviveGc) {
  const TestImage& busybox = images_->at("busybox:latest");
  const TestImage& zstd = images_->at("zstd:latest");
  // The same image under two names: the registry answers to 127.0.0.1 and to localhost.
  const std::string by_ip = Ref("busybox:latest");
  const std::string by_name = absl::StrCat("localhost:", registry_->port(), "/busybox:latest");
  ASSERT_TRUE(Pull(by_ip).ok());
  grpc::Status status = Pull(by_name);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_TRUE(Pull(Ref("zstd:latest")).ok());
  ASSERT_EQ(List().size(), 2u);
  EXPECT_THAT(Status(busybox.config).image().repo_tags(), UnorderedElementsAre(by_ip, by_name));

  ASSERT_TRUE(Remove(by_ip).ok());
  cri::ImageStatusResponse left = Status(busybox.config);
  ASSERT_TRUE(left.has_image());
  EXPECT_THAT(left.image().repo_tags(), ElementsAre(by_name));
  const std::vector<std::string> busybox_chain = image::ChainIds(busybox.diff_ids);
  EXPECT_TRUE(Exists(Snapshot(busybox_chain[0])));

  // Removing busybox by id keeps the base layer zstd:latest shares.
  ASSERT_TRUE(Remove(busybox.config).ok());
  EXPECT_FALSE(Status(by_name).has_image());
  EXPECT_FALSE(Exists(Blob(busybox.config)));
  EXPECT_TRUE(Exists(Blob(busybox.layers[0])));
  EXPECT_TRUE(Exists(Snapshot(busybox_chain[0])));
  ASSERT_TRUE(Remove(Ref("zstd:latest")).ok());
  EXPECT_FALSE(Exists(Blob(zstd.layers[1])));
  EXPECT_FALSE(Exists(Blob(busybox.layers[0])));
  EXPECT_THAT(Tree(root_ + "/snapshots"), IsEmpty());
}

TEST_F(ImagePullTest, ImageUserAndFsInfo) {
  ASSERT_TRUE(Pull(Ref("user:latest")).ok());
  ASSERT_TRUE(Pull(Ref("username:latest")).ok());
  cri::Image user = Status(Ref("user:latest")).image();
  EXPECT_EQ(user.uid().value(), 1000);
  EXPECT_TRUE(user.username().empty());
  cri::Image username = Status(Ref("username:latest")).image();
  EXPECT_FALSE(username.has_uid());
  EXPECT_EQ(username.username(), "daemon");

  cri::ImageFsInfoResponse info;
  ASSERT_TRUE(cribd_->Image()
                  ->ImageFsInfo(ContextWithDeadline().get(), cri::ImageFsInfoRequest(), &info)
                  .ok());
  ASSERT_EQ(info.image_filesystems_size(), 1);
  // busybox-static alone is over 1 MB.
  EXPECT_GT(info.image_filesystems(0).used_bytes().value(), 1000000u);
  EXPECT_GT(info.image_filesystems(0).inodes_used().value(), 10u);
}

TEST_F(ImagePullTest, EvilLayersAreRefusedAndLeaveTheStoreAsItWas) {
  ::unlink("/tmp/escaped-by-absolute-path");
  ::unlink("/tmp/escaped-through-symlink");
  const std::set<std::string> before = StoreTree();
  for (const char* name :
       {"evil-traversal:latest", "evil-absolute:latest", "evil-symlink:latest"}) {
    SCOPED_TRACE(name);
    grpc::Status status = Pull(Ref(name));
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr("refused tar entry"));
    EXPECT_THAT(List(), IsEmpty());
    EXPECT_EQ(StoreTree(), before);
  }
  EXPECT_FALSE(Exists("/tmp/escaped-by-absolute-path"));
  EXPECT_FALSE(Exists("/tmp/escaped-through-symlink"));
  EXPECT_FALSE(Exists(dir_.path() + "/escaped-by-dotdot"));
  EXPECT_FALSE(Exists(root_ + "/escaped-by-dotdot"));
}

TEST_F(ImagePullTest, BlobWithTheWrongDigestStoresNothing) {
  // A registry of its own whose busybox layer is corrupted on disk.
  auto registry = LocalRegistry::Start();
  ASSERT_THAT(registry.status(), IsOk());
  auto pushed = (*registry)->Push({"busybox:latest", "multiarch:latest"});
  ASSERT_THAT(pushed.status(), IsOk());
  const std::string layer = pushed->at("busybox:latest").layers[0];
  const std::string path = RegistryBlobPath(**registry, layer);
  std::string bytes = *ReadFile(path);
  bytes[bytes.size() / 2] ^= 0x55;
  ASSERT_THAT(WriteFileAtomic(path, bytes), IsOk());

  const std::set<std::string> before = StoreTree();
  // The multi-platform image's linux/amd64 manifest has the same layer: its index, stored
  // before the layers, goes again too.
  for (const char* name : {"busybox:latest", "multiarch:latest"}) {
    SCOPED_TRACE(name);
    grpc::Status status = Pull(absl::StrCat((*registry)->host(), "/", name));
    EXPECT_FALSE(status.ok());
    EXPECT_THAT(status.error_message(), HasSubstr(layer));
    EXPECT_THAT(status.error_message(), HasSubstr("digest mismatch"));
    EXPECT_THAT(List(), IsEmpty());
    EXPECT_EQ(StoreTree(), before);
  }
}

TEST_F(ImagePullTest, MultiPlatformImageKeepsItsIndexUntilRemoved) {
  const TestImage& multiarch = images_->at("multiarch:latest");
  const TestImage& amd64 = multiarch.manifests.at("linux/amd64");
  std::string id;
  grpc::Status status = Pull(Ref("multiarch:latest"), &id);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(id, amd64.config);
  EXPECT_THAT(Status(id).image().repo_digests(), ElementsAre(Ref("multiarch@" + multiarch.digest)));
  // The index the repo digest names is in the store, verified, beside the chosen manifest.
  EXPECT_EQ(*ReadFile(Blob(multiarch.digest)),
            *ReadFile(RegistryBlobPath(*registry_, multiarch.digest)));
  EXPECT_TRUE(Exists(Blob(amd64.digest)));
  EXPECT_TRUE(Exists(Blob(amd64.config)));
  for (const auto& [platform, other] : multiarch.manifests) {
    if (platform != "linux/amd64") {
      EXPECT_FALSE(Exists(Blob(other.digest))) << platform;
    }
  }
  // Pulled again by the index digest: the same image, nothing more stored.
  const std::set<std::string> pulled = StoreTree();
  status = Pull(Ref("multiarch@" + multiarch.digest), &id);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(id, amd64.config);
  EXPECT_EQ(StoreTree(), pulled);

  ASSERT_TRUE(Remove(Ref("multiarch:latest")).ok());
  EXPECT_THAT(List(), IsEmpty());
  EXPECT_THAT(Tree(root_ + "/content/blobs/sha256"), IsEmpty());
  EXPECT_THAT(Tree(root_ + "/snapshots"), IsEmpty());
}

TEST_F(ImagePullTest, CredentialsFromTheRequestAndAWrongPasswordStoresNothing) {
  // A registry of its own behind htpasswd basic auth.
  LocalRegistryOptions auth;
  auth.basic_auth = true;
  auto registry = LocalRegistry::Start(auth);
  ASSERT_THAT(registry.status(), IsOk());
  ASSERT_THAT((*registry)->Push({"busybox:latest"}).status(), IsOk());
  const std::string ref = absl::StrCat((*registry)->host(), "/busybox:latest");
  const std::string wrong = "Wr0ng-Secret-xyz";

  auto pull_with = [&](const std::string& password) {
    cri::PullImageRequest request;
    request.mutable_image()->set_image(ref);
    request.mutable_auth()->set_username(auth.username);
    request.mutable_auth()->set_password(password);
    cri::PullImageResponse response;
    return cribd_->Image()->PullImage(ContextWithDeadline(absl::Seconds(60)).get(), request,
                                      &response);
  };

  const std::set<std::string> before = StoreTree();
  grpc::Status status = pull_with(wrong);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << status.error_message();
  EXPECT_THAT(status.error_message(), Not(HasSubstr(wrong)));
  EXPECT_THAT(List(), IsEmpty());
  EXPECT_EQ(StoreTree(), before);

  status = Pull(ref);  // no credentials at all
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << status.error_message();

  status = pull_with(auth.password);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(List(), SizeIs(1));
  // Neither secret reaches cribd's log, whatever its level.
  EXPECT_THAT(cribd_->Log(), Not(HasSubstr(wrong)));
  EXPECT_THAT(cribd_->Log(), Not(HasSubstr(auth.password)));
}

TEST_F(ImagePullTest, PullsOverTlsWithTheCaNamedInTheConfigFile) {
  LocalRegistryOptions tls;
  tls.tls = true;
  auto registry = LocalRegistry::Start(tls);
  ASSERT_THAT(registry.status(), IsOk());
  auto pushed = (*registry)->Push({"busybox:latest"});
  ASSERT_THAT(pushed.status(), IsOk());
  const std::string ref = absl::StrCat((*registry)->host(), "/busybox:latest");

  // Unconfigured, a loopback registry is plain HTTP: refused with what to configure.
  const std::set<std::string> before = StoreTree();
  grpc::Status status = Pull(ref);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("registry.ca_files"));
  EXPECT_EQ(StoreTree(), before);

  cribd_.reset();
  options_.config_text = absl::StrCat("[registry]\nca_files = { \"", (*registry)->host(), "\" = \"",
                                      (*registry)->certificates().ca_file, "\" }\n");
  auto cribd = CribdProcess::Start(options_);
  ASSERT_THAT(cribd.status(), IsOk());
  cribd_ = *std::move(cribd);
  std::string id;
  status = Pull(ref, &id);
  ASSERT_TRUE(status.ok()) << status.error_message() << cribd_->Log();
  const TestImage& busybox = pushed->at("busybox:latest");
  EXPECT_EQ(id, busybox.config);
  EXPECT_TRUE(Exists(Snapshot(image::ChainIds(busybox.diff_ids)[0]) + "/bin/busybox"));
}

TEST_F(ImagePullTest, ConnectionDroppedMidBlobStoresNothing) {
  // Serves busybox:latest from the real registry's files but cuts the layer in half.
  const TestImage& busybox = images_->at("busybox:latest");
  const std::string manifest = *ReadFile(RegistryBlobPath(*registry_, busybox.digest));
  const std::string config = *ReadFile(RegistryBlobPath(*registry_, busybox.config));
  const std::string layer = *ReadFile(RegistryBlobPath(*registry_, busybox.layers[0]));
  ScriptedHttpServer server([&](const HttpRequest& request, HttpConnection& connection) {
    const bool head = request.method == "HEAD";
    auto respond = [&](const std::string& body, const std::string& type,
                       const std::string& digest) {
      std::vector<std::pair<std::string, std::string>> headers = {
          {"Content-Type", type}, {"Docker-Content-Digest", digest}};
      if (!head) {
        connection.Respond(200, body, headers);
        return;
      }
      std::string raw = absl::StrCat(
          "HTTP/1.1 200 OK\r\nContent-Length: ", body.size(), "\r\nContent-Type: ", type,
          "\r\nDocker-Content-Digest: ", digest, "\r\nConnection: close\r\n\r\n");
      connection.Write(raw);
    };
    if (request.target == "/v2/" || request.target == "/v2") {
      connection.Respond(200, "{}", {{"Content-Type", "application/json"}});
    } else if (absl::StrContains(request.target, "/manifests/")) {
      respond(manifest, busybox.media_type, busybox.digest);
    } else if (absl::StrContains(request.target, busybox.config)) {
      respond(config, "application/octet-stream", busybox.config);
    } else if (absl::StrContains(request.target, busybox.layers[0])) {
      connection.Write(absl::StrCat("HTTP/1.1 200 OK\r\nContent-Length: ", layer.size(),
                                    "\r\nContent-Type: application/octet-stream\r\n",
                                    "Connection: close\r\n\r\n"));
      if (!head) connection.Write(absl::string_view(layer).substr(0, layer.size() / 2));
    } else {
      connection.Respond(404, "{\"errors\":[{\"code\":\"NOT_FOUND\"}]}");
    }
  });
  const std::set<std::string> before = StoreTree();
  grpc::Status status = Pull(absl::StrCat(server.host(), "/busybox:latest"));
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.error_message(), HasSubstr(busybox.layers[0]));
  EXPECT_THAT(List(), IsEmpty());
  EXPECT_EQ(StoreTree(), before);
}

TEST_F(ImagePullTest, ClientDeadlineCancelsThePullAndLeavesNothing) {
  // Serves busybox:latest but stalls half-way through the layer.
  const TestImage& busybox = images_->at("busybox:latest");
  const std::string manifest = *ReadFile(RegistryBlobPath(*registry_, busybox.digest));
  const std::string config = *ReadFile(RegistryBlobPath(*registry_, busybox.config));
  const std::string layer = *ReadFile(RegistryBlobPath(*registry_, busybox.layers[0]));
  ScriptedHttpServer server([&](const HttpRequest& request, HttpConnection& connection) {
    if (request.method == "HEAD") {
      connection.Respond(404, "");
    } else if (request.target == "/v2/" || request.target == "/v2") {
      connection.Respond(200, "{}", {{"Content-Type", "application/json"}});
    } else if (absl::StrContains(request.target, "/manifests/")) {
      connection.Respond(
          200, manifest,
          {{"Content-Type", busybox.media_type}, {"Docker-Content-Digest", busybox.digest}});
    } else if (absl::StrContains(request.target, busybox.config)) {
      connection.Respond(200, config, {{"Content-Type", "application/octet-stream"}});
    } else if (absl::StrContains(request.target, busybox.layers[0])) {
      connection.Write(absl::StrCat("HTTP/1.1 200 OK\r\nContent-Length: ", layer.size(),
                                    "\r\nContent-Type: application/octet-stream\r\n\r\n"));
      connection.Write(absl::string_view(layer).substr(0, layer.size() / 2));
      connection.Stall(absl::Seconds(20));
    } else {
      connection.Respond(404, "");
    }
  });
  const std::set<std::string> before = StoreTree();
  grpc::Status status =
      Pull(absl::StrCat(server.host(), "/busybox:latest"), nullptr, absl::Seconds(3));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << status.error_message();
  // The daemon notices the cancellation and removes the partial blob and snapshot.
  const absl::Time give_up = absl::Now() + absl::Seconds(15);
  while (StoreTree() != before && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(StoreTree(), before);
  EXPECT_THAT(List(), IsEmpty());
  EXPECT_THAT(cribd_->Log(), HasSubstr("cancel"));
}

// An image store of its own in `dir`, for what the RPCs cannot show.
struct DirectStore {
  Config config;
  std::unique_ptr<store::Store> metadata;
  std::unique_ptr<image::ImageStore> images;

  explicit DirectStore(const std::string& dir, Config base = {}) : config(std::move(base)) {
    config.helper_dir = CRIB_HELPER_DIR;
    config.root_dir = dir + "/root";
    EXPECT_THAT(MakeDirs(config.root_dir), IsOk());
    auto opened = store::Store::Open(config.root_dir + "/metadata.db");
    EXPECT_THAT(opened.status(), IsOk());
    metadata = *std::move(opened);
    auto store = image::ImageStore::Open(config, *metadata);
    EXPECT_THAT(store.status(), IsOk());
    images = *std::move(store);
  }
  std::string SnapshotsDir() const { return config.root_dir + "/snapshots"; }
};

TEST_F(ImagePullTest, UnpackingAStoredBlobStopsWhenCancelled) {
  const TestImage& layers = images_->at("layers:latest");
  const std::vector<std::string> chain_ids = image::ChainIds(layers.diff_ids);
  TempDir dir;
  DirectStore direct(dir.path());
  ASSERT_THAT(direct.images->Pull(Ref("layers:latest"), {}).status(), IsOk());
  // The blobs stay, the snapshots go: what a crash between a blob's commit and its snapshot's
  // leaves. The next pull unpacks from the stored blobs without fetching them.
  for (const std::string& c : chain_ids) {
    ASSERT_THAT(image::RemoveAll(direct.images->SnapshotPath(c)), IsOk());
  }
  // The client gives up once an unpack has started.
  image::registry::PullOptions options;
  options.cancelled = [&] {
    for (const std::string& name : Tree(direct.SnapshotsDir())) {
      if (absl::StartsWith(name, ".tmp-")) return true;
    }
    return false;
  };
  EXPECT_THAT(direct.images->Pull(Ref("layers:latest"), options).status(),
              StatusIs(absl::StatusCode::kCancelled, HasSubstr("cancelled")));
  // No snapshot committed after the cancel, no partial one left.
  EXPECT_THAT(Tree(direct.SnapshotsDir()), IsEmpty());
  for (const std::string& layer : layers.layers) {
    EXPECT_TRUE(direct.images->content().Has(layer)) << layer;
  }

  // Not cancelled, the snapshots come back from the stored blobs.
  ASSERT_THAT(direct.images->Pull(Ref("layers:latest"), {}).status(), IsOk());
  for (const std::string& c : chain_ids) EXPECT_TRUE(Exists(direct.images->SnapshotPath(c))) << c;
}

TEST_F(ImagePullTest, LayersDownloadMaxConcurrentDownloadsAtATime) {
  // Serves layers:latest from the real registry's files, holding each layer a moment.
  const TestImage& layers = images_->at("layers:latest");
  ASSERT_EQ(layers.layers.size(), 5u);
  std::atomic<int> active{0}, most{0};
  ScriptedHttpServer server([&](const HttpRequest& request, HttpConnection& connection) {
    if (request.target == "/v2/" || request.target == "/v2") {
      connection.Respond(200, "{}", {{"Content-Type", "application/json"}});
      return;
    }
    if (absl::StrContains(request.target, "/manifests/")) {
      connection.Respond(200, *ReadFile(RegistryBlobPath(*registry_, layers.digest)),
                         {{"Content-Type", layers.media_type}});
      return;
    }
    const size_t at = request.target.find("/blobs/");
    if (at == std::string::npos) {
      connection.Respond(404, "");
      return;
    }
    const std::string digest = request.target.substr(at + 7);
    const bool layer =
        std::find(layers.layers.begin(), layers.layers.end(), digest) != layers.layers.end();
    if (layer) {
      const int now = ++active;
      for (int seen = most.load(); now > seen && !most.compare_exchange_weak(seen, now);) {
      }
      connection.Stall(absl::Milliseconds(500));
    }
    connection.Respond(200, *ReadFile(RegistryBlobPath(*registry_, digest)),
                       {{"Content-Type", "application/octet-stream"}});
    if (layer) --active;
  });
  const std::string ref = absl::StrCat(server.host(), "/layers:latest");
  for (int workers : {1, 3}) {
    SCOPED_TRACE(workers);
    most = 0;
    TempDir dir;
    Config config;
    config.registry.max_concurrent_downloads = workers;
    DirectStore direct(dir.path(), config);
    ASSERT_THAT(direct.images->Pull(ref, {}).status(), IsOk());
    EXPECT_EQ(most.load(), workers);
  }
}

TEST_F(ImagePullTest, ARestartAfterAKilledPullLeavesNothingOfIt) {
  // Serves busybox:latest but stalls half-way through the layer, long after the config and
  // manifest blobs are committed.
  const TestImage& busybox = images_->at("busybox:latest");
  const std::string manifest = *ReadFile(RegistryBlobPath(*registry_, busybox.digest));
  const std::string config = *ReadFile(RegistryBlobPath(*registry_, busybox.config));
  const std::string layer = *ReadFile(RegistryBlobPath(*registry_, busybox.layers[0]));
  std::atomic<bool> stalled{false};
  ScriptedHttpServer server([&](const HttpRequest& request, HttpConnection& connection) {
    if (request.target == "/v2/" || request.target == "/v2") {
      connection.Respond(200, "{}", {{"Content-Type", "application/json"}});
    } else if (absl::StrContains(request.target, "/manifests/")) {
      connection.Respond(200, manifest, {{"Content-Type", busybox.media_type}});
    } else if (absl::StrContains(request.target, busybox.config)) {
      connection.Respond(200, config, {{"Content-Type", "application/octet-stream"}});
    } else if (absl::StrContains(request.target, busybox.layers[0])) {
      connection.Write(absl::StrCat("HTTP/1.1 200 OK\r\nContent-Length: ", layer.size(),
                                    "\r\nContent-Type: application/octet-stream\r\n\r\n"));
      connection.Write(absl::string_view(layer).substr(0, layer.size() / 2));
      stalled = true;
      connection.Stall(absl::Seconds(20));
    } else {
      connection.Respond(404, "");
    }
  });
  const std::set<std::string> before = StoreTree();
  std::thread pull([&] { Pull(absl::StrCat(server.host(), "/busybox:latest")); });
  const absl::Time give_up = absl::Now() + absl::Seconds(20);
  while (!stalled && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(20));
  ASSERT_TRUE(stalled);
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_TRUE(Exists(Blob(busybox.config)));  // committed before the layers
  EXPECT_NE(StoreTree(), before);
  cribd_->SignalAndWait(SIGKILL);
  pull.join();

  auto cribd = CribdProcess::Start(options_);
  ASSERT_THAT(cribd.status(), IsOk());
  cribd_ = *std::move(cribd);
  EXPECT_EQ(StoreTree(), before);
  EXPECT_THAT(List(), IsEmpty());
}

TEST_F(ImagePullTest, ConcurrentPullsShareOneDownload) {
  const TestImage& layers = images_->at("layers:latest");
  std::vector<std::thread> pulls;
  std::vector<grpc::Status> results(3);
  for (size_t i = 0; i < results.size(); ++i) {
    pulls.emplace_back([&, i] { results[i] = Pull(Ref("layers:latest")); });
  }
  for (std::thread& t : pulls) t.join();
  for (const grpc::Status& s : results) EXPECT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(List().size(), 1u);
  // One "fetched" line per layer however many pulls asked for it, and none for a pull of
  // what is already there.
  ASSERT_TRUE(Pull(Ref("layers:latest")).ok());
  const std::string log = cribd_->Log();
  for (const std::string& layer : layers.layers) {
    size_t count = 0;
    for (size_t pos = log.find("layer " + layer + " of"); pos != std::string::npos;
         pos = log.find("layer " + layer + " of", pos + 1)) {
      ++count;
    }
    EXPECT_EQ(count, 1u) << layer;
  }
}

}  // namespace
}  // namespace crib::testing
