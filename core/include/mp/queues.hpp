// mp/queues.hpp - multiprocessing.queues: Queue, SimpleQueue, JoinableQueue.
//
// Items travel through a ring buffer in shared memory (the shared heap: nothing named, the ring
// reaches children as a handle under every start method). Producers and consumers take a lock
// word only while copying, and sleep in the kernel only when the ring is empty or full - no
// system call per item otherwise. Items of any size: one larger than the ring streams through
// it in chunks.
//
// CPython's semantics: put() returns before the item is in the ring when it has to wait for room
// (a feeder thread writes it; items from one process arrive in order); a process that put items
// does not exit until they are written, unless cancel_join_thread() was called; maxsize bounds
// the items put and not yet got (mp::Full); get() raises mp::Empty on timeout. Beyond CPython: a
// consumer or producer SIGKILLed mid-copy does not wedge the queue (the locks are owner-death
// locks: the next one takes over within ~100 ms and skips a half-copied item), and nothing is
// lost that a producer had written before it died.
//
// Items are encoded with mp::codec; an item cannot carry OS handles (send Connections through a
// Connection).
#pragma once

#include <mp/codec.hpp>
#include <mp/context.hpp>
#include <mp/exceptions.hpp>
#include <mp/time.hpp>

#include <cstddef>
#include <memory>
#include <span>
#include <vector>

namespace mp {

namespace detail {

struct QueueState;
struct QueueUser;

// The bytes-level queue under Queue<T>, SimpleQueue<T> and JoinableQueue<T>.
class QueueCore {
 public:
  enum class Kind : int { queue = 0, simple = 1, joinable = 2 };
  QueueCore() = default;
  QueueCore(Kind kind, int maxsize, std::size_t ring_bytes = 0);

  // Copies `item` (into the ring, or into this process's backlog for the feeder).
  void put(std::span<const std::byte> item, bool block, Timeout timeout);
  // Hands the next item's bytes to `sink` - straight from the ring when they lie in one piece -
  // and consumes the item (also when `sink` throws, which then propagates).
  using Sink = void (*)(void* ctx, std::span<const std::byte> bytes);
  void get(Sink sink, void* ctx, bool block, Timeout timeout);
  std::size_t qsize() const;
  bool empty() const;
  bool full() const;
  void close();
  void join_thread();
  void cancel_join_thread();
  void task_done();
  void join();

  void save(Encoder& enc) const;
  void load(Decoder& dec);

 private:
  QueueState& live() const;
  std::shared_ptr<QueueUser> state_;
};

// Encodes into this thread's scratch buffer (no allocation per item once warm), then `put`s it.
template <class T, class Put>
void put_encoded(const T& v, Put&& put) {
  with_scratch_encoder([&](Encoder& enc) {
    enc(v);
    if (!enc.handles().empty()) {
      throw ValueError("a queue item cannot carry OS handles (Connections, Locks, ...): send those over a Connection "
                       "or as Process arguments");
    }
    put(std::span<const std::byte>(enc.bytes()));
  });
}

template <class T>
T get_decoded(QueueCore& core, bool block, Timeout timeout) {
  static_assert(std::is_default_constructible_v<T>, "queue items must be default-constructible");
  T v{};
  core.get(
      [](void* ctx, std::span<const std::byte> bytes) {
        Decoder dec(bytes);
        dec(*static_cast<T*>(ctx));
      },
      &v, block, timeout);
  return v;
}

}  // namespace detail

template <class T>
class Queue {
  static_assert(detail::transportable_v<T>, "mp::Queue<T>: T must be transportable by mp::codec");

 public:
  // maxsize <= 0: unbounded. (ctx is accepted for CPython's ctx.Queue(); the ring has no name,
  // so every start method can receive it.)
  explicit Queue(int maxsize = 0, Context* = nullptr) : core_(detail::QueueCore::Kind::queue, maxsize) {}

  void put(const T& item, bool block = true, Timeout timeout = {}) {
    detail::put_encoded(item, [&](std::span<const std::byte> b) { core_.put(b, block, timeout); });
  }
  T get(bool block = true, Timeout timeout = {}) { return detail::get_decoded<T>(core_, block, timeout); }
  void put_nowait(const T& item) { put(item, false); }
  T get_nowait() { return get(false); }
  // Items put and not yet got (as CPython's, approximate while others put and get).
  std::size_t qsize() const { return core_.qsize(); }
  bool empty() const { return core_.empty(); }
  bool full() const { return core_.full(); }
  // No more put() or get() from this process; the feeder flushes what was put, then ends.
  void close() { core_.close(); }
  // After close(): waits until this process's items are in the ring.
  void join_thread() { core_.join_thread(); }
  // This process may exit without waiting for its items to be written (they may be lost).
  void cancel_join_thread() { core_.cancel_join_thread(); }

  void save(detail::Encoder& enc) const { enc(core_); }
  void load(detail::Decoder& dec) { dec(core_); }

 protected:
  Queue(detail::QueueCore::Kind kind, int maxsize) : core_(kind, maxsize) {}
  detail::QueueCore core_;
};

// CPython's JoinableQueue: a Queue whose consumers call task_done() for each item, so that
// join() can wait until every item put has been processed.
template <class T>
class JoinableQueue : public Queue<T> {
 public:
  explicit JoinableQueue(int maxsize = 0, Context* = nullptr) : Queue<T>(detail::QueueCore::Kind::joinable, maxsize) {}
  // mp::ValueError if called more times than items were put.
  void task_done() { this->core_.task_done(); }
  void join() { this->core_.join(); }
};

// CPython's SimpleQueue: put() writes straight into the ring (waiting for room), no feeder.
template <class T>
class SimpleQueue {
  static_assert(detail::transportable_v<T>, "mp::SimpleQueue<T>: T must be transportable by mp::codec");

 public:
  explicit SimpleQueue(Context* = nullptr) : core_(detail::QueueCore::Kind::simple, 0) {}
  void put(const T& item) {
    detail::put_encoded(item, [&](std::span<const std::byte> b) { core_.put(b, true, {}); });
  }
  T get() { return detail::get_decoded<T>(core_, true, {}); }
  bool empty() const { return core_.empty(); }
  void close() { core_.close(); }

  void save(detail::Encoder& enc) const { enc(core_); }
  void load(detail::Decoder& dec) { dec(core_); }

 private:
  detail::QueueCore core_;
};

template <class T>
Queue<T> Context::Queue(int maxsize) {
  return mp::Queue<T>(maxsize, this);
}
template <class T>
SimpleQueue<T> Context::SimpleQueue() {
  return mp::SimpleQueue<T>(this);
}
template <class T>
JoinableQueue<T> Context::JoinableQueue(int maxsize) {
  return mp::JoinableQueue<T>(maxsize, this);
}

namespace detail {
template <>
struct handle_type<QueueCore> : std::true_type {};
template <class T>
struct handle_type<Queue<T>> : std::true_type {};
template <class T>
struct handle_type<JoinableQueue<T>> : std::true_type {};
template <class T>
struct handle_type<SimpleQueue<T>> : std::true_type {};
}  // namespace detail

}  // namespace mp
