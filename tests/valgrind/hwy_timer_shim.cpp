// Preloaded only under valgrind (scripts/reliability.sh): libtorch loads
// libhwy (through opencv, libavcodec and libjxl), whose load-time timer
// calibration executes rdtscp, which valgrind 3.19 cannot run (SIGILL before
// main). This definition takes the place of that calibration; only Highway's
// benchmark timers read it.
#include <cstdint>

namespace hwy {
namespace platform {
uint64_t TimerResolution() { return 1; }
}  // namespace platform
}  // namespace hwy
