// The image store over a real metadata database and real directories: records, lookups by id,
// prefix, tag and digest, untagging, and GC of blobs and snapshots checked on disk.
#include "image/image_store.h"

#include <sys/stat.h>

#include <string>
#include <vector>

#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "image/digest.h"
#include "image/unpack.h"
#include "store/store.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace crib::image {
namespace {

using ::crib::testing::IsOk;
using ::crib::testing::StatusIs;
using ::crib::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

class ImageStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.root_dir = dir_.path() + "/root";
    auto store = store::Store::Open(config_.root_dir + "/metadata.db");
    ASSERT_THAT(store.status(), IsOk());
    store_ = *std::move(store);
    auto images = ImageStore::Open(config_, *store_);
    ASSERT_THAT(images.status(), IsOk());
    images_ = *std::move(images);
  }

  // An image whose blobs and snapshots are really on disk; layers named by `layer_texts`.
  Image MakeImage(const std::string& config_text, const std::vector<std::string>& layer_texts,
                  std::vector<std::string> tags, const std::string& user = "") {
    Image image;
    const std::string config =
        "{\"config\":{\"User\":\"" + user + "\"},\"x\":\"" + config_text + "\"}";
    image.id = Sha256Digest(config);
    EXPECT_THAT(images_->content().Put(image.id, config), IsOk());
    const std::string manifest = "{\"manifest\":\"" + config_text + "\"}";
    image.manifest_digest = Sha256Digest(manifest);
    EXPECT_THAT(images_->content().Put(image.manifest_digest, manifest), IsOk());
    std::vector<std::string> diff_ids;
    for (const std::string& text : layer_texts) {
      const std::string digest = Sha256Digest(text);
      if (!images_->content().Has(digest)) {
        EXPECT_THAT(images_->content().Put(digest, text), IsOk());
      }
      image.layers.push_back(digest);
      diff_ids.push_back(Sha256Digest("diff " + text));
      image.size += text.size();
    }
    image.chain_ids = ChainIds(diff_ids);
    for (const std::string& chain_id : image.chain_ids) {
      EXPECT_THAT(MakeDirs(images_->SnapshotPath(chain_id) + "/etc"), IsOk());
    }
    image.size += config.size();
    image.user = user;
    image.annotations["org.example.k"] = "v";
    for (std::string& tag : tags) {
      image.repo_tags.push_back("docker.io/library/" + tag);
    }
    image.repo_digests.push_back("docker.io/library/" + tags[0].substr(0, tags[0].find(':')) + "@" +
                                 image.manifest_digest);
    EXPECT_THAT(images_->Record(image), IsOk());
    return image;
  }

  TempDir dir_;
  Config config_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<ImageStore> images_;
};

TEST(NormalizeImageNameTest, FollowsDockerRules) {
  EXPECT_EQ(NormalizeImageName("busybox"), "docker.io/library/busybox:latest");
  EXPECT_EQ(NormalizeImageName("busybox:1.36"), "docker.io/library/busybox:1.36");
  EXPECT_EQ(NormalizeImageName("me/app"), "docker.io/me/app:latest");
  EXPECT_EQ(NormalizeImageName("localhost:5000/app"), "localhost:5000/app:latest");
  EXPECT_EQ(NormalizeImageName("127.0.0.1:41234/a/b:v1"), "127.0.0.1:41234/a/b:v1");
  const std::string digest = Sha256Digest("x");
  EXPECT_EQ(NormalizeImageName("busybox@" + digest), "docker.io/library/busybox@" + digest);
  EXPECT_EQ(NormalizeImageName("busybox@sha256:12"), "");
  EXPECT_EQ(NormalizeImageName("Busybox"), "");
  EXPECT_EQ(NormalizeImageName(""), "");
}

TEST_F(ImageStoreTest, RecordListAndStatus) {
  Image a = MakeImage("a", {"base", "top-a"}, {"app:1", "app:latest"}, "1000:1000");
  Image b = MakeImage("b", {"base"}, {"tool:v2"}, "nobody");

  auto all = images_->List();
  ASSERT_THAT(all.status(), IsOk());
  ASSERT_THAT(*all, SizeIs(2));

  for (const std::string& ref :
       {a.id, std::string(DigestHex(a.id)), std::string(DigestHex(a.id)).substr(0, 12),
        std::string("app:1"), std::string("docker.io/library/app:latest"), std::string("app"),
        a.repo_digests[0]}) {
    SCOPED_TRACE(ref);
    auto status = images_->Status(ref);
    ASSERT_THAT(status.status(), IsOk());
    EXPECT_EQ(status->id, a.id);
    EXPECT_THAT(status->repo_tags,
                ElementsAre("docker.io/library/app:1", "docker.io/library/app:latest"));
    EXPECT_THAT(status->repo_digests, ElementsAre(a.repo_digests[0]));
    EXPECT_EQ(status->size, a.size);
    EXPECT_EQ(status->uid, 1000);
    EXPECT_EQ(status->chain_ids, a.chain_ids);
    EXPECT_EQ(status->annotations.at("org.example.k"), "v");
    EXPECT_TRUE(status->config_json.empty());
  }
  auto verbose = images_->Status("tool:v2", /*verbose=*/true);
  ASSERT_THAT(verbose.status(), IsOk());
  EXPECT_EQ(verbose->username, "nobody");
  EXPECT_FALSE(verbose->uid.has_value());
  EXPECT_THAT(verbose->config_json, HasSubstr("\"User\":\"nobody\""));

  EXPECT_THAT(images_->Status("missing:1").status(),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  EXPECT_THAT(images_->Status(std::string(64, 'f')).status(),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));

  auto filtered = images_->List("tool:v2");
  ASSERT_THAT(filtered.status(), IsOk());
  ASSERT_THAT(*filtered, SizeIs(1));
  EXPECT_EQ((*filtered)[0].id, b.id);
  EXPECT_THAT(*images_->List("nothing-here"), IsEmpty());
}

