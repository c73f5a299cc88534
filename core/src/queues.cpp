// Queue, SimpleQueue, JoinableQueue: a ring buffer in shared memory (see <mp/queues.hpp>).
//
// The ring is a block of the shared heap: a header of counters and lock words, then `capacity`
// bytes of records. A record is an 8-byte header {payload length, flags} and the payload, padded
// to 8 bytes; a payload may wrap around the end of the ring. An item is one record (FIRST|LAST)
// or, when larger than the ring allows, several chunks FIRST ... LAST written under one hold of
// the writer lock. Positions (head, tail) count bytes for ever (64-bit); the ring offset is the
// position modulo the capacity.
//
// Sleeping: each wait has a sequence word and a sleeper count. A waiter registers, reads the
// sequence, re-checks its condition, and sleeps on the sequence; a waker changes the state,
// then, if anyone is registered, bumps the sequence and wakes them (sequentially consistent
// order on both sides, so no wake-up is lost).
//
// Dying: the writer and reader locks are owner-death word locks. A writer that takes over from
// one that died mid-item first writes an ABORT record; a reader that meets ABORT, or a chunk that
// is not an item's first, drops what it had. A reader waiting for the rest of an item whose
// writer died gives it up.
#include <mp/queues.hpp>
#include <mp/sharedctypes.hpp>

#include "platform/address_wait.hpp"
#include "platform/process.hpp"
#include "process_state.hpp"
#include "word_lock.hpp"

#include <algorithm>
#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64) || defined(_M_IX86)
#include <immintrin.h>
#endif
#include <climits>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <new>
#include <thread>

