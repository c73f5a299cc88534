// The three start methods side by side, with a Process subclass (CPython docs: "Contexts and start
// methods" and "override run() in a subclass").
#include <mp/mp.hpp>

#include <iostream>
#include <string>

class Greeter : public mp::Process {
 public:
  Greeter() = default;
  explicit Greeter(std::string who, mp::Context& ctx) : mp::Process({.context = &ctx}), who_(std::move(who)) {}
  void run() override {
    std::cout << "hello from " << mp::current_process().name() << ", greeting " << who_ << std::endl;
  }
  template <class Archive>
  void serialize(Archive& ar) { ar(who_); }

 private:
  std::string who_;
};
MP_TASK_TYPE(Greeter);

int main() {
  mp::freeze_support();
  std::cout << "start methods here:";
  for (const auto& m : mp::get_all_start_methods()) std::cout << " " << m;
  std::cout << std::endl;
  for (const auto& m : mp::get_all_start_methods()) {
    Greeter g("alice (" + m + ")", mp::get_context(m));
    g.start();
    g.join();
    std::cout << g << std::endl;
  }
}
