// Must not compile: a Pool task whose result mp::codec cannot carry back (CPython finds an
// unpicklable result only at run time, as MaybeEncodingError).
#include <mp/pool.hpp>

#include <memory>

struct Opaque {
  std::unique_ptr<int> p;
};
Opaque make(int) { return {}; }

int main() {
  mp::Pool pool(1);
  (void)pool.apply(make, 1);
}
