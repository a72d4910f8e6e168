// A path field of /proc/self/mountinfo (the mount point, the root) as the path it names: the
// kernel writes a space, tab, newline and backslash as octal escapes ("\040"). Header-only and
// std-only, for crib-monitor too.
#pragma once

#include <string>
#include <string_view>

namespace crib {

inline std::string UnescapeMountInfoPath(std::string_view field) {
  std::string path;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size() && field[i + 1] >= '0' && field[i + 1] <= '3') {
      path.push_back(static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 +
                                       (field[i + 3] - '0')));
      i += 3;
    } else {
      path.push_back(field[i]);
    }
  }
  return path;
}

}  // namespace crib