namespace mp::detail {

namespace {

using clock = std::chrono::steady_clock;
using Deadline = std::optional<clock::time_point>;

constexpr std::uint32_t kMagic = 0x6d707131;  // "mpq1"
constexpr std::size_t kDefaultRing = std::size_t(1) << 20;
constexpr std::size_t kHeaderBytes = 4096;
constexpr std::uint16_t kFirst = 1, kLast = 2, kAbort = 4;

struct RecordHeader {
  std::uint32_t len;
  std::uint16_t flags;
  std::uint16_t reserved;
};
static_assert(sizeof(RecordHeader) == 8);

struct Shared {
  std::uint32_t magic;
  std::uint32_t kind;
  std::uint64_t capacity;
  std::int64_t maxsize;
  alignas(64) std::atomic<std::uint32_t> write_lock;
  std::atomic<std::uint32_t> writer_in_item;  // the lock holder has written FIRST but not LAST
  alignas(64) std::atomic<std::uint32_t> read_lock;
  alignas(64) std::atomic<std::uint64_t> tail;  // committed bytes
  std::atomic<std::uint32_t> data_seq;
  std::atomic<std::uint32_t> readers_sleeping;
  alignas(64) std::atomic<std::uint64_t> head;  // consumed bytes
  std::atomic<std::uint32_t> space_seq;
  std::atomic<std::uint32_t> writers_sleeping;
  // Items put and items got: qsize is the difference. Two counters, each written by one side,
  // so a producer and a consumer do not fight over one cache line.
  alignas(64) std::atomic<std::int64_t> puts;
  alignas(64) std::atomic<std::int64_t> gets;
  std::atomic<std::uint32_t> pending_seq;  // a put waiting for maxsize
  std::atomic<std::uint32_t> pending_sleepers;
  alignas(64) std::atomic<std::int64_t> unfinished;  // JoinableQueue: put and not yet task_done()
  std::atomic<std::uint32_t> unfinished_seq;
  std::atomic<std::uint32_t> unfinished_sleepers;
};
static_assert(sizeof(Shared) <= kHeaderBytes);

std::size_t round8(std::size_t n) { return (n + 7) & ~std::size_t(7); }

Deadline deadline_of(const Timeout& t) {
  if (!t) return std::nullopt;
  return clock::now() + std::chrono::duration_cast<clock::duration>(std::max(*t, Seconds(0)));
}

bool passed(const Deadline& d) { return d && clock::now() >= *d; }

// Waiting for a condition that another process makes true. The waiter reads the sequence word,
// raises the "someone sleeps" flag, re-checks the condition and sleeps on the sequence. The
// waker changes the state, then, if the flag is up, takes it down, bumps the sequence and wakes
// everyone sleeping on it: one system call per sleep, not per item, and no lost wake-up (a
// waiter whose flag a waker took down before it slept finds the sequence moved).
//
// Before sleeping, a waiter spins briefly (yielding the CPU now and then): a producer that is
// running fills the ring within microseconds, and a consumer that catches it awake costs no
// system call on either side.
template <class Ready>
bool spin_for(Ready ready, std::chrono::microseconds budget = std::chrono::microseconds(20)) {
  const auto until = clock::now() + budget;
  for (int i = 1;; ++i) {
    if (ready()) return true;
    if (i % 16 == 0) {
      if (clock::now() >= until) return false;
      std::this_thread::yield();
    } else {
#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64) || defined(_M_IX86)
      _mm_pause();
#endif
    }
  }
}

// Returns false only when the deadline has passed (the caller re-checks its condition).
template <class Ready>
bool sleep_on(std::atomic<std::uint32_t>& seq, std::atomic<std::uint32_t>& flag, Ready ready, const Deadline& deadline,
              std::optional<std::chrono::nanoseconds> slice = {}) {
  if (spin_for(ready)) return true;
  const std::uint32_t s = seq.load(std::memory_order_seq_cst);
  flag.store(1, std::memory_order_seq_cst);  // ready() reads the state seq_cst: after the flag
  if (ready()) return true;
  std::optional<std::chrono::nanoseconds> wait = slice;
  if (deadline) {
    auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(*deadline - clock::now());
    if (left.count() <= 0) return false;
    if (!wait || left < *wait) wait = left;
  }
  platform::wait_on_address(seq, s, wait);
  return true;
}

void wake(std::atomic<std::uint32_t>& seq, std::atomic<std::uint32_t>& flag) {
  if (flag.load(std::memory_order_seq_cst) != 0 && flag.exchange(0, std::memory_order_seq_cst) != 0) {
    seq.fetch_add(1, std::memory_order_seq_cst);
    platform::wake_address(seq, INT_MAX);
  }
}

std::uint32_t my_pid() { return static_cast<std::uint32_t>(platform::current_pid()); }

}  // namespace

struct QueueState : std::enable_shared_from_this<QueueState> {
  HeapBlock block;
  Shared* sh = nullptr;
  std::byte* ring = nullptr;
  std::uint64_t cap = 0;
  QueueCore::Kind kind = QueueCore::Kind::queue;

  // This process's side (reset in a forked child, as CPython's Queue._after_fork).
  unsigned generation = 0;
  std::uint32_t me = 0;
  std::mutex mutex;
  std::condition_variable cv;        // the feeder waits for work; join_thread waits for a flush
  std::deque<std::vector<std::byte>> backlog;
  std::vector<std::vector<std::byte>> spare;  // written backlog buffers, reused (no allocation per item)
  bool feeder_writing = false;
  bool feeder_running = false;
  bool feeder_idle = false;  // waiting on cv (so a put must notify it)
  std::atomic<bool> closed{false};
  std::atomic<bool> used{false};  // put() or get() was called in this process
  bool cancel_join = false;
  std::thread feeder;

  ~QueueState() {
    // Only reached when no feeder runs (a running feeder holds this state): the thread object
    // left is the parent's (after a fork) or already finished.
    if (feeder.joinable()) {
      if (generation != fork_generation()) {
        new (&feeder) std::thread();
      } else if (feeder.get_id() == std::this_thread::get_id()) {
        feeder.detach();  // the feeder itself let go of the last reference: it is ending
      } else {
        feeder.join();
      }
    }
  }

  // The last user handle in this process is gone: its items still go out (CPython's feeder keeps
  // running until flushed), unless cancel_join_thread() said otherwise.
  void last_handle_gone() {
    if (generation != fork_generation()) return;  // the parent's feeder, not ours
    stop_feeder(!cancel_join);
  }

