// CPython docs, "The Process class":
//
//   from multiprocessing import Process
//   def f(name):
//       print('hello', name)
//   if __name__ == '__main__':
//       p = Process(target=f, args=('bob',))
//       p.start()
//       p.join()
#include <mp/mp.hpp>

#include <iostream>
#include <string>

void f(const std::string& name) { std::cout << "hello " << name << std::endl; }

int main() {
  mp::freeze_support();
  mp::Process p(f, "bob");
  p.start();
  p.join();
}
