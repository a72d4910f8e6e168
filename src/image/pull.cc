// PullImage: resolve the reference, then fetch the config and the layers the store lacks,
// each layer unpacked while it downloads and committed only once its blob digest and diff id
// are verified. Layers download registry.max_concurrent_downloads at a time; a layer another
// pull is already fetching is waited for, not fetched again. A failed or cancelled pull
// deletes what it added, and a cancel also stops the unpacking of a layer already stored.
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/errors.h"
#include "common/failpoint.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/status_macros.h"
#include "image/image_store.h"
#include "image/reference.h"
#include "image/registry/client.h"
#include "image/unpack.h"
#include "nlohmann/json.hpp"

namespace crib::image {
namespace {

using json = nlohmann::json;

bool IsDir(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string Megabytes(uint64_t bytes) {
  return absl::StrFormat("%.1f MB", static_cast<double>(bytes) / 1e6);
}

struct ImageConfig {
  std::vector<std::string> diff_ids;
  std::string user;
};

absl::StatusOr<ImageConfig> ParseImageConfig(absl::string_view text, absl::string_view digest) {
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("image config ", digest, ": ", what));
  };
  if (!j.is_object()) return bad("not a JSON object");
  ImageConfig config;
  if (!j.contains("rootfs") || !j["rootfs"].is_object() || !j["rootfs"].contains("diff_ids") ||
      !j["rootfs"]["diff_ids"].is_array()) {
    return bad("no rootfs.diff_ids");
  }
  for (const json& id : j["rootfs"]["diff_ids"]) {
    if (!id.is_string() || !ValidateSha256(id.get<std::string>()).ok()) {
      return bad("a diff id is not a sha256 digest");
    }
    config.diff_ids.push_back(id.get<std::string>());
  }
  if (j.contains("config") && j["config"].is_object() && j["config"].contains("User") &&
      j["config"]["User"].is_string()) {
    config.user = j["config"]["User"].get<std::string>();
  }
  return config;
}

std::map<std::string, std::string> ManifestAnnotations(absl::string_view manifest) {
  std::map<std::string, std::string> out;
  json j = json::parse(manifest.begin(), manifest.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("annotations") && j["annotations"].is_object()) {
    for (const auto& [k, v] : j["annotations"].items()) {
      if (v.is_string()) out[k] = v.get<std::string>();
    }
  }
  return out;
}

}  // namespace

// One layer being fetched: pulls of the same blob wait on it instead of fetching it again.
struct ImageStore::InFlight {
  absl::Notification done;
  absl::Status status;
};

absl::StatusOr<std::string> ImageStore::Pull(absl::string_view text,
                                             const registry::PullOptions& options) {
  const absl::Time start = absl::Now();
  absl::StatusOr<std::string> id = DoPull(text, options);
  if (!id.ok()) spdlog::warn("{}", id.status().message());
  static metrics::HistogramFamily& took = metrics::Registry::Global().Histogram(
      "cribd_image_pull_duration_seconds", "Time PullImage took, by result.", {"result"},
      metrics::LatencyBuckets());
  took.Observe({id.ok() ? "ok" : "error"}, absl::ToDoubleSeconds(absl::Now() - start));
  return id;
}

