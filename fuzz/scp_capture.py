#!/usr/bin/env python3
# Stands in for ssh under `scp -S`: runs the remote command locally and logs both
# directions as fuzz chunks (dir byte, u16 BE length, bytes), first line the command.
import os, subprocess, sys, threading
cmd = sys.argv[-1]
log = open(os.environ["CAPTURE"], "wb")
log.write(cmd.encode() + b"\n")
lock = threading.Lock()
p = subprocess.Popen(["sh", "-c", cmd], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
def pump(src, dst, d):
    while True:
        b = os.read(src.fileno(), 4096)
        if not b:
            break
        with lock:
            log.write(bytes([d]) + len(b).to_bytes(2, "big") + b)
            log.flush()
        dst.write(b); dst.flush()
    try: dst.close()
    except Exception: pass
t1 = threading.Thread(target=pump, args=(sys.stdin.buffer, p.stdin, 0)); t1.start()
pump(p.stdout, sys.stdout.buffer, 1)
t1.join(timeout=5)
p.wait()
