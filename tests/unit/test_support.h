// test_support.h: small helpers the unit tests share.
#pragma once

#include <fstream>
#include <sstream>
#include <string>

namespace test_support {

// The whole content of a file ("" if it cannot be read).
inline std::string read_file(const std::string &path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// How many times `what` occurs in `text`.
inline int count_of(const std::string &text, const std::string &what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace test_support