absl::StatusOr<std::string> ImageStore::DoPull(absl::string_view text,
                                               const registry::PullOptions& options) {
  const absl::Time start = absl::Now();
  ASSIGN_OR_RETURN(const Reference ref, ParseReference(text));
  const std::string what = absl::StrCat("pull image ", ref.String());
  absl::StatusOr<registry::ResolvedImage> resolved = client_->Resolve(ref, options);
  if (!resolved.ok()) return Annotate(resolved.status(), what);
  absl::StatusOr<ImageConfig> config =
      ParseImageConfig(resolved->config_json, resolved->config.digest);
  if (!config.ok()) return Annotate(config.status(), what);
  if (config->diff_ids.size() != resolved->layers.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": manifest ", resolved->manifest_digest, " has ", resolved->layers.size(),
        " layers but its config has ", config->diff_ids.size(), " diff ids"));
  }
  for (const registry::Descriptor& layer : resolved->layers) {
    if (absl::Status s = ValidateSha256(layer.digest); !s.ok()) return Annotate(s, what);
  }

  Image image;
  image.id = resolved->config.digest;
  if (!ref.tag.empty()) image.repo_tags.push_back(absl::StrCat(ref.Name(), ":", ref.tag));
  image.repo_digests.push_back(absl::StrCat(ref.Name(), "@", resolved->digest));
  image.user = config->user;
  image.annotations = ManifestAnnotations(resolved->manifest_json);
  image.manifest_digest = resolved->manifest_digest;
  image.chain_ids = ChainIds(config->diff_ids);
  image.size = static_cast<uint64_t>(std::max<int64_t>(resolved->config.size, 0));
  for (const registry::Descriptor& layer : resolved->layers) {
    image.layers.push_back(layer.digest);
    image.size += static_cast<uint64_t>(std::max<int64_t>(layer.size, 0));
  }

  // Until the image is recorded, GC must leave its pieces alone; if the pull fails, whatever
  // it added that no image references goes again.
  std::vector<std::string> keys = image.layers;
  keys.insert(keys.end(), image.chain_ids.begin(), image.chain_ids.end());
  keys.push_back(image.id);
  keys.push_back(image.manifest_digest);
  keys.push_back(resolved->digest);
  auto lease = std::make_unique<Lease>(this, keys);
  absl::Cleanup collect = [&] {
    lease.reset();
    absl::MutexLock gc(&gc_mu_);
    // Collect keeps what any recorded image references, this image included if it was pulled
    // before: only what this pull added goes.
    if (absl::Status s = Collect(image); !s.ok()) {
      spdlog::warn("{}: cleaning up after the failure: {}", what, s.message());
    }
  };

  if (!content_->Has(image.id)) {
    if (absl::Status s = content_->Put(image.id, resolved->config_json); !s.ok()) {
      return Annotate(s, what);
    }
  }
  if (absl::Status s = Failpoint("image.pull.after_resolve"); !s.ok()) return Annotate(s, what);
  if (!content_->Has(image.manifest_digest)) {
    if (absl::Status s = content_->Put(image.manifest_digest, resolved->manifest_json); !s.ok()) {
      return Annotate(s, what);
    }
  }
  // The index the repo digest names; GC finds it through that name.
  if (!resolved->index_json.empty() && !content_->Has(resolved->digest)) {
    if (absl::Status s = content_->Put(resolved->digest, resolved->index_json); !s.ok()) {
      return Annotate(s, what);
    }
  }

  // registry.max_concurrent_downloads workers take layers in order; the first failure stops
  // the others.
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  absl::Mutex result_mu;
  absl::Status result;
  registry::PullOptions layer_options = options;
  layer_options.cancelled = [&failed, &options] {
    return failed.load() || (options.cancelled && options.cancelled());
  };
  auto work = [&] {
    for (size_t i = next++; i < image.layers.size() && !failed.load(); i = next++) {
      absl::Status s = EnsureLayer(ref, resolved->layers[i], config->diff_ids[i],
                                   image.chain_ids[i], layer_options);
      if (s.ok()) s = Failpoint("image.pull.after_layer");
      if (!s.ok()) {
        absl::MutexLock lock(&result_mu);
        // The first real error, not the cancellations it caused in the sibling worker.
        if (result.ok() || (absl::IsCancelled(result) && !failed.load())) result = s;
        failed = true;
      }
    }
  };
  std::vector<std::thread> workers;
  const int n = std::min<int>(std::max(config_.registry.max_concurrent_downloads, 1),
                              static_cast<int>(image.layers.size()));
  for (int i = 1; i < n; ++i) workers.emplace_back(work);
  work();
  for (std::thread& t : workers) t.join();
  {
    absl::MutexLock lock(&result_mu);
    if (!result.ok()) return Annotate(result, what);
  }
  if (options.cancelled && options.cancelled()) return absl::CancelledError(what + ": cancelled");

  if (absl::Status s = Failpoint("image.pull.before_record"); !s.ok()) return Annotate(s, what);
  if (absl::Status s = Record(image); !s.ok()) return Annotate(s, what);
  std::move(collect).Cancel();
  spdlog::info("pulled image {} ({}) in {}: {} layers, {}", ref.String(), image.id,
               absl::FormatDuration(absl::Now() - start), image.layers.size(),
               Megabytes(image.size));
  return image.id;
}

