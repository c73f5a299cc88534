// CPython's docs, "Sharing state between processes": shared memory with Value and Array.
//
//   from multiprocessing import Process, Value, Array
//
//   def f(n, a):
//       n.value = 3.1415927
//       for i in range(len(a)):
//           a[i] = -a[i]
//
//   if __name__ == '__main__':
//       num = Value('d', 0.0)
//       arr = Array('i', range(10))
//
//       p = Process(target=f, args=(num, arr))
//       p.start()
//       p.join()
//
//       print(num.value)
//       print(arr[:])
//
// prints 3.1415927 and [0, -1, -2, -3, -4, -5, -6, -7, -8, -9].
#include <mp/mp.hpp>

#include <iomanip>
#include <iostream>
#include <numeric>

void f(mp::Value<double> n, mp::Array<int> a) {
  n.value(3.1415927);
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = -a[i];
}

int main() {
  mp::freeze_support();
  mp::Value<double> num(0.0);
  std::vector<int> ten(10);
  std::iota(ten.begin(), ten.end(), 0);
  mp::Array<int> arr(ten);

  mp::Process p(f, num, arr);
  p.start();
  p.join();

  std::cout << std::setprecision(8) << num.value() << "\n[";
  auto values = arr.to_vector();
  for (std::size_t i = 0; i < values.size(); ++i) std::cout << (i ? ", " : "") << values[i];
  std::cout << "]\n";
}
