// shm/shareable_list.cpp - mp::ShareableList: CPython's multiprocessing.shared_memory.ShareableList,
// byte for byte.
//
// The segment (CPython 3.9-3.13, Lib/multiprocessing/shared_memory.py; all integers native-endian,
// N = number of items):
//
//   [0, 8)                      N as int64 ("q")
//   [8, 8 + 8 (N + 1))          N + 1 int64 offsets of the items into the data area, the first 0,
//                               the last the data area's length
//   [8 (N + 2), +K)             the data area: item i at offsets[i], offsets[i + 1] - offsets[i]
//                               bytes of room (8 for int/float/bool/None; for str/bytes 8 * (len / 8
//                               + 1), so always at least one NUL after the value)
//   then N * 8 bytes            each item's struct format, NUL-padded to 8 bytes ("8s"):
//                               int "q", float "d", bool "xxxxxxx?", None "xxxxxx?x", str and
//                               bytes "<room>s"
//   then N bytes                each item's back-transform code ("b"): 0 int/float/bool, 1 str
//                               (stored UTF-8), 2 bytes, 3 None
//
// The segment's size is exactly that sum (struct.calcsize of the whole format: every field is
// 8-aligned already, and struct adds no trailing padding): 16 + 17 N + K, 16 for an empty list.
//
// Reading an item unpacks its stored format at its offset; str and bytes lose their trailing NULs
// (CPython's rstrip(b'\x00')). Writing one (CPython's __setitem__) may change its type: the new
// format and code are written, then the value, packed as struct.pack_into does (the format's whole
// size zeroed first, "s" NUL-padded). A str or bytes value must fit the slot's room ("bytes/str item
// exceeds available storage"); it keeps the slot's "<n>s" format if it already had one.
//
// N and the offsets are never cached here: they are read (and checked against the segment's size)
// on every access, so a corrupt or foreign segment gives mp::ValueError, never an out-of-bounds
// access.
//
// Deliberate differences from CPython (each where CPython is buggy):
// - A str's room: CPython computes it from len(str), the number of code points, and struct.pack
//   then silently truncates the UTF-8 bytes when they do not fit (gh-88336, open). Here it is the
//   same room whenever the bytes fit it (so the layout is CPython's, e.g. 'encodés', 7 code points
//   and 8 bytes, gets "8s"), and room for the bytes when they would not (e.g. 7 x 'é' = 14 bytes
//   gets "16s" where CPython gives "8s" and keeps 4 of the 7). Either side reads the other's lists.
// - Indices outside [-N, N) throw mp::IndexError; CPython's __getitem__ maps -N-1 to its
//   allocated_offsets[-1] and returns bytes of the format table instead.
// - An item whose format would not fit the 8-byte format slot (a str/bytes of 9999992 bytes or
//   more) is refused with mp::ValueError; CPython fails an assert (or, under -O, truncates the
//   format and corrupts the list).
#include <mp/shared_memory.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string_view>

namespace mp {

namespace {

constexpr std::size_t kAlignment = 8;    // CPython's ShareableList._alignment
constexpr std::size_t kFormatSlot = 8;   // each item's format is stored as "8s"
constexpr std::int8_t kCodePlain = 0;    // int, float, bool
constexpr std::int8_t kCodeStr = 1;
constexpr std::int8_t kCodeBytes = 2;
constexpr std::int8_t kCodeNone = 3;

using Item = ShareableList::Item;
using Buf = std::span<std::byte>;

[[noreturn]] void corrupt(const std::string& what) {
  throw ValueError("ShareableList: the shared memory does not hold a valid list (" + what + ")");
}

std::int64_t load_i64(Buf buf, std::size_t pos) {
  std::int64_t v;
  std::memcpy(&v, buf.data() + pos, sizeof v);
  return v;
}
void store_i64(Buf buf, std::size_t pos, std::int64_t v) { std::memcpy(buf.data() + pos, &v, sizeof v); }

// a + b, or a ValueError if it overflows.
std::size_t add(std::size_t a, std::size_t b) {
  if (b > std::numeric_limits<std::size_t>::max() - a) throw ValueError("ShareableList: size overflow");
  return a + b;
}

// ---- the header, read and checked on each access -----------------------------------------------

struct Layout {
  Buf buf;
  std::size_t n = 0;            // number of items
  std::size_t data_len = 0;     // offsets[n]

