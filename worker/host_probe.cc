#include "worker/host_probe.h"

#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace busyfleet::worker {
namespace {

constexpr int kMaxCpuId = 65535;
constexpr size_t kMaxFileBytes = 16 << 20;

// Parses a string of ASCII digits only (no sign, no whitespace) up to `max`.
std::optional<int64_t> ParseDigits(absl::string_view s, int64_t max) {
  if (s.empty() || s.size() > 18) return std::nullopt;
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return std::nullopt;
  }
  int64_t value = 0;
  if (!absl::SimpleAtoi(s, &value) || value > max) return std::nullopt;
  return value;
}

// Reads a whole file; std::nullopt if it cannot be opened or read.
std::optional<std::string> ReadFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string out;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxFileBytes) break;
  }
  ::close(fd);
  return out;
}

// Splits a /proc/self/cgroup line "id:controllers:path"; the path may itself
// contain ':'.
struct CgroupLine {
  absl::string_view id;
  absl::string_view controllers;
  absl::string_view path;
};

std::vector<CgroupLine> ParseCgroupLines(absl::string_view text) {
  std::vector<CgroupLine> lines;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipWhitespace())) {
    std::vector<absl::string_view> parts = absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (parts.size() != 3) continue;
    lines.push_back({absl::StripAsciiWhitespace(parts[0]), parts[1],
                     absl::StripAsciiWhitespace(parts[2])});
  }
  return lines;
}

// Returns `mount` joined with `cgroup_path` and each of its parents, deepest
// first, ending with `mount` itself. A path with ".." yields only `mount`.
std::vector<std::string> SelfAndParents(const std::string& mount,
                                        absl::string_view cgroup_path) {
  std::vector<absl::string_view> parts =
      absl::StrSplit(cgroup_path, '/', absl::SkipEmpty());
  parts.erase(std::remove(parts.begin(), parts.end(), "."), parts.end());
  if (std::find(parts.begin(), parts.end(), "..") != parts.end()) parts.clear();
  std::vector<std::string> dirs;
  std::string dir = mount;
  dirs.push_back(dir);
  for (absl::string_view part : parts) {
    absl::StrAppend(&dir, "/", part);
    dirs.push_back(dir);
  }
  std::reverse(dirs.begin(), dirs.end());
  return dirs;
}

// Keeps the smaller of two limits, where 0 means "no limit".
double MinLimit(double a, double b) {
  if (a <= 0) return b;
  if (b <= 0) return a;
  return std::min(a, b);
}

double CgroupV2Quota(const std::string& root, absl::string_view cgroup_path) {
  double limit = 0;
  for (const std::string& dir : SelfAndParents(root + "/sys/fs/cgroup", cgroup_path)) {
    std::optional<std::string> text = ReadFile(dir + "/cpu.max");
    if (!text) continue;
    absl::StatusOr<double> quota = ParseCgroupV2CpuMax(*text);
    if (quota.ok()) limit = MinLimit(limit, *quota);
  }
  return limit;
}

double CgroupV1Quota(const std::string& root, absl::string_view cgroup_path) {
  double limit = 0;
  for (const char* mount : {"cpu,cpuacct", "cpu", "cpuacct,cpu"}) {
    for (const std::string& dir :
         SelfAndParents(absl::StrCat(root, "/sys/fs/cgroup/", mount), cgroup_path)) {
      std::optional<std::string> quota_us = ReadFile(dir + "/cpu.cfs_quota_us");
      if (!quota_us) continue;
      std::optional<std::string> period_us = ReadFile(dir + "/cpu.cfs_period_us");
      if (!period_us) continue;
      absl::StatusOr<double> quota = ParseCgroupV1Quota(*quota_us, *period_us);
      if (quota.ok()) limit = MinLimit(limit, *quota);
    }
  }
  return limit;
}

