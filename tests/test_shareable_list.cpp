// mp::ShareableList: ports of CPython's _TestSharedMemory.test_shared_memory_ShareableList_basics,
// _pickling and _pickling_dead_object (pickling = mp::codec, and passing the list to a child under
// every start method), a child that modifies a list its parent then reads, the byte layout against
// bytes CPython 3.11 produced, and interop both ways with the machine's python3
// (tests/python/shareable_list_peer.py; skipped when python3 is missing).
//
// Adaptations: no __repr__ (the API has none); CPython's "duplicate" ShareableList(sl, name=...) is
// ShareableList(sl.items(), name). Every segment a test makes is checked to be gone from /dev/shm
// when the test ends (ShmNames), and removed if it is not, so a failure leaks nothing.
#include "test_helpers.hpp"

#include <mp/mp.hpp>
#include <mp/shared_memory.hpp>

#include <gtest/gtest.h>

#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "platform/process.hpp"
#include "platform/shm.hpp"

using namespace std::chrono_literals;
using Item = mp::ShareableList::Item;
using Items = std::vector<Item>;

namespace {

using mp_test::Children;

// ---- values --------------------------------------------------------------------------------------

Item S(const char* s) { return std::string(s); }
Item B(std::string_view s) {
  std::vector<std::byte> v(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) v[i] = static_cast<std::byte>(s[i]);
  return v;
}
Item I(std::int64_t v) { return v; }
Item D(double v) { return v; }
const Item None{};

// CPython's range(n) as items. (emplace_back: gcc 12 -O3 warns falsely, -Wmaybe-uninitialized,
// on push_back of a temporary variant.)
Items range_items(std::int64_t n) {
  Items v;
  for (std::int64_t i = 0; i < n; ++i) v.emplace_back(std::in_place_type<std::int64_t>, i);
  return v;
}

// For failure messages only.
std::string show(const Item& v) {
  switch (v.index()) {
    case 0: return "None";
    case 1: return std::to_string(std::get<std::int64_t>(v));
    case 2: {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.17g(float)", std::get<double>(v));
      return buf;
    }
    case 3: return std::get<bool>(v) ? "True" : "False";
    case 4: return "'" + std::get<std::string>(v) + "'";
    default: {
      std::string out = "b'";
      for (std::byte b : std::get<std::vector<std::byte>>(v)) {
        auto u = std::to_integer<unsigned>(b);
        if (u >= 0x20 && u < 0x7f) {
          out += static_cast<char>(u);
        } else {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", u);
          out += buf;
        }
      }
      return out + "'";
    }
  }
}
std::string show(const Items& vs) {
  std::string out = "[";
  for (std::size_t i = 0; i < vs.size(); ++i) out += (i ? ", " : "") + show(vs[i]);
  return out + "]";
}

// Same type and same value; doubles bit for bit (so -0.0 is not 0.0).
bool same(const Item& a, const Item& b) {
  if (a.index() != b.index()) return false;
  if (a.index() == 2) return std::bit_cast<std::uint64_t>(std::get<double>(a)) == std::bit_cast<std::uint64_t>(std::get<double>(b));
  return a == b;
}
bool same(const Items& a, const Items& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!same(a[i], b[i])) return false;
  }
  return true;
}
#define EXPECT_ITEM(actual, expected)                                                         \
  do {                                                                                        \
    Item a_ = (actual);                                                                       \
    Item e_ = (expected);                                                                     \
    EXPECT_TRUE(same(a_, e_)) << #actual << " is " << show(a_) << ", expected " << show(e_); \
  } while (0)
#define EXPECT_ITEMS(actual, expected)                                                        \
  do {                                                                                        \
    Items a_ = (actual);                                                                      \
    Items e_ = (expected);                                                                    \
    EXPECT_TRUE(same(a_, e_)) << #actual << " is " << show(a_) << ", expected " << show(e_); \
  } while (0)

