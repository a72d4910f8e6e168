// Tests of the metadata store against real SQLite files in a fresh temporary directory: CRUD per
// kind, uniqueness and references, transactions that fail, schema versions, and processes killed
// with SIGKILL in the middle of a transaction or right after one.
#include "store/store.h"

#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/schema.h"
#include "store/sqlite.h"

namespace crib::store {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

const absl::Status& GetStatus(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

MATCHER(IsOk, "is OK") {
  const absl::Status& status = GetStatus(arg);
  *result_listener << "status: " << status;
  return status.ok();
}

MATCHER_P2(StatusIs, code, message_matcher, "") {
  const absl::Status& status = GetStatus(arg);
  *result_listener << "status: " << status;
  return status.code() == code && testing::Matches(message_matcher)(std::string(status.message()));
}

#define TEST_CONCAT_INNER(a, b) a##b
#define TEST_CONCAT(a, b) TEST_CONCAT_INNER(a, b)
#define ASSERT_OK_AND_ASSIGN(lhs, expr) \
  ASSERT_OK_AND_ASSIGN_IMPL(TEST_CONCAT(status_or_, __LINE__), lhs, expr)
// lhs is a declaration and status_or a name: neither can take parentheses.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define ASSERT_OK_AND_ASSIGN_IMPL(status_or, lhs, expr) \
  auto status_or = (expr);                              \
  ASSERT_THAT(status_or, IsOk());                       \
  lhs = std::move(status_or).value()
// NOLINTEND(bugprone-macro-parentheses)

PodRecord Pod(std::string id, std::string name = "web", uint32_t attempt = 0) {
  PodRecord pod;
  pod.id = std::move(id);
  pod.name = std::move(name);
  pod.namespace_ = "default";
  pod.uid = "uid-1";
  pod.attempt = attempt;
  pod.state = 1;
  pod.created_at_ns = 1000;
  pod.data = std::string("pod\0blob", 8);
  return pod;
}

ContainerRecord Container(std::string id, std::string pod_id, std::string name = "app",
                          uint32_t attempt = 0) {
  ContainerRecord container;
  container.id = std::move(id);
  container.pod_id = std::move(pod_id);
  container.name = std::move(name);
  container.attempt = attempt;
  container.state = 2;
  container.created_at_ns = 2000;
  container.data = "{\"image\":\"busybox\"}";
  return container;
}

ImageRecord Image(std::string id, uint64_t size) {
  ImageRecord image;
  image.id = std::move(id);
  image.size = size;
  image.data = "manifest";
  return image;
}

std::vector<std::string> PodIds(const std::vector<PodRecord>& pods) {
  std::vector<std::string> ids;
  ids.reserve(pods.size());
  for (const PodRecord& pod : pods) ids.push_back(pod.id);
  return ids;
}

class StoreTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string dir = testing::TempDir() + "crib-store-test-XXXXXX";
    ASSERT_NE(mkdtemp(dir.data()), nullptr) << strerror(errno);
    dir_ = dir;
    // A parent directory that does not exist yet: Open creates it.
    path_ = dir_ + "/lib/crib/metadata.db";
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  std::string dir_;
  std::string path_;
};

// Runs `child` in a forked process, which must end itself (_exit or a signal); returns the wait
// status. The parent must have no Store open: an SQLite connection must not cross a fork.
template <typename Fn>
int RunInChild(Fn child) {
  const pid_t pid = fork();
  if (pid == 0) {
    child();
    _exit(100);
  }
  int status = 0;
  EXPECT_EQ(waitpid(pid, &status, 0), pid);
  return status;
}

TEST_F(StoreTest, OpenCreatesParentDirectoriesAndAFreshDatabaseIsIntact) {
  ASSERT_OK_AND_ASSIGN(auto store, Store::Open(path_));
  EXPECT_TRUE(std::filesystem::is_regular_file(path_));
  EXPECT_EQ(store->path(), path_);
  EXPECT_THAT(store->CheckIntegrity(), IsOk());
  ASSERT_OK_AND_ASSIGN(auto pods, store->ListPods());
  EXPECT_THAT(pods, IsEmpty());
}

TEST_F(StoreTest, PodCreateGetListUpdateDelete) {
  ASSERT_OK_AND_ASSIGN(auto store, Store::Open(path_));
  const PodRecord p1 = Pod("p1", "web");
  PodRecord p2 = Pod("p2", "db");
  p2.created_at_ns = 500;  // older than p1: listed first
  ASSERT_THAT(store->PutPod(p1), IsOk());
  ASSERT_THAT(store->PutPod(p2), IsOk());

  ASSERT_OK_AND_ASSIGN(PodRecord got, store->GetPod("p1"));
  EXPECT_EQ(got, p1);
  EXPECT_EQ(got.data.size(), 8u);  // the NUL inside the blob survives
  ASSERT_OK_AND_ASSIGN(auto pods, store->ListPods());
  EXPECT_THAT(PodIds(pods), ElementsAre("p2", "p1"));
  EXPECT_EQ(pods[0], p2);

  PodRecord changed = p1;
  changed.state = 3;
  changed.data = "";
  ASSERT_THAT(store->UpdatePod(changed), IsOk());
  ASSERT_OK_AND_ASSIGN(got, store->GetPod("p1"));
  EXPECT_EQ(got, changed);
  EXPECT_THAT(store->UpdatePod(Pod("p9")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("update pod p9")));

  ASSERT_THAT(store->DeletePod("p1"), IsOk());
  EXPECT_THAT(store->GetPod("p1"),
              StatusIs(absl::StatusCode::kNotFound, "store: get pod p1: not found"));
  EXPECT_THAT(store->DeletePod("p1"), IsOk()) << "delete is idempotent";
  ASSERT_OK_AND_ASSIGN(pods, store->ListPods());
  EXPECT_THAT(PodIds(pods), ElementsAre("p2"));
}

TEST_F(StoreTest, PodUniquenessNamesTheHolder) {
  ASSERT_OK_AND_ASSIGN(auto store, Store::Open(path_));
  ASSERT_THAT(store->PutPod(Pod("p1", "web", 0)), IsOk());

  EXPECT_THAT(
      store->PutPod(Pod("p2", "web", 0)),
      StatusIs(absl::StatusCode::kAlreadyExists,
               testing::AllOf(HasSubstr("store: insert pod p2: "), HasSubstr("is held by pod p1"),
                              HasSubstr("UNIQUE constraint failed"))));
  EXPECT_THAT(store->PutPod(Pod("p1", "other")),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("pod p1 already exists")));
  // Another attempt of the same pod is a different key.
  ASSERT_THAT(store->PutPod(Pod("p2", "web", 1)), IsOk());
  // An update cannot take a key either.
  EXPECT_THAT(store->UpdatePod(Pod("p2", "web", 0)),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("is held by pod p1")));
  ASSERT_OK_AND_ASSIGN(PodRecord p2, store->GetPod("p2"));
  EXPECT_EQ(p2.attempt, 1u);
  EXPECT_THAT(store->PutPod(Pod("")),
              StatusIs(absl::StatusCode::kInvalidArgument, "store: insert pod : empty id"));
}

