// mp-tracker: lists and cleans the named semaphores and shared memory that mp programs left on
// this machine - also when their resource tracker was killed too (CPython has no such tool).
#include "core/src/object_name.hpp"
#include "platform/named_objects.hpp"
#include "platform/process.hpp"

#include <cstdio>
#include <optional>
#include <set>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

namespace {

constexpr const char* kUsage = R"(mp-tracker - list and clean the named objects of mp programs

Usage:
  mp-tracker list [--json] [NAME...]
      Show the library's named semaphores and shared memory on this machine: type, name, size,
      the process that created it (from its name) and whether that process is alive, the
      processes that have it mapped now, and whether it looks leaked.
  mp-tracker clean [--dry-run] [--all] [NAME...]
      Remove the leaked ones: created by a process that has exited, and mapped by no running
      process (so the tree that used it is gone). Says what it removed.
      --dry-run  say what would be removed, remove nothing
      --all      remove every one of the library's objects, in use or not (they stay usable
                 by processes that have them open, but no process can open them any more)
  mp-tracker --help
      This text.
  NAME...  only the objects with these names (as "/mp-..."), e.g. from a program's log.

Each mp process tree has a resource tracker process that removes what its processes leave
behind when they all exit, even if they are killed. mp-tracker is for what remains when the
tracker itself could not do it (it was killed too, or the machine was shut down hard).

Objects are found where the system keeps them (/dev/shm on Linux); objects of other users are
listed but not removed. Where the system keeps no such directory (macOS), they cannot be
listed: mp-tracker then looks up only the NAMEs given. Where it cannot tell which processes map
an object (no /proc), USERS is "?" and "leaked" means only that the creating process has
exited. On Windows the system frees named objects with their last handle, so there is never
anything to clean there.

Exit status: 0 on success, 1 if an object could not be removed, 2 on a bad command line.
)";

struct Entry {
  mp::platform::NamedObject object;
  std::optional<int> creator;
  bool creator_alive = false;
  std::set<int> users;
  bool leaked = false;
};

// Said where the objects cannot be listed and no name was given: there is nothing to look at.
constexpr const char* kCannotList =
    "mp-tracker: this system cannot list named semaphores and shared memory (it keeps no directory of\n"
    "them, as /dev/shm on Linux); give the names to look at, e.g. mp-tracker list /mp-...\n";

bool nothing_to_look_at(const std::set<std::string>& only) {
  return !mp::platform::can_list_named_objects() && only.empty();
}

