// CPython docs, Process.terminate():
//
//   >>> import multiprocessing, time, signal
//   >>> mp_context = multiprocessing.get_context('spawn')
//   >>> p = mp_context.Process(target=time.sleep, args=(1000,))
//   >>> print(p, p.is_alive())
//   <...Process ... initial> False
//   >>> p.start()
//   >>> print(p, p.is_alive())
//   <...Process ... started> True
//   >>> p.terminate()
//   >>> time.sleep(0.1)
//   >>> print(p, p.is_alive())
//   <...Process ... stopped exitcode=-SIGTERM> False
//   >>> p.exitcode == -signal.SIGTERM
//   True
#include <mp/mp.hpp>

#include <chrono>
#include <iostream>
#include <thread>

void sleep_for(double seconds) { std::this_thread::sleep_for(std::chrono::duration<double>(seconds)); }

int main() {
  mp::freeze_support();
  auto& mp_context = mp::get_context("spawn");
  auto p = mp_context.Process(sleep_for, 1000.0);
  std::cout << std::boolalpha << p << " " << p.is_alive() << "\n";
  p.start();
  std::cout << p << " " << p.is_alive() << "\n";
  p.terminate();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  p.join();
  std::cout << p << " " << p.is_alive() << "\n";
  std::cout << (p.exitcode() == -15) << std::endl;
}
