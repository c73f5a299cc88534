// Must not compile: a Pool task with an argument mp::codec cannot carry to a worker.
#include <mp/pool.hpp>

struct Opaque {
  int* p = nullptr;
};
int use(Opaque) { return 0; }

int main() {
  mp::Pool pool(1);
  (void)pool.apply(use, Opaque{});
}