TEST_F(StoreTest, ContainerCreateGetListUpdateDelete) {
  ASSERT_OK_AND_ASSIGN(auto store, Store::Open(path_));
  ASSERT_THAT(store->PutPod(Pod("p1", "web")), IsOk());
  ASSERT_THAT(store->PutPod(Pod("p2", "db")), IsOk());
  const ContainerRecord c1 = Container("c1", "p1", "app");
  const ContainerRecord c2 = Container("c2", "p1", "sidecar");
  const ContainerRecord c3 = Container("c3", "p2", "app");
  for (const auto& c : {c1, c2, c3}) ASSERT_THAT(store->PutContainer(c), IsOk());

  ASSERT_OK_AND_ASSIGN(ContainerRecord got, store->GetContainer("c2"));
  EXPECT_EQ(got, c2);
  ASSERT_OK_AND_ASSIGN(auto all, store->ListContainers());
  EXPECT_THAT(all, ElementsAre(c1, c2, c3));
  ASSERT_OK_AND_ASSIGN(auto of_p1, store->ListContainers("p1"));
  EXPECT_THAT(of_p1, ElementsAre(c1, c2));
  ASSERT_OK_AND_ASSIGN(auto of_nobody, store->ListContainers("p9"));
  EXPECT_THAT(of_nobody, IsEmpty());

  ContainerRecord exited = c1;
  exited.state = 4;
  exited.data = "exit code 0";
  ASSERT_THAT(store->UpdateContainer(exited), IsOk());
  ASSERT_OK_AND_ASSIGN(got, store->GetContainer("c1"));
  EXPECT_EQ(got, exited);
  EXPECT_THAT(store->UpdateContainer(Container("c9", "p1")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("update container c9")));

  ASSERT_THAT(store->DeleteContainer("c1"), IsOk());
  EXPECT_THAT(store->GetContainer("c1"),
              StatusIs(absl::StatusCode::kNotFound, "store: get container c1: not found"));
  EXPECT_THAT(store->DeleteContainer("c1"), IsOk());
  ASSERT_OK_AND_ASSIGN(of_p1, store->ListContainers("p1"));
  EXPECT_THAT(of_p1, ElementsAre(c2));
}

