// mp/time.hpp - timeouts as Python spells them: seconds, optional, empty = forever.
#pragma once
#include <chrono>
#include <optional>

namespace mp {

using Seconds = std::chrono::duration<double>;
using Timeout = std::optional<Seconds>;

}  // namespace mp
