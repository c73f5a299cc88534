// CPython's docs, "Contexts and start methods": a Queue under the spawn start method, chosen
// first for the whole program with set_start_method(), then through a context object.
//
//   import multiprocessing as mp
//
//   def foo(q):
//       q.put('hello')
//
//   if __name__ == '__main__':
//       mp.set_start_method('spawn')
//       q = mp.Queue()
//       p = mp.Process(target=foo, args=(q,))
//       p.start()
//       print(q.get())
//       p.join()
//
// and
//
//   if __name__ == '__main__':
//       ctx = mp.get_context('spawn')
//       q = ctx.Queue()
//       p = ctx.Process(target=foo, args=(q,))
//       p.start()
//       print(q.get())
//       p.join()
//
// prints "hello" twice. (A spawned child runs main() again up to mp::freeze_support(), so the
// start method is set after it, as Python sets it under `if __name__ == '__main__'`.)
#include <mp/mp.hpp>

#include <iostream>
#include <string>

void foo(mp::Queue<std::string> q) { q.put("hello"); }

int main() {
  mp::freeze_support();
  {
    mp::set_start_method("spawn");
    mp::Queue<std::string> q;
    mp::Process p(foo, q);
    p.start();
    std::cout << q.get() << std::endl;
    p.join();
  }
  {
    mp::Context& ctx = mp::get_context("spawn");
    auto q = ctx.Queue<std::string>();
    auto p = ctx.Process(foo, q);
    p.start();
    std::cout << q.get() << std::endl;
    p.join();
  }
}
