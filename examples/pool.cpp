// CPython's docs, "Using a pool of workers":
//
//   from multiprocessing import Pool, TimeoutError
//   import time
//   import os
//
//   def f(x):
//       return x*x
//
//   if __name__ == '__main__':
//       # start 4 worker processes
//       with Pool(processes=4) as pool:
//           # print "[0, 1, 4,..., 81]"
//           print(pool.map(f, range(10)))
//           # print same numbers in arbitrary order
//           for i in pool.imap_unordered(f, range(10)):
//               print(i)
//           # evaluate "f(20)" asynchronously
//           res = pool.apply_async(f, (20,))      # runs in *only* one process
//           print(res.get(timeout=1))             # prints "400"
//           # evaluate "os.getpid()" asynchronously
//           res = pool.apply_async(os.getpid, ()) # runs in *only* one process
//           print(res.get(timeout=1))             # prints the PID of that process
//           # launching multiple evaluations asynchronously *may* use more processes
//           multiple_results = [pool.apply_async(os.getpid, ()) for i in range(4)]
//           print([res.get(timeout=1) for res in multiple_results])
//           # make a single worker sleep for 10 seconds
//           res = pool.apply_async(time.sleep, (10,))
//           try:
//               print(res.get(timeout=1))
//           except TimeoutError:
//               print("We lacked patience and got a multiprocessing.TimeoutError")
//           print("For the moment, the pool remains available for more work")
//       # exiting the 'with'-block has stopped the pool
//       print("Now the pool is closed and no longer available")
#include <mp/pool.hpp>

#include <chrono>
#include <iostream>
#include <thread>
#include <unistd.h>
#include <vector>

int f(int x) { return x * x; }
int getpid_() { return static_cast<int>(::getpid()); }
void sleep_(double seconds) { std::this_thread::sleep_for(std::chrono::duration<double>(seconds)); }

template <class T>
void print_list(const std::vector<T>& v) {
  std::cout << "[";
  for (std::size_t i = 0; i < v.size(); ++i) std::cout << (i ? ", " : "") << v[i];
  std::cout << "]" << std::endl;
}

int main() {
  mp::freeze_support();
  {
    // start 4 worker processes
    mp::Pool pool(mp::PoolOptions{.processes = 4});
    // print "[0, 1, 4,..., 81]"
    print_list(pool.map(f, mp::range(10)));
    // print same numbers in arbitrary order
    for (int i : pool.imap_unordered(f, mp::range(10))) std::cout << i << std::endl;
    // evaluate "f(20)" asynchronously
    auto res = pool.apply_async(f, 20);                  // runs in *only* one process
    std::cout << res.get(mp::Seconds(1)) << std::endl;   // prints "400"
    // evaluate "getpid()" asynchronously
    auto pid = pool.apply_async(getpid_);                // runs in *only* one process
    std::cout << pid.get(mp::Seconds(1)) << std::endl;   // prints the PID of that process
    // launching multiple evaluations asynchronously *may* use more processes
    std::vector<mp::AsyncResult<int>> multiple_results;
    for (int i = 0; i < 4; ++i) multiple_results.push_back(pool.apply_async(getpid_));
    std::vector<int> pids;
    for (auto& r : multiple_results) pids.push_back(r.get(mp::Seconds(1)));
    print_list(pids);
    // make a single worker sleep for 10 seconds
    auto sleeping = pool.apply_async(sleep_, 10.0);
    try {
      sleeping.get(mp::Seconds(1));
    } catch (const mp::TimeoutError&) {
      std::cout << "We lacked patience and got a multiprocessing.TimeoutError" << std::endl;
    }
    std::cout << "For the moment, the pool remains available for more work" << std::endl;
  }  // leaving the block has stopped the pool
  std::cout << "Now the pool is closed and no longer available" << std::endl;
}
