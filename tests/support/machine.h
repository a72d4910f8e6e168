// Looking at the machine from a test: shell commands, mounts, cgroups, processes and
// directory entries, for the checks that a test left nothing behind.
#pragma once

#include <sys/types.h>

#include <set>
#include <string>
#include <utility>
#include <vector>

namespace crib::testing {

// The file's content with surrounding whitespace stripped; empty when it cannot be read.
std::string Slurp(const std::string& path);

// Runs a shell command (stderr merged into stdout); returns its exit code and its output.
std::pair<int, std::string> Sh(const std::string& command);

// Mount points at or below `dir`, from /proc/mounts.
std::vector<std::string> MountsUnder(const std::string& dir);

// The v1 hierarchies this machine mounts (one directory each).
std::vector<std::string> Hierarchies();

// Cgroup directories directly below `parent` in every hierarchy.
int CgroupsUnder(const std::string& parent);

// Removes `parent` and the cgroups below it (depth-first) in every hierarchy.
void RemoveCgroupTree(const std::string& parent);

// Entries of a directory; 0 when it does not exist.
int EntriesIn(const std::string& dir);

// Whether `pid` has exited (a zombie counts: pid 1 of this machine may not reap).
bool Exited(pid_t pid);

// Live processes whose command line contains `needle` (zombies do not count).
std::set<pid_t> ProcessesWith(const std::string& needle);

}  // namespace crib::testing
