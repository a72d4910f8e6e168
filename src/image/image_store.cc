#include "image/image_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/errors.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"
#include "image/digest.h"
#include "image/fs_util.h"
#include "image/reference.h"
#include "nlohmann/json.hpp"

namespace crib::image {
namespace {

using json = nlohmann::json;

constexpr char kTempPrefix[] = ".tmp-";
// Beside snapshots/<hex>: <hex>.mounts/<key>, its mount-point layers.
constexpr char kMountLayersSuffix[] = ".mounts";

bool IsDigestName(absl::string_view name) { return absl::StrContains(name, "@"); }

// The blobs an image holds: its config, manifest and layers, and the index (or manifest) each
// of its repo digests names.
std::vector<std::string> Blobs(const Image& image) {
  std::vector<std::string> blobs = image.layers;
  blobs.push_back(image.id);
  if (!image.manifest_digest.empty()) blobs.push_back(image.manifest_digest);
  for (const std::string& name : image.repo_digests) {
    const std::string digest = name.substr(name.find('@') + 1);
    if (ValidateSha256(digest).ok()) blobs.push_back(digest);
  }
  return blobs;
}

// The record's data blob: everything but id, size and names.
std::string EncodeData(const Image& image) {
  json j;
  j["user"] = image.user;
  j["annotations"] = image.annotations;
  j["manifest_digest"] = image.manifest_digest;
  j["layers"] = image.layers;
  j["chain_ids"] = image.chain_ids;
  return j.dump();
}

void SplitUser(Image& image) {
  const absl::string_view user = absl::string_view(image.user).substr(0, image.user.find(':'));
  int64_t uid;
  if (!user.empty() && absl::SimpleAtoi(user, &uid) && uid >= 0) {
    image.uid = uid;
  } else {
    image.username = std::string(user);
  }
}

}  // namespace

std::string NormalizeImageName(absl::string_view ref) {
  absl::StatusOr<Reference> parsed = ParseReference(ref);
  if (!parsed.ok()) return "";
  if (!parsed->digest.empty()) return absl::StrCat(parsed->Name(), "@", parsed->digest);
  return absl::StrCat(parsed->Name(), ":", parsed->tag);
}

ImageStore::ImageStore(const Config& config, store::Store& store,
                       std::unique_ptr<ContentStore> content)
    : config_(config),
      store_(store),
      content_(std::move(content)),
      snapshots_dir_(absl::StrCat(config.root_dir, "/snapshots")),
      client_(std::make_unique<registry::Client>(config)) {}

ImageStore::~ImageStore() = default;

absl::StatusOr<std::unique_ptr<ImageStore>> ImageStore::Open(const Config& config,
                                                             store::Store& store) {
  ASSIGN_OR_RETURN(std::unique_ptr<ContentStore> content, ContentStore::Open(config.root_dir));
  const std::string snapshots = absl::StrCat(config.root_dir, "/snapshots");
  // Each unpack makes a tree of its own here and each removal deletes one: spread over the
  // file system's block groups (see MarkTopDirectory).
  if (absl::StatusOr<bool> top = MarkTopDirectory(snapshots, 0700); !top.ok()) {
    spdlog::warn("image store: {}", top.status().message());
    RETURN_IF_ERROR(MakeDirs(snapshots, 0700));
  }
  // Where removed snapshots go (the container room deletes what a crash left there).
  RETURN_IF_ERROR(MakeDirs(Trash::DirOf(config.root_dir), 0700));
  // Unpacks a crash interrupted, and snapshots being removed before the trash took them.
  if (DIR* d = ::opendir(snapshots.c_str())) {
    std::vector<std::string> leftovers;
    while (struct dirent* e = ::readdir(d)) {
      if (absl::StartsWith(e->d_name, kTempPrefix)) leftovers.push_back(e->d_name);
    }
    ::closedir(d);
    for (const std::string& name : leftovers) {
      RETURN_IF_ERROR(RemoveAll(absl::StrCat(snapshots, "/", name)));
    }
  }
  std::unique_ptr<ImageStore> images(new ImageStore(config, store, std::move(content)));
  {
    // Blobs of pulls a crash interrupted after their commit. Snapshots wait for
    // CollectGarbage: a container may still use one whose image is gone.
    absl::MutexLock gc(&images->gc_mu_);
    RETURN_IF_ERROR(images->Sweep(/*snapshots=*/false));
  }
  return images;
}

std::string ImageStore::SnapshotPath(absl::string_view chain_id) const {
  return absl::StrCat(snapshots_dir_, "/", DigestHex(chain_id));
}

absl::StatusOr<std::string> ImageStore::MountPointLayer(const std::vector<std::string>& chain_ids,
                                                        const std::vector<MountPoint>& points) {
  if (chain_ids.empty() || points.empty()) return std::string();
  // The points' key: FNV-1a of their paths and kinds, stable from one cribd to the next.
  uint64_t hash = 14695981039346656037ULL;
  for (const MountPoint& point : points) {
    for (char c : absl::StrCat(point.path, point.file ? "\1" : "\2")) {
      hash = (hash ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
    }
  }
  const std::string key = absl::StrCat(absl::Hex(hash, absl::kZeroPad16));
  const std::string cache_key = absl::StrCat(chain_ids.back(), " ", key);
  {
    absl::MutexLock lock(&mu_);
    if (auto it = mount_layers_.find(cache_key); it != mount_layers_.end()) return it->second;
  }
  const std::string layers_dir = absl::StrCat(SnapshotPath(chain_ids.back()), kMountLayersSuffix);
  const std::string path = absl::StrCat(layers_dir, "/", key);
  auto remember = [&](const std::string& layer) {
    absl::MutexLock lock(&mu_);
    mount_layers_[cache_key] = layer;
    return layer;
  };
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return remember(path);
  // Made under a temporary name (what a crash leaves of it, Open removes), then renamed in.
  const std::string temp = TempSnapshotPath("mounts");
  if (::mkdir(temp.c_str(), 0755) != 0) return ErrnoStatus(errno, absl::StrCat("mkdir ", temp));
  std::vector<std::string> layers;
  for (auto it = chain_ids.rbegin(); it != chain_ids.rend(); ++it) {
    layers.push_back(SnapshotPath(*it));
  }
  absl::StatusOr<bool> made = MakeMountPointLayer(layers, points, temp);
  if (!made.ok() || !*made) {
    (void)RemoveAll(temp);
    if (!made.ok()) return made.status();
    return remember("");
  }
  // Durable before its rename, as a snapshot is: a layer cut short by a crash of the machine
  // would show containers an /etc of the wrong mode.
  UniqueFd temp_fd(::open(temp.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  absl::Status ready = !temp_fd                       ? ErrnoStatus(errno, "open " + temp)
                       : ::syncfs(temp_fd.get()) != 0 ? ErrnoStatus(errno, "syncfs " + temp)
                                                      : MakeDirs(layers_dir, 0700);
  if (!ready.ok()) {
    (void)RemoveAll(temp);
    return ready;
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    (void)RemoveAll(temp);
    // Another create made it first.
    if (err != EEXIST && err != ENOTEMPTY) {
      return ErrnoStatus(err, absl::StrCat("rename ", temp, " to ", path));
    }
  } else if (UniqueFd dir(::open(layers_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)); dir) {
    ::fsync(dir.get());
  }
  return remember(path);
}

void ImageStore::SetSnapshotInUse(SnapshotInUse in_use) {
  absl::MutexLock lock(&mu_);
  in_use_ = std::move(in_use);
}

ImageStore::Lease::Lease(ImageStore* store, std::vector<std::string> keys)
    : store_(store), keys_(std::move(keys)) {
  absl::MutexLock lock(&store_->mu_);
  for (const std::string& key : keys_) ++store_->leases_[key];
}

ImageStore::Lease::~Lease() {
  absl::MutexLock lock(&store_->mu_);
  for (const std::string& key : keys_) {
    if (--store_->leases_[key] == 0) store_->leases_.erase(key);
  }
}

bool ImageStore::Held(const std::string& key) {
  absl::MutexLock lock(&mu_);
  if (leases_.count(key) > 0) return true;
  return in_use_ && in_use_(key);
}

absl::StatusOr<Image> ImageStore::FromRecord(const store::ImageRecord& record) {
  Image image;
  image.id = record.id;
  image.size = record.size;
  for (const std::string& name : record.names) {
    (IsDigestName(name) ? image.repo_digests : image.repo_tags).push_back(name);
  }
  json j = json::parse(record.data, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) {
    return absl::DataLossError(absl::StrCat("image ", record.id, ": unreadable record data"));
  }
  image.user = j.value("user", "");
  image.manifest_digest = j.value("manifest_digest", "");
  if (j.contains("annotations") && j["annotations"].is_object()) {
    for (const auto& [k, v] : j["annotations"].items()) {
      if (v.is_string()) image.annotations[k] = v.get<std::string>();
    }
  }
  for (const char* key : {"layers", "chain_ids"}) {
    if (!j.contains(key) || !j[key].is_array()) continue;
    auto& out = std::string(key) == "layers" ? image.layers : image.chain_ids;
    for (const auto& v : j[key]) {
      if (v.is_string()) out.push_back(v.get<std::string>());
    }
  }
  SplitUser(image);
  return image;
}

absl::StatusOr<std::pair<store::ImageRecord, std::string>> ImageStore::Find(absl::string_view ref) {
  if (ref.empty()) return absl::InvalidArgumentError("image reference is empty");
  // A full id, or a bare hex id as crictl prints it.
  std::string id(ref);
  if (!absl::StartsWith(id, kSha256Prefix) && id.size() == 64) id = absl::StrCat(kSha256Prefix, id);
  if (ValidateSha256(id).ok()) {
    absl::StatusOr<store::ImageRecord> record = store_.GetImage(id);
    if (record.ok()) return std::make_pair(*std::move(record), std::string());
    if (!absl::IsNotFound(record.status())) return record.status();
  }
  // A name exactly as recorded, then normalized.
  for (const std::string& name : {std::string(ref), NormalizeImageName(ref)}) {
    if (name.empty()) continue;
    absl::StatusOr<store::ImageRecord> record = store_.FindImageByName(name);
    if (record.ok()) return std::make_pair(*std::move(record), name);
    if (!absl::IsNotFound(record.status())) return record.status();
  }
  // A unique id prefix (at least 4 hex digits), as containerd's truncated ids.
  absl::string_view hex = absl::StripPrefix(ref, kSha256Prefix);
  if (hex.size() >= 4 && std::all_of(hex.begin(), hex.end(), [](char c) {
        return absl::ascii_isdigit(c) || (c >= 'a' && c <= 'f');
      })) {
    ASSIGN_OR_RETURN(std::vector<store::ImageRecord> all, store_.ListImages());
    std::vector<store::ImageRecord> matches;
    for (store::ImageRecord& r : all) {
      if (absl::StartsWith(DigestHex(r.id), hex)) matches.push_back(std::move(r));
    }
    if (matches.size() == 1) return std::make_pair(std::move(matches[0]), std::string());
    if (matches.size() > 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("image id prefix ", ref, " is ambiguous: ", matches.size(), " images"));
    }
  }
  return CriNotFound(absl::StrCat("image ", ref, " not found"));
}

absl::StatusOr<std::vector<Image>> ImageStore::List(absl::string_view filter) {
  std::vector<Image> out;
  if (!filter.empty()) {
    absl::StatusOr<std::pair<store::ImageRecord, std::string>> found = Find(filter);
    if (absl::IsNotFound(found.status()) || absl::IsInvalidArgument(found.status())) return out;
    if (!found.ok()) return found.status();
    ASSIGN_OR_RETURN(Image image, FromRecord(found->first));
    out.push_back(std::move(image));
    return out;
  }
  ASSIGN_OR_RETURN(std::vector<store::ImageRecord> records, store_.ListImages());
  for (const store::ImageRecord& record : records) {
    ASSIGN_OR_RETURN(Image image, FromRecord(record));
    out.push_back(std::move(image));
  }
  return out;
}

absl::StatusOr<Image> ImageStore::Status(absl::string_view ref, bool verbose) {
  ASSIGN_OR_RETURN(auto found, Find(ref));
  ASSIGN_OR_RETURN(Image image, FromRecord(found.first));
  if (verbose) {
    absl::StatusOr<std::string> config = content_->Read(image.id);
    if (!config.ok()) return Annotate(config.status(), absl::StrCat("image ", image.id));
    image.config_json = *std::move(config);
  }
  return image;
}

absl::StatusOr<bool> ImageStore::Contains(absl::string_view id) {
  absl::StatusOr<store::ImageRecord> record = store_.GetImage(id);
  if (absl::IsNotFound(record.status())) return false;
  RETURN_IF_ERROR(record.status());
  return true;
}

absl::Status ImageStore::Remove(absl::string_view ref) {
  absl::MutexLock gc(&gc_mu_);
  ASSIGN_OR_RETURN(auto found, Find(ref));
  auto& [record, name] = found;
  ASSIGN_OR_RETURN(Image image, FromRecord(record));
  if (!name.empty() && !IsDigestName(name) && image.repo_tags.size() > 1) {
    RETURN_IF_ERROR(store_.RemoveImageName(name));
    spdlog::info("image {}: untagged {}", image.id, name);
    return absl::OkStatus();
  }
  RETURN_IF_ERROR(store_.DeleteImage(image.id));
  spdlog::info("image {} removed ({})", image.id, ref);
  return Collect(image);
}

absl::Status ImageStore::Record(const Image& image) {
  absl::MutexLock gc(&gc_mu_);
  store::ImageRecord record;
  record.id = image.id;
  record.size = image.size;
  record.data = EncodeData(image);
  std::vector<std::string> names = image.repo_tags;
  names.insert(names.end(), image.repo_digests.begin(), image.repo_digests.end());
  // An image whose tag moves here keeps its repo digest, as in containerd: kubelet's image GC
  // removes it once no container uses it.
  return store_.PutImage(record, names);
}

absl::StatusOr<std::set<std::string>> ImageStore::Referenced() {
  std::set<std::string> kept;
  ASSIGN_OR_RETURN(std::vector<store::ImageRecord> records, store_.ListImages());
  for (const store::ImageRecord& record : records) {
    ASSIGN_OR_RETURN(Image image, FromRecord(record));
    for (std::string& blob : Blobs(image)) kept.insert(std::move(blob));
    kept.insert(image.chain_ids.begin(), image.chain_ids.end());
  }
  return kept;
}

std::string ImageStore::TempSnapshotPath(absl::string_view what) {
  return absl::StrCat(snapshots_dir_, "/", kTempPrefix, what, "-", ::getpid(), "-",
                      temp_counter_++);
}

absl::Status ImageStore::DeleteSnapshot(const std::string& chain_id) {
  // Renamed out of the snapshots first (into the trash, whose thread deletes it), so that a
  // half-deleted snapshot is never taken for a whole one. Its mount-point layers go first.
  {
    absl::MutexLock lock(&mu_);
    const std::string prefix = absl::StrCat(chain_id, " ");
    for (auto it = mount_layers_.lower_bound(prefix);
         it != mount_layers_.end() && absl::StartsWith(it->first, prefix);) {
      it = mount_layers_.erase(it);
    }
  }
  RETURN_IF_ERROR(trash_.Discard(absl::StrCat(SnapshotPath(chain_id), kMountLayersSuffix),
                                 Trash::DirOf(config_.root_dir)));
  bool found = false;
  RETURN_IF_ERROR(trash_.Discard(SnapshotPath(chain_id), Trash::DirOf(config_.root_dir), &found));
  if (found) spdlog::info("snapshot {} deleted", chain_id);
  return absl::OkStatus();
}

absl::Status ImageStore::Collect(const Image& removed) {
  ASSIGN_OR_RETURN(const std::set<std::string> kept, Referenced());
  for (const std::string& digest : Blobs(removed)) {
    if (kept.count(digest) > 0 || Held(digest)) continue;
    RETURN_IF_ERROR(content_->Delete(digest));
  }
  for (const std::string& chain_id : removed.chain_ids) {
    if (kept.count(chain_id) > 0 || Held(chain_id)) continue;
    RETURN_IF_ERROR(DeleteSnapshot(chain_id));
  }
  return absl::OkStatus();
}

absl::Status ImageStore::Sweep(bool snapshots) {
  ASSIGN_OR_RETURN(const std::set<std::string> kept, Referenced());
  ASSIGN_OR_RETURN(const std::vector<std::string> blobs, content_->List());
  int deleted = 0;
  for (const std::string& digest : blobs) {
    if (kept.count(digest) > 0 || Held(digest)) continue;
    RETURN_IF_ERROR(content_->Delete(digest));
    ++deleted;
  }
  if (deleted > 0) spdlog::info("image store: deleted {} blobs no image references", deleted);
  if (!snapshots) return absl::OkStatus();
  std::vector<std::string> chain_ids;
  DIR* d = ::opendir(snapshots_dir_.c_str());
  if (d == nullptr) return ErrnoStatus(errno, absl::StrCat("open ", snapshots_dir_));
  std::vector<std::string> layer_dirs;  // mount-point layers, whose snapshot may be gone
  while (struct dirent* e = ::readdir(d)) {
    std::string chain_id = absl::StrCat(kSha256Prefix, e->d_name);
    if (ValidateSha256(chain_id).ok()) chain_ids.push_back(std::move(chain_id));
    if (absl::EndsWith(e->d_name, kMountLayersSuffix)) layer_dirs.push_back(e->d_name);
  }
  ::closedir(d);
  for (const std::string& name : layer_dirs) {
    const std::string snapshot =
        absl::StrCat(snapshots_dir_, "/", absl::StripSuffix(name, kMountLayersSuffix));
    if (::access(snapshot.c_str(), F_OK) != 0 && errno == ENOENT) {
      RETURN_IF_ERROR(
          trash_.Discard(absl::StrCat(snapshots_dir_, "/", name), Trash::DirOf(config_.root_dir)));
    }
  }
  for (const std::string& chain_id : chain_ids) {
    if (kept.count(chain_id) > 0 || Held(chain_id)) continue;
    RETURN_IF_ERROR(DeleteSnapshot(chain_id));
  }
  return absl::OkStatus();
}

absl::Status ImageStore::CollectGarbage() {
  absl::MutexLock gc(&gc_mu_);
  return Sweep(/*snapshots=*/true);
}

absl::StatusOr<FsUsage> ImageStore::FsInfo() {
  const int64_t now = absl::ToUnixNanos(absl::Now());
  ASSIGN_OR_RETURN(DiskUsage content, content_->Usage());
  ASSIGN_OR_RETURN(DiskUsage snapshots, MeasureUsage(snapshots_dir_));
  return FsUsage{config_.root_dir, content.bytes + snapshots.bytes,
                 content.inodes + snapshots.inodes, now};
}

}  // namespace crib::image
