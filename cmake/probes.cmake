# Each facility that not every POSIX system has is found by a probe; MP_PORTABLE_POSIX turns the
# Linux-only ones off so the fallbacks macOS needs are built and tested here.
include(CheckCSourceCompiles)
include(CheckSymbolExists)
set(CMAKE_REQUIRED_DEFINITIONS -D_GNU_SOURCE)
set(MP_PLATFORM_LIBS ${CMAKE_DL_LIBS})
if(MP_PLATFORM STREQUAL windows)
  # Winsock (TCP Listener/Client).
  set(MP_PLATFORM_LIBS ws2_32)
endif()

if(MP_PLATFORM STREQUAL posix)
  check_c_source_compiles("
    #include <spawn.h>
    int main(void) { posix_spawn_file_actions_t a; posix_spawn_file_actions_init(&a);
                     return posix_spawn_file_actions_addclosefrom_np(&a, 3); }" MP_PROBE_CLOSEFROM)
  check_c_source_compiles("
    #include <link.h>
    static int cb(struct dl_phdr_info* i, size_t s, void* d) { (void)i; (void)s; (void)d; return 0; }
    int main(void) { return dl_iterate_phdr(cb, 0); }" MP_PROBE_DL_ITERATE_PHDR)
  check_c_source_compiles("
    #include <sys/syscall.h>
    #include <unistd.h>
    int main(void) { return (int)syscall(SYS_pidfd_open, 1, 0); }" MP_PROBE_PIDFD)
  check_c_source_compiles("
    #include <sched.h>
    int main(void) { cpu_set_t s; return sched_getaffinity(0, sizeof s, &s); }" MP_PROBE_SCHED_GETAFFINITY)
  check_c_source_compiles("
    #include <semaphore.h>
    #include <time.h>
    int main(void) { sem_t s; struct timespec t = {0, 0}; return sem_timedwait(&s, &t); }" MP_PROBE_SEM_TIMEDWAIT)
  check_c_source_compiles("
    #include <sys/mman.h>
    int main(void) { return memfd_create(\"x\", MFD_CLOEXEC); }" MP_PROBE_MEMFD)
  check_c_source_compiles("
    #include <sys/mman.h>
    int main(void) { return madvise(0, 0, MADV_HUGEPAGE); }" MP_PROBE_MADV_HUGEPAGE)
  check_c_source_compiles("
    #include <linux/futex.h>
    #include <sys/syscall.h>
    #include <unistd.h>
    int main(void) { int w = 0; return (int)syscall(SYS_futex, &w, FUTEX_WAKE, 1, 0, 0, 0); }" MP_PROBE_FUTEX)
  # Descriptors close-on-exec from birth: pipe2, accept4, SOCK_CLOEXEC, MSG_CMSG_CLOEXEC (Linux, the
  # BSDs). macOS sets FD_CLOEXEC just after (a fork on another thread in between inherits them).
  check_c_source_compiles("
    #include <fcntl.h>
    #include <sys/socket.h>
    #include <unistd.h>
    int main(void) { int p[2]; struct msghdr m; m.msg_flags = 0;
                     return pipe2(p, O_CLOEXEC) + accept4(0, 0, 0, SOCK_CLOEXEC) +
                            socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0) + (int)recvmsg(0, &m, MSG_CMSG_CLOEXEC); }"
    MP_PROBE_ATOMIC_CLOEXEC)
  # sem_getvalue exists on macOS but always fails there: the portable build goes without it.
  check_c_source_compiles("
    #include <semaphore.h>
    int main(void) { sem_t s; int v; return sem_getvalue(&s, &v); }" MP_PROBE_SEM_GETVALUE)
  # glibc hands (argc, argv, envp) to .init_array functions: argv without /proc.
  check_c_source_compiles("
    #include <gnu/libc-version.h>
    int main(void) { return gnu_get_libc_version() != 0 ? 0 : 1; }" MP_PROBE_GLIBC_INIT_ARGV)
  check_c_source_compiles("
    #include <crt_externs.h>
    int main(void) { return *_NSGetArgc(); }" MP_PROBE_NSGETARGV)
  include(CheckCSourceRuns)
  check_c_source_runs("
    #include <string.h>
    #include <sys/socket.h>
    #include <sys/un.h>
    #include <unistd.h>
    int main(void) {
      struct sockaddr_un a; memset(&a, 0, sizeof a); a.sun_family = AF_UNIX;
      memcpy(a.sun_path + 1, \"mp-probe\", 8);
      int s = socket(AF_UNIX, SOCK_STREAM, 0);
      int r = bind(s, (struct sockaddr*)&a, (socklen_t)(sizeof(a.sun_family) + 9));
      close(s); return r == 0 ? 0 : 1; }" MP_PROBE_ABSTRACT_SOCKETS)
  # glibc keeps named semaphores and shared memory as files in /dev/shm ("sem.NAME" and "NAME"):
  # mp-tracker can list them there.
  if(EXISTS /dev/shm)
    set(MP_PROBE_DEV_SHM 1)
  endif()
  if(EXISTS /proc/self/exe)
    set(MP_PROBE_PROCFS 1)
  endif()
endif()

foreach(f CLOSEFROM DL_ITERATE_PHDR PIDFD SCHED_GETAFFINITY SEM_TIMEDWAIT MEMFD GLIBC_INIT_ARGV PROCFS ABSTRACT_SOCKETS NSGETARGV MADV_HUGEPAGE SEM_GETVALUE FUTEX DEV_SHM ATOMIC_CLOEXEC)
  if(MP_PROBE_${f})
    set(MP_HAVE_${f} 1)
  else()
    set(MP_HAVE_${f} 0)
  endif()
endforeach()
if(MP_PORTABLE_POSIX)
  # The macOS path: none of the Linux-only facilities.
  foreach(f CLOSEFROM PIDFD SCHED_GETAFFINITY SEM_TIMEDWAIT MEMFD PROCFS ABSTRACT_SOCKETS MADV_HUGEPAGE SEM_GETVALUE FUTEX DEV_SHM
            ATOMIC_CLOEXEC)
    set(MP_HAVE_${f} 0)
  endforeach()
endif()
message(STATUS "mp probes: closefrom=${MP_HAVE_CLOSEFROM} dl_iterate_phdr=${MP_HAVE_DL_ITERATE_PHDR} "
               "pidfd=${MP_HAVE_PIDFD} affinity=${MP_HAVE_SCHED_GETAFFINITY} "
               "sem_timedwait=${MP_HAVE_SEM_TIMEDWAIT} memfd=${MP_HAVE_MEMFD} "
               "init_argv=${MP_HAVE_GLIBC_INIT_ARGV} procfs=${MP_HAVE_PROCFS} abstract=${MP_HAVE_ABSTRACT_SOCKETS} "
               "futex=${MP_HAVE_FUTEX} dev_shm=${MP_HAVE_DEV_SHM} atomic_cloexec=${MP_HAVE_ATOMIC_CLOEXEC}")