  std::size_t data_start() const { return (n + 2) * 8; }
  std::size_t formats_start() const { return data_start() + data_len; }
  std::size_t codes_start() const { return formats_start() + n * kFormatSlot; }

  // offsets[i], checked to lie within the data area (i <= n).
  std::size_t offset(std::size_t i) const {
    std::int64_t v = load_i64(buf, 8 + 8 * i);
    if (v < 0 || static_cast<std::uint64_t>(v) > data_len) corrupt("item offset out of range");
    return static_cast<std::size_t>(v);
  }
  // Item i's [begin, end) in the data area (relative to data_start()).
  std::pair<std::size_t, std::size_t> slot(std::size_t i) const {
    std::size_t b = offset(i), e = offset(i + 1);
    if (e < b) corrupt("item offsets decrease");
    return {b, e};
  }
  std::string_view format(std::size_t i) const {
    const char* p = reinterpret_cast<const char*>(buf.data() + formats_start() + i * kFormatSlot);
    std::size_t len = kFormatSlot;
    while (len > 0 && p[len - 1] == '\0') --len;  // CPython's rstrip(b'\x00')
    return {p, len};
  }
  std::int8_t code(std::size_t i) const {
    std::int8_t c;
    std::memcpy(&c, buf.data() + codes_start() + i, 1);
    return c;
  }
};

Layout read_layout(Buf buf) {
  Layout l{buf, 0, 0};
  if (buf.size() < 16) corrupt("segment of " + std::to_string(buf.size()) + " bytes");
  std::int64_t n = load_i64(buf, 0);
  // 16 + 17 n bytes at least: the count, n + 1 offsets, n formats and n codes.
  if (n < 0 || static_cast<std::uint64_t>(n) > (buf.size() - 16) / 17) {
    corrupt("item count " + std::to_string(n) + " in " + std::to_string(buf.size()) + " bytes");
  }
  l.n = static_cast<std::size_t>(n);
  std::int64_t total = load_i64(buf, 8 + 8 * l.n);
  std::size_t fixed = 16 + 17 * l.n;
  if (total < 0 || static_cast<std::uint64_t>(total) > buf.size() - fixed) corrupt("data area overflows the segment");
  l.data_len = static_cast<std::size_t>(total);
  return l;
}

// Python's position handling, with every out-of-range index refused.
std::size_t normalize(std::ptrdiff_t i, std::size_t n, const char* message) {
  const auto sn = static_cast<std::ptrdiff_t>(n);
  if (i < 0) i += sn;
  if (i < 0 || i >= sn) throw IndexError(message);
  return static_cast<std::size_t>(i);
}

// ---- struct formats (the subset ShareableList stores: counts, x ? q d s, native alignment) ------

struct Field {
  char code = 0;          // '?', 'q', 'd' or 's'
  std::size_t rel = 0;    // offset from the item's start
  std::size_t len = 0;    // bytes ('s': its count)
};

struct Parsed {
  std::size_t size = 0;   // struct.calcsize
  Field field;            // the single value (ShareableList items unpack to exactly one)
};

Parsed parse_format(std::string_view fmt) {
  Parsed out;
  int values = 0;
  std::size_t pos = 0;
  std::size_t i = 0;
  if (!fmt.empty() && fmt[0] == '@') i = 1;  // native: struct's default
  auto bad = [&]() -> void { corrupt("unsupported item format '" + std::string(fmt) + "'"); };
  while (i < fmt.size()) {
    char c = fmt[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') {
      ++i;
      continue;
    }
    std::size_t count = 1;
    if (c >= '0' && c <= '9') {
      count = 0;
      while (i < fmt.size() && fmt[i] >= '0' && fmt[i] <= '9') {
        count = count * 10 + static_cast<std::size_t>(fmt[i] - '0');  // at most 8 digits: no overflow
        ++i;
      }
      if (i == fmt.size()) bad();
      c = fmt[i];
    }
    ++i;
    switch (c) {
      case 'x':
        pos += count;
        break;
      case '?':  // `count` values of 1 byte; only a single one is valid, so the last is kept
        if (count > 0) out.field = {'?', pos + count - 1, 1};
        pos += count;
        values += static_cast<int>(count > 2 ? 2 : count);
        break;
      case 'q':
      case 'd':
        pos = (pos + 7) / 8 * 8;  // native alignment of 8-byte types
        if (count > 0) out.field = {c, pos + 8 * (count - 1), 8};
        pos += 8 * count;
        values += static_cast<int>(count > 2 ? 2 : count);
        break;
      case 's':
        out.field = {'s', pos, count};
        pos += count;
        ++values;
        break;
      default:
        bad();
    }
  }
  if (values != 1) bad();
  out.size = pos;
  return out;
}

// struct.unpack_from(fmt, buf, off)[0] followed by the back transform `code`.
Item unpack(Buf buf, std::size_t off, std::string_view fmt, std::int8_t code) {
  Parsed p = parse_format(fmt);
  if (off > buf.size() || p.size > buf.size() - off) corrupt("item extends past the segment");
  const std::byte* at = buf.data() + off + p.field.rel;
  auto stripped = [&] {
    std::size_t len = p.field.len;
    while (len > 0 && at[len - 1] == std::byte{0}) --len;
    return len;
  };
  switch (code) {
    case kCodeNone:
      return std::monostate{};
    case kCodeStr:
      if (p.field.code != 's') corrupt("str item with format '" + std::string(fmt) + "'");
      return std::string(reinterpret_cast<const char*>(at), stripped());
    case kCodeBytes:
      if (p.field.code != 's') corrupt("bytes item with format '" + std::string(fmt) + "'");
      return std::vector<std::byte>(at, at + stripped());
    case kCodePlain:
      switch (p.field.code) {
        case '?':
          return *at != std::byte{0};
        case 'q': {
          std::int64_t v;
          std::memcpy(&v, at, 8);
          return v;
        }
        case 'd': {
          double v;
          std::memcpy(&v, at, 8);
          return v;
        }
        default:  // CPython's identity transform hands back the raw bytes, NULs and all
          return std::vector<std::byte>(at, at + p.field.len);
      }
    default:
      corrupt("back-transform code " + std::to_string(code));
  }
}

// struct.pack_into(fmt, buf, off, value): the format's bytes zeroed, then the one value written.
void pack(Buf buf, std::size_t off, std::string_view fmt, const Item& value) {
  Parsed p = parse_format(fmt);
  if (off > buf.size() || p.size > buf.size() - off) corrupt("item extends past the segment");
  std::byte* at = buf.data() + off;
  std::memset(at, 0, p.size);
  at += p.field.rel;
  switch (p.field.code) {
    case '?':
      // None packs as bool(None) = False.
      *at = std::byte{std::holds_alternative<bool>(value) && std::get<bool>(value) ? std::uint8_t{1} : std::uint8_t{0}};
      return;
    case 'q': {
      std::int64_t v = std::get<std::int64_t>(value);
      std::memcpy(at, &v, 8);
      return;
    }
    case 'd': {
      double v = std::get<double>(value);
      std::memcpy(at, &v, 8);
      return;
    }
    case 's': {
      // "Ns": at most N bytes, NUL-padded (already zeroed).
      const std::byte* data;
      std::size_t len;
      if (auto* s = std::get_if<std::string>(&value)) {
        data = reinterpret_cast<const std::byte*>(s->data());
        len = s->size();
      } else {
        auto& b = std::get<std::vector<std::byte>>(value);
        data = b.data();
        len = b.size();
      }
      if (len > p.field.len) len = p.field.len;
      if (len > 0) std::memcpy(at, data, len);
      return;
    }
    default:
      corrupt("unsupported item format '" + std::string(fmt) + "'");
  }
}

// ---- per-type facts ----------------------------------------------------------------------------

std::size_t encoded_length(const Item& v) {
  if (auto* s = std::get_if<std::string>(&v)) return s->size();
  return std::get<std::vector<std::byte>>(v).size();
}

// The room a new str/bytes item gets: CPython's 8 * (len // 8 + 1), len counting a str's code
// points (UTF-8 lead bytes), unless its bytes would not fit that: then the same over its bytes.
std::size_t initial_room(const Item& v) {
  const std::size_t bytes = encoded_length(v);
  std::size_t len = bytes;
  if (auto* s = std::get_if<std::string>(&v)) {
    len = 0;
    for (char c : *s) len += (static_cast<unsigned char>(c) & 0xC0) != 0x80 ? 1 : 0;
  }
  std::size_t room = add(len / kAlignment * kAlignment, kAlignment);
  if (bytes > room) room = add(bytes / kAlignment * kAlignment, kAlignment);
  return room;
}
bool is_str_or_bytes(const Item& v) {
  return std::holds_alternative<std::string>(v) || std::holds_alternative<std::vector<std::byte>>(v);
}

std::string str_format(std::size_t room) {
  std::string f = std::to_string(room) + "s";
  if (f.size() > kFormatSlot) {
    throw ValueError("ShareableList: a str/bytes item of " + std::to_string(room - 1) +
                     " bytes or more does not fit (its format '" + f + "' exceeds 8 characters)");
  }
  return f;
}

// CPython's _types_mapping; str/bytes get "<room>s".
std::string fixed_format(const Item& v) {
  switch (v.index()) {
    case 0: return "xxxxxx?x";   // None
    case 1: return "q";          // int
    case 2: return "d";          // float
    case 3: return "xxxxxxx?";   // bool
    default: return {};
  }
}

std::int8_t recreation_code(const Item& v) {
  switch (v.index()) {
    case 0: return kCodeNone;
    case 4: return kCodeStr;
    case 5: return kCodeBytes;
    default: return kCodePlain;
  }
}

// Python's ==, as count() and index() use it: int, bool and float compare by value (exactly: an
// int equals a float only if the float is that integer), str never equals bytes.
bool int_equals_double(std::int64_t i, double d) {
  if (!std::isfinite(d) || d != std::trunc(d)) return false;
  // Doubles in [-2^63, 2^63) convert exactly; anything outside differs from every int64.
  if (d < -9223372036854775808.0 || d >= 9223372036854775808.0) return false;
  return static_cast<std::int64_t>(d) == i;
}

bool python_equal(const Item& a, const Item& b) {
  auto numeric = [](const Item& v) { return v.index() >= 1 && v.index() <= 3; };
  if (numeric(a) && numeric(b)) {
    auto as_int = [](const Item& v) -> std::optional<std::int64_t> {
      if (auto* i = std::get_if<std::int64_t>(&v)) return *i;
      if (auto* bo = std::get_if<bool>(&v)) return *bo ? 1 : 0;
      return std::nullopt;
    };
    auto ia = as_int(a), ib = as_int(b);
    if (ia && ib) return *ia == *ib;
    if (ia) return int_equals_double(*ia, std::get<double>(b));
    if (ib) return int_equals_double(*ib, std::get<double>(a));
    return std::get<double>(a) == std::get<double>(b);
  }
  return a == b;  // same alternative required: None == None, str == str, bytes == bytes
}

// Python's repr(), for index()'s message.
std::string quoted(std::string_view s, const char* prefix, bool escape_high) {
  char q = (s.find('\'') != std::string_view::npos && s.find('"') == std::string_view::npos) ? '"' : '\'';
  std::string out = prefix;
  out += q;
  static const char* hex = "0123456789abcdef";
  for (char ch : s) {
    auto u = static_cast<unsigned char>(ch);
    if (ch == q || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (ch == '\n') {
      out += "\\n";
    } else if (ch == '\r') {
      out += "\\r";
    } else if (ch == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7f || (escape_high && u >= 0x80)) {
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 15];
    } else {
      out += ch;
    }
  }
  out += q;
  return out;
}

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  // Shortest round-trip digits, laid out as Python's float_repr_style 'short' does.
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, r.ptr);
  std::string sign;
  if (sci[0] == '-') {
    sign = "-";
    sci.erase(0, 1);
  }
  auto e = sci.find('e');
  std::string digits = sci.substr(0, e);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  int exp = std::stoi(sci.substr(e + 1));
  std::string out;
  if (exp < -4 || exp >= 16) {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    std::string e = std::to_string(exp < 0 ? -exp : exp);
    out += (exp < 0 ? "e-" : "e+") + (e.size() < 2 ? "0" + e : e);
  } else if (exp < 0) {
    out = "0." + std::string(static_cast<std::size_t>(-exp - 1), '0') + digits;
  } else {
    auto ip = static_cast<std::size_t>(exp) + 1;
    if (digits.size() <= ip) {
      out = digits + std::string(ip - digits.size(), '0') + ".0";
    } else {
      out = digits.substr(0, ip) + "." + digits.substr(ip);
    }
  }
  return sign + out;
}