std::string hex(std::span<const std::byte> b) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (std::byte x : b) {
    auto u = std::to_integer<unsigned>(x);
    out += digits[u >> 4];
    out += digits[u & 15];
  }
  return out;
}

// ---- /dev/shm hygiene ---------------------------------------------------------------------------

// Whether segment `name` still exists: a file in /dev/shm; on Windows, a mapping of that name that
// can still be opened (it lives while any process holds a handle or view of it).
bool in_dev_shm(const std::string& name) {
#if defined(_WIN32)
  try {
    mp::platform::SharedMemorySegment::open("/" + name);
    return true;
  } catch (const std::exception&) {
    return false;
  }
#else
  return std::filesystem::exists("/dev/shm/" + name);
#endif
}

// The segments a test makes: each must be gone when the test ends. One still there is a failure,
// and is removed, so that a failed test leaks nothing.
class ShmNames {
 public:
  ShmNames() = default;
  ShmNames(const ShmNames&) = delete;
  ShmNames& operator=(const ShmNames&) = delete;
  ~ShmNames() {
    for (const auto& n : names_) {
      if (in_dev_shm(n)) {
        ADD_FAILURE() << "shared memory segment '" << n << "' left in /dev/shm";
        try {
          mp::platform::SharedMemorySegment::unlink("/" + n);
        } catch (const std::exception&) {
        }
      }
    }
  }
  const std::string& add(std::string name) { return names_.emplace_back(std::move(name)); }
  // A name of our own for an explicitly named segment.
  const std::string& fresh(const std::string& tag) {
    static int counter = 0;
    return add("mpsl-" + tag + "-" + std::to_string(mp::platform::current_pid()) + "-" + std::to_string(++counter));
  }

 private:
  std::vector<std::string> names_;
};

// ---- children ------------------------------------------------------------------------------------

// The list the children get: ['howdy', b'HoWdY', -273.154, 100, None, True, 42].
Items basics_items() { return {S("howdy"), B("HoWdY"), D(-273.154), I(100), None, true, I(42)}; }

// Checks it holds basics_items() (exit 2 otherwise), then changes every item, three of them to
// another type.
void child_modify(mp::ShareableList sl) {
  if (!same(sl.items(), basics_items()) || sl.format() != "8s8sdqxxxxxx?xxxxxxxx?q") mp::sys_exit(2);
  sl.set(0, S("child"));
  sl.set(1, B("\x01\x02"));
  sl.set(2, I(-5));          // float -> int
  sl.set(3, D(0.5));         // int -> float
  sl.set(4, S("was None"));  // None -> str (8 bytes: the slot's room)
  sl.set(5, false);
  sl.set(-1, None);          // int -> None
}

// The same, attaching by name (CPython's _attach_existing_shmem_then_write takes a name too).
void child_modify_by_name(std::string name) {
  mp::ShareableList sl(name);
  child_modify(sl);
  sl.shm().close();
}

constexpr const char* kModifiedFormat = "8s8sqd8sxxxxxxx?xxxxxx?x";
Items modified_items() { return {S("child"), B("\x01\x02"), I(-5), D(0.5), S("was None"), false, None}; }

class ShareableListProcs : public mp_test::MethodTest<std::string> {
 protected:
  mp::Context& ctx() { return mp::get_context(GetParam()); }
};

// Seven 'é': 7 code points, 14 bytes of UTF-8.
constexpr const char* kSevenE = "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9";

// ---- python3 -------------------------------------------------------------------------------------

// (The peer is run through a POSIX shell: timeout(1), popen, single quotes.)
bool have_python() {
  if (mp_test::kWindows) return false;
  return std::system("python3 -c 'import multiprocessing.shared_memory' >/dev/null 2>&1") == 0;
}

std::string peer_script() {
  return (std::filesystem::path(__FILE__).parent_path() / "python" / "shareable_list_peer.py").string();
}

