#!/usr/bin/env python3
"""Writes the hand-made seed corpora (run from fuzz/; the scp seeds are captured instead,
see README.md). Chunks are a direction byte (0 = to the box, 1 = from it), a big-endian
u16 length and the bytes — the format `iks_gateway::fuzzing::chunks` reads."""
import json, os, struct

def chunk(d, b):
    out = b""
    while True:
        out += bytes([d]) + struct.pack(">H", min(len(b), 65535)) + b[:65535]
        b = b[65535:]
        if not b:
            return out

def write(target, name, data):
    with open(os.path.join("corpus", target, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())

# --- SFTP v3, in the order OpenSSH's sftp and sftp-server exchange them ---
def s(b): return struct.pack(">I", len(b)) + b
def pkt(ty, *fields):
    body = bytes([ty]) + b"".join(fields)
    return struct.pack(">I", len(body)) + body
u32 = lambda v: struct.pack(">I", v)
u64 = lambda v: struct.pack(">Q", v)
ATTRS0 = u32(0)
def status(i, code, msg): return pkt(101, u32(i), u32(code), s(msg), s(b""))
INIT = pkt(1, u32(3))
VERSION = pkt(2, u32(3), s(b"posix-rename@openssh.com"), s(b"1"), s(b"lsetstat@openssh.com"), s(b"1"),
              s(b"copy-data"), s(b"1"))

def session(steps):
    """steps: (client bytes, server bytes) pairs, sent in this order."""
    out = chunk(0, INIT) + chunk(1, VERSION)
    for c, sv in steps:
        if c: out += chunk(0, c)
        if sv: out += chunk(1, sv)
    return out

data = os.urandom(3000)
upload = session([
    (pkt(16, u32(1), s(b".")), pkt(104, u32(1), u32(1), s(b"/root"), s(b"/root"), ATTRS0)),
    (pkt(3, u32(2), s(b"/root/up.bin"), u32(0x1a), ATTRS0), pkt(102, u32(2), s(b"\x00\x00\x00\x01"))),
    (pkt(6, u32(3), s(b"\x00\x00\x00\x01"), u64(0), s(data[:2000])) +
     pkt(6, u32(4), s(b"\x00\x00\x00\x01"), u64(2000), s(data[2000:])), status(3, 0, b"Success") + status(4, 0, b"Success")),
    (pkt(10, u32(5), s(b"\x00\x00\x00\x01"), u32(4), u32(0o644)), status(5, 0, b"Success")),
    (pkt(4, u32(6), s(b"\x00\x00\x00\x01")), status(6, 0, b"Success")),
])
write("sftp", "upload", upload)
download = session([
    (pkt(17, u32(1), s(b"/etc/hostname")), pkt(105, u32(1), u32(4), u32(0o100644))),
    (pkt(3, u32(2), s(b"/etc/hostname"), u32(1), ATTRS0), pkt(102, u32(2), s(b"h0"))),
    (pkt(5, u32(3), s(b"h0"), u64(0), u32(32768)) + pkt(5, u32(4), s(b"h0"), u64(32768), u32(32768)),
     pkt(103, u32(3), s(b"iks-box\n")) + status(4, 1, b"End of file")),
    (pkt(4, u32(5), s(b"h0")), status(5, 0, b"Success")),
])
write("sftp", "download", download)
ops = session([
    (pkt(11, u32(1), s(b"/var/log")), pkt(102, u32(1), s(b"d1"))),
    (pkt(12, u32(2), s(b"d1")), pkt(104, u32(2), u32(1), s(b"syslog"), s(b"-rw-r----- 1 root adm 10 syslog"), ATTRS0)),
    (pkt(12, u32(3), s(b"d1")), status(3, 1, b"End of file")),
    (pkt(4, u32(4), s(b"d1")), status(4, 0, b"Success")),
    (pkt(14, u32(5), s(b"/tmp/new"), ATTRS0), status(5, 0, b"Success")),
    (pkt(18, u32(6), s(b"/tmp/a"), s(b"/tmp/b")), status(6, 2, b"No such file")),
    (pkt(200, u32(7), s(b"posix-rename@openssh.com"), s(b"/tmp/c"), s(b"/tmp/d")), status(7, 0, b"Success")),
    (pkt(20, u32(8), s(b"/etc/passwd"), s(b"/tmp/link")), status(8, 0, b"Success")),
    (pkt(9, u32(9), s(b"/tmp/new"), u32(4), u32(0o700)), status(9, 3, b"Permission denied")),
    (pkt(200, u32(10), s(b"lsetstat@openssh.com"), s(b"/tmp/link"), ATTRS0), status(10, 0, b"Success")),
    (pkt(13, u32(11), s(b"/tmp/d")), status(11, 0, b"Success")),
    (pkt(15, u32(12), s(b"/tmp/new")), status(12, 0, b"Success")),
    (pkt(3, u32(13), s(b"/tmp/copy"), u32(0x1a), ATTRS0), pkt(102, u32(13), s(b"c1"))),
    (pkt(200, u32(14), s(b"copy-data"), s(b"h9"), u64(0), u64(100), s(b"c1")), status(14, 0, b"Success")),
    (pkt(4, u32(15), s(b"c1")), status(15, 0, b"Success")),
])
write("sftp", "path_ops", ops)
write("sftp", "not_sftp", chunk(0, b"SSH-2.0-OpenSSH_9.6\r\n") + chunk(1, b"\x00\x00\x00\x05\x02"))

# --- user names and enrolment commands ---
for n, u in enumerate(["T-1042", "t-7+main-gw", "T-1042+gw.1_a", "iks-agent", "iks-agent-enroll",
                       "iks-agent-data:0123456789abcdef0123456789abcdef", "root",
                       'enroll iks-enroll-3f9c {"agent_version":"0.1.0","product":"iks-standard","version":"7.2",'
                       '"box_host_key":"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"}']):
    write("user_name", f"seed{n}", u)

# --- the agent's control channel ---
state = json.dumps({"agent_version": "0.1.0", "product": "iks-standard", "version": "7.2.1",
                    "remote_access_disabled": False})
write("agent_control", "states", chunk(1, (state + "\n")[:40].encode()) + chunk(1, (state + "\n")[40:].encode())
      + chunk(1, state.replace("false", "true").encode() + b"\n"))
write("agent_control", "dial", chunk(0, b'{"type":"dial","id":"0123456789abcdef0123456789abcdef"}\n'))

# --- recordings (asciicast v2 as the gateway writes them) ---
cast = [json.dumps({"version": 2, "width": 80, "height": 24, "timestamp": 1764000000, "title": "S-1 T-1042+main-gw"})]
events = [(0.0, "r", "120x30"), (0.01, "o", "root@iks:~# "), (0.5, "i", "ls /var/log\r"),
          (0.52, "o", "ls /var/log\r\n\x1b[0m\x1b[01;34mapt\x1b[0m  syslog  messages\r\n"), (0.6, "o", "root@iks:~# "),
          (1.0, "i", "vim\r"), (1.1, "o", "\x1b[?1049h\x1b[22;0;0t\x1b[1;30r\x1b[H\x1b[2J~\r\n~\r\n\x1b[30;1H\"[No Name]\""),
          (2.0, "o", "\x1b[?1049l\x1b[23;0;0t\r\n"), (2.1, "o", "\u0436\u0443\u0440\u043d\u0430\u043b \u2713\r\n"),
          (3.0, "o", "\r\n*** the grant ends in 5 minutes ***\r\n")]
write("cast", "session", "\n".join(cast + [json.dumps(list(e)) for e in events]) + "\n[3.5, \"o\", \"cut sh")

# --- API request bodies: first byte picks the endpoint (see fuzzing::api_body) ---
write("api_body", "open", b"\x00" + json.dumps({"inn": "7707083893", "contact_name": "Пётр Петров",
      "contact_phone": "+7 495 000-00-00", "product": "iks-standard", "version": "7.2",
      "description": "VPN tunnel does not come up", "topic": "configuration"}, ensure_ascii=False).encode())
write("api_body", "open_missing", b"\x00" + b'{"inn": "7707083894", "contact_nam": 5}')
write("api_body", "comment", b"\x01" + json.dumps({"author": "Иван", "from_customer": True, "body": "Attached"},
      ensure_ascii=False).encode())
write("api_body", "escalate", b"\x02" + b'{"note": "needs a developer"}')
write("api_body", "close", b"\x03" + b'{"reason": "fixed in 7.3"}')
write("api_body", "ticket_id", b"\x04T-1042")
write("api_body", "session_id", b"\x05S-7")

# --- configuration: the file, then NUL-separated IKS_* overrides ---
write("config", "overrides", '[ssh]\nlisten = "127.0.0.1:2022"\n[hours]\ntimezone = "Asia/Yekaterinburg"\n'
      'holidays = ["2026-01-01"]\n\0IKS_TICKETS_AUTOCLOSE_DAYS=14\0IKS_ACCESS_WARN_BEFORE=["10m", "1m"]')
