// The mount-point layer on real directories: image layers made here (with overlayfs' whiteouts
// and opaque directories), the layer made above them, and the merged view read through a real
// overlay mount with an empty writable layer, as a container's root file system is.
#include "image/mount_layer.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace crib::image {
namespace {

using ::crib::testing::IsOk;
using ::crib::testing::TempDir;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

const std::vector<MountPoint> kPoints = {{"/proc", false},     {"/dev", false},
                                         {"/sys", false},      {"/etc/hostname", true},
                                         {"/etc/hosts", true}, {"/etc/resolv.conf", true}};

class MountLayerTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (mounted_) ::umount2(Merged().c_str(), MNT_DETACH);
  }

  // Image layer `n` (0 is the base).
  std::string Layer(int n) { return absl::StrCat(dir_.path(), "/layer", n); }
  std::string Points() { return dir_.path() + "/points"; }
  std::string Merged() { return dir_.path() + "/merged"; }

  void MakeDir(const std::string& path, mode_t mode = 0755, uid_t uid = 0, gid_t gid = 0,
               time_t mtime = 1000) {
    ASSERT_THAT(MakeDirs(path, mode), IsOk());
    ASSERT_EQ(::chown(path.c_str(), uid, gid), 0);
    ASSERT_EQ(::chmod(path.c_str(), mode), 0);
    SetTime(path, mtime);
  }
  void MakeFile(const std::string& path, const std::string& data = "image\n") {
    ASSERT_THAT(WriteFileAtomic(path, data), IsOk());
  }
  void Whiteout(const std::string& path) {
    ASSERT_EQ(::mknod(path.c_str(), S_IFCHR | 0, makedev(0, 0)), 0);
  }
  void Opaque(const std::string& path) {
    ASSERT_EQ(::setxattr(path.c_str(), "trusted.overlay.opaque", "y", 1, 0), 0);
  }
  static void SetTime(const std::string& path, time_t mtime) {
    const struct timespec times[2] = {{mtime, 0}, {mtime, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW), 0);
  }

  // The image's layers, top first, as the container's lower directories.
  std::vector<std::string> Layers(int count) {
    std::vector<std::string> layers;
    for (int n = count - 1; n >= 0; --n) layers.push_back(Layer(n));
    return layers;
  }

  // The overlay a container gets: the points' layer above the image's, an empty upper.
  void MountMerged(const std::vector<std::string>& lowers) {
    for (const char* d : {"/upper", "/work", "/merged"})
      ASSERT_THAT(MakeDirs(dir_.path() + d), IsOk());
    const std::string options =
        absl::StrCat("lowerdir=", absl::StrJoin(lowers, ":"), ",upperdir=", dir_.path(),
                     "/upper,workdir=", dir_.path(), "/work");
    ASSERT_EQ(::mount("overlay", Merged().c_str(), "overlay", 0, options.c_str()), 0)
        << options << ": " << errno;
    mounted_ = true;
  }

  // Whether a layer was made in Points(); fails the test on an error.
  bool MakeLayer(const std::vector<std::string>& layers) {
    absl::StatusOr<bool> made = MakeMountPointLayer(layers, kPoints, Points());
    EXPECT_THAT(made.status(), IsOk());
    return made.value_or(false);
  }

  TempDir dir_;
  bool mounted_ = false;
};

