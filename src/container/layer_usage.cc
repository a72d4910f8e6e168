#include "container/layer_usage.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/time/clock.h"
#include "common/logging.h"

namespace crib::container {
namespace {

// Deeper directories are counted but not entered: a bound on the walk's open descriptors.
constexpr size_t kMaxDepth = 128;

struct DirCloser {
  void operator()(DIR* dir) const { ::closedir(dir); }
};
using DirPtr = std::unique_ptr<DIR, DirCloser>;

DirPtr OpenDirAt(int parent, const char* name) {
  const int fd = ::openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return nullptr;
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) ::close(fd);
  return DirPtr(dir);
}

}  // namespace

// One layer being measured: a depth-first walk that can stop after any entry and resume.
struct LayerUsageSampler::Walk {
  std::string id;
  std::vector<DirPtr> stack;
  dev_t dev = 0;
  LayerUsage usage;
  absl::flat_hash_set<std::pair<dev_t, ino_t>> linked;  // hard-linked files seen

  // False when the upper dir cannot be opened (a container removed meanwhile).
  bool Start(const std::string& dir) {
    DirPtr root = OpenDirAt(AT_FDCWD, dir.c_str());
    struct stat st;
    if (root == nullptr || ::fstat(::dirfd(root.get()), &st) != 0) return false;
    dev = st.st_dev;
    usage.bytes = static_cast<uint64_t>(st.st_blocks) * 512;
    usage.inodes = 1;
    stack.push_back(std::move(root));
    return true;
  }

  // Visits up to `budget` entries; true when the walk is complete.
  bool Step(int& budget) {
    while (!stack.empty() && budget > 0) {
      DIR* dir = stack.back().get();
      errno = 0;
      struct dirent* entry = ::readdir(dir);
      if (entry == nullptr) {
        stack.pop_back();  // done with it, or unreadable (removed meanwhile)
        continue;
      }
      if (std::strcmp(entry->d_name, ".") == 0 || std::strcmp(entry->d_name, "..") == 0) continue;
      --budget;
      struct stat st;
      if (::fstatat(::dirfd(dir), entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      if (st.st_dev != dev) continue;  // a mount inside the layer is not the layer's
      if (!S_ISDIR(st.st_mode) && st.st_nlink > 1 && !linked.emplace(st.st_dev, st.st_ino).second) {
        continue;
      }
      usage.bytes += static_cast<uint64_t>(st.st_blocks) * 512;
      usage.inodes += 1;
      if (S_ISDIR(st.st_mode) && stack.size() < kMaxDepth) {
        if (DirPtr child = OpenDirAt(::dirfd(dir), entry->d_name))
          stack.push_back(std::move(child));
      }
    }
    return stack.empty();
  }
};

LayerUsageSampler::LayerUsageSampler(ListLayers list, Options options)
    : list_(std::move(list)), options_(options) {
  thread_ = std::thread([this] { Run(); });
}

LayerUsageSampler::~LayerUsageSampler() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

std::optional<LayerUsage> LayerUsageSampler::Get(const std::string& id, const std::string& dir) {
  absl::MutexLock lock(&mu_);
  auto it = usage_.find(id);
  if (it != usage_.end()) return it->second;
  if (id != walking_ && queued_.insert(id).second) {
    queue_.emplace_front(id, dir);
    wake_ = true;
  }
  return std::nullopt;
}

void LayerUsageSampler::Refresh() {
  std::vector<std::pair<std::string, std::string>> layers = list_();
  absl::flat_hash_set<std::string> live;
  for (const auto& layer : layers) live.insert(layer.first);
  absl::MutexLock lock(&mu_);
  // Layers of removed containers are forgotten.
  absl::erase_if(usage_, [&](const auto& entry) { return !live.contains(entry.first); });
  for (auto& layer : layers) {
    if (layer.first != walking_ && queued_.insert(layer.first).second) {
      queue_.push_back(std::move(layer));
    }
  }
}

bool LayerUsageSampler::Work(int& budget) {
  if (walk_ == nullptr) {
    std::pair<std::string, std::string> next;
    {
      absl::MutexLock lock(&mu_);
      if (queue_.empty()) return false;
      next = std::move(queue_.front());
      queue_.pop_front();
      queued_.erase(next.first);
      walking_ = next.first;
    }
    walk_ = std::make_unique<Walk>();
    walk_->id = next.first;
    if (!walk_->Start(next.second)) {
      walk_.reset();
      absl::MutexLock lock(&mu_);
      walking_.clear();
      return true;
    }
  }
  if (!walk_->Step(budget)) return true;
  walk_->usage.timestamp_ns = absl::ToUnixNanos(absl::Now());
  {
    absl::MutexLock lock(&mu_);
    usage_[walk_->id] = walk_->usage;
    walking_.clear();
  }
  walk_.reset();
  return true;
}

void LayerUsageSampler::Run() {
  for (;;) {
    if (absl::Now() >= next_refresh_) {
      Refresh();
      next_refresh_ = absl::Now() + options_.refresh;
    }
    int budget = options_.entries_per_tick;
    bool busy = false;
    while (budget > 0 && Work(budget)) busy = true;
    // Busy: the next slice of work one tick later. Idle: until the next refresh, or until a
    // stats call asks for a layer it has never seen.
    const absl::Duration wait = busy ? options_.tick : next_refresh_ - absl::Now();
    absl::MutexLock lock(&mu_);
    auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || wake_; };
    mu_.AwaitWithTimeout(absl::Condition(&woken), std::max(wait, absl::ZeroDuration()));
    if (stopping_) return;
    wake_ = false;
  }
}

}  // namespace crib::container
