// Windows figures for the record (issue 8): process start+join and Pipe ping-pong, mp beside the
// raw calls it is made of, measured in one run. Under Wine these are Wine's timings, not
// Windows's: Wine's wineserver mediates every process start and handle operation.
//   bench_windows [--rounds N]          (a child mode, --raw-echo, is for this program's own use)
#include <mp/mp.hpp>

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void nothing() {}

void echo(mp::Connection conn, int n) {
  for (int i = 0; i < n; ++i) conn.send_bytes(conn.recv_bytes());
}

std::wstring self_path() {
  wchar_t buf[MAX_PATH];
  DWORD n = GetModuleFileNameW(nullptr, buf, MAX_PATH);
  return std::wstring(buf, n);
}

// The raw child: exits at once, or echoes `n` 8-byte messages on the inherited pipe handles.
int raw_child(int argc, char** argv) {
  if (argc < 5) return 0;
  HANDLE in = reinterpret_cast<HANDLE>(std::strtoull(argv[2], nullptr, 10));
  HANDLE out = reinterpret_cast<HANDLE>(std::strtoull(argv[3], nullptr, 10));
  int n = std::atoi(argv[4]);
  char buf[8];
  for (int i = 0; i < n; ++i) {
    DWORD got = 0, put = 0;
    if (!ReadFile(in, buf, sizeof buf, &got, nullptr) || got != sizeof buf) return 1;
    if (!WriteFile(out, buf, sizeof buf, &put, nullptr)) return 1;
  }
  return 0;
}

double raw_start_join() {
  std::wstring exe = self_path();
  std::wstring line = L"\"" + exe + L"\" --raw-echo";
  STARTUPINFOW si{};
  si.cb = sizeof si;
  PROCESS_INFORMATION pi{};
  auto t0 = Clock::now();
  if (!CreateProcessW(exe.c_str(), line.data(), nullptr, nullptr, FALSE, 0, nullptr, nullptr, &si, &pi)) std::exit(2);
  WaitForSingleObject(pi.hProcess, INFINITE);
  auto t = micros(Clock::now() - t0);
  CloseHandle(pi.hThread);
  CloseHandle(pi.hProcess);
  return t;
}

double raw_pingpong(int n) {
  SECURITY_ATTRIBUTES sa{sizeof sa, nullptr, TRUE};
  HANDLE a_read, a_write, b_read, b_write;  // a: parent -> child, b: child -> parent
  CreatePipe(&a_read, &a_write, &sa, 0);
  CreatePipe(&b_read, &b_write, &sa, 0);
  SetHandleInformation(a_write, HANDLE_FLAG_INHERIT, 0);
  SetHandleInformation(b_read, HANDLE_FLAG_INHERIT, 0);
  std::wstring exe = self_path();
  std::wstring line = L"\"" + exe + L"\" --raw-echo " + std::to_wstring(reinterpret_cast<std::uintptr_t>(a_read)) + L" " +
                      std::to_wstring(reinterpret_cast<std::uintptr_t>(b_write)) + L" " + std::to_wstring(n);
  STARTUPINFOW si{};
  si.cb = sizeof si;
  PROCESS_INFORMATION pi{};
  if (!CreateProcessW(exe.c_str(), line.data(), nullptr, nullptr, TRUE, 0, nullptr, nullptr, &si, &pi)) std::exit(2);
  CloseHandle(a_read);
  CloseHandle(b_write);
  char buf[8] = "ping...";
  auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    DWORD put = 0, got = 0;
    WriteFile(a_write, buf, sizeof buf, &put, nullptr);
    ReadFile(b_read, buf, sizeof buf, &got, nullptr);
  }
  double per = micros(Clock::now() - t0) / n;
  WaitForSingleObject(pi.hProcess, INFINITE);
  CloseHandle(pi.hThread);
  CloseHandle(pi.hProcess);
  CloseHandle(a_write);
  CloseHandle(b_read);
  return per;
}

}  // namespace

int main(int argc, char** argv) {
  mp::freeze_support();
  if (argc >= 2 && std::strcmp(argv[1], "--raw-echo") == 0) return raw_child(argc, argv);
  int rounds = 20;
  if (argc >= 3 && std::strcmp(argv[1], "--rounds") == 0) rounds = std::max(3, std::atoi(argv[2]));
  const int pings = 2000;

  std::vector<double> mp_start, raw_start, mp_pp, raw_pp;
  for (int r = 0; r < rounds; ++r) {
    raw_start.push_back(raw_start_join());
    auto t0 = Clock::now();
    mp::Process p(nothing);
    p.start();
    p.join();
    mp_start.push_back(micros(Clock::now() - t0));
  }
  for (int r = 0; r < std::max(3, rounds / 4); ++r) {
    raw_pp.push_back(raw_pingpong(pings));
    auto [parent, child] = mp::Pipe();
    mp::Process p(echo, child, pings);
    p.start();
    child.close();
    std::vector<std::byte> msg(8, std::byte{1});
    auto t0 = Clock::now();
    for (int i = 0; i < pings; ++i) {
      parent.send_bytes(msg);
      (void)parent.recv_bytes();
    }
    mp_pp.push_back(micros(Clock::now() - t0) / pings);
    p.join();
  }
  double ms = median(mp_start), rs = median(raw_start), mpp = median(mp_pp), rpp = median(raw_pp);
  std::printf("Windows backend figures (medians; under Wine these are Wine's timings, not Windows's)\n");
  std::printf("%-38s %12s %12s %8s\n", "case", "mp", "raw", "ratio");
  std::printf("%-38s %9.0f us %9.0f us %7.2fx\n", "Process start+join (spawn)", ms, rs, ms / rs);
  std::printf("%-38s %9.1f us %9.1f us %7.2fx\n", "Pipe ping-pong round trip, 8 bytes", mpp, rpp, mpp / rpp);
  return 0;
}
