// libFuzzer target: arbitrary bytes arrive on a Connection. The frame reader, recv_bytes(maxlength),
// recv_bytes_into and recv<T> of several types must answer with exceptions only: no crash, no
// hang, no leak, no allocation beyond what the framing allows.
#include <mp/connection.hpp>

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace {
struct Record {
  int id;
  double score;
  std::string name;
  std::vector<std::uint16_t> tags;
  std::optional<std::map<std::string, std::int64_t>> extra;
  std::variant<std::monostate, std::string, std::vector<double>> payload;
};

void write_raw(const mp::Connection& c, const std::uint8_t* data, std::size_t size) {
  // Raw bytes straight onto the socket: they need not be well-formed frames.
  std::size_t done = 0;
  while (done < size) {
    ssize_t n = ::send(c.fileno(), data + done, size - done, MSG_NOSIGNAL);
    if (n <= 0) return;
    done += static_cast<std::size_t>(n);
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  // Stay below the socket buffer so the write never blocks (the reader runs afterwards).
  if (size > 100000) size = 100000;
  const unsigned mode = data[0] % 6;
  auto [writer, reader] = mp::Pipe();
  write_raw(writer, data + 1, size - 1);
  writer.close();
  std::vector<std::byte> small(64);
  for (int i = 0; i < 64; ++i) {
    try {
      switch (mode) {
        case 0: (void)reader.recv_bytes(); break;
        case 1: (void)reader.recv_bytes(std::size_t{256}); break;
        case 2: (void)reader.recv_bytes_into(small, 8); break;
        case 3: (void)reader.recv<Record>(); break;
        case 4: (void)reader.recv<std::vector<std::string>>(); break;
        case 5: (void)reader.recv<std::tuple<mp::Connection, std::string>>(); break;
      }
    } catch (const mp::EOFError&) {
      break;
    } catch (const std::exception&) {
      if (reader.closed() || !reader.readable()) break;
    }
  }
  // The codec alone, on the same bytes.
  std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data + 1), size - 1);
  try {
    (void)mp::codec<Record>::decode(bytes);
  } catch (const std::exception&) {
  }
  return 0;
}