  void attach(HeapBlock b) {
    block = std::move(b);
    sh = reinterpret_cast<Shared*>(block.data());
    if (block.size() < kHeaderBytes + 64 || sh->magic != kMagic) throw DecodeError("mp: not a queue");
    cap = sh->capacity;
    if (kHeaderBytes + cap > block.size() || cap % 8 != 0) throw DecodeError("mp: corrupt queue header");
    ring = block.data() + kHeaderBytes;
    kind = static_cast<QueueCore::Kind>(sh->kind);
    generation = fork_generation();
    me = my_pid();
  }

  // After a fork the local side describes the parent: start afresh.
  void refresh() {
    if (generation == fork_generation()) [[likely]] return;
    new (&mutex) std::mutex();
    new (&cv) std::condition_variable();
    new (&backlog) std::deque<std::vector<std::byte>>();  // the parent's items are the parent's
    new (&spare) std::vector<std::vector<std::byte>>();
    if (feeder.joinable()) new (&feeder) std::thread();
    feeder_writing = feeder_running = false;
    closed = false;
    used = false;
    cancel_join = false;
    generation = fork_generation();
    me = my_pid();
  }

  // ---- writing ------------------------------------------------------------------------------
  std::uint64_t free_bytes() const {
    return cap - (sh->tail.load(std::memory_order_relaxed) - sh->head.load(std::memory_order_acquire));
  }

  void copy_in(std::uint64_t pos, const void* src, std::size_t n) {
    std::size_t off = static_cast<std::size_t>(pos % cap);
    std::size_t first = std::min<std::size_t>(n, static_cast<std::size_t>(cap) - off);
    std::memcpy(ring + off, src, first);
    if (n > first) std::memcpy(ring, static_cast<const std::byte*>(src) + first, n - first);
  }
  void copy_out(std::uint64_t pos, void* dst, std::size_t n) const {
    std::size_t off = static_cast<std::size_t>(pos % cap);
    std::size_t first = std::min<std::size_t>(n, static_cast<std::size_t>(cap) - off);
    std::memcpy(dst, ring + off, first);
    if (n > first) std::memcpy(static_cast<std::byte*>(dst) + first, ring, n - first);
  }

  // Appends one record at the tail (room must be there) and commits it.
  void append(const std::byte* data, std::size_t n, std::uint16_t flags) {
    std::uint64_t tail = sh->tail.load(std::memory_order_relaxed);
    RecordHeader h{static_cast<std::uint32_t>(n), flags, 0};
    copy_in(tail, &h, sizeof h);
    if (n) copy_in(tail + sizeof h, data, n);
    sh->tail.store(tail + sizeof h + round8(n), std::memory_order_seq_cst);
    wake(sh->data_seq, sh->readers_sleeping);
  }

  void wait_for_room(std::uint64_t need) {
    auto room = [&] {
      return cap - (sh->tail.load(std::memory_order_relaxed) - sh->head.load(std::memory_order_seq_cst)) >= need;
    };
    while (!room()) sleep_on(sh->space_seq, sh->writers_sleeping, room, std::nullopt);
  }

  // Takes the writer lock; a takeover from a writer that died mid-item aborts its item first.
  bool lock_writer(bool block) {
    if (word_lock_try(sh->write_lock, me)) return true;
    if (!block) return false;
    if (word_lock_acquire_slow(sh->write_lock, me, std::nullopt) == WordLockResult::owner_died &&
        sh->writer_in_item.load(std::memory_order_relaxed)) {
      wait_for_room(sizeof(RecordHeader));
      append(nullptr, 0, kAbort);
      sh->writer_in_item.store(0, std::memory_order_relaxed);
    }
    return true;
  }
  void unlock_writer() { word_lock_release(sh->write_lock, me); }

  // The largest chunk one record carries: room for several in the ring at once.
  std::size_t max_chunk() const { return static_cast<std::size_t>(cap / 4); }

