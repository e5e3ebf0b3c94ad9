#include "common/logging.h"

#include <memory>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"

namespace busyfleet {

std::string JsonEscape(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(&out, "\\u%04x", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  return out;
}

namespace {

thread_local std::vector<std::pair<std::string, std::string>> log_fields;

// One JSON object per line, so log shippers need no parsing rules.
class JsonFormatter : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const absl::Time t = absl::FromChrono(msg.time);
    std::string line = absl::StrCat(
        "{\"time\":\"", absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", t, absl::UTCTimeZone()),
        "\",\"level\":\"", spdlog::level::to_string_view(msg.level).data(),
        "\",\"component\":\"", JsonEscape(absl::string_view(msg.logger_name.data(), msg.logger_name.size())),
        "\",\"message\":\"", JsonEscape(absl::string_view(msg.payload.data(), msg.payload.size())), "\"");
    std::string fields;
    for (const auto& [key, value] : log_fields) {
      absl::StrAppend(&fields, ",\"", JsonEscape(key), "\":\"", JsonEscape(value), "\"");
    }
    absl::StrAppend(&line, fields, "}\n");
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

}  // namespace

LogFields::LogFields(std::initializer_list<std::pair<absl::string_view, std::string>> fields) {
  for (const auto& [key, value] : fields) log_fields.emplace_back(std::string(key), value);
  added_ = fields.size();
}

LogFields::~LogFields() { log_fields.resize(log_fields.size() - added_); }

bool LogRateLimiter::Allow(uint64_t* suppressed) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  if (last_ != absl::InfinitePast()) {
    tokens_ = std::min<double>(burst_, tokens_ + absl::FDivDuration(now - last_, interval_));
  }
  last_ = now;
  if (tokens_ < 1) {
    ++suppressed_;
    return false;
  }
  tokens_ -= 1;
  *suppressed = suppressed_;
  suppressed_ = 0;
  return true;
}

absl::Status SetupLogging(absl::string_view component, absl::string_view format,
                          absl::string_view level) {
  const spdlog::level::level_enum lvl = spdlog::level::from_str(std::string(level));
  if (lvl == spdlog::level::off && level != "off") {
    return absl::InvalidArgumentError(
        absl::StrCat("log-level must be one of trace, debug, info, warn, error, off; got \"", level, "\""));
  }
  auto logger = spdlog::stderr_color_mt(std::string(component));
  if (format == "json") {
    logger->set_formatter(std::make_unique<JsonFormatter>());
  } else if (format == "text" || format.empty()) {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ [%n] %v");
  } else {
    spdlog::drop(std::string(component));
    return absl::InvalidArgumentError(
        absl::StrCat("log-format must be text or json, got \"", format, "\""));
  }
  logger->set_level(lvl);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(std::move(logger));
  return absl::OkStatus();
}

}  // namespace busyfleet
