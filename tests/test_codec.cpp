// mp::codec: round trips, aggregates without boilerplate, and hostile input.
#include <mp/codec.hpp>
#include <mp/task.hpp>

#include <gtest/gtest.h>

#include <random>

namespace {

struct Point {
  int x;
  double y;
  std::string label;
  friend bool operator==(const Point&, const Point&) = default;
};
struct Nested {
  Point a;
  std::vector<Point> many;
  std::optional<std::map<std::string, int>> table;
  std::variant<int, std::string, std::monostate> v;
  std::array<std::uint8_t, 3> bytes;
  friend bool operator==(const Nested&, const Nested&) = default;
};
class WithSerialize {
 public:
  WithSerialize() = default;
  explicit WithSerialize(int v) : v_(v) {}
  int value() const { return v_; }
  template <class A>
  void serialize(A& a) { a(v_); }
 private:
  int v_ = 0;
};
enum class Colour : std::uint8_t { red, green };

template <class T>
T round_trip(const T& v) {
  return mp::codec<T>::decode(mp::codec<T>::encode(v));
}

}  // namespace

TEST(Codec, Scalars) {
  EXPECT_EQ(round_trip(42), 42);
  EXPECT_EQ(round_trip(-7LL), -7LL);
  EXPECT_EQ(round_trip(2.5), 2.5);
  EXPECT_EQ(round_trip(true), true);
  EXPECT_EQ(round_trip('c'), 'c');
  EXPECT_EQ(round_trip(Colour::green), Colour::green);
  EXPECT_EQ(round_trip(std::string("hello")), "hello");
  EXPECT_EQ(round_trip(std::string()), "");
}

TEST(Codec, Containers) {
  std::vector<int> v{1, 2, 3};
  EXPECT_EQ(round_trip(v), v);
  std::map<std::string, std::vector<double>> m{{"a", {1.5}}, {"b", {}}};
  EXPECT_EQ(round_trip(m), m);
  std::tuple<int, std::string, std::optional<int>> t{1, "x", std::nullopt};
  EXPECT_EQ(round_trip(t), t);
  std::pair<int, long> p{3, 4};
  EXPECT_EQ(round_trip(p), p);
  std::variant<int, std::string> var = std::string("s");
  EXPECT_EQ(round_trip(var), var);
  std::chrono::milliseconds ms(1234);
  EXPECT_EQ(round_trip(ms), ms);
  std::set<int> s{5, 1};
  EXPECT_EQ(round_trip(s), s);
}

TEST(Codec, AggregatesNeedNoBoilerplate) {
  Point p{1, 2.5, "p"};
  EXPECT_EQ(round_trip(p), p);
  Nested n{p, {p, Point{3, 4, "q"}}, std::map<std::string, int>{{"k", 9}}, std::string("v"), {1, 2, 3}};
  EXPECT_EQ(round_trip(n), n);
  EXPECT_EQ(round_trip(WithSerialize(5)).value(), 5);
}

TEST(Codec, TransportableTrait) {
  static_assert(mp::is_transportable_v<int>);
  static_assert(mp::is_transportable_v<std::vector<std::map<std::string, Point>>>);
  static_assert(mp::is_transportable_v<Nested>);
  static_assert(mp::is_transportable_v<WithSerialize>);
  auto lambda = [x = 1] { return x; };
  static_assert(!mp::is_transportable_v<decltype(lambda)>);
  static_assert(!mp::is_transportable_v<std::vector<decltype(lambda)>>);
  static_assert(!mp::is_transportable_v<int*>);
  static_assert(!mp::is_transportable_v<std::tuple<int, void*>>);
  SUCCEED();
}

TEST(Codec, TruncatedInputIsAnErrorNotACrash) {
  auto bytes = mp::codec<std::string>::encode("hello world");
  for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
    std::vector<std::byte> part(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(cut));
    EXPECT_THROW(mp::codec<std::string>::decode(part), mp::DecodeError) << cut;
  }
}

TEST(Codec, TrailingBytesAreAnError) {
  auto bytes = mp::codec<int>::encode(1);
  bytes.push_back(std::byte{0});
  EXPECT_THROW(mp::codec<int>::decode(bytes), mp::DecodeError);
}

