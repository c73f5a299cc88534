// mp/task.hpp - what a child process runs, and how a child in a fresh address space finds it.
//
// Under fork the child runs the very callable the parent holds. Under spawn and forkserver the
// child is a new run of the executable, so the target must be found again there:
//   * a plain function or a captureless lambda: by address, as an offset into its module, checked
//     against the module's identity (build-id) so a mismatched binary fails clearly;
//   * a function registered with MP_TASK(fn): by name (works when set_executable() names another
//     binary built with the same registration);
//   * an object of a type registered with MP_TASK_TYPE(T): T is serialized and rebuilt; this is
//     also how Process subclasses travel.
// The argument values travel through mp::codec.
#pragma once

#include <mp/codec.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>

namespace mp {
class Process;
}

namespace mp::detail {

// Where a piece of code lives: a module (the main executable is "") and an offset into it.
struct CodeRef {
  std::string module;
  std::string identity;  // build-id in hex, or a file identity where there is none
  std::uint64_t offset = 0;
  template <class A>
  void serialize(A& a) { a(module, identity, offset); }
};
CodeRef locate_code(const void* address);
void* resolve_code(const CodeRef& ref);

template <class Fn>
const void* code_address(Fn* fn) noexcept {
  return reinterpret_cast<const void*>(fn);
}

using Trampoline = void (*)(Decoder&);

// A target as it travels to a child in another address space.
struct TaskDescriptor {
  enum Kind : std::uint8_t { none = 0, by_address = 1, by_name = 2 };
  std::uint8_t kind = none;
  std::string name;   // by_name: the registration
  CodeRef entry;      // by_address: the trampoline that decodes the payload and runs it
  std::vector<std::byte> payload;
  std::vector<native_handle_t> handles;  // moved by the start method, not serialized here
  template <class A>
  void serialize(A& a) { a(kind, name, entry, payload); }
};

// Runs a described target: finds its trampoline by name or address and lets it decode `payload`.
void run_task(const TaskDescriptor& task, Decoder& payload);

struct TaskRegistration {
  std::string name;
  const void* function = nullptr;           // MP_TASK: the function
  const std::type_info* type = nullptr;     // MP_TASK_TYPE: the type
  Trampoline trampoline = nullptr;          // decodes the payload and runs it
  void (*encode_object)(const void* object, Encoder&) = nullptr;  // MP_TASK_TYPE
  bool is_process = false;                  // a Process subclass
};
void register_task(TaskRegistration registration);
const TaskRegistration* find_task(std::string_view name);
const TaskRegistration* find_task_by_function(const void* function);
const TaskRegistration* find_task_by_type(const std::type_info& type);

std::string demangle(const char* mangled);
template <class T>
std::string type_name() { return demangle(typeid(T).name()); }

// Runs in a spawned child: `self` takes the identity the parent gave the child.
void become_current(Process& self);

// ---- function pointer traits --------------------------------------------------------------------
template <class F>
struct fn_ptr_traits : std::false_type {};
template <class R, class... P>
struct fn_ptr_traits<R (*)(P...)> : std::true_type {
  using args = std::tuple<std::decay_t<P>...>;
  template <class Tuple>
  static void call(R (*fn)(P...), Tuple& a) {
    std::apply([fn](auto&... v) { fn(static_cast<P&&>(v)...); }, a);
  }
};
template <class R, class... P>
struct fn_ptr_traits<R (*)(P...) noexcept> : fn_ptr_traits<R (*)(P...)> {};

template <class R, class... P>
void call_pointer(Decoder& d) {
  CodeRef ref;
  d(ref);
  auto fn = reinterpret_cast<R (*)(P...)>(resolve_code(ref));
  typename fn_ptr_traits<R (*)(P...)>::args args;
  d(args);
  fn_ptr_traits<R (*)(P...)>::call(fn, args);
}
template <class R, class... P>
Trampoline pointer_trampoline(R (*)(P...)) { return &call_pointer<R, P...>; }
template <class R, class... P>
Trampoline pointer_trampoline(R (*)(P...) noexcept) { return &call_pointer<R, P...>; }

template <auto Fn>
void call_registered_function(Decoder& d) {
  using Tr = fn_ptr_traits<decltype(Fn)>;
  typename Tr::args args;
  d(args);
  Tr::call(Fn, args);
}

template <class F, class... A>
void call_stateless(Decoder& d) {
  std::tuple<A...> args;
  d(args);
  F f{};
  std::apply([&f](A&... a) { std::invoke(f, std::move(a)...); }, args);
}

template <class F, class... A>
void call_object(Decoder& d) {
  F f{};
  d(f);
  std::tuple<A...> args;
  d(args);
  std::apply([&f](A&... a) { std::invoke(f, std::move(a)...); }, args);
}

template <class T>
void run_process_subclass(Decoder& d) {
  auto self = std::make_unique<T>();
  if constexpr (has_cereal_member<T>) d(*self);
  become_current(*self);
  self->run();
}

template <class Tuple>
inline constexpr bool tuple_transportable = false;
template <class... T>
inline constexpr bool tuple_transportable<std::tuple<T...>> = (transportable_v<T> && ...);

// ---- the type-erased target ---------------------------------------------------------------------
class TaskBase {
 public:
  virtual ~TaskBase() = default;
  virtual void run() = 0;
  // Calls the target again, with copies of the arguments (for callbacks that run many times).
  virtual void call() = 0;
  // Fills `out` for a child in a fresh address space, or says why this target cannot go there.
  virtual std::optional<std::string> describe(TaskDescriptor& out) const = 0;
};

template <class F, class... A>
class Task final : public TaskBase {
 public:
  template <class G, class... B>
  explicit Task(G&& f, B&&... args) : f_(std::forward<G>(f)), args_(std::forward<B>(args)...) {}

