"""CPU time of processes from /proc (Linux): user + system seconds, all threads included."""

import os

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # Fields 14 and 15 (utime, stime) of proc(5), counted after the ")" that ends the command name.
    return (int(fields[11]) + int(fields[12])) / _TICK
