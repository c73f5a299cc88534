// mp/resource_tracker.hpp - the resource tracker (CPython's multiprocessing.resource_tracker).
//
// One tracker process per process tree, started on first need from the program's own executable.
// Every process of the tree holds an end of its socket pair (inherited under fork, passed to
// children under spawn and forkserver). The library registers each named OS object it creates
// under a context that keeps names (spawn, forkserver) and unregisters it when the creator
// removes it. When every process holding the pipe has ended - normally or killed - the tracker
// removes what is still registered and warns on stderr, as CPython's does:
//   resource_tracker: There appear to be 3 leaked semaphore objects to clean up at shutdown
//
// Beyond CPython: registrations are counted per (type, name), so a name registered twice is
// removed only after two unregistrations (and a process that merely opened an object never
// registers it: it can never remove what another still uses); names are escaped on the wire, so
// no name can break the protocol; a malformed line is reported and skipped, the tracker goes on.
#pragma once

#include <optional>
#include <string>

namespace mp::resource_tracker {

// Starts the tracker if this process has none reachable (one that died is replaced, with a
// warning: what it tracked may leak; `mp-tracker clean` finds it).
void ensure_running();

// Types with a cleanup function: "semaphore" (sem_unlink), "shared_memory" (shm_unlink), and
// "noop" (nothing; for tests). Another type, an empty name or one longer than 255 bytes is an
// mp::ValueError.
void register_resource(const std::string& name, const std::string& type);
void unregister_resource(const std::string& name, const std::string& type);

// The tracker's process id, if this process knows it (it started the tracker, or inherited it).
std::optional<int> pid();

}  // namespace mp::resource_tracker
