#!/usr/bin/env python3
"""Time from exec of `rkube server` to the first `200 ok` from /readyz, on a
fresh data dir (creates the PKI) and on a restart (reuses it). Usage:
  bench/startup.py [path/to/rkube] [runs]"""
import os, shutil, ssl, subprocess, sys, tempfile, time, urllib.request, statistics, socket

binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/rkube"
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
ctx = ssl._create_unverified_context()  # readiness only; the CA is new each run

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def time_to_ready(data_dir, port):
    t0 = time.monotonic()
    p = subprocess.Popen([binary, "server", "--data-dir", data_dir, "--listen", f"127.0.0.1:{port}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = t0 + 10
        while time.monotonic() < deadline:
            try:
                if urllib.request.urlopen(f"https://127.0.0.1:{port}/readyz", context=ctx, timeout=1).read() == b"ok":
                    return (time.monotonic() - t0) * 1000
            except Exception:
                time.sleep(0.002)
        raise SystemExit("server not ready within 10 s")
    finally:
        p.terminate(); p.wait()

first, again = [], []
for _ in range(runs):
    d = tempfile.mkdtemp(prefix="rkube-startup-")
    port = free_port()
    first.append(time_to_ready(d, port))
    again.append(time_to_ready(d, port))
    shutil.rmtree(d)
print(f"| startup to /readyz (embedded) | fresh data dir: median {statistics.median(first):.0f} ms (max {max(first):.0f}); restart: median {statistics.median(again):.0f} ms (max {max(again):.0f}) | < 500 ms |")