std::string python_repr(const Item& v) {
  switch (v.index()) {
    case 0: return "None";
    case 1: return std::to_string(std::get<std::int64_t>(v));
    case 2: return float_repr(std::get<double>(v));
    case 3: return std::get<bool>(v) ? "True" : "False";
    case 4: return quoted(std::get<std::string>(v), "", false);
    default: {
      auto& b = std::get<std::vector<std::byte>>(v);
      return quoted(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()), "b", true);
    }
  }
}

}  // namespace

// ---- ShareableList -----------------------------------------------------------------------------

namespace {

// What CPython's __init__ computes from the items: their formats, their offsets into the data
// area, and the segment's size, struct.calcsize("q" + "q" * (n + 1) + formats + "8s" * n + "b" * n).
struct Plan {
  std::vector<std::string> formats;
  std::vector<std::size_t> offsets;  // n + 1
  std::size_t size = 0;
};

Plan make_plan(const std::vector<Item>& items) {
  Plan plan;
  const std::size_t n = items.size();
  plan.formats.reserve(n);
  plan.offsets.reserve(n + 1);
  plan.offsets.push_back(0);
  std::size_t data_len = 0;
  for (const Item& v : items) {
    std::size_t room = kAlignment;
    if (is_str_or_bytes(v)) {
      room = initial_room(v);
      plan.formats.push_back(str_format(room));
    } else {
      plan.formats.push_back(fixed_format(v));
    }
    data_len = add(data_len, room);
    plan.offsets.push_back(data_len);
  }
  if (n > (std::numeric_limits<std::size_t>::max() - 16) / 17) throw ValueError("ShareableList: size overflow");
  plan.size = add(16 + 17 * n, data_len);
  return plan;
}

}  // namespace