  // Writes a whole item under the writer lock (blocking for room). With `try_only`, gives up
  // (returning false, nothing written) unless the lock is free and the item fits at once.
  bool write_item(std::span<const std::byte> item, bool try_only) {
    const std::size_t n = item.size();
    if (try_only) {
      if (n > max_chunk()) return false;
      if (!lock_writer(false)) return false;
      if (free_bytes() < sizeof(RecordHeader) + round8(n)) {
        unlock_writer();
        return false;
      }
      append(item.data(), n, kFirst | kLast);
      unlock_writer();
      return true;
    }
    lock_writer(true);
    struct Unlock {
      QueueState* q;
      ~Unlock() { q->unlock_writer(); }
    } unlock{this};
    std::size_t done = 0;
    bool first = true;
    while (first || done < n) {
      std::size_t rem = n - done;
      std::size_t chunk = std::min(rem, max_chunk());
      wait_for_room(sizeof(RecordHeader) + round8(chunk));
      std::uint16_t flags = (first ? kFirst : 0) | (done + chunk == n ? kLast : 0);
      if (first && !(flags & kLast)) sh->writer_in_item.store(1, std::memory_order_relaxed);
      append(item.data() + done, chunk, flags);
      done += chunk;
      first = false;
    }
    sh->writer_in_item.store(0, std::memory_order_relaxed);
    return true;
  }

  // ---- the feeder (this process's writer thread) ------------------------------------------
  void feeder_loop() {
    std::unique_lock lock(mutex);
    for (;;) {
      feeder_idle = true;
      cv.wait(lock, [&] { return !backlog.empty() || !feeder_running; });
      feeder_idle = false;
      if (backlog.empty()) break;  // stopped and drained
      std::vector<std::byte> item = std::move(backlog.front());
      backlog.pop_front();
      feeder_writing = true;
      lock.unlock();
      try {
        write_item(item, false);
      } catch (const std::exception& e) {
        platform::write_stderr(std::string("mp: queue feeder thread: ") + e.what() + "\n");
      }
      lock.lock();
      feeder_writing = false;
      if (spare.size() < 256 && item.capacity() <= 65536) {
        item.clear();
        spare.push_back(std::move(item));
      }
      cv.notify_all();
    }
    cv.notify_all();
  }

  void start_feeder_locked() {
    if (feeder_running) return;
    feeder_running = true;
    // The thread holds the state: a feeder left writing (cancel_join_thread) keeps what it uses.
    feeder = std::thread([self = shared_from_this()] { self->feeder_loop(); });
    register_exit_hook(&flush_all_at_exit);
    track(this);
  }

  // Ends the feeder: with `flush`, after it has written everything; without, at once (pending
  // items are dropped, as a cancelled join thread's are).
  void stop_feeder(bool flush) {
    std::thread t;
    bool writing = false;
    {
      std::lock_guard lock(mutex);
      if (!flush) backlog.clear();
      feeder_running = false;
      writing = feeder_writing;
      cv.notify_all();
      t = std::move(feeder);
    }
    untrack(this);
    if (!t.joinable()) return;
    if ((flush || !writing) && t.get_id() != std::this_thread::get_id()) {
      t.join();
    } else {
      t.detach();  // mid-write into a ring nobody reads: let it be (it holds the state)
    }
  }

  // At exit: every queue of this process flushes (or not, if cancelled).
  static std::mutex& registry_mutex() {
    static auto* m = new std::mutex;
    return *m;
  }
  static std::vector<QueueState*>& registry() {
    static auto* v = new std::vector<QueueState*>;
    return *v;
  }
  static void track(QueueState* q) {
    std::lock_guard g(registry_mutex());
    registry().push_back(q);
  }
  static void untrack(QueueState* q) {
    std::lock_guard g(registry_mutex());
    std::erase(registry(), q);
  }
  static void flush_all_at_exit() {
    std::vector<QueueState*> all;
    {
      std::lock_guard g(registry_mutex());
      all = registry();
    }
    for (QueueState* q : all) {
      if (q->generation != fork_generation()) continue;
      q->stop_feeder(!q->cancel_join);
    }
  }
};

// What QueueCore handles share: when the last one in this process goes, the feeder is told.
struct QueueUser {
  std::shared_ptr<QueueState> state;
  ~QueueUser() {
    if (state) state->last_handle_gone();
  }
};

}  // namespace mp::detail

