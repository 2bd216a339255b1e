"""The platform's services. Importing this package comes before any of them loads gRPC.

gRPC's core restarts its epoll poller thread in a child after fork() unless fork support is off.
Python's subprocess closes every descriptor but the child's own before exec(), the epoll one too,
so that thread hits EBADF and gRPC aborts the child before it runs its program (grpc/grpc#43055):
a service that never starts, an ffmpeg for a clip that never runs, about once in 100 spawns under
load here. No service forks to share gRPC state with its child, so the handlers are turned off
before gRPC is first imported (it reads the variable once, at initialisation).
"""

import os

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