TEST_F(StoreTest, ContainerUniquenessNamesTheHolder) {
  ASSERT_OK_AND_ASSIGN(auto store, Store::Open(path_));
  ASSERT_THAT(store->PutPod(Pod("p1")), IsOk());
  ASSERT_THAT(store->PutPod(Pod("p2", "other")), IsOk());
  ASSERT_THAT(store->PutContainer(Container("c1", "p1", "app", 0)), IsOk());
  EXPECT_THAT(store->PutContainer(Container("c2", "p1", "app", 0)),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       testing::AllOf(HasSubstr("store: insert container c2: "),
                                      HasSubstr("in pod p1 is held by container c1"),
                                      HasSubstr("UNIQUE constraint failed"))));
  EXPECT_THAT(store->PutContainer(Container("c1", "p2", "x")),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("container c1 already exists")));
  // Same name in another pod, or another attempt in the same pod, is fine.
  EXPECT_THAT(store->PutContainer(Container("c2", "p2", "app", 0)), IsOk());
  EXPECT_THAT(store->PutContainer(Container("c3", "p1", "app", 1)), IsOk());
  ASSERT_OK_AND_ASSIGN(auto all, store->ListContainers());
  EXPECT_THAT(all, SizeIs(3));
}

TEST_F(StoreTest, ContainerOfUnknownPodIsRefused) {
  ASSERT_OK_AND_ASSIGN(auto store, Store::Open(path_));
  EXPECT_THAT(store->PutContainer(Container("c1", "ghost")),
              StatusIs(absl::StatusCode::kNotFound,
                       testing::AllOf(HasSubstr("store: insert container c1: pod ghost not found"),
                                      HasSubstr("FOREIGN KEY constraint failed"))));
  ASSERT_OK_AND_ASSIGN(auto all, store->ListContainers());
  EXPECT_THAT(all, IsEmpty());
  // Nor can an update move a container to an unknown pod.
  ASSERT_THAT(store->PutPod(Pod("p1")), IsOk());
  ASSERT_THAT(store->PutContainer(Container("c1", "p1")), IsOk());
  EXPECT_THAT(store->UpdateContainer(Container("c1", "ghost")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("pod ghost not found")));
  ASSERT_OK_AND_ASSIGN(ContainerRecord c1, store->GetContainer("c1"));
  EXPECT_EQ(c1.pod_id, "p1");
}

TEST_F(StoreTest, PodWithContainersIsDeletedOnlyWithThem) {
  ASSERT_OK_AND_ASSIGN(auto store, Store::Open(path_));
  ASSERT_THAT(store->PutPod(Pod("p1")), IsOk());
  ASSERT_THAT(store->PutContainer(Container("c1", "p1", "a")), IsOk());
  ASSERT_THAT(store->PutContainer(Container("c2", "p1", "b")), IsOk());
  ASSERT_THAT(store->ReserveIp("crib", "10.88.0.2", "p1"), IsOk());

  EXPECT_THAT(
      store->DeletePod("p1"),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               HasSubstr("store: delete pod p1: containers of the pod are still recorded")));
  ASSERT_THAT(store->GetPod("p1"), IsOk());

  // The whole teardown in one transaction.
  ASSERT_THAT(store->Write([](Transaction& tx) -> absl::Status {
    auto containers = tx.ListContainers("p1");
    if (!containers.ok()) return containers.status();
    for (const ContainerRecord& c : *containers) {
      if (absl::Status s = tx.DeleteContainer(c.id); !s.ok()) return s;
    }
    if (absl::Status s = tx.ReleaseIpsOf("p1"); !s.ok()) return s;
    return tx.DeletePod("p1");
  }),
              IsOk());
  EXPECT_THAT(store->GetPod("p1"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("p1")));
  ASSERT_OK_AND_ASSIGN(auto containers, store->ListContainers());
  EXPECT_THAT(containers, IsEmpty());
  ASSERT_OK_AND_ASSIGN(auto ips, store->ListIps("crib"));
  EXPECT_THAT(ips, IsEmpty());
}

