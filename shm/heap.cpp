// The shared heap under Value / Array (see <mp/sharedctypes.hpp>).
//
// Arenas: anonymous shared-memory segments (platform/shm.hpp create_anonymous: memfd), so no
// name exists to leak. Inside each, Boost.Interprocess's managed_external_buffer (rbtree_best_fit
// with a process-shared mutex): any process that maps the arena may allocate and free in it -
// the right tool here, where a hand-written allocator would only repeat it. Blocks begin with a
// header counting the handles to them in all processes.
#include <mp/sharedctypes.hpp>

#include "platform/process.hpp"
#include "platform/shm.hpp"
#include "process_state.hpp"

#include <boost/interprocess/managed_external_buffer.hpp>

#include <atomic>
#include <map>
#include <mutex>
#include <new>
#include <vector>

namespace bip = boost::interprocess;

namespace mp::detail {

namespace {

constexpr std::size_t kArenaSize = std::size_t(1) << 20;          // arenas shared by small blocks
constexpr std::size_t kDedicated = kArenaSize / 4;                 // larger blocks get their own arena
constexpr std::size_t kArenaOverhead = 64 * 1024;                  // the allocator's own bookkeeping

struct BlockHeader {
  std::atomic<std::uint32_t> refs;  // handles to the block in all processes
  std::uint32_t header_size;
  std::uint64_t size;
};

struct Arena {
  platform::SharedMemorySegment segment;
  std::unique_ptr<bip::managed_external_buffer> allocator;
  std::string identity;

  std::byte* base() const { return segment.bytes().data(); }
};

// This process's arenas: those it allocates from, and every one it has mapped (by identity, so
// a second handle to a mapped arena reuses the mapping).
struct Heap {
  std::mutex mutex;
  std::vector<std::shared_ptr<Arena>> shared;  // arenas for small blocks
  std::map<std::string, std::weak_ptr<Arena>> mapped;
};

Heap& heap() {
  static Heap* h = [] {
    auto* made = new Heap;  // never destroyed: blocks may outlive static destruction
    platform::register_atfork(nullptr, nullptr, [] { new (&heap().mutex) std::mutex; });
    return made;
  }();
  return *h;
}

std::shared_ptr<Arena> new_arena(std::size_t size) {
  auto a = std::make_shared<Arena>();
  a->segment = platform::SharedMemorySegment::create_anonymous(size);
  a->allocator = std::make_unique<bip::managed_external_buffer>(bip::create_only, a->segment.bytes().data(),
                                                                a->segment.size());
  a->identity = a->segment.identity();
  return a;
}

std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

}  // namespace

struct HeapBlockState {
  std::shared_ptr<Arena> arena;
  std::size_t offset = 0;  // of the header, from the arena's base
  unsigned generation = 0;

  BlockHeader& header() const { return *reinterpret_cast<BlockHeader*>(arena->base() + offset); }
  std::byte* data() const { return arena->base() + offset + header().header_size; }

  ~HeapBlockState() {
    // A forked child's copies were never counted: only the process that counted uncounts.
    if (!arena || generation != fork_generation()) return;
    if (header().refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      arena->allocator->deallocate(arena->base() + offset);
    }
  }
};

HeapBlock HeapBlock::allocate(std::size_t size, std::size_t align) {
  align = std::max<std::size_t>(align, 16);
  const std::size_t header = round_up(sizeof(BlockHeader), align);
  const std::size_t need = header + size;
  if (need < size) throw ValueError("shared heap: size too large");
  Heap& h = heap();
  std::shared_ptr<Arena> arena;
  void* p = nullptr;
  bool fresh = false;  // a new arena's pages are zero already: not touching them saves the faults
  if (need <= kDedicated) {
    std::lock_guard lock(h.mutex);
    for (auto& a : h.shared) {
      p = a->allocator->allocate_aligned(need, align, std::nothrow);
      if (p != nullptr) {
        arena = a;
        break;
      }
    }
    if (p == nullptr) {
      arena = new_arena(kArenaSize);
      p = arena->allocator->allocate_aligned(need, align, std::nothrow);
      h.shared.push_back(arena);
      h.mapped[arena->identity] = arena;
    }
  } else {
    arena = new_arena(round_up(need + align + kArenaOverhead, 4096));
    p = arena->allocator->allocate_aligned(need, align, std::nothrow);
    fresh = true;
    std::lock_guard lock(h.mutex);
    h.mapped[arena->identity] = arena;
  }
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, fresh ? header : need);
  auto* hdr = new (p) BlockHeader{};
  hdr->refs.store(1, std::memory_order_relaxed);
  hdr->header_size = static_cast<std::uint32_t>(header);
  hdr->size = size;
  auto s = std::make_shared<HeapBlockState>();
  s->arena = std::move(arena);
  s->offset = static_cast<std::size_t>(static_cast<std::byte*>(p) - s->arena->base());
  s->generation = fork_generation();
  HeapBlock b;
  b.state_ = std::move(s);
  return b;
}

std::byte* HeapBlock::data() const {
  if (!state_) throw ValueError("use of an empty shared-heap block");
  return state_->data();
}

std::size_t HeapBlock::size() const {
  if (!state_) throw ValueError("use of an empty shared-heap block");
  return static_cast<std::size_t>(state_->header().size);
}

void HeapBlock::save(Encoder& enc) const {
  if (!state_) throw ValueError("cannot send an empty shared-heap block");
  std::uint32_t index = enc.add_handle(state_->arena->segment.handle());
  enc(index, static_cast<std::uint64_t>(state_->offset));
}

void HeapBlock::load(Decoder& dec) {
  std::uint32_t index = 0;
  std::uint64_t offset = 0;
  dec(index, offset);
  auto arena = dec.shared_object<Arena>(index, [](native_handle_t fd) {
    auto seg = platform::SharedMemorySegment::from_handle(fd);
    std::string id = seg.identity();
    Heap& h = heap();
    std::lock_guard lock(h.mutex);
    if (auto it = h.mapped.find(id); it != h.mapped.end()) {
      if (auto existing = it->second.lock()) return existing;  // `seg` unmaps and closes its copy
    }
    auto a = std::make_shared<Arena>();
    a->segment = std::move(seg);
    a->allocator = std::make_unique<bip::managed_external_buffer>(bip::open_only, a->segment.bytes().data(),
                                                                  a->segment.size());
    a->identity = std::move(id);
    h.mapped[a->identity] = a;
    return a;
  });
  if (offset + sizeof(BlockHeader) > arena->segment.size()) throw DecodeError("shared heap: block outside its arena");
  auto s = std::make_shared<HeapBlockState>();
  s->arena = std::move(arena);
  s->offset = static_cast<std::size_t>(offset);
  BlockHeader& hdr = s->header();
  if (hdr.header_size < sizeof(BlockHeader) || offset + hdr.header_size + hdr.size > s->arena->segment.size()) {
    s->arena.reset();
    throw DecodeError("shared heap: corrupt block header");
  }
  hdr.refs.fetch_add(1, std::memory_order_acq_rel);
  s->generation = fork_generation();
  state_ = std::move(s);
}

}  // namespace mp::detail
