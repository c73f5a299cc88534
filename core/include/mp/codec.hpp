// mp/codec.hpp - how values cross process boundaries.
//
// `mp::codec<T>` encodes and decodes values with cereal as the engine, through an archive pair of
// our own: native-endian binary (both ends are the same machine), every read bounds-checked, every
// size field checked against the bytes that remain, so malformed input throws `mp::DecodeError`
// and never allocates more than the message holds. Aggregates (plain structs) need no boilerplate:
// Boost.PFR walks their fields. Types with a cereal `serialize(Archive&)` (or save/load) work too.
//
// OS handles (Connections, semaphores, shared memory) travel beside the bytes: an encoder collects
// them in a side table and writes their index; the start method moves the handles themselves.
#pragma once

#include <mp/exceptions.hpp>
#include <mp/handle.hpp>

#include <algorithm>
#include <array>
#include <memory>
#include <bitset>
#include <chrono>
#include <complex>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <forward_list>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include <boost/pfr.hpp>
#include <cereal/cereal.hpp>
#include <cereal/types/array.hpp>
#include <cereal/types/bitset.hpp>
#include <cereal/types/chrono.hpp>
#include <cereal/types/common.hpp>
#include <cereal/types/complex.hpp>
#include <cereal/types/deque.hpp>
#include <cereal/types/forward_list.hpp>
#include <cereal/types/list.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/unordered_set.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>

namespace mp::detail {

class Encoder : public cereal::OutputArchive<Encoder, cereal::AllowEmptyClassElision> {
 public:
  Encoder() : OutputArchive(this) {}
  void write(const void* data, std::size_t n) {
    if (n == 0) return;
    // resize + memcpy rather than insert: gcc 12 at -O3 warns falsely (-Wstringop-overflow) on
    // vector<std::byte>::insert of a range.
    const std::size_t old = bytes_.size();
    bytes_.resize(old + n);
    std::memcpy(bytes_.data() + old, data, n);
  }
  // Records a handle to travel with the message; returns its index in the side table. The same
  // handle twice (two copies of one Connection) travels once.
  std::uint32_t add_handle(native_handle_t h) {
    for (std::size_t i = 0; i < handles_.size(); ++i) {
      if (handles_[i] == h) return static_cast<std::uint32_t>(i);
    }
    handles_.push_back(h);
    return static_cast<std::uint32_t>(handles_.size() - 1);
  }
  std::vector<std::byte>& bytes() noexcept { return bytes_; }
  std::vector<native_handle_t>& handles() noexcept { return handles_; }

 private:
  std::vector<std::byte> bytes_;
  std::vector<native_handle_t> handles_;
};

class Decoder : public cereal::InputArchive<Decoder, cereal::AllowEmptyClassElision> {
 public:
  explicit Decoder(std::span<const std::byte> data, std::span<const native_handle_t> handles = {})
      : InputArchive(this), data_(data), handles_(handles) {}
  void read(void* out, std::size_t n) {
    if (n > remaining()) {
      throw DecodeError("mp::codec: truncated message (needed " + std::to_string(n) + " more bytes, " +
                        std::to_string(remaining()) + " left)");
    }
    if (n != 0) std::memcpy(out, data_.data() + pos_, n);
    pos_ += n;
  }
  std::size_t remaining() const noexcept { return data_.size() - pos_; }
  native_handle_t handle(std::uint32_t index) const {
    if (index >= handles_.size()) throw DecodeError("mp::codec: handle index out of range");
    return handles_[index];
  }
  // The object rebuilt for a handle index: made once by `make`, shared by every later reference
  // (copies of one Connection sent together stay one connection). `make` takes the handle.
  template <class T, class Make>
  std::shared_ptr<T> shared_object(std::uint32_t index, Make&& make) {
    if (index >= handles_.size()) throw DecodeError("mp::codec: handle index out of range");
    for (auto& [i, obj] : objects_) {
      if (i == index) return std::static_pointer_cast<T>(obj);
    }
    std::shared_ptr<T> obj = make(handles_[index]);
    objects_.emplace_back(index, obj);
    claimed_ = std::max<std::size_t>(claimed_, index + 1);
    return obj;
  }
  // How many of the handles objects have taken ownership of (indices [0, claimed)).
  std::size_t claimed() const noexcept { return claimed_; }

 private:
  std::span<const std::byte> data_;
  std::size_t pos_ = 0;
  std::span<const native_handle_t> handles_;
  std::vector<std::pair<std::uint32_t, std::shared_ptr<void>>> objects_;
  std::size_t claimed_ = 0;
};

// ---- the archive's primitives (found by cereal through ADL on the archive type) ----------------
template <class T>
  requires std::is_arithmetic_v<T>
void CEREAL_SAVE_FUNCTION_NAME(Encoder& ar, const T& v) { ar.write(&v, sizeof v); }
template <class T>
  requires std::is_arithmetic_v<T>
void CEREAL_LOAD_FUNCTION_NAME(Decoder& ar, T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    unsigned char c;
    ar.read(&c, 1);
    if (c > 1) throw DecodeError("mp::codec: invalid bool");
    v = c != 0;
  } else {
    ar.read(&v, sizeof v);
  }
}
template <class A, class T>
  requires std::is_same_v<A, Encoder> || std::is_same_v<A, Decoder>
