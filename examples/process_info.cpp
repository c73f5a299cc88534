// CPython docs, the expanded example showing the process ids involved:
//
//   def info(title):
//       print(title)
//       print('module name:', __name__)
//       print('parent process:', os.getppid())
//       print('process id:', os.getpid())
//   def f(name):
//       info('function f')
//       print('hello', name)
//   if __name__ == '__main__':
//       info('main line')
//       p = Process(target=f, args=('bob',))
//       p.start()
//       p.join()
//
// C++ has no module name; the process name stands in for it ("MainProcess", "Process-1"). The
// parent is mp::parent_process(), which the main process does not have ("none"; Python prints the
// shell's pid from os.getppid() there).
#include <mp/mp.hpp>

#include <iostream>
#include <string>

void info(const std::string& title) {
  std::cout << title << "\n";
  std::cout << "process name: " << mp::current_process().name() << "\n";
  mp::Process* parent = mp::parent_process();
  std::cout << "parent process: " << (parent ? std::to_string(*parent->pid()) : std::string("none")) << "\n";
  std::cout << "process id: " << *mp::current_process().pid() << std::endl;
}

void f(const std::string& name) {
  info("function f");
  std::cout << "hello " << name << std::endl;
}

int main() {
  mp::freeze_support();
  info("main line");
  mp::Process p(f, "bob");
  p.start();
  p.join();
}