  void run() override {
    std::apply([this](A&... a) { std::invoke(std::move(f_), std::move(a)...); }, args_);
  }

  void call() override {
    if constexpr (std::is_invocable_v<F&, const A&...>) {
      std::apply([this](const A&... a) { std::invoke(f_, a...); }, args_);
    } else {
      throw ValueError("mp: this callable cannot be called more than once (it takes its arguments by rvalue)");
    }
  }

  std::optional<std::string> describe(TaskDescriptor& out) const override {
    if constexpr (fn_ptr_traits<F>::value) {
      using Args = typename fn_ptr_traits<F>::args;
      if constexpr (!tuple_transportable<Args>) {
        return "an argument type of " + type_name<F>() + " cannot be serialized by mp::codec";
      } else if constexpr (!std::is_default_constructible_v<Args>) {
        return "an argument type of " + type_name<F>() + " is not default-constructible";
      } else {
        Args converted = std::apply([](const A&... a) { return Args(a...); }, args_);
        Encoder enc;
        if (const TaskRegistration* reg = find_task_by_function(code_address(f_))) {
          out.kind = TaskDescriptor::by_name;
          out.name = reg->name;
        } else {
          out.kind = TaskDescriptor::by_address;
          out.entry = locate_code(code_address(pointer_trampoline(f_)));
          enc(locate_code(code_address(f_)));
        }
        enc(converted);
        finish(enc, out);
        return std::nullopt;
      }
    } else {
      constexpr bool args_ok = (transportable_v<A> && ...) && (std::is_default_constructible_v<A> && ...);
      if constexpr (!args_ok) {
        return "an argument (" + ((type_name<A>() + " ") + ... + std::string()) +
               ") cannot be serialized by mp::codec or is not default-constructible";
      } else {
        if constexpr (transportable_v<F> && std::is_default_constructible_v<F>) {
          if (const TaskRegistration* reg = find_task_by_type(typeid(F))) {
            Encoder enc;
            if constexpr (sizeof...(A) == 0) {
              out.kind = TaskDescriptor::by_name;
              out.name = reg->name;
            } else {
              out.kind = TaskDescriptor::by_address;
              out.entry = locate_code(code_address(&call_object<F, A...>));
            }
            enc(f_);
            enc(args_);
            finish(enc, out);
            return std::nullopt;
          }
        }
        if constexpr (std::is_empty_v<F> && std::is_default_constructible_v<F>) {
          out.kind = TaskDescriptor::by_address;
          out.entry = locate_code(code_address(&call_stateless<F, A...>));
          Encoder enc;
          enc(args_);
          finish(enc, out);
          return std::nullopt;
        } else {
          return "its target (" + type_name<F>() +
                 ") is not a plain function, a captureless lambda, or a type registered with "
                 "MP_TASK_TYPE, so a new process cannot find it";
        }
      }
    }
  }