void CEREAL_SERIALIZE_FUNCTION_NAME(A& ar, cereal::NameValuePair<T>& nvp) { ar(nvp.value); }
template <class T>
void CEREAL_SAVE_FUNCTION_NAME(Encoder& ar, const cereal::SizeTag<T>& tag) {
  std::uint64_t n = static_cast<std::uint64_t>(tag.size);
  ar.write(&n, sizeof n);
}
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(Decoder& ar, cereal::SizeTag<T>& tag) {
  std::uint64_t n;
  ar.read(&n, sizeof n);
  // Every element of a container takes at least one byte, so a size beyond what remains is a lie;
  // refusing it here keeps allocations bounded by the message.
  if (n > ar.remaining()) throw DecodeError("mp::codec: container size exceeds the message");
  tag.size = static_cast<std::remove_reference_t<T>>(n);
}
template <class T>
void CEREAL_SAVE_FUNCTION_NAME(Encoder& ar, const cereal::BinaryData<T>& bd) {
  ar.write(bd.data, static_cast<std::size_t>(bd.size));
}
template <class T>
void CEREAL_LOAD_FUNCTION_NAME(Decoder& ar, cereal::BinaryData<T>& bd) {
  ar.read(bd.data, static_cast<std::size_t>(bd.size));
}
// Byte vectors as one block (cereal's bulk path covers arithmetic types only; std::byte is an enum).
template <class A>
void CEREAL_SAVE_FUNCTION_NAME(Encoder& ar, const std::vector<std::byte, A>& v) {
  std::uint64_t n = v.size();
  ar.write(&n, sizeof n);
  ar.write(v.data(), v.size());
}
template <class A>
void CEREAL_LOAD_FUNCTION_NAME(Decoder& ar, std::vector<std::byte, A>& v) {
  std::uint64_t n;
  ar.read(&n, sizeof n);
  if (n > ar.remaining()) throw DecodeError("mp::codec: container size exceeds the message");
  v.resize(static_cast<std::size_t>(n));
  ar.read(v.data(), v.size());
}

template <class T>
void prologue(Encoder&, const T&) {}
template <class T>
void epilogue(Encoder&, const T&) {}
template <class T>
void prologue(Decoder&, const T&) {}
template <class T>
void epilogue(Decoder&, const T&) {}

// ---- aggregates through Boost.PFR ---------------------------------------------------------------
template <class T>
struct is_std_array : std::false_type {};
template <class T, std::size_t N>
struct is_std_array<std::array<T, N>> : std::true_type {};

template <class T>
concept has_cereal_member =
    cereal::traits::has_member_serialize<T, Encoder>::value ||
    cereal::traits::has_member_save<T, Encoder>::value ||
    cereal::traits::has_member_versioned_serialize<T, Encoder>::value;

template <class T>
concept reflectable_aggregate = std::is_class_v<T> && std::is_aggregate_v<T> && !is_std_array<T>::value &&
                                !std::is_empty_v<T> && !has_cereal_member<T>;

template <class A, class T>
  requires(std::is_same_v<A, Encoder> || std::is_same_v<A, Decoder>) && reflectable_aggregate<T>
void CEREAL_SERIALIZE_FUNCTION_NAME(A& ar, T& value) {
  boost::pfr::for_each_field(value, [&ar](auto& field) { ar(field); });
}
// Empty aggregates (tag types) carry no bytes.
template <class T>
concept empty_aggregate = std::is_class_v<T> && std::is_aggregate_v<T> && std::is_empty_v<T> &&
                          !is_std_array<T>::value && !std::is_same_v<T, std::monostate> && !has_cereal_member<T>;
template <class A, class T>
  requires(std::is_same_v<A, Encoder> || std::is_same_v<A, Decoder>) && empty_aggregate<T>
void CEREAL_SERIALIZE_FUNCTION_NAME(A&, T&) {}

// ---- which types can travel ---------------------------------------------------------------------
// Our own trait rather than cereal's: cereal says "yes" for std::vector<X> whatever X is and then
// fails deep inside; a target with such arguments must instead be refused cleanly at start().
template <class T, class = void>
struct transportable;

template <class T>
inline constexpr bool transportable_v = transportable<std::remove_cv_t<T>>::value;

// Handle-carrying library types opt in by specialising this (Connection, Queue, Lock, ...).
template <class T>
struct handle_type : std::false_type {};

template <class Tuple>
struct all_transportable;
template <class... Ts>
struct all_transportable<std::tuple<Ts...>> : std::bool_constant<(transportable_v<Ts> && ...)> {};

template <class T>
struct aggregate_fields_transportable {
  static constexpr bool value =
      all_transportable<decltype(boost::pfr::structure_to_tuple(std::declval<const T&>()))>::value;
};

template <class T, class>
struct transportable
    : std::bool_constant<std::is_arithmetic_v<T> || std::is_enum_v<T> || has_cereal_member<T> ||
                         handle_type<T>::value> {};
