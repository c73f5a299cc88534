// CPython's docs, the first example: data parallelism with a Pool.
//
//   from multiprocessing import Pool
//
//   def f(x):
//       return x*x
//
//   if __name__ == '__main__':
//       with Pool(5) as p:
//           print(p.map(f, [1, 2, 3]))
//
// will print "[1, 4, 9]".
#include <mp/pool.hpp>

#include <iostream>
#include <vector>

int f(int x) { return x * x; }

int main() {
  mp::freeze_support();
  mp::Pool p(5);  // the destructor terminates the pool, as leaving the with-block does
  std::vector<int> squares = p.map(f, std::vector<int>{1, 2, 3});
  std::cout << "[";
  for (std::size_t i = 0; i < squares.size(); ++i) std::cout << (i ? ", " : "") << squares[i];
  std::cout << "]" << std::endl;
}