 private:
  static void finish(Encoder& enc, TaskDescriptor& out) {
    out.payload = std::move(enc.bytes());
    out.handles = std::move(enc.handles());
  }
  F f_;
  std::tuple<A...> args_;
};

template <class F, class... Args>
std::unique_ptr<TaskBase> make_task(F&& f, Args&&... args) {
  return std::make_unique<Task<std::decay_t<F>, std::decay_t<Args>...>>(std::forward<F>(f),
                                                                        std::forward<Args>(args)...);
}

// ---- registration -------------------------------------------------------------------------------
struct Registrar {
  explicit Registrar(TaskRegistration r) { register_task(std::move(r)); }
};

template <auto Fn>
TaskRegistration function_registration(const char* name) {
  static_assert(fn_ptr_traits<decltype(Fn)>::value, "MP_TASK(fn): fn must name a function");
  static_assert(tuple_transportable<typename fn_ptr_traits<decltype(Fn)>::args>,
                "MP_TASK(fn): every parameter type of fn must be serializable by mp::codec");
  TaskRegistration r;
  r.name = name;
  r.function = code_address(Fn);
  r.trampoline = &call_registered_function<Fn>;
  return r;
}

template <class T>
TaskRegistration type_registration(const char* name) {
  static_assert(std::is_default_constructible_v<T>, "MP_TASK_TYPE(T): T must be default-constructible");
  TaskRegistration r;
  r.name = name;
  r.type = &typeid(T);
  if constexpr (std::is_base_of_v<Process, T>) {
    using Base = std::conditional_t<std::is_void_v<T>, T, Process>;  // dependent: Process is complete by now
    static_assert(has_cereal_member<T> || sizeof(T) == sizeof(Base),
                  "MP_TASK_TYPE(T): a Process subclass with data members needs "
                  "`template <class Archive> void serialize(Archive& ar) { ar(members...); }`");
    r.is_process = true;
    r.trampoline = &run_process_subclass<T>;
    r.encode_object = [](const void* p, Encoder& enc) {
      if constexpr (has_cereal_member<T>) enc(*static_cast<const T*>(static_cast<const Base*>(p)));
      else (void)p, (void)enc;
    };
  } else {
    static_assert(transportable_v<T>, "MP_TASK_TYPE(T): T must be serializable by mp::codec");
    r.trampoline = &call_object<T>;
    r.encode_object = [](const void* p, Encoder& enc) { enc(*static_cast<const T*>(p)); };
  }
  return r;
}

}  // namespace mp::detail

#define MP_DETAIL_CAT2(a, b) a##b
#define MP_DETAIL_CAT(a, b) MP_DETAIL_CAT2(a, b)

// Registers a function by name, for spawn/forkserver children (and set_forkserver_preload).
#define MP_TASK(fn)                                                              \
  static const ::mp::detail::Registrar MP_DETAIL_CAT(mp_task_registrar_, __COUNTER__) { \
    ::mp::detail::function_registration<&fn>(#fn)                                \
  }

// Registers a serializable callable type, or a Process subclass, by name.
#define MP_TASK_TYPE(T)                                                          \
  static const ::mp::detail::Registrar MP_DETAIL_CAT(mp_task_registrar_, __COUNTER__) { \
    ::mp::detail::type_registration<T>(#T)                                       \
  }