std::vector<Entry> survey(bool& users_known, const std::set<std::string>& only) {
  std::vector<Entry> out;
  std::vector<mp::platform::NamedObject> objects;
  if (mp::platform::can_list_named_objects()) {
    objects = mp::platform::list_named_objects(std::string(mp::detail::object_name_prefix));
    if (!only.empty()) std::erase_if(objects, [&](const auto& o) { return !only.count(o.name); });
  } else {
    objects = mp::platform::find_named_objects(only);
  }
  auto users = mp::platform::processes_mapping(objects, users_known);
  for (auto& o : objects) {
    Entry e;
    e.creator = mp::detail::object_name_creator(o.name);
    e.creator_alive = e.creator && mp::platform::process_exists(*e.creator);
    if (auto it = users.find(o.name); it != users.end()) e.users = it->second;
    e.leaked = !e.creator_alive && e.users.empty();
    e.object = std::move(o);
    out.push_back(std::move(e));
  }
  return out;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string join(const std::set<int>& pids, const char* sep) {
  std::string out;
  for (int p : pids) {
    if (!out.empty()) out.append(sep);
    out.append(std::to_string(p));
  }
  return out;
}

int list(bool json, const std::set<std::string>& only) {
  bool users_known = false;
  auto entries = survey(users_known, only);
  if (nothing_to_look_at(only)) {
    // (JSON: an empty list on standard output, the reason beside it.)
    std::fputs(kCannotList, json ? stderr : stdout);
    if (!json) return 0;
  }
  if (json) {
    std::cout << "[";
    bool first = true;
    for (auto& e : entries) {
      std::cout << (first ? "\n" : ",\n") << "  {\"type\": " << json_string(e.object.type)
                << ", \"name\": " << json_string(e.object.name) << ", \"size\": " << e.object.size
                << ", \"creator_pid\": " << (e.creator ? std::to_string(*e.creator) : "null")
                << ", \"creator_alive\": " << (e.creator_alive ? "true" : "false") << ", \"users\": ["
                << join(e.users, ", ") << "], \"users_known\": " << (users_known ? "true" : "false")
                << ", \"leaked\": " << (e.leaked ? "true" : "false") << "}";
      first = false;
    }
    std::cout << (entries.empty() ? "]\n" : "\n]\n");
    return 0;
  }
  std::printf("%-14s %-31s %10s %8s %-6s %-16s %s\n", "TYPE", "NAME", "SIZE", "CREATOR", "ALIVE", "USERS", "STATE");
  for (auto& e : entries) {
    std::string users("-");
    if (!users_known) users.assign("?");
    else if (!e.users.empty()) users = join(e.users, ",");
    std::printf("%-14s %-31s %10llu %8s %-6s %-16s %s\n", e.object.type.c_str(), e.object.name.c_str(),
                static_cast<unsigned long long>(e.object.size), e.creator ? std::to_string(*e.creator).c_str() : "?",
                e.creator_alive ? "yes" : "no", users.c_str(), e.leaked ? "leaked" : "in use");
  }
  std::printf("%zu object%s\n", entries.size(), entries.size() == 1 ? "" : "s");
  if (!users_known && !entries.empty()) {
    std::printf("(this system does not tell which processes map an object: \"leaked\" means only that its\n"
                " creator has exited)\n");
  }
  return 0;
}

int clean(bool dry_run, bool all, const std::set<std::string>& only) {
  bool users_known = false;
  auto entries = survey(users_known, only);
  if (nothing_to_look_at(only)) std::fputs(kCannotList, stdout);
  int removed = 0, failed = 0;
  const unsigned uid = mp::platform::current_user_id();
  for (auto& e : entries) {
    if (!all && !e.leaked) continue;
    if (uid != 0 && e.object.owner_uid != uid) {
      if (e.object.owner_uid == mp::platform::unknown_owner) {
        std::printf("skipped %s %s (owned by another user)\n", e.object.type.c_str(), e.object.name.c_str());
      } else {
        std::printf("skipped %s %s (owned by uid %u)\n", e.object.type.c_str(), e.object.name.c_str(), e.object.owner_uid);
      }
      continue;
    }
    if (dry_run) {
      std::printf("would remove %s %s\n", e.object.type.c_str(), e.object.name.c_str());
      ++removed;
      continue;
    }
    try {
      mp::platform::remove_named_object(e.object);
      std::printf("removed %s %s\n", e.object.type.c_str(), e.object.name.c_str());
      ++removed;
    } catch (const std::exception& ex) {
      std::fprintf(stderr, "mp-tracker: could not remove %s: %s\n", e.object.name.c_str(), ex.what());
      ++failed;
    }
  }
  std::printf("%s %d object%s\n", dry_run ? "would remove" : "removed", removed, removed == 1 ? "" : "s");
  return failed ? 1 : 0;
}

int bad(const std::string& why) {
  std::fprintf(stderr, "mp-tracker: %s\nTry 'mp-tracker --help'.\n", why.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) return bad("missing command (list or clean)");
  const std::string cmd = args[0];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  try {
    std::set<std::string> only;
    auto name_arg = [&](const std::string& a) {
      if (a.empty() || a[0] != '/') return false;
      only.insert(a);
      return true;
    };
    if (cmd == "list") {
      bool json = false;
      for (std::size_t i = 1; i < args.size(); ++i) {
        if (args[i] == "--json") json = true;
        else if (!name_arg(args[i])) return bad("unknown option for list: '" + args[i] + "'");
      }
      return list(json, only);
    }
    if (cmd == "clean") {
      bool dry = false, all = false;
      for (std::size_t i = 1; i < args.size(); ++i) {
        if (args[i] == "--dry-run") dry = true;
        else if (args[i] == "--all") all = true;
        else if (!name_arg(args[i])) return bad("unknown option for clean: '" + args[i] + "'");
      }
      return clean(dry, all, only);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mp-tracker: %s\n", e.what());
    return 1;
  }
  return bad("unknown command '" + cmd + "'");
}
