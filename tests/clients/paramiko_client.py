"""paramiko as the engineer's client, for what OpenSSH does not do (or does differently).

usage: paramiko_client.py PORT USER KEYFILE COMMAND [ARGS...]
  get REMOTE LOCAL         SFTP download with paramiko's prefetching get (many pipelined reads)
  subsystem-noreply NAME   a subsystem request sent without asking for an answer, then the
                           channel's stderr and exit status are printed as OpenSSH would
Exit status: 0 when the command did its job, 1 otherwise (with one line on stderr).
"""
import sys

import paramiko
from paramiko.common import cMSG_CHANNEL_REQUEST
from paramiko.message import Message


def connect(port, user, keyfile):
    transport = paramiko.Transport(("127.0.0.1", int(port)))
    transport.connect(username=user, pkey=paramiko.Ed25519Key.from_private_key_file(keyfile))
    return transport


def get(transport, remote, local):
    sftp = paramiko.SFTPClient.from_transport(transport)
    sftp.get(remote, local)
    sftp.close()


def subsystem_noreply(transport, name):
    channel = transport.open_session()
    m = Message()
    m.add_byte(cMSG_CHANNEL_REQUEST)
    m.add_int(channel.remote_chanid)
    m.add_string("subsystem")
    m.add_boolean(False)
    m.add_string(name)
    transport._send_user_message(m)
    channel.settimeout(20)
    err = b""
    while True:
        chunk = channel.recv_stderr(4096)
        if not chunk:
            break
        err += chunk
    sys.stderr.write(err.decode("utf-8", "replace"))
    return channel.recv_exit_status()


def main():
    port, user, keyfile, command, *args = sys.argv[1:]
    transport = connect(port, user, keyfile)
    try:
        if command == "get":
            get(transport, *args)
            return 0
        if command == "subsystem-noreply":
            return subsystem_noreply(transport, *args)
        sys.stderr.write(f"unknown command {command}\n")
        return 2
    finally:
        transport.close()


if __name__ == "__main__":
    sys.exit(main())
