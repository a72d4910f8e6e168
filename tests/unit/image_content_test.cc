// Digests and the content store on a real directory: verified writes, aborted writes, listing.
#include <sys/stat.h>

#include <filesystem>
#include <string>

#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "image/content_store.h"
#include "image/digest.h"
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

constexpr char kHelloDigest[] =
    "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

size_t CountEntries(const std::string& dir) {
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    (void)e;
    ++n;
  }
  return n;
}

TEST(DigestTest, Sha256OfKnownText) {
  EXPECT_EQ(Sha256Digest("hello"), kHelloDigest);
  Sha256 streamed;
  streamed.Update("he");
  streamed.Update("");
  streamed.Update("llo");
  EXPECT_EQ(streamed.Finish(), kHelloDigest);
  EXPECT_EQ(Sha256Digest(""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(DigestTest, Validation) {
  EXPECT_THAT(ValidateSha256(kHelloDigest), IsOk());
  EXPECT_THAT(ValidateSha256("sha512:abcd"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("sha512:abcd")));
  EXPECT_THAT(ValidateSha256("sha256:abc"),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  std::string upper = kHelloDigest;
  upper[10] = 'F';
  EXPECT_THAT(ValidateSha256(upper), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_EQ(DigestHex(kHelloDigest), std::string(kHelloDigest).substr(7));
}

TEST(ContentStoreTest, StreamedWriteIsVerifiedAndRenamedIntoPlace) {
  TempDir dir;
  auto store = ContentStore::Open(dir.path());
  ASSERT_THAT(store.status(), IsOk());
  auto writer = (*store)->NewWriter(kHelloDigest, 5);
  ASSERT_THAT(writer.status(), IsOk());
  ASSERT_THAT((*writer)->Write("hel"), IsOk());
  EXPECT_FALSE((*store)->Has(kHelloDigest));
  EXPECT_EQ(CountEntries(dir.path() + "/content/ingest"), 1u);
  ASSERT_THAT((*writer)->Write("lo"), IsOk());
  ASSERT_THAT((*writer)->Commit(), IsOk());
  EXPECT_TRUE((*store)->Has(kHelloDigest));
  EXPECT_EQ(CountEntries(dir.path() + "/content/ingest"), 0u);
  const std::string path =
      dir.path() + "/content/blobs/sha256/" + std::string(DigestHex(kHelloDigest));
  EXPECT_EQ((*store)->BlobPath(kHelloDigest), path);
  EXPECT_EQ(*ReadFile(path), "hello");
  EXPECT_EQ(*(*store)->Read(kHelloDigest), "hello");
  EXPECT_THAT(*(*store)->List(), ElementsAre(kHelloDigest));
  auto usage = (*store)->Usage();
  ASSERT_THAT(usage.status(), IsOk());
  EXPECT_GE(usage->inodes, 5u);  // content, blobs, sha256, ingest, the blob
  EXPECT_GT(usage->bytes, 0u);

  ASSERT_THAT((*store)->Delete(kHelloDigest), IsOk());
  EXPECT_FALSE(Exists(path));
  EXPECT_THAT((*store)->Delete(kHelloDigest), IsOk());
  EXPECT_THAT(*(*store)->List(), IsEmpty());
}

TEST(ContentStoreTest, DigestMismatchStoresNothingAndNamesBothDigests) {
  TempDir dir;
  auto store = ContentStore::Open(dir.path());
  ASSERT_THAT(store.status(), IsOk());
  auto writer = (*store)->NewWriter(kHelloDigest, 5);
  ASSERT_THAT(writer.status(), IsOk());
  ASSERT_THAT((*writer)->Write("jello"), IsOk());
  EXPECT_THAT((*writer)->Commit(), StatusIs(absl::StatusCode::kDataLoss,
                                            ::testing::AllOf(HasSubstr(kHelloDigest),
                                                             HasSubstr(Sha256Digest("jello")))));
  writer->reset();
  EXPECT_FALSE((*store)->Has(kHelloDigest));
  EXPECT_EQ(CountEntries(dir.path() + "/content/ingest"), 0u);
  EXPECT_EQ(CountEntries(dir.path() + "/content/blobs/sha256"), 0u);
}

TEST(ContentStoreTest, SizeIsEnforced) {
  TempDir dir;
  auto store = ContentStore::Open(dir.path());
  ASSERT_THAT(store.status(), IsOk());
  auto writer = (*store)->NewWriter(kHelloDigest, 4);
  ASSERT_THAT(writer.status(), IsOk());
  EXPECT_THAT((*writer)->Write("hello"),
              StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::_));
  auto short_writer = (*store)->NewWriter(kHelloDigest, 6);
  ASSERT_THAT((*short_writer)->Write("hello"), IsOk());
  EXPECT_THAT((*short_writer)->Commit(), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("6")));
  EXPECT_FALSE((*store)->Has(kHelloDigest));
}

TEST(ContentStoreTest, AbandonedWriterAndLeftoversAreRemoved) {
  TempDir dir;
  {
    auto store = ContentStore::Open(dir.path());
    ASSERT_THAT(store.status(), IsOk());
    auto writer = (*store)->NewWriter(kHelloDigest);
    ASSERT_THAT((*writer)->Write("hel"), IsOk());
    EXPECT_EQ(CountEntries(dir.path() + "/content/ingest"), 1u);
  }
  EXPECT_EQ(CountEntries(dir.path() + "/content/ingest"), 0u);
  // A crash leaves a temp file behind; opening the store again clears it.
  ASSERT_THAT(WriteFileAtomic(dir.path() + "/content/ingest/leftover", "x"), IsOk());
  auto store = ContentStore::Open(dir.path());
  ASSERT_THAT(store.status(), IsOk());
  EXPECT_EQ(CountEntries(dir.path() + "/content/ingest"), 0u);
  EXPECT_THAT((*store)->Put(kHelloDigest, "hello"), IsOk());
  EXPECT_THAT((*store)->NewWriter("md5:xyz").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
}

}  // namespace
}  // namespace crib::image