template <class T>
  requires reflectable_aggregate<T> && (!handle_type<T>::value)
struct transportable<T, void> : aggregate_fields_transportable<T> {};
template <class T>
  requires empty_aggregate<T>
struct transportable<T, void> : std::true_type {};
template <class C, class Tr, class A>
struct transportable<std::basic_string<C, Tr, A>> : std::bool_constant<std::is_arithmetic_v<C>> {};
template <class T, class A>
struct transportable<std::vector<T, A>> : std::bool_constant<transportable_v<T>> {};
template <class T, class A>
struct transportable<std::deque<T, A>> : std::bool_constant<transportable_v<T>> {};
template <class T, class A>
struct transportable<std::list<T, A>> : std::bool_constant<transportable_v<T>> {};
template <class T, class A>
struct transportable<std::forward_list<T, A>> : std::bool_constant<transportable_v<T>> {};
template <class T, class C, class A>
struct transportable<std::set<T, C, A>> : std::bool_constant<transportable_v<T>> {};
template <class T, class C, class A>
struct transportable<std::multiset<T, C, A>> : std::bool_constant<transportable_v<T>> {};
template <class T, class H, class E, class A>
struct transportable<std::unordered_set<T, H, E, A>> : std::bool_constant<transportable_v<T>> {};
template <class K, class V, class C, class A>
struct transportable<std::map<K, V, C, A>> : std::bool_constant<transportable_v<K> && transportable_v<V>> {};
template <class K, class V, class C, class A>
struct transportable<std::multimap<K, V, C, A>> : std::bool_constant<transportable_v<K> && transportable_v<V>> {};
template <class K, class V, class H, class E, class A>
struct transportable<std::unordered_map<K, V, H, E, A>>
    : std::bool_constant<transportable_v<K> && transportable_v<V>> {};
template <class T>
struct transportable<std::optional<T>> : std::bool_constant<transportable_v<T>> {};
template <class... Ts>
struct transportable<std::variant<Ts...>> : std::bool_constant<(transportable_v<Ts> && ...)> {};
template <class... Ts>
struct transportable<std::tuple<Ts...>> : std::bool_constant<(transportable_v<Ts> && ...)> {};
template <class A, class B>
struct transportable<std::pair<A, B>> : std::bool_constant<transportable_v<A> && transportable_v<B>> {};
template <class T, std::size_t N>
struct transportable<std::array<T, N>> : std::bool_constant<transportable_v<T>> {};
template <class R, class P>
struct transportable<std::chrono::duration<R, P>> : std::bool_constant<std::is_arithmetic_v<R>> {};
template <class C, class D>
struct transportable<std::chrono::time_point<C, D>> : std::true_type {};
template <>
struct transportable<std::monostate> : std::true_type {};
template <std::size_t N>
struct transportable<std::bitset<N>> : std::true_type {};
template <class T>
struct transportable<std::complex<T>> : std::bool_constant<std::is_arithmetic_v<T>> {};

// Runs `fill(enc)` with an Encoder whose byte buffer is this thread's scratch buffer, which keeps its
// capacity between calls (no allocation per message once warm). The bytes are valid inside `fill`.
template <class Fill>
decltype(auto) with_scratch_encoder(Fill&& fill) {
  thread_local std::vector<std::byte> buffer;
  Encoder enc;
  buffer.clear();
  enc.bytes().swap(buffer);
  struct Restore {
    Encoder& enc;
    ~Restore() { enc.bytes().swap(buffer); }
  } restore{enc};
  return fill(enc);
}

}  // namespace mp::detail

CEREAL_REGISTER_ARCHIVE(mp::detail::Encoder)
CEREAL_REGISTER_ARCHIVE(mp::detail::Decoder)
CEREAL_SETUP_ARCHIVE_TRAITS(mp::detail::Decoder, mp::detail::Encoder)

namespace mp {

// Whether values of T can be sent to another process (checked at compile time).
template <class T>
inline constexpr bool is_transportable_v = detail::transportable_v<std::decay_t<T>>;

// The codec of a type: encode to bytes (handles into the encoder's side table) and back.
template <class T>
struct codec {
  static_assert(is_transportable_v<T>,
                "mp::codec<T>: T cannot cross processes. Use arithmetic types, std::string, standard "
                "containers, tuple/pair/optional/variant/array, chrono durations, plain aggregates, "
                "or give T a cereal-style `template <class Archive> void serialize(Archive&)`.");
  static void encode(detail::Encoder& enc, const T& value) { enc(value); }
  static std::vector<std::byte> encode(const T& value) {
    detail::Encoder enc;
    enc(value);
    return std::move(enc.bytes());
  }
  static void decode(detail::Decoder& dec, T& out) { dec(out); }
  static T decode(std::span<const std::byte> bytes, std::span<const native_handle_t> handles = {}) {
    static_assert(std::is_default_constructible_v<T>, "mp::codec<T>::decode needs a default-constructible T");
    detail::Decoder dec(bytes, handles);
    T value{};
    dec(value);
    if (dec.remaining() != 0) throw DecodeError("mp::codec: trailing bytes after the value");
    return value;
  }
};

}  // namespace mp