TEST_F(MountLayerTest, AddsWhatTheImageLacksAndKeepsItsEtcAsItIs) {
  MakeDir(Layer(0));
  MakeDir(Layer(0) + "/etc", 0750, 7, 8, 12345);
  MakeFile(Layer(0) + "/etc/passwd");
  MakeFile(Layer(0) + "/etc/hosts");
  SetTime(Layer(0) + "/etc", 12345);
  MakeDir(Layer(0) + "/proc");
  MakeDir(Points());
  ASSERT_TRUE(MakeLayer(Layers(1)));
  // Only what the image lacks: not /proc, not /etc/hosts, not the image's other files.
  EXPECT_THAT(ListDirectory(Points()), UnorderedElementsAre("dev", "sys", "etc"));
  EXPECT_THAT(ListDirectory(Points() + "/etc"), UnorderedElementsAre("hostname", "resolv.conf"));

  MountMerged({Points(), Layer(0)});
  struct stat etc;
  ASSERT_EQ(::stat((Merged() + "/etc").c_str(), &etc), 0);
  EXPECT_EQ(etc.st_mode & 07777, 0750u);
  EXPECT_EQ(etc.st_uid, 7u);
  EXPECT_EQ(etc.st_gid, 8u);
  EXPECT_EQ(etc.st_mtime, 12345);
  EXPECT_THAT(ListDirectory(Merged() + "/etc"),
              UnorderedElementsAre("passwd", "hosts", "hostname", "resolv.conf"));
  EXPECT_EQ(*ReadFile(Merged() + "/etc/hosts"), "image\n");
  for (const char* file : {"/etc/hostname", "/etc/resolv.conf"}) {
    struct stat st;
    ASSERT_EQ(::stat((Merged() + file).c_str(), &st), 0) << file;
    EXPECT_TRUE(S_ISREG(st.st_mode)) << file;
    EXPECT_EQ(st.st_mode & 07777, 0644u) << file;
    EXPECT_EQ(st.st_size, 0) << file;
    EXPECT_EQ(st.st_uid, 0u) << file;
  }
  for (const char* d : {"/proc", "/dev", "/sys"}) {
    struct stat st;
    ASSERT_EQ(::stat((Merged() + d).c_str(), &st), 0) << d;
    EXPECT_TRUE(S_ISDIR(st.st_mode)) << d;
    EXPECT_EQ(st.st_mode & 07777, 0755u) << d;
  }
  // The writable layer holds nothing: no mount point was made in it, no /etc copied up.
  EXPECT_THAT(ListDirectory(dir_.path() + "/upper"), IsEmpty());
}

TEST_F(MountLayerTest, FollowsWhiteoutsAndOpaqueDirectoriesOfTheLayersBelow) {
  // Base: /etc with all three files. Middle: /etc/hosts whited out. Top: /etc opaque, holding
  // only resolv.conf; /sys whited out.
  MakeDir(Layer(0) + "/etc");
  for (const char* f : {"hostname", "hosts", "resolv.conf"}) MakeFile(Layer(0) + "/etc/" + f);
  MakeDir(Layer(0) + "/sys");
  MakeDir(Layer(1) + "/etc");
  Whiteout(Layer(1) + "/etc/hosts");
  MakeDir(Layer(2) + "/etc");
  Opaque(Layer(2) + "/etc");
  MakeFile(Layer(2) + "/etc/resolv.conf");
  Whiteout(Layer(2) + "/sys");
  MakeDir(Points());
  ASSERT_TRUE(MakeLayer(Layers(3)));
  EXPECT_THAT(ListDirectory(Points()), UnorderedElementsAre("proc", "dev", "sys", "etc"));
  // hostname is hidden by the opaque /etc, hosts by its whiteout; resolv.conf is the top's.
  EXPECT_THAT(ListDirectory(Points() + "/etc"), UnorderedElementsAre("hostname", "hosts"));
}

TEST_F(MountLayerTest, MakesNoneWhenTheImageHasEveryPoint) {
  MakeDir(Layer(0) + "/etc");
  for (const char* f : {"hostname", "hosts", "resolv.conf"}) MakeFile(Layer(0) + "/etc/" + f);
  for (const char* d : {"/proc", "/dev", "/sys"}) MakeDir(Layer(0) + d);
  MakeDir(Points());
  EXPECT_FALSE(MakeLayer(Layers(1)));
}

TEST_F(MountLayerTest, MakesNoneWhenAPointsWayIsNotADirectory) {
  // /etc a symlink (the init follows it inside the root): no layer could say what it holds.
  MakeDir(Layer(0) + "/private/etc");
  ASSERT_EQ(::symlink("private/etc", (Layer(0) + "/etc").c_str()), 0);
  MakeDir(Points());
  EXPECT_FALSE(MakeLayer(Layers(1)));
}

}  // namespace
}  // namespace crib::image