TEST_F(StoreTest, ImageCreateGetListUpdateDelete) {
  ASSERT_OK_AND_ASSIGN(auto store, Store::Open(path_));
  ASSERT_THAT(store->PutImage(Image("sha256:aaa", 100), {"busybox:latest", "busybox@sha256:m1"}),
              IsOk());
  ASSERT_THAT(store->PutImage(Image("sha256:bbb", 200), {}), IsOk());

  ASSERT_OK_AND_ASSIGN(ImageRecord a, store->GetImage("sha256:aaa"));
  EXPECT_EQ(a.id, "sha256:aaa");
  EXPECT_EQ(a.size, 100u);
  EXPECT_EQ(a.data, "manifest");
  EXPECT_THAT(a.names, ElementsAre("busybox:latest", "busybox@sha256:m1"));
  ASSERT_OK_AND_ASSIGN(ImageRecord by_name, store->FindImageByName("busybox:latest"));
  EXPECT_EQ(by_name, a);
  EXPECT_THAT(store->FindImageByName("nginx:latest"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("nginx:latest")));

  ASSERT_OK_AND_ASSIGN(auto images, store->ListImages());
  ASSERT_THAT(images, SizeIs(2));
  EXPECT_EQ(images[0], a);
  EXPECT_EQ(images[1].id, "sha256:bbb");
  EXPECT_THAT(images[1].names, IsEmpty());

  // Putting it again updates it and adds names; the old names stay.
  ImageRecord bigger = Image("sha256:aaa", 150);
  ASSERT_THAT(store->PutImage(bigger, {"busybox:1.36"}), IsOk());
  ASSERT_OK_AND_ASSIGN(a, store->GetImage("sha256:aaa"));
  EXPECT_EQ(a.size, 150u);
  EXPECT_THAT(a.names, ElementsAre("busybox:1.36", "busybox:latest", "busybox@sha256:m1"));

  ASSERT_THAT(store->RemoveImageName("busybox:1.36"), IsOk());
  ASSERT_THAT(store->RemoveImageName("busybox:1.36"), IsOk());
  ASSERT_OK_AND_ASSIGN(a, store->GetImage("sha256:aaa"));
  EXPECT_THAT(a.names, ElementsAre("busybox:latest", "busybox@sha256:m1"));

  ASSERT_THAT(store->DeleteImage("sha256:aaa"), IsOk());
  EXPECT_THAT(store->GetImage("sha256:aaa"),
              StatusIs(absl::StatusCode::kNotFound, "store: get image sha256:aaa: not found"));
  EXPECT_THAT(store->FindImageByName("busybox:latest"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("busybox:latest")));
  EXPECT_THAT(store->DeleteImage("sha256:aaa"), IsOk());
  ASSERT_OK_AND_ASSIGN(images, store->ListImages());
  ASSERT_THAT(images, SizeIs(1));
  EXPECT_EQ(images[0].id, "sha256:bbb");
}