namespace mp::detail {

QueueCore::QueueCore(Kind kind, int maxsize, std::size_t ring_bytes) {
  std::size_t cap = ring_bytes ? round8(std::max<std::size_t>(ring_bytes, 256)) : kDefaultRing;
  HeapBlock b = HeapBlock::allocate(kHeaderBytes + cap, 4096);
  auto* sh = new (b.data()) Shared{};
  sh->magic = kMagic;
  sh->kind = static_cast<std::uint32_t>(kind);
  sh->capacity = cap;
  sh->maxsize = maxsize > 0 ? maxsize : 0;
  auto s = std::make_shared<QueueState>();
  s->attach(std::move(b));
  state_ = std::make_shared<QueueUser>(QueueUser{std::move(s)});
}

QueueState& QueueCore::live() const {
  if (!state_) throw ValueError("use of an empty queue");
  QueueState& q = *state_->state;
  q.refresh();
  return q;
}

namespace {
[[noreturn]] void closed_error() { throw ValueError("Queue is closed"); }
}  // namespace

void QueueCore::put(std::span<const std::byte> item, bool block, Timeout timeout) {
  QueueState& q = live();
  Shared& sh = *q.sh;
  if (q.closed.load(std::memory_order_acquire)) [[unlikely]] closed_error();
  if (!q.used.load(std::memory_order_relaxed)) q.used.store(true, std::memory_order_relaxed);
  // A slot among maxsize (CPython's BoundedSemaphore).
  if (sh.maxsize > 0) {
    Deadline d = block ? deadline_of(timeout) : Deadline(clock::now());
    auto room = [&] {
      return sh.puts.load(std::memory_order_seq_cst) - sh.gets.load(std::memory_order_seq_cst) < sh.maxsize;
    };
    for (;;) {
      std::int64_t p = sh.puts.load(std::memory_order_relaxed);
      if (p - sh.gets.load(std::memory_order_acquire) < sh.maxsize) {
        if (sh.puts.compare_exchange_weak(p, p + 1, std::memory_order_acq_rel)) break;
        continue;
      }
      if (!block || passed(d)) throw Full();
      sleep_on(sh.pending_seq, sh.pending_sleepers, room, d);
    }
  } else {
    sh.puts.fetch_add(1, std::memory_order_acq_rel);
  }
  if (q.kind == Kind::joinable) sh.unfinished.fetch_add(1, std::memory_order_acq_rel);

  if (q.kind == Kind::simple) {
    q.write_item(item, false);
    return;
  }
  std::unique_lock lock(q.mutex);
  // Straight into the ring when nothing of ours is queued before it (order per process) and it
  // fits now; else the feeder writes it.
  if (q.backlog.empty() && !q.feeder_writing) {
    lock.unlock();
    if (q.write_item(item, true)) return;
    // Full: a consumer that is running makes room within microseconds, and writing it here
    // beats waking the feeder thread. Only a consumer that stalls sends the item to the feeder.
    const std::uint64_t need = sizeof(RecordHeader) + round8(item.size());
    if (item.size() <= q.max_chunk()) {
      for (int attempt = 0; attempt < 4; ++attempt) {
        if (!spin_for([&] { return q.free_bytes() >= need; }, std::chrono::microseconds(50))) break;
        if (q.write_item(item, true)) return;
      }
    }
    lock.lock();
  }
  if (!q.spare.empty()) {
    q.backlog.push_back(std::move(q.spare.back()));
    q.spare.pop_back();
    q.backlog.back().assign(item.begin(), item.end());
  } else {
    q.backlog.emplace_back(item.begin(), item.end());
  }
  q.start_feeder_locked();
  if (q.feeder_idle) q.cv.notify_all();
}

void QueueCore::get(Sink sink, void* ctx, bool block, Timeout timeout) {
  QueueState& q = live();
  Shared& sh = *q.sh;
  if (q.closed.load(std::memory_order_acquire)) [[unlikely]] closed_error();
  if (!q.used.load(std::memory_order_relaxed)) q.used.store(true, std::memory_order_relaxed);
  // The deadline is read from the clock only when there is something to wait for.
  Deadline d;
  bool deadline_known = !block || !timeout;
  auto deadline = [&]() -> const Deadline& {
    if (!deadline_known) {
      d = deadline_of(timeout);
      deadline_known = true;
    }
    return d;
  };
  if (!block) d = clock::now();
  auto has_data = [&] {
    return sh.tail.load(std::memory_order_seq_cst) != sh.head.load(std::memory_order_seq_cst);
  };
  for (;;) {
    // Wait for data without holding the reader lock.
    while (!has_data()) {
      if (!block || passed(deadline())) throw Empty();
      sleep_on(sh.data_seq, sh.readers_sleeping, has_data, deadline());
    }
    bool took_over = false;
    if (!word_lock_try(sh.read_lock, q.me)) {
      if (!block) throw Empty();
      std::optional<Seconds> left;
      if (deadline()) left = std::chrono::duration_cast<Seconds>(*deadline() - clock::now());
      WordLockResult r = word_lock_acquire_slow(sh.read_lock, q.me, left);
      if (r == WordLockResult::timed_out) throw Empty();
      took_over = r == WordLockResult::owner_died;
    }
    struct Unlock {
      QueueState& q;
      ~Unlock() { word_lock_release(q.sh->read_lock, q.me); }
    } unlock{q};

    // A whole item taken: move the head (room for writers) and count it (only readers, holding
    // the reader lock, write `gets`: a plain store). One fence orders both before the checks for
    // sleeping writers.
    auto consumed = [&](std::uint64_t next) {
      sh.gets.store(sh.gets.load(std::memory_order_relaxed) + 1, std::memory_order_release);
      sh.head.store(next, std::memory_order_seq_cst);  // before the sleeping-writer check (seq_cst)
      wake(sh.space_seq, sh.writers_sleeping);
      if (sh.maxsize > 0) wake(sh.pending_seq, sh.pending_sleepers);
    };
    std::vector<std::byte> item;
    bool in_item = false;
    bool seen_first_record = false;
    for (;;) {
      std::uint64_t head = sh.head.load(std::memory_order_relaxed);
      if (sh.tail.load(std::memory_order_seq_cst) == head) {
        if (!in_item) break;  // another reader took what was there
        // Mid-item: the rest is coming, unless its writer died.
        sleep_on(sh.data_seq, sh.readers_sleeping, has_data, std::nullopt, kOwnerCheck);
        if (!has_data()) {
          std::uint32_t w = sh.write_lock.load(std::memory_order_relaxed) & kPidMask;
          if (w == 0 || !platform::process_exists(static_cast<int>(w))) {
            in_item = false;  // abandoned: the next writer's ABORT record will follow
            item.clear();
            break;
          }
        }
        continue;
      }
      RecordHeader h;
      q.copy_out(head, &h, sizeof h);
      const std::size_t n = h.len;
      const std::uint64_t next = head + sizeof h + round8(n);
      if (next - head > q.cap || next > sh.tail.load(std::memory_order_acquire)) {
        throw ProcessError("mp: queue ring corrupt (record past the committed data)");
      }
      const bool orphan = !(h.flags & kFirst) && !in_item;
      if (h.flags & kAbort) {
        item.clear();
        in_item = false;
        sh.gets.store(sh.gets.load(std::memory_order_relaxed) + 1, std::memory_order_release);  // the dead writer's
      } else if (orphan) {
        // The rest of an item whose reader died: lost with that reader.
        if (took_over && !seen_first_record) sh.gets.store(sh.gets.load(std::memory_order_relaxed) + 1, std::memory_order_release);
      } else if ((h.flags & (kFirst | kLast)) == (kFirst | kLast) &&
                 (head + sizeof h) % q.cap + n <= q.cap) {
        // The common case: a whole item in one piece of the ring. Decode it in place.
        std::exception_ptr failed;
        try {
          sink(ctx, std::span<const std::byte>(q.ring + (head + sizeof h) % q.cap, n));
        } catch (...) {
          failed = std::current_exception();
        }
        consumed(next);
        if (failed) std::rethrow_exception(failed);
        return;
      } else {
        if (h.flags & kFirst) {
          item.clear();
          item.reserve(n);
          in_item = true;
        }
        std::size_t at = item.size();
        item.resize(at + n);
        if (n) q.copy_out(head + sizeof h, item.data() + at, n);
      }
      seen_first_record = true;
      sh.head.store(next, std::memory_order_seq_cst);
      wake(sh.space_seq, sh.writers_sleeping);
      if (in_item && (h.flags & kLast)) {
        sh.gets.store(sh.gets.load(std::memory_order_relaxed) + 1, std::memory_order_seq_cst);
        if (sh.maxsize > 0) wake(sh.pending_seq, sh.pending_sleepers);
        sink(ctx, item);  // assembled: the reader lock is released by the guard afterwards
        return;
      }
    }
    // Nothing whole to take (someone else got it, or an item was abandoned): wait again.
  }
}

std::size_t QueueCore::qsize() const {
  Shared& sh = *live().sh;
  std::int64_t g = sh.gets.load(std::memory_order_acquire);
  std::int64_t p = sh.puts.load(std::memory_order_acquire) - g;
  return p > 0 ? static_cast<std::size_t>(p) : 0;
}

bool QueueCore::empty() const {
  QueueState& q = live();
  // As CPython: a closed SimpleQueue, or a closed Queue this process used, has no reader left.
  if (q.closed && (q.used || q.kind == Kind::simple)) closed_error();
  return q.sh->tail.load(std::memory_order_acquire) == q.sh->head.load(std::memory_order_acquire);
}

bool QueueCore::full() const {
  QueueState& q = live();
  return q.sh->maxsize > 0 && static_cast<std::int64_t>(qsize()) >= q.sh->maxsize;
}

void QueueCore::close() {
  QueueState& q = live();
  {
    std::lock_guard lock(q.mutex);
    if (q.closed) return;
    q.closed = true;
    q.feeder_running = false;  // drain, then end
    q.cv.notify_all();
  }
}

void QueueCore::join_thread() {
  QueueState& q = live();
  {
    std::lock_guard lock(q.mutex);
    if (!q.closed) throw AssertionError("Queue::join_thread: call close() first");
  }
  q.stop_feeder(true);
}

void QueueCore::cancel_join_thread() {
  QueueState& q = live();
  std::lock_guard lock(q.mutex);
  q.cancel_join = true;
}

void QueueCore::task_done() {
  QueueState& q = live();
  if (q.kind != Kind::joinable) throw ValueError("task_done() on a queue that is not a JoinableQueue");
  Shared& sh = *q.sh;
  std::int64_t u = sh.unfinished.load(std::memory_order_relaxed);
  do {
    if (u <= 0) throw ValueError("task_done() called too many times");
  } while (!sh.unfinished.compare_exchange_weak(u, u - 1, std::memory_order_acq_rel));
  if (u == 1) wake(sh.unfinished_seq, sh.unfinished_sleepers);
}

void QueueCore::join() {
  QueueState& q = live();
  if (q.kind != Kind::joinable) throw ValueError("join() on a queue that is not a JoinableQueue");
  Shared& sh = *q.sh;
  auto done = [&] { return sh.unfinished.load(std::memory_order_seq_cst) <= 0; };
  while (!done()) sleep_on(sh.unfinished_seq, sh.unfinished_sleepers, done, std::nullopt);
}

void QueueCore::save(Encoder& enc) const {
  QueueState& q = live();
  enc(q.block);
}

void QueueCore::load(Decoder& dec) {
  HeapBlock b;
  dec(b);
  auto s = std::make_shared<QueueState>();
  s->attach(std::move(b));
  state_ = std::make_shared<QueueUser>(QueueUser{std::move(s)});
}

}  // namespace mp::detail