// The segment is made in the initialiser (its size is the plan's), then filled in.
ShareableList::ShareableList(const std::vector<Item>& items, std::optional<std::string> name, bool track)
    : shm_(std::move(name), true, make_plan(items).size, track) {
  const Plan plan = make_plan(items);
  const std::size_t n = items.size();
  const std::size_t data_len = plan.offsets.back();
  Buf buf = shm_.buf();
  if (buf.size() < plan.size) corrupt("segment smaller than requested");
  store_i64(buf, 0, static_cast<std::int64_t>(n));
  for (std::size_t i = 0; i <= n; ++i) store_i64(buf, 8 + 8 * i, static_cast<std::int64_t>(plan.offsets[i]));
  const std::size_t data_start = (n + 2) * 8;
  const std::size_t formats_start = data_start + data_len;
  const std::size_t codes_start = formats_start + n * kFormatSlot;
  for (std::size_t i = 0; i < n; ++i) {
    pack(buf, data_start + plan.offsets[i], plan.formats[i], items[i]);
    std::byte* slot = buf.data() + formats_start + i * kFormatSlot;
    std::memset(slot, 0, kFormatSlot);
    std::memcpy(slot, plan.formats[i].data(), plan.formats[i].size());
    std::int8_t code = recreation_code(items[i]);
    std::memcpy(buf.data() + codes_start + i, &code, 1);
  }
}

