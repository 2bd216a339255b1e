"""CPU time of processes from /proc (Linux): user and system seconds, all threads included.

User time is the process's own code (Python, FFmpeg, protobuf); system time is the kernel working
for it (socket reads and writes, and futex calls, which is where threads handing the GIL to each
other show). The main thread's share is kept apart because a service's event loop runs there.
"""

import os
from dataclasses import dataclass

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuTimes:
    user: float
    system: float
    main_thread: float  # user + system of the process's first thread

    @property
    def total(self) -> float:
        return self.user + self.system

    def __sub__(self, earlier: "CpuTimes") -> "CpuTimes":
        return CpuTimes(self.user - earlier.user, self.system - earlier.system, self.main_thread - earlier.main_thread)

    def __truediv__(self, divisor: float) -> "CpuTimes":
        return CpuTimes(self.user / divisor, self.system / divisor, self.main_thread / divisor)


def _user_system(stat_path: str) -> tuple[float, float]:
    with open(stat_path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # Fields 14 and 15 (utime, stime) of proc(5), counted after the ")" that ends the command name.
    return int(fields[11]) / _TICK, int(fields[12]) / _TICK


def cpu_times(pid: int) -> CpuTimes:
    user, system = _user_system(f"/proc/{pid}/stat")
    main_user, main_system = _user_system(f"/proc/{pid}/task/{pid}/stat")
    return CpuTimes(user, system, main_user + main_system)


def cpu_seconds(pid: int) -> float:
    return cpu_times(pid).total


def rss_mb(pid: int) -> float:
    """Resident memory of the process (MB), from /proc/<pid>/status."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0