TEST_F(ImageStoreTest, RemovingOneTagOfSeveralOnlyUntags) {
  Image a = MakeImage("a", {"base", "top-a"}, {"app:1", "app:latest"});
  ASSERT_THAT(images_->Remove("app:1"), IsOk());
  auto status = images_->Status(a.id);
  ASSERT_THAT(status.status(), IsOk());
  EXPECT_THAT(status->repo_tags, ElementsAre("docker.io/library/app:latest"));
  for (const std::string& layer : a.layers) EXPECT_TRUE(images_->content().Has(layer));
  for (const std::string& c : a.chain_ids) EXPECT_TRUE(Exists(images_->SnapshotPath(c)));
  EXPECT_THAT(images_->Status("app:1").status(),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));

  // The last tag takes the image with it, and its blobs and snapshots.
  ASSERT_THAT(images_->Remove("app"), IsOk());
  EXPECT_THAT(images_->Status(a.id).status(), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  EXPECT_FALSE(images_->content().Has(a.id));
  EXPECT_FALSE(images_->content().Has(a.manifest_digest));
  for (const std::string& layer : a.layers) EXPECT_FALSE(images_->content().Has(layer));
  for (const std::string& c : a.chain_ids) EXPECT_FALSE(Exists(images_->SnapshotPath(c)));
  EXPECT_THAT(images_->Remove("app"), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

TEST_F(ImageStoreTest, SharedLayersSurviveUntilTheLastImage) {
  Image a = MakeImage("a", {"base", "top-a"}, {"app:1"});
  Image b = MakeImage("b", {"base"}, {"tool:v2"});
  ASSERT_EQ(a.chain_ids[0], b.chain_ids[0]);
  ASSERT_THAT(images_->Remove(a.id), IsOk());
  EXPECT_TRUE(images_->content().Has(a.layers[0]));
  EXPECT_FALSE(images_->content().Has(a.layers[1]));
  EXPECT_TRUE(Exists(images_->SnapshotPath(a.chain_ids[0])));
  EXPECT_FALSE(Exists(images_->SnapshotPath(a.chain_ids[1])));
  EXPECT_TRUE(images_->content().Has(b.id));

  ASSERT_THAT(images_->Remove(b.repo_digests[0]), IsOk());
  EXPECT_THAT(*images_->List(), IsEmpty());
  EXPECT_THAT(*images_->content().List(), IsEmpty());
  EXPECT_FALSE(Exists(images_->SnapshotPath(b.chain_ids[0])));
}

TEST_F(ImageStoreTest, IndexesTheRepoDigestsNameGoWithTheImage) {
  // Pulled through two indexes (two tags of a multi-platform image, say), a third image
  // through a shared one.
  Image a = MakeImage("a", {"base", "top-a"}, {"app:1"});
  Image b = MakeImage("b", {"base"}, {"tool:1"});
  const std::string index1 = "{\"manifests\":[1]}", index2 = "{\"manifests\":[2]}",
                    shared = "{\"manifests\":[3]}";
  for (const std::string* index : {&index1, &index2, &shared}) {
    ASSERT_THAT(images_->content().Put(Sha256Digest(*index), *index), IsOk());
  }
  a.repo_digests = {"docker.io/library/app@" + Sha256Digest(index1),
                    "docker.io/library/app@" + Sha256Digest(shared)};
  ASSERT_THAT(images_->Record(a), IsOk());
  a.repo_tags = {"docker.io/library/app:2"};
  a.repo_digests = {"docker.io/library/app@" + Sha256Digest(index2)};
  ASSERT_THAT(images_->Record(a), IsOk());
  b.repo_digests = {"docker.io/library/tool@" + Sha256Digest(shared)};
  ASSERT_THAT(images_->Record(b), IsOk());

  ASSERT_THAT(images_->Remove(a.id), IsOk());
  EXPECT_FALSE(images_->content().Has(Sha256Digest(index1)));
  EXPECT_FALSE(images_->content().Has(Sha256Digest(index2)));
  EXPECT_TRUE(images_->content().Has(Sha256Digest(shared)));
  ASSERT_THAT(images_->Remove(b.id), IsOk());
  EXPECT_THAT(*images_->content().List(), IsEmpty());
}

TEST_F(ImageStoreTest, SnapshotsInUseAndLeasedAreKept) {
  Image a = MakeImage("a", {"base", "top-a"}, {"app:1"});
  images_->SetSnapshotInUse([&](absl::string_view chain_id) { return chain_id == a.chain_ids[1]; });
  {
    ImageStore::Lease lease(images_.get(), {a.layers[0]});
    ASSERT_THAT(images_->Remove("app:1"), IsOk());
  }
  EXPECT_TRUE(Exists(images_->SnapshotPath(a.chain_ids[1])));
  EXPECT_FALSE(Exists(images_->SnapshotPath(a.chain_ids[0])));
  EXPECT_TRUE(images_->content().Has(a.layers[0]));
  EXPECT_FALSE(images_->content().Has(a.layers[1]));
}

TEST_F(ImageStoreTest, RetaggingMovesTheName) {
  Image old_image = MakeImage("old", {"l1"}, {"app:latest"});
  Image new_image = MakeImage("new", {"l2"}, {"app:latest"});
  EXPECT_EQ(images_->Status("app:latest")->id, new_image.id);
  auto old_status = images_->Status(old_image.id);
  ASSERT_THAT(old_status.status(), IsOk());
  EXPECT_THAT(old_status->repo_tags, IsEmpty());
  EXPECT_THAT(old_status->repo_digests, SizeIs(1));
}

// The store's own file system: content and snapshots, not the containers' writable layers
// (the stats room's sampler measures those).
TEST_F(ImageStoreTest, FsInfoCountsTheStoreAndNotTheContainersDir) {
  MakeImage("a", {std::string(100000, 'x')}, {"app:1"});
  auto before = images_->FsInfo();
  ASSERT_THAT(before.status(), IsOk());
  EXPECT_EQ(before->mountpoint, config_.root_dir);
  EXPECT_GE(before->used_bytes, 100000u);
  EXPECT_GE(before->inodes_used, 8u);
  EXPECT_GT(before->timestamp_ns, 0);
  ASSERT_THAT(MakeDirs(config_.root_dir + "/containers/c1/upper"), IsOk());
  ASSERT_THAT(WriteFileAtomic(config_.root_dir + "/containers/c1/upper/f", std::string(50000, 'y')),
              IsOk());
  auto after = images_->FsInfo();
  ASSERT_THAT(after.status(), IsOk());
  EXPECT_EQ(after->used_bytes, before->used_bytes);
  EXPECT_EQ(after->inodes_used, before->inodes_used);
}

TEST_F(ImageStoreTest, OpenDeletesBlobsNoImageReferencesAndCollectGarbageSnapshotsToo) {
  Image a = MakeImage("a", {"base", "top-a"}, {"app:1"});
  // What a crash after a pull's commits but before its record leaves: blobs and snapshots
  // no image references.
  const std::string orphan = Sha256Digest("orphan layer");
  ASSERT_THAT(images_->content().Put(orphan, "orphan layer"), IsOk());
  const std::string gone = Sha256Digest("chain of no image"), used = Sha256Digest("in use");
  for (const std::string& chain_id : {gone, used}) {
    ASSERT_THAT(MakeDirs(images_->SnapshotPath(chain_id) + "/bin"), IsOk());
  }
  const std::vector<std::string> blobs_before = *images_->content().List();

  images_.reset();
  auto again = ImageStore::Open(config_, *store_);
  ASSERT_THAT(again.status(), IsOk());
  images_ = *std::move(again);
  EXPECT_FALSE(images_->content().Has(orphan));
  EXPECT_EQ(images_->content().List()->size(), blobs_before.size() - 1);
  for (const std::string& blob : {a.id, a.manifest_digest, a.layers[0], a.layers[1]}) {
    EXPECT_TRUE(images_->content().Has(blob)) << blob;
  }
  // A container may still use a snapshot whose image is gone: Open leaves them.
  EXPECT_TRUE(Exists(images_->SnapshotPath(gone)));

  images_->SetSnapshotInUse([&](absl::string_view chain_id) { return chain_id == used; });
  ASSERT_THAT(images_->CollectGarbage(), IsOk());
  EXPECT_FALSE(Exists(images_->SnapshotPath(gone)));
  EXPECT_TRUE(Exists(images_->SnapshotPath(used)));
  for (const std::string& c : a.chain_ids) EXPECT_TRUE(Exists(images_->SnapshotPath(c))) << c;
  EXPECT_TRUE(images_->Status("app:1").ok());
}

TEST_F(ImageStoreTest, OpenRemovesInterruptedUnpacks) {
  const std::string leftover = config_.root_dir + "/snapshots/.tmp-abc-1";
  ASSERT_THAT(MakeDirs(leftover + "/usr/bin"), IsOk());
  auto again = ImageStore::Open(config_, *store_);
  ASSERT_THAT(again.status(), IsOk());
  EXPECT_FALSE(Exists(leftover));
}

}  // namespace
}  // namespace crib::image
