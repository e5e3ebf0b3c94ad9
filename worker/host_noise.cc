#include "worker/host_noise.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace busyfleet::worker {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return "";
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Whitespace-separated fields of `line`.
std::vector<absl::string_view> Fields(absl::string_view line) {
  return absl::StrSplit(line, absl::ByAnyChar(" \t\n"), absl::SkipEmpty());
}

// A process name fit for the wire: printable ASCII, at most 32 bytes.
std::string PrintableName(absl::string_view name) {
  std::string out(name.substr(0, 32));
  for (char& c : out) {
    if (c < 0x20 || c > 0x7e) c = '?';
  }
  return out;
}

}  // namespace

std::optional<CpuTimes> ParseProcStatCpu(absl::string_view proc_stat) {
  for (absl::string_view line : absl::StrSplit(proc_stat, '\n')) {
    const std::vector<absl::string_view> f = Fields(line);
    if (f.empty() || f[0] != "cpu") continue;
    CpuTimes t;
    for (size_t i = 1; i < f.size() && i <= 8; ++i) {
      uint64_t v = 0;
      if (!absl::SimpleAtoi(f[i], &v)) return std::nullopt;
      t.total += v;
      if (i == 4 || i == 5) t.idle += v;  // idle, iowait
      if (i == 8) t.steal = v;
    }
    if (f.size() < 5) return std::nullopt;
    return t;
  }
  return std::nullopt;
}

std::optional<double> ParseLoadAvg(absl::string_view loadavg) {
  const std::vector<absl::string_view> f = Fields(loadavg);
  double load = 0;
  if (f.empty() || !absl::SimpleAtod(f[0], &load) || load < 0) return std::nullopt;
  return load;
}

std::optional<ProcessTicks> ParsePidStat(absl::string_view stat, bool children) {
  // "PID (comm) S ppid ...": comm may hold spaces and parentheses; it ends
  // at the last ')'. Then state is field 3, utime 14, stime 15, cutime 16,
  // cstime 17 (1-based, as proc(5) numbers them).
  const size_t open = stat.find('(');
  const size_t close = stat.rfind(')');
  if (open == absl::string_view::npos || close == absl::string_view::npos || close < open) return std::nullopt;
  const std::vector<absl::string_view> f = Fields(stat.substr(close + 1));
  if (f.size() < 15) return std::nullopt;  // f[0] is field 3
  ProcessTicks p;
  p.name = PrintableName(stat.substr(open + 1, close - open - 1));
  const size_t last = children ? 14 : 12;
  for (size_t i = 11; i <= last; ++i) {
    uint64_t v = 0;
    if (!absl::SimpleAtoi(f[i], &v)) return std::nullopt;
    p.ticks += v;
  }
  return p;
}

NoiseSampler::NoiseSampler(std::string proc_root, std::string sys_root)
    : proc_(std::move(proc_root)),
      sys_(std::move(sys_root)),
      self_(getpid()),
      ticks_per_second_(static_cast<double>(std::max(1L, sysconf(_SC_CLK_TCK)))) {}

std::map<pid_t, ProcessTicks> NoiseSampler::ScanProcesses() const {
  std::map<pid_t, ProcessTicks> scan;
  DIR* dir = opendir(proc_.c_str());
  if (dir == nullptr) return scan;
  while (dirent* e = readdir(dir)) {
    int pid = 0;
    const absl::string_view name = e->d_name;
    if (std::from_chars(name.data(), name.data() + name.size(), pid).ec != std::errc() || pid == self_) continue;
    if (std::optional<ProcessTicks> p = ParsePidStat(ReadFile(proc_ + "/" + std::string(name) + "/stat"))) {
      scan.emplace(pid, *std::move(p));
    }
  }
  closedir(dir);
  return scan;
}

void NoiseSampler::ListBusy(const std::map<pid_t, ProcessTicks>& scan, double seconds, v1::HostNoise& noise) const {
  std::vector<std::pair<double, pid_t>> busy;
  for (const auto& [pid, p] : scan) {
    auto before = previous_scan_.find(pid);
    if (before == previous_scan_.end() || before->second.ticks > p.ticks) continue;
    const double cpus = static_cast<double>(p.ticks - before->second.ticks) / ticks_per_second_ / seconds;
    if (cpus >= kListFromCpus) busy.emplace_back(cpus, pid);
  }
  std::sort(busy.begin(), busy.end(), std::greater<>());
  for (size_t i = 0; i < busy.size() && i < 3; ++i) {
    v1::BusyProcess* p = noise.add_busy();
    p->set_pid(static_cast<uint32_t>(busy[i].second));
    p->set_name(scan.at(busy[i].second).name);
    p->set_cpus(busy[i].first);
  }
}

std::optional<v1::HostNoise> NoiseSampler::Sample(absl::Duration now) {
  const std::optional<CpuTimes> cpu = ParseProcStatCpu(ReadFile(proc_ + "/stat"));
  const std::optional<ProcessTicks> self = ParsePidStat(ReadFile(proc_ + "/self/stat"), /*children=*/true);
  if (!cpu || !self) return std::nullopt;
  const bool had_previous = have_previous_;
  const CpuTimes before = previous_cpu_;
  const uint64_t self_before = previous_self_;
  const double seconds = absl::ToDoubleSeconds(now - previous_at_);
  have_previous_ = true;
  previous_at_ = now;
  previous_cpu_ = *cpu;
  previous_self_ = self->ticks;
  if (!had_previous || seconds <= 0 || cpu->total <= before.total) return std::nullopt;

  v1::HostNoise noise;
  noise.set_interval_seconds(seconds);
  noise.set_online_cpus(static_cast<uint32_t>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN))));
  noise.set_load1(ParseLoadAvg(ReadFile(proc_ + "/loadavg")).value_or(0));
  const double total = static_cast<double>(cpu->total - before.total);
  noise.set_steal_share(static_cast<double>(cpu->steal - std::min(cpu->steal, before.steal)) / total);
  const auto busy_ticks = static_cast<double>((cpu->total - cpu->idle - cpu->steal) -
                                              std::min(cpu->total - cpu->idle - cpu->steal,
                                                       before.total - before.idle - before.steal));
  const double self_ticks = static_cast<double>(self->ticks - std::min(self->ticks, self_before));
  noise.set_other_busy_cpus(std::max(0.0, busy_ticks - self_ticks) / ticks_per_second_ / seconds);
  noise.set_governor(PrintableName(
      absl::StripAsciiWhitespace(ReadFile(sys_ + "/devices/system/cpu/cpu0/cpufreq/scaling_governor"))));
  if (noise.other_busy_cpus() >= kScanFromCpus || !previous_scan_.empty()) {
    std::map<pid_t, ProcessTicks> scan = ScanProcesses();
    ListBusy(scan, seconds, noise);
    previous_scan_ = noise.other_busy_cpus() >= kScanFromCpus ? std::move(scan) : std::map<pid_t, ProcessTicks>{};
  }
  return noise;
}

}  // namespace busyfleet::worker
