// The ImageService through a real cribd: CRI's rules for missing images, and the store's
// directories and usage checked on disk.
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <string>

#include "common/files.h"
#include "common/unique_fd.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "support/cribd_process.h"
#include "support/status_matchers.h"

namespace crib::testing {
namespace {

using ::testing::HasSubstr;

class ImageServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<CribdProcess>> cribd = CribdProcess::Start(options_);
    ASSERT_THAT(cribd.status(), IsOk());
    cribd_ = *std::move(cribd);
  }

  TempDir dir_;
  CribdOptions options_ = CribdProcess::OptionsIn(dir_.path());
  std::unique_ptr<CribdProcess> cribd_;
};

TEST_F(ImageServiceTest, MissingImagesFollowCriRules) {
  cri::ImageStatusRequest status_request;
  status_request.mutable_image()->set_image("docker.io/library/busybox:latest");
  cri::ImageStatusResponse status;
  grpc::Status rpc =
      cribd_->Image()->ImageStatus(ContextWithDeadline().get(), status_request, &status);
  ASSERT_TRUE(rpc.ok()) << rpc.error_message();
  EXPECT_FALSE(status.has_image());

  cri::RemoveImageRequest remove_request;
  remove_request.mutable_image()->set_image("busybox");
  cri::RemoveImageResponse removed;
  rpc = cribd_->Image()->RemoveImage(ContextWithDeadline().get(), remove_request, &removed);
  EXPECT_TRUE(rpc.ok()) << rpc.error_message();

  cri::ListImagesResponse list;
  rpc = cribd_->Image()->ListImages(ContextWithDeadline().get(), cri::ListImagesRequest(), &list);
  ASSERT_TRUE(rpc.ok()) << rpc.error_message();
  EXPECT_EQ(list.images_size(), 0);

  status_request.mutable_image()->set_image("");
  rpc = cribd_->Image()->ImageStatus(ContextWithDeadline().get(), status_request, &status);
  EXPECT_EQ(rpc.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(rpc.error_message(), HasSubstr("empty"));
}

// Unpacks make and removals delete whole trees there: on ext4 cribd marks the snapshots'
// directory as a top of directory hierarchies, so that ext4 spreads them over its block groups.
TEST_F(ImageServiceTest, SnapshotsAreATopDirectoryOnExt4) {
  struct statfs fs;
  ASSERT_EQ(::statfs(options_.root_dir.c_str(), &fs), 0);
  if (fs.f_type != EXT4_SUPER_MAGIC) GTEST_SKIP() << options_.root_dir << " is not on ext4";
  const std::string path = options_.root_dir + "/snapshots";
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(fd) << path;
  int flags = 0;
  ASSERT_EQ(::ioctl(fd.get(), FS_IOC_GETFLAGS, &flags), 0) << path;
  EXPECT_NE(flags & FS_TOPDIR_FL, 0) << path;
}

// The store's file system, and the containers' writable layers as the stats sampler measures
// them: files under <root>/containers that belong to no container do not count.
TEST_F(ImageServiceTest, FsInfoReportsTheStoreAndTheContainersWritableLayers) {
  const std::string root = options_.root_dir;
  struct stat st;
  EXPECT_EQ(::stat((root + "/content/blobs/sha256").c_str(), &st), 0);
  EXPECT_EQ(::stat((root + "/snapshots").c_str(), &st), 0);
  ASSERT_THAT(MakeDirs(root + "/containers/c1"), IsOk());
  ASSERT_THAT(WriteFileAtomic(root + "/containers/c1/data", std::string(40000, 'x')), IsOk());
  ASSERT_THAT(WriteFileAtomic(root + "/snapshots/big", std::string(200000, 'x')), IsOk());

  cri::ImageFsInfoResponse info;
  grpc::Status rpc =
      cribd_->Image()->ImageFsInfo(ContextWithDeadline().get(), cri::ImageFsInfoRequest(), &info);
  ASSERT_TRUE(rpc.ok()) << rpc.error_message();
  ASSERT_EQ(info.image_filesystems_size(), 1);
  const cri::FilesystemUsage& images = info.image_filesystems(0);
  EXPECT_EQ(images.fs_id().mountpoint(), root);
  EXPECT_GE(images.used_bytes().value(), 200000u);
  EXPECT_GE(images.inodes_used().value(), 6u);
  EXPECT_GT(images.timestamp(), 0);
  ASSERT_EQ(info.container_filesystems_size(), 1);
  const cri::FilesystemUsage& containers = info.container_filesystems(0);
  EXPECT_EQ(containers.fs_id().mountpoint(), root + "/containers");
  EXPECT_EQ(containers.used_bytes().value(), 0u) << "no container";
  EXPECT_EQ(containers.inodes_used().value(), 0u);
  EXPECT_GT(containers.timestamp(), 0);
}

}  // namespace
}  // namespace crib::testing
