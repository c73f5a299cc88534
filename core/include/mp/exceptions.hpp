// mp/exceptions.hpp - the Python-named exceptions of the library.
#pragma once
#include <cstddef>
#include <exception>
#include <stdexcept>
#include <string>
#include <typeinfo>
#include <vector>

namespace mp {

// multiprocessing.ProcessError and its family.
class ProcessError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
class BufferTooShort : public ProcessError {
 public:
  explicit BufferTooShort(std::vector<std::byte> message)
      : ProcessError("buffer too short for the message (" + std::to_string(message.size()) + " bytes)"),
        message_(std::move(message)) {}
  const std::vector<std::byte>& message() const noexcept { return message_; }
 private:
  std::vector<std::byte> message_;
};
class AuthenticationError : public ProcessError {
 public:
  using ProcessError::ProcessError;
};
class TimeoutError : public ProcessError {
 public:
  using ProcessError::ProcessError;
  TimeoutError() : ProcessError("timed out") {}
};
class BrokenProcessPool : public ProcessError {
 public:
  using ProcessError::ProcessError;
};

// Python built-in exceptions that multiprocessing raises.
class ValueError : public std::invalid_argument {  // misuse: a closed or invalid object, bad argument
 public:
  using std::invalid_argument::invalid_argument;
};
class IndexError : public std::out_of_range {  // an index past the end (ShareableList, Array)
 public:
  using std::out_of_range::out_of_range;
};
class AssertionError : public std::logic_error {   // CPython's assert in process.py
 public:
  using std::logic_error::logic_error;
};
class EOFError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
class BrokenBarrierError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  BrokenBarrierError() : std::runtime_error("the barrier is broken") {}
};
class Empty : public std::runtime_error {
 public:
  Empty() : std::runtime_error("queue is empty") {}
};
class Full : public std::runtime_error {
 public:
  Full() : std::runtime_error("queue is full") {}
};
// Bytes that are not a valid encoding of the type asked for.
class DecodeError : public ValueError {
 public:
  using ValueError::ValueError;
};

// An exception raised in another process; re-thrown as its own type where that type is known.
class RemoteError : public ProcessError {
 public:
  RemoteError(std::string type_name, const std::string& what)
      : ProcessError(what), type_name_(std::move(type_name)) {}
  const std::string& type_name() const noexcept { return type_name_; }
 private:
  std::string type_name_;
};

// concurrent.futures.CancelledError: the result of a future that was cancelled.
class CancelledError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  CancelledError() : std::runtime_error("the future was cancelled") {}
};
// Python's RuntimeError (an executor asked for work after shutdown()).
class RuntimeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A pool worker could not send a task's result back (multiprocessing.pool.MaybeEncodingError).
class MaybeEncodingError : public ProcessError {
 public:
  using ProcessError::ProcessError;
};

// Python's SystemExit: thrown by mp::sys_exit, caught by a child's bootstrap, which exits with
// `code`. Deliberately not a std::exception, so `catch (const std::exception&)` lets it through.
struct SystemExit {
  int code = 0;
};
[[noreturn]] void sys_exit(int code = 0);

namespace detail {
// Exceptions that cross processes (a pool task's, an executor future's) travel as their type's
// name and what(); the receiver rebuilds the same type when it knows it (the standard exception
// types, mp's own, and types registered with MP_EXCEPTION), else an mp::RemoteError.
struct ExceptionInfo {
  std::string type;  // typeid(...).name() of the dynamic type; empty: not a std::exception
  std::string what;
  template <class A>
  void serialize(A& a) { a(type, what); }
};
using ExceptionFactory = std::exception_ptr (*)(const std::string& what);
void register_exception_type(const std::type_info& type, ExceptionFactory make);
ExceptionInfo describe_exception(const std::exception_ptr& error);
std::exception_ptr rebuild_exception(const ExceptionInfo& info);
}  // namespace detail

}  // namespace mp

#define MP_DETAIL_EXC_CAT2(a, b) a##b
#define MP_DETAIL_EXC_CAT(a, b) MP_DETAIL_EXC_CAT2(a, b)
// Registers an exception type (constructible from a std::string) so that, thrown by a pool task
// in another process, it is re-thrown with its own type by AsyncResult::get / Future::result.
#define MP_EXCEPTION(T)                                                                      \
  static const bool MP_DETAIL_EXC_CAT(mp_exception_registrar_, __COUNTER__) =               \
      (::mp::detail::register_exception_type(                                                \
           typeid(T), [](const std::string& what) { return std::make_exception_ptr(T(what)); }), \
       true)