// Runs the peer (bounded by timeout(1)); its stdout, and its exit status (0 = success).
struct PeerResult {
  std::string out;
  int status = -1;
};
PeerResult run_peer(const std::string& args) {
  std::string cmd = "PYTHONIOENCODING=utf-8 timeout 60 python3 '" + peer_script() + "' " + args;
  PeerResult r;
#if defined(_WIN32)
  FILE* p = ::_popen(cmd.c_str(), "r");
#else
  FILE* p = ::popen(cmd.c_str(), "r");
#endif
  if (p == nullptr) return r;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
#if defined(_WIN32)
  r.status = ::_pclose(p);
#else
  r.status = ::pclose(p);
#endif
  return r;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    out.push_back(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return out;
}

}  // namespace

// ---- CPython's _TestSharedMemory ----------------------------------------------------------------

TEST(ShareableListCpy, Basics) {
  ShmNames names;
  mp::ShareableList sl(basics_items());
  names.add(sl.shm().name());

  // Index out of range (get and set).
  EXPECT_THROW(sl[7], mp::IndexError);
  EXPECT_THROW(sl.set(7, I(2)), mp::IndexError);

  // Assign a value without a format change (str -> str).
  std::string current_format = sl.format();
  sl.set(0, S("howdy"));
  EXPECT_EQ(sl.format(), current_format);

  EXPECT_EQ(sl.format(), "8s8sdqxxxxxx?xxxxxxxx?q");
  EXPECT_EQ(sl.size(), 7u);

  // index()
  try {
    sl.index(S("100"));
    ADD_FAILURE() << "index('100') did not throw";
  } catch (const mp::ValueError& e) {
    EXPECT_STREQ(e.what(), "'100' not in this container");
  }
  EXPECT_EQ(sl.index(I(100)), 3u);

  // Individual values, negative indices, iteration.
  EXPECT_ITEM(sl[0], S("howdy"));
  EXPECT_ITEM(sl[-2], true);
  EXPECT_ITEMS(sl.items(), basics_items());

  // Modifying values, changing a type, and the storage limit of str/bytes.
  sl.set(3, I(42));
  EXPECT_ITEM(sl[3], I(42));
  sl.set(4, S("some"));  // None -> str
  EXPECT_ITEM(sl[4], S("some"));
  EXPECT_EQ(sl.format(), "8s8sdq8sxxxxxxx?q");
  try {
    sl.set(4, S("far too many"));
    ADD_FAILURE() << "a 12-byte str fit an 8-byte slot";
  } catch (const mp::ValueError& e) {
    EXPECT_STREQ(e.what(), "bytes/str item exceeds available storage");
  }
  EXPECT_ITEM(sl[4], S("some"));
  sl.set(0, S("encod\xc3\xa9s"));  // exactly 8 bytes of UTF-8
  EXPECT_ITEM(sl[0], S("encod\xc3\xa9s"));
  EXPECT_ITEM(sl[1], B("HoWdY"));  // no spillage
  EXPECT_THROW(sl.set(0, S("encod\xc3\xa9\x65s")), mp::ValueError);  // 9 bytes
  EXPECT_ITEM(sl[1], B("HoWdY"));
  EXPECT_THROW(sl.set(1, B("123456789")), mp::ValueError);
  EXPECT_ITEM(sl[1], B("HoWdY"));

  // count()
  EXPECT_EQ(sl.count(I(42)), 2u);
  EXPECT_EQ(sl.count(B("HoWdY")), 1u);
  EXPECT_EQ(sl.count(B("adios")), 0u);

  // A duplicate, under a name of ours.
  {
    const std::string& dup_name = names.fresh("dup");
    mp::ShareableList copy(sl.items(), dup_name);
    EXPECT_NE(sl.shm().name(), copy.shm().name());
    EXPECT_EQ(copy.shm().name(), dup_name);
    EXPECT_ITEMS(copy.items(), sl.items());
    EXPECT_EQ(copy.format(), sl.format());
    copy.set(-1, I(77));
    EXPECT_ITEM(copy[-1], I(77));
    EXPECT_FALSE(same(sl[-1], I(77)));
    copy.shm().close();
    copy.shm().unlink();
  }

  // A second handle on the same list.
  {
    mp::ShareableList tethered(sl.shm().name());
    EXPECT_EQ(tethered.shm().name(), sl.shm().name());
    tethered.set(-1, I(880));
    EXPECT_ITEM(sl[-1], I(880));
    tethered.shm().close();
  }

  sl.shm().close();
  EXPECT_THROW(sl[0], mp::ValueError);  // closed
  sl.shm().unlink();

  // An empty list.
  mp::ShareableList empty_sl(Items{});
  names.add(empty_sl.shm().name());
  EXPECT_EQ(empty_sl.size(), 0u);
  EXPECT_EQ(empty_sl.format(), "");
  EXPECT_EQ(empty_sl.count(S("any")), 0u);
  EXPECT_THROW(empty_sl.index(None), mp::ValueError);
  EXPECT_TRUE(empty_sl.items().empty());
  EXPECT_THROW(empty_sl[0], mp::IndexError);
  EXPECT_THROW(empty_sl[-1], mp::IndexError);
  empty_sl.shm().close();
  empty_sl.shm().unlink();
}