absl::Status ImageStore::EnsureLayer(const Reference& ref, const registry::Descriptor& layer,
                                     const std::string& diff_id, const std::string& chain_id,
                                     const registry::PullOptions& options) {
  for (;;) {
    if (IsDir(SnapshotPath(chain_id)) && content_->Has(layer.digest)) return absl::OkStatus();
    std::shared_ptr<InFlight> flight;
    bool leader = false;
    {
      absl::MutexLock lock(&inflight_mu_);
      auto [it, inserted] = inflight_.try_emplace(layer.digest);
      if (inserted) it->second = std::make_shared<InFlight>();
      flight = it->second;
      leader = inserted;
    }
    if (leader) {
      absl::Status status = FetchLayer(ref, layer, diff_id, chain_id, options);
      {
        absl::MutexLock lock(&inflight_mu_);
        inflight_.erase(layer.digest);
      }
      flight->status = status;
      flight->done.Notify();
      return status;
    }
    spdlog::debug("layer {} is being fetched by another pull; waiting for it", layer.digest);
    while (!flight->done.WaitForNotificationWithTimeout(absl::Milliseconds(100))) {
      if (options.cancelled && options.cancelled()) {
        return absl::CancelledError(absl::StrCat("layer ", layer.digest, ": cancelled"));
      }
    }
    // The other pull's client may have given up; that is no reason for this one to.
    if (!flight->status.ok() && !absl::IsCancelled(flight->status)) return flight->status;
  }
}

absl::Status ImageStore::FetchLayer(const Reference& ref, const registry::Descriptor& layer,
                                    const std::string& diff_id, const std::string& chain_id,
                                    const registry::PullOptions& options) {
  const absl::Time start = absl::Now();
  const std::string what = absl::StrCat("layer ", layer.digest);
  const std::string snapshot = SnapshotPath(chain_id);
  std::unique_ptr<LayerUnpacker> unpacker;
  if (!IsDir(snapshot)) {
    ASSIGN_OR_RETURN(unpacker,
                     LayerUnpacker::Start(TempSnapshotPath(DigestHex(chain_id).substr(0, 12))));
  }
  const bool fetch = !content_->Has(layer.digest);
  uint64_t fetched = 0;
  if (fetch) {
    ASSIGN_OR_RETURN(std::unique_ptr<BlobWriter> writer,
                     content_->NewWriter(layer.digest, layer.size));
    // An unpack error is kept while the download goes on, so that a blob with the wrong
    // digest is reported as such rather than as the corrupt tar it looks like.
    absl::Status unpack_status;
    absl::Status status =
        client_->FetchBlob(ref, layer, options, [&](absl::string_view chunk) -> absl::Status {
          if (options.cancelled && options.cancelled()) {
            return absl::CancelledError(absl::StrCat(what, ": cancelled"));
          }
          RETURN_IF_ERROR(writer->Write(chunk));
          if (unpacker != nullptr && unpack_status.ok()) unpack_status = unpacker->Write(chunk);
          return absl::OkStatus();
        });
    if (!status.ok()) return Annotate(status, absl::StrCat("fetch ", what));
    fetched = writer->written();
    static metrics::CounterFamily& pulled = metrics::Registry::Global().Counter(
        "cribd_image_pull_bytes_total", "Layer bytes downloaded from registries.", {});
    pulled.Add({}, static_cast<double>(fetched));
    if (unpacker != nullptr && unpack_status.ok()) {
      absl::StatusOr<std::string> actual = unpacker->Finish();
      unpack_status = actual.ok() && *actual != diff_id
                          ? absl::DataLossError(absl::StrCat("diff id mismatch: the config says ",
                                                             diff_id, ", the layer is ", *actual))
                          : actual.status();
    }
    RETURN_IF_ERROR(writer->Commit());
    if (!unpack_status.ok()) return Annotate(unpack_status, absl::StrCat("unpack ", what));
  } else if (unpacker != nullptr) {
    ASSIGN_OR_RETURN(UniqueFd fd, content_->OpenBlob(layer.digest));
    if (absl::Status s = FeedFromFd(fd.get(), *unpacker, options.cancelled); !s.ok()) {
      return Annotate(s, absl::StrCat("unpack ", what));
    }
    ASSIGN_OR_RETURN(std::string actual, unpacker->Finish());
    if (actual != diff_id) {
      return absl::DataLossError(absl::StrCat("unpack ", what,
                                              ": diff id mismatch: the config says ", diff_id,
                                              ", the layer is ", actual));
    }
  }
  if (unpacker != nullptr) RETURN_IF_ERROR(unpacker->Commit(snapshot));
  const absl::Duration took = absl::Now() - start;
  spdlog::info("{} of {}: {} fetched, {} unpacked into snapshot {} in {}", what, ref.String(),
               Megabytes(fetched),
               unpacker != nullptr ? Megabytes(unpacker->uncompressed_bytes()) : "nothing",
               DigestHex(chain_id).substr(0, 12), absl::FormatDuration(took));
  return absl::OkStatus();
}

}  // namespace crib::image