ShareableList::ShareableList(const std::string& name) : shm_(std::optional<std::string>(name), false) {
  read_layout(shm_.buf());  // a segment that is no list fails here, not on first use
}

ShareableList::Item ShareableList::operator[](std::ptrdiff_t i) const {
  Layout l = read_layout(shm_.buf());
  std::size_t pos = normalize(i, l.n, "index out of range");
  return unpack(l.buf, l.data_start() + l.slot(pos).first, l.format(pos), l.code(pos));
}

void ShareableList::set(std::ptrdiff_t i, const Item& v) {
  Layout l = read_layout(shm_.buf());
  std::size_t pos = normalize(i, l.n, "assignment index out of range");
  auto [begin, end] = l.slot(pos);
  std::string new_format;
  if (!is_str_or_bytes(v)) {
    new_format = fixed_format(v);
  } else {
    const std::size_t allocated = end - begin;
    if (encoded_length(v) > allocated) throw ValueError("bytes/str item exceeds available storage");
    std::string_view current = l.format(pos);
    new_format = (!current.empty() && current.back() == 's') ? std::string(current) : str_format(allocated);
  }
  // Check the value's format against the segment before changing anything.
  Parsed p = parse_format(new_format);
  const std::size_t off = l.data_start() + begin;
  if (p.size > l.buf.size() - off) corrupt("item extends past the segment");

  std::byte* slot = l.buf.data() + l.formats_start() + pos * kFormatSlot;
  std::memset(slot, 0, kFormatSlot);
  std::memcpy(slot, new_format.data(), std::min(new_format.size(), kFormatSlot));
  std::int8_t code = recreation_code(v);
  std::memcpy(l.buf.data() + l.codes_start() + pos, &code, 1);
  pack(l.buf, off, new_format, v);
}