TEST(ShareableListCpy, Pickling) {
  ShmNames names;
  Items ten = range_items(10), four_hundred = range_items(400);

  mp::ShareableList sl(ten);
  names.add(sl.shm().name());
  std::vector<std::byte> serialized = mp::codec<mp::ShareableList>::encode(sl);
  mp::ShareableList deserialized = mp::codec<mp::ShareableList>::decode(serialized);
  EXPECT_ITEM(deserialized[-1], I(9));
  EXPECT_EQ(deserialized.shm().name(), sl.shm().name());

  deserialized.set(4, S("changed"));
  EXPECT_ITEM(sl[4], S("changed"));
  sl.set(3, S("newvalue"));
  EXPECT_ITEM(deserialized[3], S("newvalue"));

  // Only the name travels: a longer list makes no longer message.
  mp::ShareableList larger(four_hundred);
  names.add(larger.shm().name());
  EXPECT_EQ(mp::codec<mp::ShareableList>::encode(larger).size(), serialized.size());
  larger.shm().close();
  larger.shm().unlink();

  deserialized.shm().close();
  sl.shm().close();
  sl.shm().unlink();
}

TEST(ShareableListCpy, PicklingDeadObject) {
  ShmNames names;
  mp::ShareableList sl(range_items(10));
  names.add(sl.shm().name());
  std::vector<std::byte> serialized = mp::codec<mp::ShareableList>::encode(sl);
  sl.shm().close();
  sl.shm().unlink();
  try {
    (void)mp::codec<mp::ShareableList>::decode(serialized);
    ADD_FAILURE() << "attached to an unlinked list";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), ENOENT) << e.what();
  }
}

// ---- the byte layout -----------------------------------------------------------------------------

