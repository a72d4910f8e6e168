#include "cgroup/parent.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "cgroup/cgroup_files.h"
#include "common/status_macros.h"

namespace crib::cgroup {
namespace {

constexpr absl::string_view kSliceSuffix = ".slice";
// systemd's longest unit name (UNIT_NAME_MAX less its terminating NUL).
constexpr size_t kMaxUnitName = 255;

// The characters systemd allows in a unit name (before its type suffix).
bool IsUnitNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == ':' || c == '-' || c == '_' ||
         c == '.' || c == '\\';
}

absl::Status BadSlice(absl::string_view slice, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("cgroup parent \"", slice, "\" is not a systemd slice name: ", why));
}

}  // namespace

absl::StatusOr<std::string> ExpandSlice(absl::string_view slice) {
  absl::string_view name = slice;
  if (!absl::ConsumeSuffix(&name, kSliceSuffix) || name.empty()) {
    return BadSlice(slice, "it does not end in .slice");
  }
  if (slice.size() > kMaxUnitName) return BadSlice(slice, "it is longer than 255 characters");
  for (char c : name) {
    if (!IsUnitNameChar(c))
      return BadSlice(slice, absl::StrCat("it has the character '", std::string(1, c), "'"));
  }
  if (name != "-" &&
      (absl::StartsWith(name, "-") || absl::EndsWith(name, "-") || absl::StrContains(name, "--"))) {
    return BadSlice(slice, "a dash at its start or end, or two dashes in a row");
  }
  return SlicePath(std::string(slice));
}

absl::StatusOr<SystemdPath> ParseSystemdPath(absl::string_view path) {
  std::vector<std::string> parts = absl::StrSplit(path, ':');
  if (parts.size() != 3 || parts[1].empty() || parts[2].empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cgroup path \"", path, "\" is not of the systemd form <slice>:<prefix>:<name>"));
  }
  SystemdPath out{parts[0], parts[1], parts[2]};
  if (!out.slice.empty()) {
    absl::StatusOr<std::string> expanded = ExpandSlice(out.slice);
    if (!expanded.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("cgroup path \"", path, "\": ", expanded.status().message()));
    }
  }
  return out;
}

absl::StatusOr<std::string> SliceOfParent(absl::string_view parent) {
  if (absl::StrContains(parent, ':')) {
    // containerd's "<slice>:<prefix>:<name>" names a container's own scope, not a parent: the
    // pod's slice and scopes are crib's to name.
    RETURN_IF_ERROR(ParseSystemdPath(parent).status());
    return absl::InvalidArgumentError(absl::StrCat(
        "cgroup parent \"", parent,
        "\" is a container's systemd cgroup path (slice:prefix:name); a pod's parent is a slice, "
        "such as kubepods-besteffort.slice or its path /kubepods.slice/kubepods-besteffort.slice"));
  }
  if (!absl::StartsWith(parent, "/")) {
    if (!parent.empty()) RETURN_IF_ERROR(ExpandSlice(parent).status());
    return std::string(parent);
  }
  absl::string_view path = absl::StripSuffix(parent, "/");
  const absl::string_view last = path.substr(path.rfind('/') + 1);
  absl::StatusOr<std::string> expanded =
      absl::EndsWith(last, kSliceSuffix) ? ExpandSlice(last) : absl::StatusOr<std::string>("");
  if (!expanded.ok() || *expanded != path) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cgroup parent \"", parent,
        "\" is a cgroupfs path, but crib runs with cgroup_driver \"systemd\": kubelet's "
        "cgroupDriver must be systemd too (it then sends the path of a slice, such as "
        "/kubepods.slice/kubepods-besteffort.slice)"));
  }
  return std::string(last);
}

absl::Status CheckCgroupParent(absl::string_view parent, bool systemd) {
  if (parent.empty()) return absl::OkStatus();
  if (systemd) return SliceOfParent(parent).status();
  if (!absl::StartsWith(parent, "/")) {
    if (absl::EndsWith(parent, kSliceSuffix)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cgroup parent \"", parent,
          "\" is a systemd slice, but crib runs with cgroup_driver \"cgroupfs\": kubelet's "
          "cgroupDriver must be cgroupfs too, or crib's systemd"));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("cgroup parent \"", parent, "\" is not an absolute path"));
  }
  for (absl::string_view part : absl::StrSplit(parent, '/', absl::SkipEmpty())) {
    if (part == "." || part == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("cgroup parent \"", parent, "\" has a \"", part, "\" component"));
    }
  }
  return absl::OkStatus();
}

}  // namespace crib::cgroup
