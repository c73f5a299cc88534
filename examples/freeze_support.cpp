// CPython docs, multiprocessing.freeze_support():
//
//   from multiprocessing import Process, freeze_support
//   def f():
//       print('hello world!')
//   if __name__ == '__main__':
//       freeze_support()
//       Process(target=f).start()
//
// The child is never joined explicitly: a non-daemon child is joined when the main process exits.
#include <mp/mp.hpp>

#include <iostream>

void f() { std::cout << "hello world!" << std::endl; }

int main() {
  mp::freeze_support();
  mp::Process(f).start();
}
