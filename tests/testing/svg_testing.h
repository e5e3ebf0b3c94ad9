#ifndef BUSYFLEET_TESTS_TESTING_SVG_TESTING_H_
#define BUSYFLEET_TESTS_TESTING_SVG_TESTING_H_

// Helpers for the unit tests of the SVG renderers. Header-only.

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace busyfleet::testing {

// How many times `needle` occurs in `haystack`, without overlaps.
inline size_t CountOccurrences(const std::string& haystack,
                               const std::string& needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + needle.size())) {
    ++n;
  }
  return n;
}

// Whether `text` is well-formed XML, by a real parser: xmllint when installed
// (Debian libxml2-utils), Python's xml.etree otherwise.
inline ::testing::AssertionResult IsWellFormedXml(const std::string& text) {
  static std::atomic<int> counter{0};
  const std::filesystem::path path =
      std::filesystem::path(::testing::TempDir()) /
      absl::StrCat("busyfleet_xml_", ::getpid(), "_", counter++, ".xml");
  {
    std::ofstream out(path, std::ios::binary);
    out << text;
    if (!out) {
      return ::testing::AssertionFailure() << "cannot write " << path;
    }
  }
  const bool have_xmllint =
      std::system("command -v xmllint >/dev/null 2>&1") == 0;
  const std::string command =
      have_xmllint ? absl::StrCat("xmllint --noout '", path.string(), "' 2>&1")
                   : absl::StrCat(
                         "python3 -c 'import sys,xml.etree.ElementTree as E; "
                         "E.parse(sys.argv[1])' '",
                         path.string(), "' 2>&1");
  // The parser's complaint goes into the failure message, not the log.
  std::string output;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    std::filesystem::remove(path);
    return ::testing::AssertionFailure() << "could not run: " << command;
  }
  char buffer[512];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
    if (output.size() < 4096) output.append(buffer, n);
  }
  const int status = ::pclose(pipe);
  std::filesystem::remove(path);
  if (status == -1 || !WIFEXITED(status)) {
    return ::testing::AssertionFailure() << "could not run: " << command;
  }
  if (WEXITSTATUS(status) != 0) {
    return ::testing::AssertionFailure()
           << (have_xmllint ? "xmllint" : "python3 xml.etree")
           << " rejects the document (exit " << WEXITSTATUS(status)
           << "): " << output << "\nfirst 300 bytes: " << text.substr(0, 300);
  }
  return ::testing::AssertionSuccess();
}

}  // namespace busyfleet::testing

#endif  // BUSYFLEET_TESTS_TESTING_SVG_TESTING_H_