TEST_F(StoreTest, ImageNameMovesToTheImageThatTakesIt) {
  ASSERT_OK_AND_ASSIGN(auto store, Store::Open(path_));
  ASSERT_THAT(store->PutImage(Image("sha256:old", 1), {"app:latest", "app:v1"}), IsOk());
  ASSERT_THAT(store->PutImage(Image("sha256:new", 2), {"app:latest", "app:v2"}), IsOk());

  ASSERT_OK_AND_ASSIGN(ImageRecord latest, store->FindImageByName("app:latest"));
  EXPECT_EQ(latest.id, "sha256:new");
  EXPECT_THAT(latest.names, ElementsAre("app:latest", "app:v2"));
  ASSERT_OK_AND_ASSIGN(ImageRecord old, store->GetImage("sha256:old"));
  EXPECT_THAT(old.names, ElementsAre("app:v1"));

  // Left without names, the image is still there: collecting it is the image room's call.
  ASSERT_THAT(store->PutImage(Image("sha256:new", 2), {"app:v1"}), IsOk());
  ASSERT_OK_AND_ASSIGN(old, store->GetImage("sha256:old"));
  EXPECT_THAT(old.names, IsEmpty());
  EXPECT_THAT(store->PutImage(Image("sha256:x", 1), {""}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty image name")));
}

TEST_F(StoreTest, IpReservationConflictsNameTheOwner) {
  ASSERT_OK_AND_ASSIGN(auto store, Store::Open(path_));
  ASSERT_THAT(store->ReserveIp("crib", "10.88.0.2", "p1"), IsOk());
  ASSERT_THAT(store->ReserveIp("crib", "10.88.0.3", "p1"), IsOk());
  ASSERT_THAT(store->ReserveIp("crib", "10.88.0.4", "p2"), IsOk());
  ASSERT_THAT(store->ReserveIp("other", "10.88.0.2", "p3"), IsOk()) << "networks are separate";

  EXPECT_THAT(
      store->ReserveIp("crib", "10.88.0.2", "p2"),
      StatusIs(absl::StatusCode::kAlreadyExists,
               testing::AllOf(HasSubstr("store: reserve ip 10.88.0.2 in network crib: held by p1"),
                              HasSubstr("UNIQUE constraint failed"))));
  EXPECT_THAT(store->ReserveIp("crib", "10.88.0.2", "p1"), IsOk()) << "same owner: idempotent";

  ASSERT_OK_AND_ASSIGN(auto ips, store->ListIps("crib"));
  ASSERT_THAT(ips, SizeIs(3));
  EXPECT_EQ(ips[0].network, "crib");
  EXPECT_EQ(ips[0].ip, "10.88.0.2");
  EXPECT_EQ(ips[0].owner, "p1");
  EXPECT_GT(ips[0].reserved_at_ns, 0);
  EXPECT_EQ(ips[2].owner, "p2");

  ASSERT_THAT(store->ReleaseIp("crib", "10.88.0.4"), IsOk());
  ASSERT_THAT(store->ReleaseIp("crib", "10.88.0.4"), IsOk());
  ASSERT_THAT(store->ReserveIp("crib", "10.88.0.4", "p5"), IsOk()) << "a released ip is free";
  ASSERT_THAT(store->ReleaseIpsOf("p1"), IsOk());
  ASSERT_OK_AND_ASSIGN(ips, store->ListIps("crib"));
  ASSERT_THAT(ips, SizeIs(1));
  EXPECT_EQ(ips[0].owner, "p5");
  ASSERT_OK_AND_ASSIGN(ips, store->ListIps("other"));
  EXPECT_THAT(ips, SizeIs(1));
}

TEST_F(StoreTest, HandledConflictInsideWriteKeepsTheTransactionGoing) {
  ASSERT_OK_AND_ASSIGN(auto store, Store::Open(path_));
  ASSERT_THAT(store->ReserveIp("crib", "10.88.0.2", "p1"), IsOk());
  // IPAM's pattern: try the next address after AlreadyExists, in one transaction.
  std::string got;
  ASSERT_THAT(store->Write([&](Transaction& tx) -> absl::Status {
    for (const char* ip : {"10.88.0.2", "10.88.0.3"}) {
      absl::Status status = tx.ReserveIp("crib", ip, "p2");
      if (status.ok()) {
        got = ip;
        return absl::OkStatus();
      }
      if (!absl::IsAlreadyExists(status)) return status;
    }
    return absl::ResourceExhaustedError("no free ip");
  }),
              IsOk());
  EXPECT_EQ(got, "10.88.0.3");
  ASSERT_OK_AND_ASSIGN(auto ips, store->ListIps("crib"));
  EXPECT_THAT(ips, SizeIs(2));
}

TEST_F(StoreTest, FailedWriteLeavesThePreviousStateIntact) {
  ASSERT_OK_AND_ASSIGN(auto store, Store::Open(path_));
  ASSERT_THAT(store->PutPod(Pod("p1", "a")), IsOk());
  ASSERT_THAT(store->PutPod(Pod("p2", "b")), IsOk());
  ASSERT_THAT(store->PutContainer(Container("c1", "p1")), IsOk());
  ASSERT_THAT(store->ReserveIp("crib", "10.88.0.2", "p1"), IsOk());
  ASSERT_THAT(store->PutImage(Image("sha256:aaa", 1), {"app:latest"}), IsOk());
  ASSERT_OK_AND_ASSIGN(auto pods_before, store->ListPods());
  ASSERT_OK_AND_ASSIGN(auto containers_before, store->ListContainers());
  ASSERT_OK_AND_ASSIGN(auto ips_before, store->ListIps("crib"));
  ASSERT_OK_AND_ASSIGN(auto images_before, store->ListImages());

  // fn does a bit of everything, sees its own writes, then fails.
  EXPECT_THAT(store->Write([](Transaction& tx) -> absl::Status {
    for (int i = 0; i < 50; ++i) {
      if (absl::Status s = tx.PutPod(Pod(absl::StrCat("new", i), absl::StrCat("n", i))); !s.ok())
        return s;
    }
    if (absl::Status s = tx.DeleteContainer("c1"); !s.ok()) return s;
    if (absl::Status s = tx.DeletePod("p1"); !s.ok()) return s;
    if (absl::Status s = tx.ReleaseIpsOf("p1"); !s.ok()) return s;
    if (absl::Status s = tx.PutImage(Image("sha256:bbb", 2), {"app:latest"}); !s.ok()) return s;
    PodRecord p2 = Pod("p2", "b");
    p2.state = 9;
    if (absl::Status s = tx.UpdatePod(p2); !s.ok()) return s;
    auto pods = tx.ListPods();
    if (!pods.ok() || pods->size() != 51) return absl::InternalError("own writes not visible");
    return absl::AbortedError("changed my mind");
  }),
              StatusIs(absl::StatusCode::kAborted, "changed my mind"));

  // A failing statement whose error fn returns rolls back the earlier statements too.
  EXPECT_THAT(store->Write([](Transaction& tx) -> absl::Status {
    if (absl::Status s = tx.DeleteContainer("c1"); !s.ok()) return s;
    return tx.PutPod(Pod("p3", "a"));  // name taken by p1
  }),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("held by pod p1")));

  ASSERT_OK_AND_ASSIGN(auto pods_after, store->ListPods());
  ASSERT_OK_AND_ASSIGN(auto containers_after, store->ListContainers());
  ASSERT_OK_AND_ASSIGN(auto ips_after, store->ListIps("crib"));
  ASSERT_OK_AND_ASSIGN(auto images_after, store->ListImages());
  EXPECT_EQ(pods_after, pods_before);
  EXPECT_EQ(containers_after, containers_before);
  EXPECT_EQ(ips_after, ips_before);
  EXPECT_EQ(images_after, images_before);
  EXPECT_THAT(PodIds(pods_after), ElementsAre("p1", "p2"));
  EXPECT_EQ(pods_after[1].state, 1);

  // And the store still takes writes.
  ASSERT_THAT(store->PutPod(Pod("p3", "c")), IsOk());
  EXPECT_THAT(store->CheckIntegrity(), IsOk());
}

// What Write relies on when fn ignores an error: after a failure other than a constraint, the
// connection refuses further statements until the next transaction, so nothing half-done can be
// committed or run in autocommit mode.
TEST_F(StoreTest, DiskFullIsResourceExhaustedAndDoomsTheTransaction) {
  ASSERT_OK_AND_ASSIGN(auto db, Database::Open(dir_ + "/full.db"));
  ASSERT_THAT(db->Exec("CREATE TABLE t (x BLOB NOT NULL)"), IsOk());
  ASSERT_THAT(db->Exec("PRAGMA max_page_count = 16"), IsOk());  // a tiny "disk"
  ASSERT_THAT(db->Exec("BEGIN IMMEDIATE"), IsOk());
  absl::Status status;
  for (int i = 0; i < 100 && status.ok(); ++i) {
    ASSERT_OK_AND_ASSIGN(Statement insert, db->Prepare("INSERT INTO t (x) VALUES (?)"));
    const std::string bytes(4096, 'x');
    insert.Bind(Blob{bytes});
    status = insert.Run();
  }
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("full")));
  EXPECT_FALSE(db->UniqueFailed());
  EXPECT_THAT(db->failure(), StatusIs(absl::StatusCode::kResourceExhausted, testing::_));
  EXPECT_THAT(db->Exec("INSERT INTO t (x) VALUES (x'00')"),
              StatusIs(absl::StatusCode::kResourceExhausted, testing::_));
  EXPECT_THAT(db->Rollback(), IsOk());
  EXPECT_FALSE(db->InTransaction());
  db->ClearFailure();
  ASSERT_OK_AND_ASSIGN(int64_t rows, db->QueryInt("SELECT count(*) FROM t"));
  EXPECT_EQ(rows, 0);
}

