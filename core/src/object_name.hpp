// core/src/object_name.hpp - the names of the library's named OS objects.
//
// "/mp-<creator pid, base 36>-<random>", exactly 30 characters (macOS's limit for semaphore and
// shared-memory names): unguessable (at least 19 random characters from 32, ~95 bits) and saying
// which process made it, so mp-tracker can judge a leftover without the tracker's help.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace mp::detail {

inline constexpr std::size_t object_name_length = 30;
inline constexpr std::string_view object_name_prefix = "/mp-";

std::string make_object_name();
// The creating pid of a name made by make_object_name() (with or without the leading '/'),
// nullopt for anything else.
std::optional<int> object_name_creator(std::string_view name);

}  // namespace mp::detail