int AffinityCpus() {
  // The mask must be at least the kernel's cpumask size; grow until it fits.
  for (int ncpus = 1024; ncpus <= (1 << 20); ncpus *= 2) {
    cpu_set_t* set = CPU_ALLOC(ncpus);
    if (set == nullptr) return 0;
    size_t size = CPU_ALLOC_SIZE(ncpus);
    CPU_ZERO_S(size, set);
    if (sched_getaffinity(0, size, set) == 0) {
      int count = CPU_COUNT_S(size, set);
      CPU_FREE(set);
      return count;
    }
    int err = errno;
    CPU_FREE(set);
    if (err != EINVAL) return 0;
  }
  return 0;
}

void SetTopology(const TopologySummary& t, HostInfo* info) {
  info->physical_cores = t.host_cores;
  info->packages = t.packages;
  info->numa_nodes = t.numa_nodes;
  info->usable_cores = t.cores;
  info->usable_threads = t.threads;
  info->threads_per_core = t.threads_per_core;
}

std::string Hostname() {
  char buf[HOST_NAME_MAX + 1] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "";
  return std::string(buf);
}

}  // namespace

absl::StatusOr<std::vector<int>> ParseCpuList(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  std::vector<int> cpus;
  if (text.empty()) return cpus;
  for (absl::string_view token : absl::StrSplit(text, ',')) {
    auto invalid = [&](absl::string_view why) {
      return absl::InvalidArgumentError(
          absl::StrCat("cpu list: ", why, " token \"", token, "\" in \"", text, "\""));
    };
    std::vector<absl::string_view> ends = absl::StrSplit(token, absl::MaxSplits('-', 1));
    std::optional<int64_t> first = ParseDigits(ends[0], kMaxCpuId);
    std::optional<int64_t> last =
        ends.size() == 2 ? ParseDigits(ends[1], kMaxCpuId) : first;
    if (!first || !last) {
      return invalid(absl::StrCat("malformed (expected N or N-M with N, M in 0..",
                                  kMaxCpuId, ")"));
    }
    if (*last < *first) return invalid("reversed range");
    for (int64_t cpu = *first; cpu <= *last; ++cpu) cpus.push_back(static_cast<int>(cpu));
  }
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  return cpus;
}

absl::StatusOr<double> ParseCgroupV2CpuMax(absl::string_view text) {
  std::vector<absl::string_view> fields =
      absl::StrSplit(text, absl::ByAnyChar(" \t\r\n"), absl::SkipEmpty());
  auto invalid = [&]() {
    return absl::InvalidArgumentError(absl::StrCat(
        "cgroup v2 cpu.max: expected \"<quota|max> <period>\" with positive integers, got \"",
        absl::StripAsciiWhitespace(text), "\""));
  };
  if (fields.empty() || fields.size() > 2) return invalid();
  std::optional<int64_t> period;
  if (fields.size() == 2) {
    period = ParseDigits(fields[1], INT64_MAX);
    if (!period || *period == 0) return invalid();
  }
  if (fields[0] == "max") return 0.0;
  std::optional<int64_t> quota = ParseDigits(fields[0], INT64_MAX);
  if (!quota || *quota == 0 || !period) return invalid();
  return static_cast<double>(*quota) / static_cast<double>(*period);
}

absl::StatusOr<double> ParseCgroupV1Quota(absl::string_view quota_us,
                                          absl::string_view period_us) {
  quota_us = absl::StripAsciiWhitespace(quota_us);
  period_us = absl::StripAsciiWhitespace(period_us);
  if (quota_us == "-1") return 0.0;
  std::optional<int64_t> quota = ParseDigits(quota_us, INT64_MAX);
  if (!quota || *quota == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cgroup v1 cpu.cfs_quota_us: expected -1 or a positive integer, got \"", quota_us,
        "\""));
  }
  std::optional<int64_t> period = ParseDigits(period_us, INT64_MAX);
  if (!period || *period == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cgroup v1 cpu.cfs_period_us: expected a positive integer, got \"", period_us, "\""));
  }
  return static_cast<double>(*quota) / static_cast<double>(*period);
}