TEST_F(StoreTest, EverythingPersistsAcrossCloseAndReopen) {
  ImageRecord image = Image("sha256:aaa", 42);
  {
    ASSERT_OK_AND_ASSIGN(auto store, Store::Open(path_));
    ASSERT_THAT(store->PutPod(Pod("p1")), IsOk());
    ASSERT_THAT(store->PutContainer(Container("c1", "p1")), IsOk());
    ASSERT_THAT(store->PutImage(image, {"app:latest"}), IsOk());
    ASSERT_THAT(store->ReserveIp("crib", "10.88.0.2", "p1"), IsOk());
  }
  ASSERT_OK_AND_ASSIGN(auto store, Store::Open(path_));
  EXPECT_THAT(store->CheckIntegrity(), IsOk());
  ASSERT_OK_AND_ASSIGN(PodRecord pod, store->GetPod("p1"));
  EXPECT_EQ(pod, Pod("p1"));
  ASSERT_OK_AND_ASSIGN(ContainerRecord container, store->GetContainer("c1"));
  EXPECT_EQ(container, Container("c1", "p1"));
  ASSERT_OK_AND_ASSIGN(ImageRecord got, store->FindImageByName("app:latest"));
  image.names = {"app:latest"};
  EXPECT_EQ(got, image);
  ASSERT_OK_AND_ASSIGN(auto ips, store->ListIps("crib"));
  ASSERT_THAT(ips, SizeIs(1));
  EXPECT_EQ(ips[0].owner, "p1");
}

