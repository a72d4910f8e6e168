// Disk usage of the containers' writable layers (their overlay upper dirs), measured by one
// background thread and cached per container, so that a stats call never walks a directory.
// The thread does a bounded amount of work per tick (a walk that is not done resumes at the
// next tick), re-measures every layer once per refresh period, and measures a container it
// has not seen yet first, as soon as a stats call asks for it. It knows nothing of CRI.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace crib::container {

struct LayerUsage {
  uint64_t bytes = 0;        // allocated blocks, hard links counted once
  uint64_t inodes = 0;       // the upper dir itself included
  int64_t timestamp_ns = 0;  // when the walk that measured it ended
};

class LayerUsageSampler {
 public:
  struct Options {
    absl::Duration tick = absl::Milliseconds(100);
    int entries_per_tick = 1000;                 // lstat calls per tick at most
    absl::Duration refresh = absl::Seconds(10);  // every layer is measured again this often
  };
  // (container id, upper dir) of every container that has a writable layer.
  using ListLayers = std::function<std::vector<std::pair<std::string, std::string>>()>;

  // Starts the thread.
  LayerUsageSampler(ListLayers list, Options options);
  explicit LayerUsageSampler(ListLayers list) : LayerUsageSampler(std::move(list), Options()) {}
  // Stops and joins the thread.
  ~LayerUsageSampler();
  LayerUsageSampler(const LayerUsageSampler&) = delete;
  LayerUsageSampler& operator=(const LayerUsageSampler&) = delete;

  // The last measurement of `id`'s layer; nullopt before the first one, in which case `dir` is
  // measured next.
  std::optional<LayerUsage> Get(const std::string& id, const std::string& dir)
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Walk;

  void Run();
  // Starts the next queued walk or goes on with the current one for at most `budget` entries;
  // false when there is nothing to do.
  bool Work(int& budget) ABSL_LOCKS_EXCLUDED(mu_);
  void Refresh() ABSL_LOCKS_EXCLUDED(mu_);

  const ListLayers list_;
  const Options options_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<std::string, LayerUsage> usage_ ABSL_GUARDED_BY(mu_);
  std::deque<std::pair<std::string, std::string>> queue_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> queued_ ABSL_GUARDED_BY(mu_);
  std::string walking_ ABSL_GUARDED_BY(mu_);  // the id being measured
  // Only the thread touches the walk in progress.
  std::unique_ptr<Walk> walk_;
  absl::Time next_refresh_ = absl::InfinitePast();
  std::thread thread_;
};

}  // namespace crib::container
