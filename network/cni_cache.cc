#include "network/cni_cache.h"

#include <dirent.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/errors.h"
#include "common/files.h"

namespace crib::network::cni {
namespace {

using nlohmann::json;

constexpr char kKind[] = "cribCniAttachmentV1";

}  // namespace

std::vector<std::string> AttachmentCache::PodIds() const {
  std::vector<std::string> ids;
  DIR* dir = ::opendir(dir_.c_str());
  if (dir == nullptr) return ids;
  while (struct dirent* e = ::readdir(dir)) {
    absl::string_view name = e->d_name;
    if (absl::ConsumeSuffix(&name, ".json") && !name.empty() && name[0] != '.') {
      ids.emplace_back(name);
    }
  }
  ::closedir(dir);
  return ids;
}

std::string AttachmentCache::PathOf(absl::string_view pod_id) const {
  return absl::StrCat(dir_, "/", pod_id, ".json");
}

absl::Status AttachmentCache::Save(const Attachment& attachment) const {
  if (absl::Status s = MakeDirs(dir_, 0700); !s.ok()) {
    return Annotate(s, "create the cni result cache");
  }
  const json record = {
      {"kind", kKind},
      {"containerId", attachment.pod_id},
      {"config", attachment.network.ToJson()},
      {"configSource", attachment.network.source},
      {"netns", attachment.netns},
      {"ifName", attachment.ifname},
      {"cniArgs", attachment.cni_args},
      {"capabilityArgs", attachment.capability_args},
      {"result", attachment.result},
      {"delFailures", attachment.del_failures},
  };
  const std::string path = PathOf(attachment.pod_id);
  return Annotate(
      WriteFileAtomic(path, record.dump(1, ' ', false, json::error_handler_t::replace), 0600),
      absl::StrCat("write cni result cache ", path));
}

absl::StatusOr<Attachment> AttachmentCache::Load(absl::string_view pod_id) const {
  const std::string path = PathOf(pod_id);
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return text.status();
  auto bad = [&path](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("cni result cache ", path, ": ", what));
  };
  const json record = json::parse(*text, nullptr, false);
  if (!record.is_object() || record.value("kind", json()) != kKind) {
    return bad("not a crib cni attachment");
  }
  Attachment out;
  out.pod_id = std::string(pod_id);
  auto config = record.find("config");
  if (config == record.end() || !config->is_object()) return bad("no network config");
  const json source = record.value("configSource", json());
  absl::StatusOr<NetworkConfigList> network =
      ParseConfigList(config->dump(), source.is_string() ? source.get<std::string>() : path);
  if (!network.ok()) return bad(network.status().message());
  out.network = *std::move(network);
  for (const auto& [key, field] : {std::pair{"netns", &out.netns}, std::pair{"ifName", &out.ifname},
                                   std::pair{"cniArgs", &out.cni_args}}) {
    auto it = record.find(key);
    if (it == record.end() || !it->is_string()) return bad(absl::StrCat("no ", key));
    *field = it->get<std::string>();
  }
  if (auto args = record.find("capabilityArgs"); args != record.end() && args->is_object()) {
    out.capability_args = *args;
  }
  if (auto result = record.find("result"); result != record.end() && result->is_object()) {
    out.result = *result;
  }
  if (auto failures = record.find("delFailures");
      failures != record.end() && failures->is_number_integer()) {
    out.del_failures = failures->get<int>();
  }
  return out;
}

absl::Status AttachmentCache::Remove(absl::string_view pod_id) const {
  const std::string path = PathOf(pod_id);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoStatus(errno, absl::StrCat("remove cni result cache ", path));
  }
  return absl::OkStatus();
}

}  // namespace crib::network::cni