std::size_t ShareableList::size() const { return read_layout(shm_.buf()).n; }

std::size_t ShareableList::count(const Item& v) const {
  std::size_t c = 0;
  for (const Item& e : items()) c += python_equal(v, e) ? 1 : 0;
  return c;
}

std::size_t ShareableList::index(const Item& v) const {
  Layout l = read_layout(shm_.buf());
  for (std::size_t i = 0; i < l.n; ++i) {
    if (python_equal(v, (*this)[static_cast<std::ptrdiff_t>(i)])) return i;
  }
  throw ValueError(python_repr(v) + " not in this container");
}

std::string ShareableList::format() const {
  Layout l = read_layout(shm_.buf());
  std::string out;
  for (std::size_t i = 0; i < l.n; ++i) out += l.format(i);
  return out;
}

SharedMemory& ShareableList::shm() { return shm_; }
const SharedMemory& ShareableList::shm() const { return shm_; }

std::vector<ShareableList::Item> ShareableList::items() const {
  Layout l = read_layout(shm_.buf());
  std::vector<Item> out;
  out.reserve(l.n);
  for (std::size_t i = 0; i < l.n; ++i) {
    out.push_back(unpack(l.buf, l.data_start() + l.slot(i).first, l.format(i), l.code(i)));
  }
  return out;
}

void ShareableList::save(detail::Encoder& enc) const { shm_.save(enc); }
void ShareableList::load(detail::Decoder& dec) { shm_.load(dec); }

}  // namespace mp
