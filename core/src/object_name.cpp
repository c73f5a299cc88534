#include "object_name.hpp"
#include "random.hpp"

#include "platform/process.hpp"

namespace mp::detail {

std::string make_object_name() {
  char digits[16];
  std::size_t n = 0;
  unsigned v = static_cast<unsigned>(platform::current_pid());
  do {
    digits[n++] = "0123456789abcdefghijklmnopqrstuvwxyz"[v % 36];
    v /= 36;
  } while (v != 0 && n < sizeof digits);
  std::string name(object_name_prefix);
  while (n > 0) name += digits[--n];
  name += '-';
  name += random_token(object_name_length - name.size());
  return name;
}

std::optional<int> object_name_creator(std::string_view name) {
  if (!name.empty() && name.front() == '/') name.remove_prefix(1);
  if (!name.starts_with("mp-")) return std::nullopt;
  name.remove_prefix(3);
  auto dash = name.find('-');
  if (dash == 0 || dash == std::string_view::npos || dash > 6 || dash + 1 == name.size()) return std::nullopt;
  long long pid = 0;
  for (char c : name.substr(0, dash)) {
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'z' ? c - 'a' + 10 : -1;
    if (d < 0) return std::nullopt;
    pid = pid * 36 + d;
  }
  if (pid <= 0 || pid > 0x3fffffff) return std::nullopt;
  return static_cast<int>(pid);
}

}  // namespace mp::detail
