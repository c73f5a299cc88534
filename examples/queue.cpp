// CPython's docs, "Exchanging objects between processes": a Queue.
//
//   from multiprocessing import Process, Queue
//
//   def f(q):
//       q.put([42, None, 'hello'])
//
//   if __name__ == '__main__':
//       q = Queue()
//       p = Process(target=f, args=(q,))
//       p.start()
//       print(q.get())    # prints "[42, None, 'hello']"
//       p.join()
//
// Python's list of mixed objects is a vector of variants here (std::monostate is None), printed
// the way Python prints the list.
#include <mp/mp.hpp>

#include <iostream>
#include <string>
#include <variant>
#include <vector>

using Object = std::variant<std::monostate, int, std::string>;
using List = std::vector<Object>;

// Python's repr() of the list.
std::string repr(const List& list) {
  std::string out = "[";
  for (std::size_t i = 0; i < list.size(); ++i) {
    if (i > 0) out += ", ";
    if (std::holds_alternative<std::monostate>(list[i])) {
      out += "None";
    } else if (const int* n = std::get_if<int>(&list[i])) {
      out += std::to_string(*n);
    } else {
      out += "'" + std::get<std::string>(list[i]) + "'";
    }
  }
  return out + "]";
}

void f(mp::Queue<List> q) { q.put({42, std::monostate{}, std::string("hello")}); }

int main() {
  mp::freeze_support();
  mp::Queue<List> q;
  mp::Process p(f, q);
  p.start();
  std::cout << repr(q.get()) << std::endl;  // prints "[42, None, 'hello']"
  p.join();
}
