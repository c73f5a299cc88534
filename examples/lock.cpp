// CPython's docs, "Synchronization between processes": a lock keeps the processes' lines whole.
//
//   from multiprocessing import Process, Lock
//
//   def f(l, i):
//       l.acquire()
//       try:
//           print('hello world', i)
//       finally:
//           l.release()
//
//   if __name__ == '__main__':
//       lock = Lock()
//       for num in range(10):
//           Process(target=f, args=(lock, num)).start()
#include <mp/mp.hpp>

#include <iostream>

void f(mp::Lock l, int i) {
  std::lock_guard guard(l);  // acquire(); try: ... finally: release()
  std::cout << "hello world " << i << std::endl;
}

int main() {
  mp::freeze_support();
  mp::Lock lock;
  for (int num = 0; num < 10; ++num) mp::Process(f, lock, num).start();
  // (Python joins the non-daemon children at exit; so does mp.)
}
