// mp/shared_memory.hpp - multiprocessing.shared_memory: SharedMemory, ShareableList,
// SharedMemoryManager.
//
// A SharedMemory is a named block of memory that processes map by name (POSIX shm_open + mmap,
// mode 0600). Names are as CPython's: name() has no leading '/', and a Python process attaches
// with shared_memory.SharedMemory(name=...) to the same bytes. A ShareableList lays its items out
// exactly as CPython's ShareableList does, so either language reads what the other wrote.
//
// Lifetime (CPython's): close() unmaps this process's view (the destructor too); unlink() removes
// the name, and must be called once, by one process. A segment made with track=true is registered
// with the resource tracker, which removes it if the whole process tree ends without unlink().
// Beyond CPython: attaching never registers, so a process that only attached can never remove
// what others still use (gh-82300), whatever `track` says.
#pragma once

#include <mp/authkey.hpp>
#include <mp/codec.hpp>
#include <mp/connection.hpp>
#include <mp/exceptions.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace mp {

namespace detail {
struct SharedMemoryState;
}

class SharedMemory {
 public:
  // create=false: attach to `name` (std::system_error ENOENT if missing). create=true: a new
  // segment of `size` bytes (> 0, else mp::ValueError), named `name` (EEXIST if taken) or a
  // fresh unguessable name. (SharedMemory() - no arguments, an error in CPython - is an empty
  // handle to decode into.)
  explicit SharedMemory(std::optional<std::string> name, bool create = false, std::size_t size = 0,
                        bool track = true);
  SharedMemory() = default;

  // Without the leading '/', as CPython's .name.
  const std::string& name() const;
  // The segment's size (on attach: the size its creator gave it).
  std::size_t size() const;
  // This process's view of the bytes; mp::ValueError once closed.
  std::span<std::byte> buf() const;
  // Unmaps this process's view (further buf() throws). Idempotent.
  void close();
  // Removes the name (processes that have it mapped keep their view); unregisters it from the
  // tracker if this process registered it. std::system_error ENOENT if already removed.
  void unlink();
  bool closed() const;

  // Travels to children (every start method) and through Connections by name: the receiver
  // attaches (and never registers).
  void save(detail::Encoder& enc) const;
  void load(detail::Decoder& dec);

 private:
  detail::SharedMemoryState& live() const;
  std::shared_ptr<detail::SharedMemoryState> state_;
};

// CPython's ShareableList: a fixed-length list of int64, double, bool, str, bytes or None, its
// values and their formats stored in one SharedMemory, mutable in place (an item may change type;
// a str or bytes item may not outgrow the room it was given at creation, rounded up to 8 bytes,
// as CPython). Byte layout identical to CPython 3.9-3.13's (3.8 stored sizes, not offsets).
class ShareableList {
 public:
  using Item = std::variant<std::monostate, std::int64_t, double, bool, std::string, std::vector<std::byte>>;

  // A new list holding `items` in a new segment (named `name`, or a fresh name).
  // `track` as SharedMemory's (false: the resource tracker never removes it).
  explicit ShareableList(const std::vector<Item>& items, std::optional<std::string> name = {}, bool track = true);
  // Attaches to an existing list by its segment's name.
  explicit ShareableList(const std::string& name);
  ShareableList() = default;

  Item operator[](std::ptrdiff_t i) const;  // negative counts from the end; mp::IndexError beyond
  void set(std::ptrdiff_t i, const Item& v);
  std::size_t size() const;
  std::size_t count(const Item& v) const;
  std::size_t index(const Item& v) const;  // mp::ValueError if absent
  // CPython's .format: the struct format of the stored items, e.g. "q8sd?".
  std::string format() const;
  SharedMemory& shm();
  const SharedMemory& shm() const;
  std::vector<Item> items() const;

  void save(detail::Encoder& enc) const;
  void load(detail::Decoder& dec);

 private:
  SharedMemory shm_;
};

class Context;
class Process;

// CPython's SharedMemoryManager: a server process that records the segments it hands out and
// unlinks them all on shutdown() (or the destructor, as leaving a `with` block) - and also when
// the process that started it dies, so a crashed program leaves nothing behind. Segments are
// created in the calling process (as CPython's); the manager travels to children (its address
// and authentication key), who may create segments through it too.
namespace detail {
struct ManagerState;
}

class SharedMemoryManager {
 public:
  // A handle: copies (and the copies children receive) reach the same server; the server stops
  // when shutdown() is called or the last copy in the starting process goes (a `with` block).
  explicit SharedMemoryManager(Context* ctx = nullptr);

  void start();
  // Unlinks every segment made through the manager and stops the server. Idempotent. In a process
  // that did not start it, only forgets the server.
  void shutdown();
  bool running() const;

  mp::SharedMemory SharedMemory(std::size_t size);
  mp::ShareableList ShareableList(const std::vector<mp::ShareableList::Item>& items);
  // The names of the segments it tracks (CPython's list_segments).
  std::vector<std::string> list_segments();
  const Address& address() const;

  void save(detail::Encoder& enc) const;
  void load(detail::Decoder& dec);

 private:
  std::shared_ptr<detail::ManagerState> state_;
};

namespace detail {
template <>
struct handle_type<SharedMemory> : std::true_type {};
template <>
struct handle_type<SharedMemoryManager> : std::true_type {};
template <>
struct handle_type<ShareableList> : std::true_type {};
}  // namespace detail

}  // namespace mp
