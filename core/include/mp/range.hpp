// mp/range.hpp - Python's range(): mp::range(stop), mp::range(start, stop), mp::range(start,
// stop, step), a sized range of integers for Pool.map and friends (`pool.map(f, mp::range(10))`).
// (std::views::iota serves as well with gcc; clang 14 with libstdc++ 12 cannot compile it.)
#pragma once

#include <mp/exceptions.hpp>

#include <cstddef>
#include <iterator>
#include <type_traits>

namespace mp {

template <class T>
class Range {
  static_assert(std::is_integral_v<T>, "mp::range: an integer type");

 public:
  class iterator {
   public:
    using iterator_category = std::random_access_iterator_tag;
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    using pointer = void;
    using reference = T;
    iterator() = default;
    iterator(T value, T step) : value_(value), step_(step) {}
    T operator*() const { return value_; }
    T operator[](difference_type n) const { return static_cast<T>(value_ + n * step_); }
    iterator& operator++() {
      value_ = static_cast<T>(value_ + step_);
      return *this;
    }
    iterator operator++(int) {
      iterator c = *this;
      ++*this;
      return c;
    }
    iterator& operator--() {
      value_ = static_cast<T>(value_ - step_);
      return *this;
    }
    iterator operator--(int) {
      iterator c = *this;
      --*this;
      return c;
    }
    iterator& operator+=(difference_type n) {
      value_ = static_cast<T>(value_ + n * step_);
      return *this;
    }
    iterator& operator-=(difference_type n) { return *this += -n; }
    friend iterator operator+(iterator it, difference_type n) { return it += n; }
    friend iterator operator+(difference_type n, iterator it) { return it += n; }
    friend iterator operator-(iterator it, difference_type n) { return it -= n; }
    friend difference_type operator-(const iterator& a, const iterator& b) {
      return static_cast<difference_type>((a.value_ - b.value_) / a.step_);
    }
    friend bool operator==(const iterator& a, const iterator& b) { return a.value_ == b.value_; }
    friend bool operator!=(const iterator& a, const iterator& b) { return a.value_ != b.value_; }
    friend bool operator<(const iterator& a, const iterator& b) { return b - a > 0; }
    friend bool operator>(const iterator& a, const iterator& b) { return b < a; }
    friend bool operator<=(const iterator& a, const iterator& b) { return !(b < a); }
    friend bool operator>=(const iterator& a, const iterator& b) { return !(a < b); }

   private:
    T value_{};
    T step_{1};
  };

  Range(T start, T stop, T step) : start_(start), step_(step) {
    if (step == 0) throw ValueError("range() arg 3 must not be zero");
    std::size_t n = 0;
    if (step > 0 && stop > start) n = static_cast<std::size_t>((stop - start + step - 1) / step);
    if (step < 0 && stop < start) n = static_cast<std::size_t>((start - stop - step - 1) / -step);
    size_ = n;
  }
  iterator begin() const { return iterator(start_, step_); }
  iterator end() const { return iterator(static_cast<T>(start_ + static_cast<T>(size_) * step_), step_); }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  T operator[](std::size_t i) const { return static_cast<T>(start_ + static_cast<T>(i) * step_); }

 private:
  T start_;
  T step_;
  std::size_t size_ = 0;
};

template <class T>
Range<T> range(T stop) {
  return Range<T>(T{0}, stop, T{1});
}
template <class T, class U>
Range<std::common_type_t<T, U>> range(T start, U stop) {
  using C = std::common_type_t<T, U>;
  return Range<C>(static_cast<C>(start), static_cast<C>(stop), C{1});
}
template <class T, class U, class V>
Range<std::common_type_t<T, U, V>> range(T start, U stop, V step) {
  using C = std::common_type_t<T, U, V>;
  return Range<C>(static_cast<C>(start), static_cast<C>(stop), static_cast<C>(step));
}

}  // namespace mp