// The bytes CPython 3.11 writes for ShareableList(['howdy', b'HoWdY', -273.154, 100, None, True,
// 42, '', b'', 'abcdefgh']): header, data, formats, codes.
TEST(ShareableListLayout, SameBytesAsCPython) {
  if constexpr (std::endian::native != std::endian::little) GTEST_SKIP() << "the bytes below are little-endian";
  ShmNames names;
  mp::ShareableList sl({S("howdy"), B("HoWdY"), D(-273.154), I(100), None, true, I(42), S(""), B(""), S("abcdefgh")});
  names.add(sl.shm().name());
  EXPECT_EQ(sl.shm().size(), 274u);
  EXPECT_EQ(sl.format(), "8s8sdqxxxxxx?xxxxxxxx?q8s8s16s");
  EXPECT_EQ(hex(sl.shm().buf()),
            "0a00000000000000"  // 10 items
            "000000000000000008000000000000001000000000000000180000000000000020000000000000002800000000000000"
            "30000000000000003800000000000000400000000000000048000000000000005800000000000000"  // 11 offsets
            "686f776479000000486f5764590000005839b4c8761271c0640000000000000000000000000000000000000000000001"
            "2a000000000000000000000000000000000000000000000061626364656667680000000000000000"  // data: 88 bytes
            "38730000000000003873000000000000640000000000000071000000000000007878787878783f78787878787878783f"
            "7100000000000000387300000000000038730000000000003136730000000000"  // formats
            "01020000030000010201");  // back-transform codes
  sl.shm().close();
  sl.shm().unlink();
}

TEST(ShareableListLayout, EmptyListIsSixteenZeroBytes) {
  ShmNames names;
  mp::ShareableList sl(Items{});
  names.add(sl.shm().name());
  EXPECT_EQ(sl.shm().size(), 16u);
  EXPECT_EQ(hex(sl.shm().buf()), std::string(32, '0'));
  mp::ShareableList again(sl.shm().name());
  EXPECT_EQ(again.size(), 0u);
  again.shm().close();
  sl.shm().close();
  sl.shm().unlink();
}

// Type changes write exactly what CPython's __setitem__ writes (bytes checked against CPython
// 3.11's): a bool into a 16-byte str slot writes 8 bytes and leaves the rest; str back into it gets
// "16s" (the slot's room), zero-padded; an int slot taking bytes gets "8s".
TEST(ShareableListLayout, SetWritesWhatCPythonWrites) {
  if constexpr (std::endian::native != std::endian::little) GTEST_SKIP() << "the bytes below are little-endian";
  ShmNames names;
  mp::ShareableList sl({S("abcdefghijk")});
  names.add(sl.shm().name());
  sl.set(0, true);
  EXPECT_EQ(sl.format(), "xxxxxxx?");
  EXPECT_EQ(hex(sl.shm().buf()),
            "0100000000000000000000000000000010000000000000000000000000000001696a6b0000000000787878787878783f00");
  EXPECT_ITEM(sl[0], true);
  sl.set(0, S("zz"));
  EXPECT_EQ(sl.format(), "16s");
  EXPECT_EQ(hex(sl.shm().buf()),
            "0100000000000000000000000000000010000000000000007a7a0000000000000000000000000000313673000000000001");
  EXPECT_ITEM(sl[0], S("zz"));
  sl.shm().close();
  sl.shm().unlink();

  // Trailing NULs are not kept (CPython's rstrip(b'\x00')); leading and inner ones are.
  mp::ShareableList nuls({B(std::string_view("a\0\0", 3)), S("x"), B(std::string_view("\0a\0b\0", 5))});
  names.add(nuls.shm().name());
  nuls.set(1, std::string("x\0", 2));
  EXPECT_ITEM(nuls[0], B("a"));
  EXPECT_ITEM(nuls[1], S("x"));
  EXPECT_ITEM(nuls[2], B(std::string_view("\0a\0b", 4)));
  nuls.set(0, I(5));
  EXPECT_EQ(nuls.format(), "q8s8s");
  nuls.set(0, B("zz"));
  EXPECT_EQ(nuls.format(), "8s8s8s");
  EXPECT_EQ(hex(nuls.shm().buf().subspan(40, 8)), "7a7a000000000000");
  EXPECT_ITEM(nuls[0], B("zz"));
  nuls.shm().close();
  nuls.shm().unlink();
}

