"""Free loopback ports for the test services (scripts/etcd.sh, scripts/seaweedfs.sh).

    free_ports.py LOW HIGH [STEP] [OFFSET ...]

prints a random base port in [LOW, HIGH) (a multiple of STEP from LOW) such that base+OFFSET
is free for every OFFSET (default: just base). A port is free if it can be bound. Ranges
below the kernel's ephemeral range (32768 and up) keep outgoing connections from taking a
port between this check and the server's bind."""

import random
import socket
import sys


def free(port: int) -> bool:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


low, high = int(sys.argv[1]), int(sys.argv[2])
step = int(sys.argv[3]) if len(sys.argv) > 3 else 1
offsets = [int(a) for a in sys.argv[4:]] or [0]
for _ in range(500):
    base = random.randrange(low, high, step)
    if all(free(base + o) for o in offsets):
        print(base)
        break
else:
    raise SystemExit(f"no free ports in [{low}, {high})")