// Sets PRAGMA user_version behind the store's back, as a newer crib would have.
void SetUserVersion(const std::string& path, int version) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  const std::string sql = absl::StrCat("PRAGMA user_version = ", version);
  EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_close(db);
}

TEST_F(StoreTest, SchemaVersionIsRecordedAndReopenWorks) {
  ASSERT_GE(SchemaVersion(), 1);
  { ASSERT_OK_AND_ASSIGN(auto store, Store::Open(path_)); }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &stmt, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(stmt, 0), SchemaVersion());
  sqlite3_finalize(stmt);
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)), "wal");
  sqlite3_finalize(stmt);
  sqlite3_close(db);

  ASSERT_OK_AND_ASSIGN(auto store, Store::Open(path_));
  EXPECT_THAT(store->PutPod(Pod("p1")), IsOk());
}

TEST_F(StoreTest, NewerSchemaVersionIsRefused) {
  {
    ASSERT_OK_AND_ASSIGN(auto store, Store::Open(path_));
    ASSERT_THAT(store->PutPod(Pod("p1")), IsOk());
  }
  const int newer = SchemaVersion() + 7;
  SetUserVersion(path_, newer);
  EXPECT_THAT(Store::Open(path_),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       testing::AllOf(HasSubstr(path_),
                                      HasSubstr(absl::StrCat("schema version ", newer,
                                                             " is newer than this crib supports (",
                                                             SchemaVersion(), ")")))));
  // Refusing did not touch it.
  SetUserVersion(path_, SchemaVersion());
  ASSERT_OK_AND_ASSIGN(auto store, Store::Open(path_));
  EXPECT_THAT(store->GetPod("p1"), IsOk());
}

TEST_F(StoreTest, AFileThatIsNotADatabaseIsRefused) {
  std::filesystem::create_directories(std::filesystem::path(path_).parent_path());
  std::ofstream(path_) << std::string(8192, 'x');
  EXPECT_THAT(Store::Open(path_),
              StatusIs(absl::StatusCode::kInternal,
                       testing::AllOf(HasSubstr(absl::StrCat("store: open ", path_)),
                                      HasSubstr("not a database"))));
}