// A str's room counts code points as CPython's does ('encodés': 7, so "8s", filled to the last
// byte), except where CPython would truncate the UTF-8 bytes (7 x 'é': "16s", not "8s").
TEST(ShareableListLayout, StrRoomLikeCPythonWithoutTruncation) {
  ShmNames names;
  mp::ShareableList sl({S("encod\xc3\xa9s"), S(kSevenE), S("abcdefg"), S("abcdefgh"), B("abcdefgh")});
  names.add(sl.shm().name());
  EXPECT_EQ(sl.format(), "8s16s8s16s16s");
  EXPECT_ITEMS(sl.items(), (Items{S("encod\xc3\xa9s"), S(kSevenE), S("abcdefg"), S("abcdefgh"), B("abcdefgh")}));
  sl.shm().close();
  sl.shm().unlink();
}

// ---- indices, errors, Python equality -------------------------------------------------------------

TEST(ShareableList, IndicesAndErrors) {
  ShmNames names;
  mp::ShareableList sl({I(1), I(2), I(3)});
  names.add(sl.shm().name());
  EXPECT_ITEM(sl[-3], I(1));
  EXPECT_THROW(sl[-4], mp::IndexError);  // CPython reads the format table here
  EXPECT_THROW(sl[3], mp::IndexError);
  try {
    sl[5];
    ADD_FAILURE();
  } catch (const mp::IndexError& e) {
    EXPECT_STREQ(e.what(), "index out of range");
  }
  try {
    sl.set(-4, I(0));
    ADD_FAILURE();
  } catch (const mp::IndexError& e) {
    EXPECT_STREQ(e.what(), "assignment index out of range");
  }
  sl.set(-1, D(1.5));
  EXPECT_ITEM(sl[2], D(1.5));

  // Extreme values survive.
  sl.set(0, I(std::numeric_limits<std::int64_t>::min()));
  sl.set(1, D(std::numeric_limits<double>::infinity()));
  EXPECT_ITEM(sl[0], I(std::numeric_limits<std::int64_t>::min()));
  EXPECT_ITEM(sl[1], D(std::numeric_limits<double>::infinity()));
  sl.set(1, D(std::nan("")));
  EXPECT_TRUE(std::isnan(std::get<double>(sl[1])));
  EXPECT_EQ(sl.count(D(std::nan(""))), 0u);  // nan != nan, as in Python

  // An item whose format would not fit 8 characters ("10000000s").
  EXPECT_THROW(mp::ShareableList({S(""), Item(std::string(9999992, 'a'))}), mp::ValueError);

  // Attaching: a missing name, and a segment that holds no list.
  try {
    mp::ShareableList missing(names.fresh("missing"));
    ADD_FAILURE() << "attached to a missing name";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), ENOENT);
  }
  {
    mp::SharedMemory junk(names.fresh("junk"), true, 64);
    auto buf = junk.buf();
    std::memset(buf.data(), 0x7f, buf.size());  // claims an absurd number of items
    EXPECT_THROW(mp::ShareableList{junk.name()}, mp::ValueError);
    junk.close();
    junk.unlink();
  }

  mp::ShareableList unset;
  EXPECT_THROW(unset.size(), mp::ValueError);
  sl.shm().close();
  sl.shm().unlink();
}

