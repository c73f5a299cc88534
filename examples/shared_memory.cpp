// CPython's docs, multiprocessing.shared_memory: a block made by one process and attached by
// name in another; a ShareableList; and a SharedMemoryManager that unlinks at the end.
//
//   >>> from multiprocessing import shared_memory
//   >>> shm_a = shared_memory.SharedMemory(create=True, size=10)
//   >>> buffer = shm_a.buf
//   >>> buffer[:4] = bytearray([22, 33, 44, 55])
//   >>> buffer[4] = 100
//   >>> shm_b = shared_memory.SharedMemory(shm_a.name)     # (in another process)
//   >>> bytes(shm_b.buf[:5])
//   b'\x16!,7d'
//   >>> shm_b.close(); shm_a.close(); shm_a.unlink()
//
//   >>> a = shared_memory.ShareableList(['howdy', b'HoWdY', -273.154, 100, None, True, 42])
//   >>> [type(entry) for entry in a] ...; a[2] -> -273.154; a[2] = -78.5; a.format -> '8s8sdqxxxxxx?xxxxxxxx?q' (CPython 3.9+; the docs show 3.8's)
//
//   with SharedMemoryManager() as smm:
//       sl = smm.ShareableList(range(2000))
//       ...  # everything is unlinked when the block ends
#include <mp/mp.hpp>

#include <cstdio>
#include <iostream>

// Another process attaches by name and prints the first five bytes.
void show(std::string name) {
  mp::SharedMemory shm_b(name);
  // As Python prints bytes(shm_b.buf[:5]).
  std::printf("b'");
  for (int i = 0; i < 5; ++i) {
    auto c = static_cast<unsigned>(shm_b.buf()[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') std::printf("%c", c);
    else std::printf("\\x%02x", c);
  }
  std::printf("'\n");
  std::fflush(stdout);
  shm_b.close();
}

void negate_third(mp::ShareableList sl) { sl.set(2, -78.5); }

int main() {
  mp::freeze_support();
  mp::SharedMemory shm_a(std::nullopt, true, 10);
  auto buffer = shm_a.buf();
  const unsigned char first[] = {22, 33, 44, 55};
  for (int i = 0; i < 4; ++i) buffer[i] = std::byte{first[i]};
  buffer[4] = std::byte{100};
  mp::Process p(show, shm_a.name());
  p.start();
  p.join();
  shm_a.close();
  shm_a.unlink();

  mp::ShareableList a({std::string("howdy"), std::vector<std::byte>{std::byte{'H'}, std::byte{'o'}, std::byte{'W'},
                                                                    std::byte{'d'}, std::byte{'Y'}},
                       -273.154, std::int64_t{100}, std::monostate{}, true, std::int64_t{42}});
  std::cout << std::get<double>(a[2]) << "\n";
  mp::Process q(negate_third, a);
  q.start();
  q.join();
  std::cout << std::get<double>(a[2]) << "\n" << a.format() << "\n";
  a.shm().close();
  a.shm().unlink();

  std::string name;
  {
    mp::SharedMemoryManager smm;
    smm.start();
    std::vector<mp::ShareableList::Item> items;
    for (std::int64_t i = 0; i < 2000; ++i) items.emplace_back(i);
    auto sl = smm.ShareableList(items);
    name = sl.shm().name();
    std::cout << sl.size() << " items, last " << std::get<std::int64_t>(sl[-1]) << "\n";
  }  // as leaving `with SharedMemoryManager() as smm:` - every segment is unlinked
  try {
    mp::SharedMemory gone(name);
    std::cout << "still there\n";
  } catch (const std::system_error&) {
    std::cout << "unlinked at shutdown\n";
  }
}
