// core/src/wire.hpp - CPython's message framing on a raw handle, and its HMAC challenge.
// The Connection class (issue 3) is built on these; the forkserver control channel uses them now.
#pragma once
#include <mp/authkey.hpp>
#include <mp/handle.hpp>

#include "platform/pipe.hpp"

#include <cstddef>
#include <optional>
#include <span>
#include <vector>

namespace mp::detail {

// 4-byte big-endian signed length then the payload; past 0x7fffffff: -1 then an 8-byte length.
void send_frame(native_handle_t h, std::span<const std::byte> payload,
                platform::HandleKind kind = platform::HandleKind::unknown);
// EOF before a frame → mp::EOFError. A frame longer than maxlength → mp::ProcessError
// ("bad message length"), and the rest of the stream is unusable (as CPython).
std::vector<std::byte> recv_frame(native_handle_t h, std::optional<std::size_t> maxlength = {});

// A message channel the challenge runs over (a raw handle, or a Connection with its buffering).
class MessageChannel {
 public:
  virtual void send(std::span<const std::byte> message) = 0;
  virtual std::vector<std::byte> recv(std::size_t maxlength) = 0;

 protected:
  ~MessageChannel() = default;
};

// CPython >= 3.12's mutual challenge (sha256 only here): the server delivers then answers,
// the client answers then delivers. Failure → mp::AuthenticationError.
void deliver_challenge(MessageChannel& channel, const AuthKey& key);
void answer_challenge(MessageChannel& channel, const AuthKey& key);
void deliver_challenge(native_handle_t h, const AuthKey& key);
void answer_challenge(native_handle_t h, const AuthKey& key);

}  // namespace mp::detail
