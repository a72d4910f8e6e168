// strerror in crib's message style (lowercase: "no such file or directory"), for the parts
// of the launcher that cannot use common/errors.h (crib-monitor links no absl).
#pragma once

#include <cctype>
#include <cstring>
#include <string>

namespace crib::runtime {

inline std::string ErrorText(int err) {
  std::string text = std::strerror(err);
  if (!text.empty() && !(text.size() > 1 && std::isupper(static_cast<unsigned char>(text[1])))) {
    text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
  }
  return text;
}

}  // namespace crib::runtime
