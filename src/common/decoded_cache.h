// Records decoded once: each kept by id with the size and a hash of the stored text it came
// from, and decoded again only once that text has changed. The lists decode every record on
// each call otherwise; keeping the hash instead of the text keeps a record in memory once.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace crib {

template <typename T>
class DecodedCache {
 public:
  // The data decoded from `text` for `id`, if that is what the cache holds.
  std::optional<T> Find(const std::string& id, std::string_view text) const
      ABSL_LOCKS_EXCLUDED(mu_) {
    const size_t hash = std::hash<std::string_view>()(text);
    std::shared_ptr<const T> data;
    {
      absl::MutexLock lock(&mu_);
      auto it = entries_.find(id);
      if (it == entries_.end() || it->second.size != text.size() || it->second.hash != hash) {
        return std::nullopt;
      }
      data = it->second.data;
    }
    return *data;  // copied without the lock held
  }

  void Put(const std::string& id, std::string_view text, T data) ABSL_LOCKS_EXCLUDED(mu_) {
    Entry entry{text.size(), std::hash<std::string_view>()(text),
                std::make_shared<const T>(std::move(data))};
    absl::MutexLock lock(&mu_);
    entries_[id] = std::move(entry);
  }

  void Forget(const std::string& id) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    entries_.erase(id);
  }

 private:
  struct Entry {
    size_t size = 0;
    size_t hash = 0;
    std::shared_ptr<const T> data;
  };
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace crib
