#include "common/prefault.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

namespace busyfleet {
namespace {

const size_t kPage = static_cast<size_t>(sysconf(_SC_PAGESIZE));

// A fresh anonymous mapping of `pages` pages, unmapped at the end.
class Mapping {
 public:
  explicit Mapping(size_t pages) : bytes_(pages * kPage) {
    void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    base_ = p == MAP_FAILED ? nullptr : static_cast<char*>(p);
  }
  ~Mapping() {
    if (base_ != nullptr) munmap(base_, bytes_);
  }
  char* base() const { return base_; }
  size_t bytes() const { return bytes_; }
  // Which pages are resident (mincore).
  std::vector<bool> Resident() const {
    std::vector<unsigned char> v(bytes_ / kPage);
    EXPECT_EQ(mincore(base_, bytes_, v.data()), 0) << strerror(errno);
    std::vector<bool> out;
    for (unsigned char c : v) out.push_back((c & 1) != 0);
    return out;
  }

 private:
  size_t bytes_;
  char* base_ = nullptr;
};

bool KernelCanPopulate() {
  Mapping m(1);
  return m.base() != nullptr && madvise(m.base(), m.bytes(), 23 /* MADV_POPULATE_WRITE */) == 0;
}

TEST(PrefaultTest, MapsEveryPageOfALargeRangeWithoutChangingIt) {
  if (!KernelCanPopulate()) GTEST_SKIP() << "this kernel has no MADV_POPULATE_WRITE (Linux 5.14+)";
  // Past kParallelPrefaultBytes: populated from more than one thread where
  // the machine has more than one CPU.
  Mapping m(kParallelPrefaultBytes / kPage * 2 + 3);
  ASSERT_NE(m.base(), nullptr);
  for (bool r : m.Resident()) ASSERT_FALSE(r);
  m.base()[5 * kPage + 7] = 42;  // one page touched before: kept as it is
  EXPECT_EQ(PrefaultForWrite(m.base(), m.bytes()), m.bytes());
  const std::vector<bool> resident = m.Resident();
  for (size_t i = 0; i < resident.size(); ++i) EXPECT_TRUE(resident[i]) << "page " << i;
  EXPECT_EQ(m.base()[5 * kPage + 7], 42);
  EXPECT_EQ(m.base()[0], 0);
  EXPECT_EQ(m.base()[m.bytes() - 1], 0);
}

TEST(PrefaultTest, LeavesThePartialPagesAtEitherEndAlone) {
  if (!KernelCanPopulate()) GTEST_SKIP() << "this kernel has no MADV_POPULATE_WRITE (Linux 5.14+)";
  Mapping m(6);
  ASSERT_NE(m.base(), nullptr);
  // From inside page 0 to inside page 4: pages 1-3 are whole.
  EXPECT_EQ(PrefaultForWrite(m.base() + 100, 4 * kPage), 3 * kPage);
  EXPECT_EQ(m.Resident(), (std::vector<bool>{false, true, true, true, false, false}));
}

TEST(PrefaultTest, NothingToDoForNoWholePage) {
  Mapping m(2);
  ASSERT_NE(m.base(), nullptr);
  EXPECT_EQ(PrefaultForWrite(nullptr, 10 * kPage), 0u);
  EXPECT_EQ(PrefaultForWrite(m.base(), 0), 0u);
  EXPECT_EQ(PrefaultForWrite(m.base() + 1, kPage), 0u);  // straddles two pages, covers neither
  EXPECT_EQ(m.Resident(), (std::vector<bool>{false, false}));
}

}  // namespace
}  // namespace busyfleet