TEST(Codec, LyingSizeDoesNotAllocate) {
  // A size field of 2^62 elements with nothing behind it: refused before any allocation.
  std::vector<std::byte> bytes(8);
  std::uint64_t huge = 1ull << 62;
  std::memcpy(bytes.data(), &huge, 8);
  EXPECT_THROW(mp::codec<std::vector<std::uint64_t>>::decode(bytes), mp::DecodeError);
  EXPECT_THROW(mp::codec<std::string>::decode(bytes), mp::DecodeError);
  EXPECT_THROW((mp::codec<std::map<int, int>>::decode(bytes)), mp::DecodeError);
}

TEST(Codec, InvalidBoolAndVariantIndex) {
  std::vector<std::byte> b{std::byte{7}};
  EXPECT_THROW(mp::codec<bool>::decode(b), mp::DecodeError);
  auto bytes = mp::codec<std::variant<int, double>>::encode(1);
  bytes[0] = std::byte{9};  // the index
  EXPECT_ANY_THROW((mp::codec<std::variant<int, double>>::decode(bytes)));
}

TEST(Codec, RandomBytesNeverCrash) {
  std::mt19937_64 rng(12345);
  for (int i = 0; i < 20000; ++i) {
    std::vector<std::byte> b(rng() % 64);
    for (auto& x : b) x = static_cast<std::byte>(rng());
    try {
      (void)mp::codec<Nested>::decode(b);
    } catch (const std::exception&) {
    }
    try {
      (void)mp::codec<std::vector<std::string>>::decode(b);
    } catch (const std::exception&) {
    }
  }
  SUCCEED();
}

namespace {
void plain(int, std::string) {}
void named(int) {}
MP_TASK(named);
struct Functor {
  int n = 0;
  void operator()() const {}
};
MP_TASK_TYPE(Functor);
}  // namespace

TEST(Task, DescribesHowATargetTravels) {
  mp::detail::TaskDescriptor d;
  auto t1 = mp::detail::make_task(&plain, 1, "s");
  EXPECT_FALSE(t1->describe(d).has_value());
  EXPECT_EQ(d.kind, mp::detail::TaskDescriptor::by_address);

  mp::detail::TaskDescriptor d2;
  auto t2 = mp::detail::make_task(named, 1);
  EXPECT_FALSE(t2->describe(d2).has_value());
  EXPECT_EQ(d2.kind, mp::detail::TaskDescriptor::by_name);
  EXPECT_NE(d2.name.find("named"), std::string::npos);

  mp::detail::TaskDescriptor d3;
  auto t3 = mp::detail::make_task([](int) {}, 1);
  EXPECT_FALSE(t3->describe(d3).has_value());
  EXPECT_EQ(d3.kind, mp::detail::TaskDescriptor::by_address);

  mp::detail::TaskDescriptor d4;
  int captured = 3;
  auto t4 = mp::detail::make_task([captured] { (void)captured; });
  auto why = t4->describe(d4);
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find("captureless lambda"), std::string::npos) << *why;

  mp::detail::TaskDescriptor d5;
  auto t5 = mp::detail::make_task(Functor{4});
  EXPECT_FALSE(t5->describe(d5).has_value());
  EXPECT_EQ(d5.kind, mp::detail::TaskDescriptor::by_name);

  mp::detail::TaskDescriptor d6;
  auto t6 = mp::detail::make_task([](int*) {}, nullptr);
  ASSERT_TRUE(t6->describe(d6).has_value());
}

TEST(Task, CodeLocationRoundTrips) {
  auto ref = mp::detail::locate_code(mp::detail::code_address(&plain));
  EXPECT_EQ(ref.module, "");  // the main executable
  EXPECT_FALSE(ref.identity.empty());
  EXPECT_EQ(mp::detail::resolve_code(ref), mp::detail::code_address(&plain));
  auto bad = ref;
  bad.identity = "build-id:0000";
  EXPECT_THROW(mp::detail::resolve_code(bad), mp::ProcessError);
}