// count() and index() use Python's ==: 1 == 1.0 == True, b'1' != '1', None only equals None.
TEST(ShareableList, CountAndIndexUsePythonEquality) {
  ShmNames names;
  mp::ShareableList sl({I(1), true, D(1.0), S("1"), B("1"), None, D(0.5), I(0)});
  names.add(sl.shm().name());
  EXPECT_EQ(sl.count(I(1)), 3u);
  EXPECT_EQ(sl.count(true), 3u);
  EXPECT_EQ(sl.count(D(1.0)), 3u);
  EXPECT_EQ(sl.count(false), 1u);
  EXPECT_EQ(sl.count(D(-0.0)), 1u);
  EXPECT_EQ(sl.count(S("1")), 1u);
  EXPECT_EQ(sl.count(B("1")), 1u);
  EXPECT_EQ(sl.count(None), 1u);
  EXPECT_EQ(sl.index(D(1.0)), 0u);
  EXPECT_EQ(sl.index(B("1")), 4u);
  EXPECT_EQ(sl.index(None), 5u);
  EXPECT_EQ(sl.index(D(0.5)), 6u);
  auto message = [&](const Item& v) -> std::string {
    try {
      sl.index(v);
    } catch (const mp::ValueError& e) {
      return e.what();
    }
    return "(found)";
  };
  EXPECT_EQ(message(D(2.5)), "2.5 not in this container");
  EXPECT_EQ(message(D(1e16)), "1e+16 not in this container");
  EXPECT_EQ(message(D(3.0)), "3.0 not in this container");
  EXPECT_EQ(message(I(-7)), "-7 not in this container");
  EXPECT_EQ(message(B("x\n\xff")), "b'x\\n\\xff' not in this container");
  EXPECT_EQ(message(S("it's")), "\"it's\" not in this container");
  sl.shm().close();
  sl.shm().unlink();
}

// ---- across processes ----------------------------------------------------------------------------

TEST_P(ShareableListProcs, ChildModifiesParentSees) {
  ShmNames names;
  mp::ShareableList sl(basics_items());
  names.add(sl.shm().name());
  Children children;
  mp::Process& p = children.start(ctx(), child_modify, sl);
  ASSERT_TRUE(p.join(30s)) << "the child did not finish";
  EXPECT_EQ(p.exitcode(), 0) << "2: the child did not see the parent's items";
  EXPECT_ITEMS(sl.items(), modified_items());
  EXPECT_EQ(sl.format(), kModifiedFormat);
  sl.shm().close();
  sl.shm().unlink();
}

TEST_P(ShareableListProcs, ChildAttachesByName) {
  ShmNames names;
  mp::ShareableList sl(basics_items(), names.fresh("byname"));
  Children children;
  mp::Process& p = children.start(ctx(), child_modify_by_name, sl.shm().name());
  ASSERT_TRUE(p.join(30s)) << "the child did not finish";
  EXPECT_EQ(p.exitcode(), 0) << "2: the child did not see the parent's items";
  EXPECT_ITEMS(sl.items(), modified_items());
  EXPECT_EQ(sl.format(), kModifiedFormat);
  sl.shm().close();
  sl.shm().unlink();
}

INSTANTIATE_TEST_SUITE_P(Methods, ShareableListProcs, testing::Values("fork", "spawn", "forkserver"));

// ---- interop with CPython ------------------------------------------------------------------------

