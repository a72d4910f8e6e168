// CreateContainer's translation of a CRI container (with its pod, image and resolved user)
// into the OCI spec the launcher runs: the process (command merged with the image's
// Entrypoint/Cmd, env over the image's Env), mounts (defaults, the pod's hosts/hostname/
// resolv.conf and /dev/shm, the CRI mounts with their propagation), namespaces (the pod's
// net/ipc/uts, the pid mode), capabilities, seccomp, AppArmor, masked and read-only paths,
// devices and cgroup resources, as containerd does it.
//
// The pieces that look at the host (host paths, devices, mount propagation, seccomp profile
// files) are here too; nothing is mounted, and the one thing created is a missing host path of
// a mount (a directory, as containerd and CRI-O make it).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cgroup/layout.h"
#include "container/container.h"
#include "container/image_config.h"
#include "container/users.h"
#include "image/mount_layer.h"
#include "pod/sandbox.h"
#include "runtime/spec.h"

namespace crib::container {

struct SpecInputs {
  const ContainerSpec* request = nullptr;
  const pod::PodSandbox* pod = nullptr;
  const ImageConfig* image = nullptr;
  std::string image_name;  // for error messages
  ResolvedUser user;
  std::string rootfs;                // the mounted overlay
  std::string cgroup_path;           // the container's cgroup
  std::string target_pid_namespace;  // /proc/<pid>/ns/pid of the TARGET container
  std::string termination_file;      // crib's own file for the termination message, if any
  std::string termination_path;      // where it goes in the container
  bool cgroup_v2 = false;
  bool apparmor_enabled = false;
};

absl::StatusOr<runtime::Spec> BuildSpec(const SpecInputs& in);

// The args of the process: kubelet's command and args over the image's Entrypoint and Cmd.
// InvalidArgument when nothing is left to run.
absl::StatusOr<std::vector<std::string>> MergeCommand(const ContainerSpec& request,
                                                      const ImageConfig& image,
                                                      const std::string& image_name);

// The image's Env with the request's envs over it (same key: replaced in place), then the
// defaults crib adds when missing (PATH, HOSTNAME, HOME, TERM for a tty).
std::vector<std::string> MergeEnv(const ContainerSpec& request, const ImageConfig& image,
                                  const std::string& hostname, const std::string& home);

// The capability set containerd would give: the defaults (or all, privileged), then "ALL"
// adds or drops, then each named add and drop. Names may lack the CAP_ prefix and be in any
// case; an unknown name is InvalidArgument.
absl::StatusOr<std::vector<std::string>> ComputeCapabilities(const SecurityContext& security);

// The seccomp profile the request asks for; nullopt for unconfined.
absl::StatusOr<std::optional<runtime::Seccomp>> ComputeSeccomp(
    const SecurityContext& security, const std::vector<std::string>& capabilities);

// The OCI mounts of the CRI mounts: host paths resolved (symlinks followed), missing ones
// made as directories, propagation checked against the source's mount. Sorted so that a parent is
// mounted before what goes inside it.
absl::StatusOr<std::vector<runtime::Mount>> CriMounts(const std::vector<MountSpec>& mounts);

// The mount points of crib's own mounts in every container's root file system (BuildMounts):
// /proc, /dev and /sys, and the pod's /etc files. /dev's and /proc's inner mounts are not:
// they are made on those file systems.
std::vector<image::MountPoint> DefaultMountPoints();

// Whether the container mounts on each of DefaultMountPoints() something of that point's kind
// (a directory or a file): true unless a CRI mount takes one's place with the other kind, or
// with a host path that cannot be read yet.
bool MountsDefaultPoints(const ContainerSpec& spec);

// CRI resources as the launcher's cgroup limits; zero leaves a limit unset, unified keys only
// on cgroup v2.
runtime::Resources ToRuntimeResources(const Resources& resources, bool cgroup_v2);

// Leaves out of `resources` what this machine cannot limit, and names each omission
// ("hugetlb: <why>"): the limits of a controller it does not offer (cpu, cpuset, hugetlb), as
// runc treats an unmounted v1 controller, and huge page sizes the kernel does not have (no
// process can use those pages). Memory limits and device rules stay: without their controller
// the launcher refuses them, since an unlimited container or one with every device is unsafe.
std::vector<std::string> FitToMachine(const cgroup::Layout& layout, runtime::Resources* resources);

// The AppArmor profile to apply, or empty.
absl::StatusOr<std::string> ComputeAppArmor(const SecurityContext& security, bool enabled);

// True when the host's kernel enforces AppArmor.
bool AppArmorEnabled();

}  // namespace crib::container
