#include "worker/interference.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>

#include "busyfleet/proto_time.h"

namespace busyfleet::worker {
namespace {

// The next whitespace-separated field of `text` (advancing it); "" at the end.
std::string_view NextField(std::string_view& text) {
  size_t start = text.find_first_not_of(" \t\n");
  if (start == std::string_view::npos) {
    text = {};
    return {};
  }
  text.remove_prefix(start);
  const size_t end = std::min(text.find_first_of(" \t\n"), text.size());
  std::string_view field = text.substr(0, end);
  text.remove_prefix(end);
  return field;
}

template <typename T>
std::optional<T> ParseNumber(std::string_view s) {
  T v{};
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

// Calls fn(line) for each complete (newline-terminated, or last and
// `last_complete`) line; stops when fn returns false.
template <typename Fn>
void ForEachLine(std::string_view text, bool last_complete, Fn fn) {
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    if (nl == std::string_view::npos && !last_complete) return;
    const std::string_view line = text.substr(0, nl);
    if (!fn(line)) return;
    if (nl == std::string_view::npos) return;
    text.remove_prefix(nl + 1);
  }
}

// Whether the comma-separated `list` has `item`.
bool ListHas(std::string_view list, std::string_view item) {
  while (!list.empty()) {
    const size_t comma = std::min(list.find(','), list.size());
    if (list.substr(0, comma) == item) return true;
    list.remove_prefix(std::min(comma + 1, list.size()));
  }
  return false;
}

// Reads `path` into `buf` (at most its size - 1); the text read, "" on error.
template <size_t N>
std::string_view ReadSmall(const char* path, std::array<char, N>& buf) {
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  size_t used = 0;
  while (used < buf.size() - 1) {
    const ssize_t n = pread(fd, buf.data() + used, buf.size() - 1 - used, static_cast<off_t>(used));
    if (n <= 0) break;
    used += static_cast<size_t>(n);
  }
  close(fd);
  return {buf.data(), used};
}

std::optional<int64_t> ReadRunDelay(const char* path) {
  std::array<char, 128> buf;
  return ParseSchedstatWait(ReadSmall(path, buf));
}

StealTicks ReadSteal() {
  // The cpu lines come first; a host with more CPUs than fit here reports
  // the ones read (the aggregate line always fits).
  std::array<char, 16384> buf;
  return ParseProcStatSteal(ReadSmall("/proc/stat", buf));
}

// The cpu.stat path of the worker's cgroup, found once (the worker does not
// move between cgroups while it runs; a test that throttles one starts it
// inside its cgroup).
const std::optional<std::string>& CachedCpuStatPath() {
  static const std::optional<std::string> path = [] {
    std::array<char, 4096> cgroup;
    std::array<char, 65536> mountinfo;
    const std::string_view c = ReadSmall("/proc/self/cgroup", cgroup);
    const std::string_view m = ReadSmall("/proc/self/mountinfo", mountinfo);
    return CpuStatPath(c, m);
  }();
  return path;
}

std::optional<CpuStat> ReadCpuStat() {
  const std::optional<std::string>& path = CachedCpuStatPath();
  if (!path) return std::nullopt;
  std::array<char, 1024> buf;
  return ParseCpuStat(ReadSmall(path->c_str(), buf));
}

int64_t TicksToNs(uint64_t ticks) {
  static const int64_t hz = std::max<long>(1, sysconf(_SC_CLK_TCK));
  return static_cast<int64_t>(ticks) * (1'000'000'000 / hz);
}

std::optional<uint64_t> CpuSteal(const StealTicks& s, int cpu) {
  if (cpu < 0 || cpu >= StealTicks::kMaxCpus) return std::nullopt;
  return s.per_cpu[static_cast<size_t>(cpu)];
}

// Steal during the task, in ns, on the CPUs it ran on: the mean of the
// steal deltas of its start and end CPUs (one CPU when they are the same),
// or, when either is unknown, the host's total steal delta divided by its
// CPU count (the mean over all CPUs).
std::optional<int64_t> StealNs(const StealTicks& before, const StealTicks& after, const v1::TaskResult& r) {
  const int cpus[2] = {r.has_start_cpu() ? static_cast<int>(r.start_cpu()) : -1,
                       r.has_end_cpu() ? static_cast<int>(r.end_cpu()) : -1};
  uint64_t sum = 0;
  int counted = 0;
  for (int i = 0; i < 2; ++i) {
    if (i == 1 && cpus[1] == cpus[0]) break;
    const auto b = CpuSteal(before, cpus[i]);
    const auto a = CpuSteal(after, cpus[i]);
    if (!a || !b) {
      counted = 0;
      break;
    }
    sum += *a >= *b ? *a - *b : 0;
    ++counted;
  }
  if (counted > 0) return TicksToNs(sum) / counted;
  if (!before.total || !after.total || after.cpus == 0) return std::nullopt;
  const uint64_t delta = *after.total >= *before.total ? *after.total - *before.total : 0;
  return TicksToNs(delta) / after.cpus;
}

void SetThrottling(const std::optional<CpuStat>& before, v1::Interference* out) {
  const std::optional<CpuStat> after = ReadCpuStat();
  if (!before || !after) return;
  auto delta = [](uint64_t a, uint64_t b) { return a >= b ? a - b : 0; };
  out->set_throttled_ns(static_cast<int64_t>(delta(after->throttled_ns, before->throttled_ns)));
  out->set_throttled_periods(delta(after->nr_throttled, before->nr_throttled));
  out->set_periods(delta(after->nr_periods, before->nr_periods));
}

}  // namespace

std::optional<int64_t> ParseSchedstatWait(std::string_view text) {
  NextField(text);  // time on the CPU
  return ParseNumber<int64_t>(NextField(text));
}

StealTicks ParseProcStatSteal(std::string_view text) {
  StealTicks out;
  ForEachLine(text, /*last_complete=*/false, [&out](std::string_view line) {
    std::string_view rest = line;
    const std::string_view name = NextField(rest);
    if (name.substr(0, 3) != "cpu") return false;
    // user nice system idle iowait irq softirq steal ...
    for (int i = 0; i < 7; ++i) NextField(rest);
    const std::optional<uint64_t> steal = ParseNumber<uint64_t>(NextField(rest));
    if (name == "cpu") {
      out.total = steal;
      return true;
    }
    const std::optional<int> cpu = ParseNumber<int>(name.substr(3));
    if (!cpu) return false;
    ++out.cpus;
    if (*cpu >= 0 && *cpu < StealTicks::kMaxCpus) out.per_cpu[static_cast<size_t>(*cpu)] = steal;
    return true;
  });
  return out;
}

std::optional<CpuStat> ParseCpuStat(std::string_view text) {
  CpuStat out;
  bool throttled = false;
  ForEachLine(text, /*last_complete=*/true, [&](std::string_view line) {
    std::string_view rest = line;
    const std::string_view key = NextField(rest);
    const std::optional<uint64_t> value = ParseNumber<uint64_t>(NextField(rest));
    if (!value) return true;
    if (key == "nr_periods") out.nr_periods = *value;
    if (key == "nr_throttled") out.nr_throttled = *value;
    if (key == "throttled_time") out.throttled_ns = *value, throttled = true;             // v1, ns
    if (key == "throttled_usec") out.throttled_ns = *value * 1000, throttled = true;      // v2, us
    return true;
  });
  if (!throttled) return std::nullopt;
  return out;
}

namespace {

struct Mount {
  std::string_view root;   // the subtree of the hierarchy mounted
  std::string_view point;  // where
};

// The cgroup paths of the v1 hierarchy with the cpu controller and of v2.
void CgroupPaths(std::string_view proc_self_cgroup, std::optional<std::string_view>* v1,
                 std::optional<std::string_view>* v2) {
  ForEachLine(proc_self_cgroup, /*last_complete=*/true, [&](std::string_view line) {
    // hierarchy-id:controller-list:path
    const size_t c1 = line.find(':');
    const size_t c2 = c1 == std::string_view::npos ? c1 : line.find(':', c1 + 1);
    if (c2 == std::string_view::npos) return true;
    const std::string_view controllers = line.substr(c1 + 1, c2 - c1 - 1);
    const std::string_view path = line.substr(c2 + 1);
    if (line.substr(0, c1) == "0" && controllers.empty()) *v2 = path;
    if (ListHas(controllers, "cpu")) *v1 = path;
    return true;
  });
}

// The cgroup mounts: v1 with the cpu controller, and v2.
void CgroupMounts(std::string_view mountinfo, std::optional<Mount>* v1, std::optional<Mount>* v2) {
  ForEachLine(mountinfo, /*last_complete=*/true, [&](std::string_view line) {
    // id parent major:minor root mount-point options [optional...] - fstype source super-options
    const size_t dash = line.find(" - ");
    if (dash == std::string_view::npos) return true;
    std::string_view head = line.substr(0, dash);
    std::string_view tail = line.substr(dash + 3);
    for (int i = 0; i < 3; ++i) NextField(head);
    const Mount m{NextField(head), NextField(head)};
    const std::string_view fstype = NextField(tail);
    NextField(tail);  // source
    const std::string_view options = NextField(tail);
    if (fstype == "cgroup" && ListHas(options, "cpu") && !*v1) *v1 = m;
    if (fstype == "cgroup2" && !*v2) *v2 = m;
    return true;
  });
}

// The cgroup `path` (from the hierarchy's root) under mount `m`.
std::string Under(const Mount& m, std::string_view path) {
  if (m.root != "/" && path.substr(0, m.root.size()) == m.root &&
      (path.size() == m.root.size() || path[m.root.size()] == '/')) {
    path.remove_prefix(m.root.size());
  }
  std::string out(m.point);
  if (path != "/") out.append(path);
  out.append("/cpu.stat");
  return out;
}

}  // namespace

std::optional<std::string> CpuStatPath(std::string_view proc_self_cgroup, std::string_view mountinfo) {
  std::optional<std::string_view> v1_path, v2_path;
  CgroupPaths(proc_self_cgroup, &v1_path, &v2_path);
  std::optional<Mount> v1_mount, v2_mount;
  CgroupMounts(mountinfo, &v1_mount, &v2_mount);
  if (v1_path && v1_mount) return Under(*v1_mount, *v1_path);
  if (v2_path && v2_mount) return Under(*v2_mount, *v2_path);
  return std::nullopt;
}

bool WorthProbing(const v1::Assignment& a, uint64_t wall_is_cpu_iterations) {
  switch (a.kind()) {
    case v1::TASK_KIND_COUNTDOWN:
      return a.iterations() > std::max(wall_is_cpu_iterations, kProbeMinIterations);
    case v1::TASK_KIND_SPIN:
    case v1::TASK_KIND_SLEEP:
      return ToAbslDuration(a.duration()) >= absl::Milliseconds(1);
    case v1::TASK_KIND_PYTHON:
      return a.iterations() > kProbeMinPythonIterations;
    default:
      return true;
  }
}

Interference::Probe Interference::Begin(bool thread) {
  Probe p;
  p.active = true;
  p.thread = thread;
  if (thread) {
    p.run_delay_ns = ReadRunDelay("/proc/thread-self/schedstat");
    rusage ru{};
    if (getrusage(RUSAGE_THREAD, &ru) == 0) p.nivcsw = ru.ru_nivcsw;
  }
  p.steal = ReadSteal();
  p.cpu_stat = ReadCpuStat();
  return p;
}

void Interference::End(const Probe& begin, v1::TaskResult* r, std::optional<int64_t> child_run_delay_ns,
                       const rusage* child_usage) {
  if (!begin.active) return;
  v1::Interference* out = r->mutable_interference();
  if (begin.thread) {
    const std::optional<int64_t> delay = ReadRunDelay("/proc/thread-self/schedstat");
    if (delay && begin.run_delay_ns) out->set_run_queue_wait_ns(std::max<int64_t>(0, *delay - *begin.run_delay_ns));
    rusage ru{};
    if (begin.nivcsw && getrusage(RUSAGE_THREAD, &ru) == 0) {
      out->set_involuntary_switches(static_cast<uint64_t>(std::max<long>(0, ru.ru_nivcsw - *begin.nivcsw)));
    }
  } else {
    if (child_run_delay_ns) out->set_run_queue_wait_ns(*child_run_delay_ns);
    if (child_usage != nullptr) out->set_involuntary_switches(static_cast<uint64_t>(child_usage->ru_nivcsw));
  }
  if (const std::optional<int64_t> steal = StealNs(begin.steal, ReadSteal(), *r)) {
    out->set_steal_ns(*steal);
    const int64_t wall = r->end_mono_ns() - r->start_mono_ns();
    // Tick granularity can put a whole tick in a shorter task: at most 1.
    out->set_steal_share(wall > 0 ? std::min(1.0, static_cast<double>(*steal) / static_cast<double>(wall)) : 0);
  }
  SetThrottling(begin.cpu_stat, out);
}

std::optional<int64_t> Interference::ChildRunDelay(pid_t child) {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/%d/schedstat", static_cast<int>(child));
  return ReadRunDelay(path);
}

}  // namespace busyfleet::worker