// mp makes a list; python3 attaches by name, prints what it sees, changes six items; mp reads them.
TEST(ShareableListPython, MpCreatesPythonReadsAndWrites) {
  MP_SKIP_ON_WINDOWS("the CPython peer is run through a POSIX shell (timeout, popen, quoting)");
  if (!have_python()) GTEST_SKIP() << "python3 with multiprocessing.shared_memory is not installed";
  ASSERT_TRUE(std::filesystem::exists(peer_script())) << peer_script();
  ShmNames names;
  mp::ShareableList sl({S("howdy"), B(std::string_view("a\0b", 3)), D(-273.154), I(100),
                        I(std::numeric_limits<std::int64_t>::min()), None, true, false, S(""), B(""),
                        S("encod\xc3\xa9s"), D(1e300), S(kSevenE)});
  const std::string name = names.add(sl.shm().name());

  PeerResult r = run_peer("attach " + name);
  ASSERT_EQ(r.status, 0) << "python3 failed; its output:\n" << r.out;
  auto out = lines(r.out);
  ASSERT_EQ(out.size(), 3u) << r.out;
  EXPECT_EQ(out[0],
            "['howdy', b'a\\x00b', -273.154, 100, -9223372036854775808, None, True, False, '', b'', "
            "'encod\xc3\xa9s', 1e+300, '" + std::string(kSevenE) + "']");
  // 'encodés' (7 code points, 8 bytes) gets CPython's 8s; 7 x 'é' (14 bytes) gets 16s where
  // CPython would give 8s and truncate it (gh-88336).
  EXPECT_EQ(out[1], "8s8sdqqxxxxxx?xxxxxxxx?xxxxxxx?8s8s8sd16s");
  EXPECT_EQ(out[2], "done");

  EXPECT_ITEMS(sl.items(), (Items{S("PYTHON"), B("\x01\x02"), D(-273.154), I(12345),
                                  I(std::numeric_limits<std::int64_t>::min()), D(2.5), None, false, S(""),
                                  S("str!"), S("encod\xc3\xa9s"), D(1e300), S(kSevenE)}));
  EXPECT_EQ(sl.format(), "8s8sdqqdxxxxxx?xxxxxxxx?8s8s8sd16s");

  // Python's resource tracker must not have removed the segment when python3 exited (gh-82300).
  auto deadline = std::chrono::steady_clock::now() + 300ms;
  while (std::chrono::steady_clock::now() < deadline) {
    ASSERT_TRUE(in_dev_shm(name)) << "python3's exit removed mp's segment";
    std::this_thread::sleep_for(20ms);
  }
  sl.shm().close();
  sl.shm().unlink();
}

// python3 makes a list and leaves it; mp attaches, reads the same values and format, re-creates
// the list itself and gets the same bytes, then unlinks Python's segment.
TEST(ShareableListPython, PythonCreatesMpReads) {
  MP_SKIP_ON_WINDOWS("the CPython peer is run through a POSIX shell (timeout, popen, quoting)");
  if (!have_python()) GTEST_SKIP() << "python3 with multiprocessing.shared_memory is not installed";
  ASSERT_TRUE(std::filesystem::exists(peer_script())) << peer_script();
  ShmNames names;
  PeerResult r = run_peer("create");
  auto out = lines(r.out);
  if (!out.empty() && !out[0].empty()) names.add(out[0]);  // removed at the end whatever happens
  ASSERT_EQ(r.status, 0) << "python3 failed; its output:\n" << r.out;
  ASSERT_EQ(out.size(), 3u) << r.out;
  const std::string& name = out[0];
  const std::string& python_format = out[1];
  const std::string& python_bytes = out[2];

  const Items expected{S("howdy"), B("HoWdY"), None, I(42), I(-7), I(std::numeric_limits<std::int64_t>::min()),
                       I(std::numeric_limits<std::int64_t>::max()), D(2.5), D(-0.0), true, false, S(""), B(""),
                       S("abcdefgh"), B(std::string_view("\0ab", 3)), S("h\xc3\xa9llo"), D(-1e300)};
  const std::string expected_format = "8s8sxxxxxx?xqqqqddxxxxxxx?xxxxxxx?8s8s16s8s8sd";
  {
    mp::ShareableList sl(name);
    EXPECT_EQ(sl.size(), expected.size());
    EXPECT_ITEMS(sl.items(), expected);
    EXPECT_EQ(sl.format(), expected_format);
    EXPECT_EQ(python_format, expected_format);
    EXPECT_EQ(hex(sl.shm().buf()), python_bytes);
    for (std::size_t i = 0; i < expected.size(); ++i) EXPECT_ITEM(sl[static_cast<std::ptrdiff_t>(i)], expected[i]);

    // The same values made by mp: the same bytes. (b'\x00ab\x00' as Python was given it.)
    Items given = expected;
    given[14] = B(std::string_view("\0ab\0", 4));
    mp::ShareableList mine(given);
    names.add(mine.shm().name());
    EXPECT_EQ(hex(mine.shm().buf()), python_bytes);
    mine.shm().close();
    mine.shm().unlink();

    sl.shm().close();
    sl.shm().unlink();  // Python left it to us
  }
}
