// mp/sharedctypes.hpp - multiprocessing.sharedctypes: Value, Array, RawValue, RawArray.
//
// The objects live in the shared heap: blocks of anonymous shared memory that travel to children
// as handles (inherited under fork, passed under spawn and forkserver, or through a Connection),
// so they have no name and can never leak. T must be trivially copyable (it is copied as bytes
// between processes) - the C++ counterpart of a ctypes type.
//
// Value and Array carry a lock, as CPython's synchronized wrappers: value() / value(v) and
// element reads and writes each take it. A read-modify-write is two operations, so hold
// get_lock() across it, as in Python:
//     { std::lock_guard g(counter.get_lock()); counter.value(counter.value() + 1); }
// lock=false gives the raw object (no lock; get_lock() is an error); a Lock or RLock may be given.
#pragma once

#include <mp/codec.hpp>
#include <mp/exceptions.hpp>
#include <mp/synchronize.hpp>

#include <cstddef>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace mp {

namespace detail {

struct HeapBlockState;

// A block of the shared heap; copies share one state. The block returns to the heap when the
// last handle to it in every process is gone (a process killed holding one keeps it).
class HeapBlock {
 public:
  HeapBlock() = default;
  // Zero-filled.
  static HeapBlock allocate(std::size_t size, std::size_t align);
  std::byte* data() const;
  std::size_t size() const;
  explicit operator bool() const noexcept { return state_ != nullptr; }
  void save(Encoder& enc) const;
  void load(Decoder& dec);

 private:
  std::shared_ptr<HeapBlockState> state_;
};

template <class T>
concept shareable_ctype = std::is_trivially_copyable_v<T> && !std::is_pointer_v<T>;

// The optional lock of a synchronized wrapper (an empty SemLock handle when there is none; not
// std::optional, which gcc 12 at -O3 reports falsely as maybe-uninitialized in users' code).
class OptionalLock {
 public:
  OptionalLock() = default;
  explicit OptionalLock(bool make, Context* ctx) {
    if (make) {
      lock_ = RLock(ctx);
      has_ = true;
    }
  }
  explicit OptionalLock(SemLock lock) : lock_(std::move(lock)), has_(true) {}
  bool has() const noexcept { return has_; }
  SemLock& get(const char* what) {
    if (!has_) throw ValueError(std::string(what) + " was made with lock=false: it has no lock (get_lock)");
    return lock_;
  }
  void lock() {
    if (has_) lock_.acquire();
  }
  void unlock() {
    if (has_) lock_.release();
  }
  void save(Encoder& enc) const {
    enc(has_);
    if (has_) enc(lock_);
  }
  void load(Decoder& dec) {
    dec(has_);
    if (has_) dec(lock_);
  }

 private:
  SemLock lock_;
  bool has_ = false;
};

}  // namespace detail

// CPython's RawValue: a T in shared memory, no lock.
template <detail::shareable_ctype T>
class RawValue {
 public:
  RawValue() = default;  // empty: a placeholder to decode into
  explicit RawValue(const T& init) : block_(detail::HeapBlock::allocate(sizeof(T), alignof(T))) {
    std::memcpy(block_.data(), &init, sizeof(T));
  }
  T value() const {
    T v;
    std::memcpy(&v, ptr(), sizeof(T));
    return v;
  }
  void value(const T& v) { std::memcpy(ptr(), &v, sizeof(T)); }
  // The object itself (as a ctypes object's memory): not locked.
  T& ref() const { return *reinterpret_cast<T*>(ptr()); }

  void save(detail::Encoder& enc) const { enc(block_); }
  void load(detail::Decoder& dec) {
    dec(block_);
    if (block_.size() != sizeof(T)) throw DecodeError("mp::RawValue: the block's size does not match the type");
  }

 private:
  std::byte* ptr() const {
    if (!block_) throw ValueError("use of an empty RawValue");
    return block_.data();
  }
  detail::HeapBlock block_;
};

// CPython's Value (a synchronized wrapper): the lock is taken for each read and write.
template <detail::shareable_ctype T>
class Value {
 public:
  Value() = default;  // empty: a placeholder to decode into
  explicit Value(const T& init, bool lock = true, Context* ctx = nullptr) : obj_(init), lock_(lock, ctx) {}
  Value(const T& init, SemLock lock) : obj_(init), lock_(std::move(lock)) {}

