// Each public header was compiled alone (see header_check.cpp.in); the build fails if one is not
// self-contained or pulls in an OS header. This test checks the list is the whole public surface.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

extern std::vector<std::string> mp_checked_headers();

TEST(PublicHeaders, EachCompiledAloneWithoutOsHeaders) {
  auto headers = mp_checked_headers();
  EXPECT_GE(headers.size(), 10u);
  for (const char* required : {"mp.hpp", "process.hpp", "context.hpp", "codec.hpp", "handle.hpp"}) {
    EXPECT_NE(std::find(headers.begin(), headers.end(), required), headers.end()) << required;
  }
}

// No public header names an OS header in an #include directive.
TEST(PublicHeaders, IncludeNoOsHeaderDirectly) {
  const std::regex os_header(
      R"(^\s*#\s*include\s*<(unistd|windows|winsock2|pthread|semaphore|signal|fcntl|poll|spawn|dlfcn|sched)\.h>|^\s*#\s*include\s*<sys/)");
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(MP_PUBLIC_INCLUDE_DIR "/mp")) {
    std::ifstream in(entry.path());
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
      ++n;
      EXPECT_FALSE(std::regex_search(line, os_header)) << entry.path() << ":" << n << ": " << line;
    }
    ++checked;
  }
  EXPECT_GE(checked, 10);
}