TEST_F(StoreTest, ConcurrentCallsFromManyThreads) {
  ASSERT_OK_AND_ASSIGN(auto store, Store::Open(path_));
  constexpr int kThreads = 4;
  constexpr int kPerThread = 50;
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  std::vector<int> failures(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string id = absl::StrCat("t", t, "-", i);
        if (!store->PutPod(Pod(id, id)).ok()) ++failures[t];
        if (!store->ReserveIp("crib", id, id).ok()) ++failures[t];
        if (!store->ListPods().ok()) ++failures[t];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_THAT(failures, testing::Each(0));
  ASSERT_OK_AND_ASSIGN(auto pods, store->ListPods());
  EXPECT_THAT(pods, SizeIs(kThreads * kPerThread));
  ASSERT_OK_AND_ASSIGN(auto ips, store->ListIps("crib"));
  EXPECT_THAT(ips, SizeIs(kThreads * kPerThread));
}

TEST_F(StoreTest, ProcessKilledBeforeCommitLosesOnlyItsOwnTransaction) {
  constexpr int kCommitted = 20;
  constexpr int kDoomed = 2000;
  {
    ASSERT_OK_AND_ASSIGN(auto store, Store::Open(path_));
    for (int i = 0; i < kCommitted; ++i) {
      PodRecord pod = Pod(absl::StrCat("committed-", i), absl::StrCat("c", i));
      pod.created_at_ns = i;  // lists in this order
      ASSERT_THAT(store->PutPod(pod), IsOk());
    }
    ASSERT_THAT(store->ReserveIp("crib", "10.88.0.2", "committed-0"), IsOk());
  }  // closed before the fork

  const std::string path = path_;
  const int status = RunInChild([&path] {
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(path);
    if (!store.ok()) _exit(1);
    (*store)
        ->Write([](Transaction& tx) -> absl::Status {
          for (int i = 0; i < kDoomed; ++i) {
            PodRecord pod = Pod(absl::StrCat("doomed-", i), absl::StrCat("d", i));
            pod.data = std::string(4096, 'd');  // 8 MB in all: more than SQLite's page cache
            if (!tx.PutPod(pod).ok()) _exit(2);
          }
          if (!tx.ReleaseIpsOf("committed-0").ok()) _exit(3);
          if (!tx.DeletePod("committed-1").ok()) _exit(4);
          raise(SIGKILL);
          return absl::OkStatus();
        })
        .IgnoreError();
    _exit(5);
  });
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
  ASSERT_EQ(WTERMSIG(status), SIGKILL);
  // The transaction outgrew the page cache, so uncommitted pages reached the WAL file: the
  // reopen below has to ignore them, not merely find nothing.
  struct stat wal;
  ASSERT_EQ(stat((path_ + "-wal").c_str(), &wal), 0);
  EXPECT_GT(wal.st_size, 4 << 20);

  ASSERT_OK_AND_ASSIGN(auto store, Store::Open(path_));
  EXPECT_THAT(store->CheckIntegrity(), IsOk());
  ASSERT_OK_AND_ASSIGN(auto pods, store->ListPods());
  ASSERT_THAT(pods, SizeIs(kCommitted));
  for (int i = 0; i < kCommitted; ++i) {
    EXPECT_EQ(pods[i].id, absl::StrCat("committed-", i));
  }
  EXPECT_THAT(store->GetPod("doomed-0"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("doomed-0")));
  EXPECT_THAT(store->GetPod(absl::StrCat("doomed-", kDoomed - 1)),
              StatusIs(absl::StatusCode::kNotFound, testing::_));
  ASSERT_OK_AND_ASSIGN(auto ips, store->ListIps("crib"));
  ASSERT_THAT(ips, SizeIs(1));
  EXPECT_EQ(ips[0].owner, "committed-0");
  // The names the dead transaction used are free again.
  EXPECT_THAT(store->PutPod(Pod("after", "d0")), IsOk());
}

TEST_F(StoreTest, ProcessKilledRightAfterCommitKeepsTheWrite) {
  { ASSERT_OK_AND_ASSIGN(auto store, Store::Open(path_)); }
  const std::string path = path_;
  const int status = RunInChild([&path] {
    absl::StatusOr<std::unique_ptr<Store>> store = Store::Open(path);
    if (!store.ok()) _exit(1);
    const absl::Status written = (*store)->Write([](Transaction& tx) -> absl::Status {
      if (absl::Status s = tx.PutPod(Pod("kept")); !s.ok()) return s;
      if (absl::Status s = tx.PutContainer(Container("kept-c", "kept")); !s.ok()) return s;
      return tx.ReserveIp("crib", "10.88.0.9", "kept");
    });
    if (!written.ok()) _exit(2);
    raise(SIGKILL);
  });
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
  ASSERT_EQ(WTERMSIG(status), SIGKILL);

  ASSERT_OK_AND_ASSIGN(auto store, Store::Open(path_));
  EXPECT_THAT(store->CheckIntegrity(), IsOk());
  ASSERT_OK_AND_ASSIGN(PodRecord pod, store->GetPod("kept"));
  EXPECT_EQ(pod, Pod("kept"));
  ASSERT_OK_AND_ASSIGN(auto containers, store->ListContainers("kept"));
  EXPECT_THAT(containers, ElementsAre(Container("kept-c", "kept")));
  ASSERT_OK_AND_ASSIGN(auto ips, store->ListIps("crib"));
  ASSERT_THAT(ips, SizeIs(1));
  EXPECT_EQ(ips[0].owner, "kept");
}

}  // namespace
}  // namespace crib::store