  T value() const {
    std::lock_guard g(lock_);
    return obj_.value();
  }
  void value(const T& v) {
    std::lock_guard g(lock_);
    obj_.value(v);
  }
  SemLock& get_lock() { return lock_.get("this Value"); }
  RawValue<T>& get_obj() { return obj_; }
  // Lockable, as CPython's synchronized wrapper is a context manager.
  void lock() { lock_.lock(); }
  void unlock() { lock_.unlock(); }

  void save(detail::Encoder& enc) const { enc(obj_, lock_); }
  void load(detail::Decoder& dec) { dec(obj_, lock_); }

 private:
  RawValue<T> obj_;
  mutable detail::OptionalLock lock_;
};

// CPython's RawArray: n T's in shared memory, zero-filled, no lock.
template <detail::shareable_ctype T>
class RawArray {
 public:
  RawArray() = default;
  explicit RawArray(std::size_t n)
      : block_(detail::HeapBlock::allocate(n == 0 ? 1 : n * sizeof(T), alignof(T))), n_(n) {}
  explicit RawArray(const std::vector<T>& init) : RawArray(init.size()) {
    if (!init.empty()) std::memcpy(block_.data(), init.data(), init.size() * sizeof(T));
  }
  std::size_t size() const noexcept { return n_; }
  T& operator[](std::size_t i) const {
    if (i >= n_) throw IndexError("array index out of range");
    return data()[i];
  }
  std::span<T> span() const { return {data(), n_}; }
  std::vector<T> to_vector() const { return std::vector<T>(data(), data() + n_); }

  void save(detail::Encoder& enc) const { enc(block_, n_); }
  void load(detail::Decoder& dec) {
    dec(block_, n_);
    if (block_.size() < n_ * sizeof(T)) throw DecodeError("mp::RawArray: the block is smaller than the array");
  }

 private:
  T* data() const {
    if (!block_) throw ValueError("use of an empty RawArray");
    return reinterpret_cast<T*>(block_.data());
  }
  detail::HeapBlock block_;
  std::size_t n_ = 0;
};

// CPython's Array (a synchronized wrapper): element reads and writes take the lock.
template <detail::shareable_ctype T>
class Array {
 public:
  // arr[i] = v and T v = arr[i], each under the lock.
  class Element {
   public:
    operator T() const {
      std::lock_guard g(a_->lock_);
      return a_->obj_[i_];
    }
    Element& operator=(const T& v) {
      std::lock_guard g(a_->lock_);
      a_->obj_[i_] = v;
      return *this;
    }
    Element& operator=(const Element& o) { return *this = static_cast<T>(o); }

   private:
    friend class Array;
    Element(Array* a, std::size_t i) : a_(a), i_(i) {}
    Array* a_;
    std::size_t i_;
  };

  Array() = default;
  explicit Array(std::size_t n, bool lock = true, Context* ctx = nullptr) : obj_(n), lock_(lock, ctx) {}
  Array(std::size_t n, SemLock lock) : obj_(n), lock_(std::move(lock)) {}
  explicit Array(const std::vector<T>& init, bool lock = true, Context* ctx = nullptr) : obj_(init), lock_(lock, ctx) {}
  Array(const std::vector<T>& init, SemLock lock) : obj_(init), lock_(std::move(lock)) {}

  std::size_t size() const noexcept { return obj_.size(); }
  Element operator[](std::size_t i) {
    if (i >= size()) throw IndexError("array index out of range");
    return Element(this, i);
  }
  T operator[](std::size_t i) const {
    std::lock_guard g(lock_);
    return obj_[i];
  }
  // All elements, read under the lock.
  std::vector<T> to_vector() const {
    std::lock_guard g(lock_);
    return obj_.to_vector();
  }
  // The elements themselves, unlocked: hold get_lock() while using them.
  std::span<T> span() const { return obj_.span(); }
  SemLock& get_lock() { return lock_.get("this Array"); }
  RawArray<T>& get_obj() { return obj_; }
  void lock() { lock_.lock(); }
  void unlock() { lock_.unlock(); }

  void save(detail::Encoder& enc) const { enc(obj_, lock_); }
  void load(detail::Decoder& dec) { dec(obj_, lock_); }

 private:
  RawArray<T> obj_;
  mutable detail::OptionalLock lock_;
};

namespace detail {
template <>
struct handle_type<HeapBlock> : std::true_type {};
template <class T>
struct handle_type<RawValue<T>> : std::true_type {};
template <class T>
struct handle_type<Value<T>> : std::true_type {};
template <class T>
struct handle_type<RawArray<T>> : std::true_type {};
template <class T>
struct handle_type<Array<T>> : std::true_type {};
}  // namespace detail

}  // namespace mp