std::string ParseCpuModel(absl::string_view cpuinfo) {
  for (absl::string_view line : absl::StrSplit(cpuinfo, '\n')) {
    std::vector<absl::string_view> kv = absl::StrSplit(line, absl::MaxSplits(':', 1));
    if (kv.size() == 2 && absl::StripAsciiWhitespace(kv[0]) == "model name") {
      return std::string(absl::StripAsciiWhitespace(kv[1]));
    }
  }
  return "";
}

std::optional<std::string> ParseCgroupV2Path(absl::string_view proc_self_cgroup) {
  for (const CgroupLine& line : ParseCgroupLines(proc_self_cgroup)) {
    if (line.id == "0" && line.controllers.empty() && !line.path.empty()) {
      return std::string(line.path);
    }
  }
  return std::nullopt;
}

std::optional<std::string> ParseCgroupV1CpuPath(absl::string_view proc_self_cgroup) {
  for (const CgroupLine& line : ParseCgroupLines(proc_self_cgroup)) {
    if (line.path.empty()) continue;
    for (absl::string_view controller : absl::StrSplit(line.controllers, ',')) {
      if (controller == "cpu") return std::string(line.path);
    }
  }
  return std::nullopt;
}

std::string MachineId(const std::optional<std::string>& boot_id,
                      const std::optional<std::string>& machine_id) {
  for (const std::optional<std::string>& text : {boot_id, machine_id}) {
    if (!text) continue;
    const absl::string_view id = absl::StripAsciiWhitespace(*text);
    const bool looks_right =
        !id.empty() && id.size() <= 64 &&
        std::all_of(id.begin(), id.end(), [](char c) { return absl::ascii_isxdigit(c) || c == '-'; });
    if (looks_right) return std::string(id);
  }
  return "";
}

HostInfo ProbeHost(const std::string& root, const CpuTopology* topology) {
  HostInfo info;
  info.hostname = Hostname();
  info.machine_id = MachineId(ReadFile(root + "/proc/sys/kernel/random/boot_id"), ReadFile(root + "/etc/machine-id"));

  const std::string cpu_dir = root + "/sys/devices/system/cpu";
  std::vector<int> online;
  if (std::optional<std::string> text = ReadFile(cpu_dir + "/online")) {
    absl::StatusOr<std::vector<int>> cpus = ParseCpuList(*text);
    if (cpus.ok()) online = *std::move(cpus);
  }
  if (!online.empty()) {
    info.logical_cpus = static_cast<int>(online.size());
  } else {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    info.logical_cpus = n > 0 && n <= INT_MAX ? static_cast<int>(n) : 0;
  }

  if (topology != nullptr) SetTopology(topology->Summary(), &info);

  info.affinity_cpus = AffinityCpus();

  if (std::optional<std::string> cgroup = ReadFile(root + "/proc/self/cgroup")) {
    if (std::optional<std::string> path = ParseCgroupV2Path(*cgroup)) {
      info.cgroup_cpu_quota = MinLimit(info.cgroup_cpu_quota, CgroupV2Quota(root, *path));
    }
    if (std::optional<std::string> path = ParseCgroupV1CpuPath(*cgroup)) {
      info.cgroup_cpu_quota = MinLimit(info.cgroup_cpu_quota, CgroupV1Quota(root, *path));
    }
  }

  if (std::optional<std::string> cpuinfo = ReadFile(root + "/proc/cpuinfo")) {
    info.cpu_model = ParseCpuModel(*cpuinfo);
  }
  return info;
}

int DefaultSlots(const HostInfo& info) {
  int slots = 0;
  auto consider = [&slots](int candidate) {
    if (candidate > 0 && (slots == 0 || candidate < slots)) slots = candidate;
  };
  consider(info.physical_cores);
  consider(info.usable_cores);
  consider(info.affinity_cpus);
  if (info.cgroup_cpu_quota > 0) {
    // The epsilon absorbs rounding in quota / period (2.9999999999 counts as 3).
    double whole = std::floor(info.cgroup_cpu_quota + 1e-9);
    consider(whole < 1 ? 1 : whole > INT_MAX ? INT_MAX : static_cast<int>(whole));
  }
  if (slots > 0) return slots;
  return info.logical_cpus > 0 ? info.logical_cpus : 1;
}

}  // namespace busyfleet::worker
