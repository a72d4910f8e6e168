#include "pod/pod_files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/errors.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/unique_fd.h"

namespace crib::pod {
namespace {

// Temporary file and rename, so a container never sees a torn file; no fsync, because these
// files live in the state dir (a tmpfs, gone on reboot) and cribd writes them again if needed.
absl::Status ReplaceFile(const std::string& path, absl::string_view content) {
  return WriteFileAtomic(path, content, 0644, Durability::kVolatile);
}

}  // namespace

std::string HostsContent(const std::vector<std::string>& ips, const std::string& hostname) {
  std::string out =
      "127.0.0.1\tlocalhost\n"
      "::1\tlocalhost ip6-localhost ip6-loopback\n"
      "fe00::0\tip6-localnet\n"
      "fe00::0\tip6-mcastprefix\n"
      "fe00::1\tip6-allnodes\n"
      "fe00::2\tip6-allrouters\n";
  for (const std::string& ip : ips) absl::StrAppend(&out, ip, "\t", hostname, "\n");
  return out;
}

std::string ResolvConfContent(const DnsConfig& dns) {
  std::string out;
  if (!dns.searches.empty())
    absl::StrAppend(&out, "search ", absl::StrJoin(dns.searches, " "), "\n");
  for (const std::string& server : dns.servers) absl::StrAppend(&out, "nameserver ", server, "\n");
  if (!dns.options.empty())
    absl::StrAppend(&out, "options ", absl::StrJoin(dns.options, " "), "\n");
  return out;
}

absl::Status WriteHostname(const std::string& pod_dir, const std::string& hostname) {
  return ReplaceFile(absl::StrCat(pod_dir, "/hostname"), absl::StrCat(hostname, "\n"));
}

absl::Status WriteHosts(const std::string& pod_dir, const std::string& content) {
  return ReplaceFile(absl::StrCat(pod_dir, "/hosts"), content);
}

absl::Status WriteResolvConf(const std::string& pod_dir, const DnsConfig& dns) {
  std::string content;
  if (dns.empty()) {
    absl::StatusOr<std::string> host = ReadFile("/etc/resolv.conf");
    if (!host.ok() && !absl::IsNotFound(host.status())) return host.status();
    content = host.ok() ? *host : "";
  } else {
    content = ResolvConfContent(dns);
  }
  return ReplaceFile(absl::StrCat(pod_dir, "/resolv.conf"), content);
}

absl::StatusOr<std::string> HostHosts() { return ReadFile("/etc/hosts"); }

}  // namespace crib::pod
