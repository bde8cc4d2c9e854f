//! SFTP v3 tracker (draft-ietf-secsh-filexfer-02, the version OpenSSH's `sftp`, `sftp-server` and — since
//! OpenSSH 9 — `scp` speak).
//!
//! # Framing
//! Each direction has its own `Framer`: a 4-byte length, then a type byte and the body. The framer buffers
//! only a packet's *head* — at most [`PREFIX_CAP`] bytes, and for `WRITE`/`DATA` just the fixed fields before
//! the data — and skips or streams the rest. So a packet can be split anywhere, including inside the length,
//! a string or the payload, and memory does not grow with packet size.
//!
//! The tracker gives up for good ([`SftpTracker::gave_up`]) when the stream is not SFTP v3: the first client
//! packet is not `INIT`, the first server packet is not `VERSION`, the negotiated version is not 3 (later
//! versions change `OPEN`, `RENAME` and the attributes, and a wrong record is worse than none), a packet length
//! is 0, a `WRITE`/`DATA` claims more than [`MAX_DATA_PACKET`], or any other packet more than
//! [`MAX_CONTROL_PACKET`] (OpenSSH's own limit is 256 KiB). A packet that frames correctly but whose fields do
//! not parse is skipped: the length still tells where the next one starts. On giving up, the handles still
//! open are reported at once (from that `client_bytes`/`server_bytes` call) as incomplete transfers.
//!
//! # Matching requests and replies
//! Requests that can lead to an event are remembered by request id until their `STATUS`/`HANDLE`/`DATA` reply;
//! the rest (`STAT`, `READDIR`, `REALPATH`, …) are not stored at all. Callers must feed each direction in the
//! order the bytes crossed the gateway; a reply whose request was not seen is ignored.
//!
//! # Counting rules
//! - **Upload** (handle opened with `SSH_FXF_WRITE`, or any `WRITE` on it): `bytes` = data of `WRITE`s the
//!   server acknowledged with `OK`, plus — at [`SftpTracker::finish`], or when a reply could not be tracked —
//!   data of `WRITE`s still unacknowledged. A refused `WRITE` is not counted. The hash is computed while the
//!   `WRITE` data streams past (it cannot wait for the reply without buffering the data), so it is dropped
//!   (`None`) when a `WRITE` is refused, when a `WRITE`'s offset is not the sum of the earlier ones (resumed,
//!   parallel or out-of-order transfers get a size but no hash), or when `copy-data@openssh.com` writes into the
//!   handle server-side.
//! - **Download** (handle opened for reading, or any `READ` on it): `bytes` = all `DATA` payload the server sent
//!   for it; the hash covers `DATA` whose `READ` offset equals the bytes hashed so far. OpenSSH pipelines many
//!   `READ`s and servers answer in order, so this holds for normal transfers including the short final read; a
//!   short read in the middle makes the client re-request the gap, and the hash becomes `None` (reordering
//!   would need buffering the data). `EOF` on a `READ` is normal.
//! - `complete` is true when the `CLOSE` was acknowledged `OK`, no request on the handle was refused (other
//!   than `EOF`), and every request's reply was tracked. The event is emitted when the `CLOSE` reply arrives;
//!   handles still open at [`SftpTracker::finish`] are emitted with `complete: false`.
//! - A `READ`/`WRITE`/`FSETSTAT` on a handle never seen opened (the gateway attached late, or the `OPEN` was
//!   dropped by a cap) is recorded under the path `<unknown handle HEX>` rather than lost.
//!
//! # Other operations
//! `OPEN`, `OPENDIR`, `REMOVE`, `RENAME`, `MKDIR`, `RMDIR`, `SETSTAT`, `FSETSTAT` and `SYMLINK` (plus the
//! OpenSSH extensions `posix-rename@openssh.com` → Rename and `lsetstat@openssh.com` → Setstat) produce their
//! event on an `OK` status, `List` on `OPENDIR`'s `HANDLE` reply, and `Failed` on any status other than `OK`
//! or `EOF`. For `RENAME` failures `path` is the old path. Other extensions (e.g. `hardlink@openssh.com`) are
//! ignored. Requests still unanswered at `finish` produce nothing: their outcome is unknown.
//!
//! **`SYMLINK` argument order:** the draft says (linkpath, targetpath), but OpenSSH's `sftp-server` reads
//! (oldpath, newpath) and calls `symlink(oldpath, newpath)`, and OpenSSH's client sends them that way. We
//! record OpenSSH's meaning: first string = `target`, second = `link`.
//!
//! # Caps
//! At most [`MAX_HANDLES`] open file handles (handle strings longer than [`MAX_HANDLE_LEN`], the draft's limit,
//! are not tracked) and [`MAX_PENDING`] remembered requests whose stored paths/handles total at most
//! [`MAX_PENDING_BYTES`]. Beyond a cap the oldest entry is dropped and [`SftpTracker::evictions`] counts it: a
//! dropped handle is emitted at once as an incomplete Upload/Download; a dropped `READ`/`WRITE` marks its
//! handle incomplete; a dropped path operation loses its event. OpenSSH keeps well under these (64 requests in
//! flight), so only a hostile or broken client reaches them — and the count makes that visible.

use std::collections::{BTreeMap, HashMap};

use ring::digest::{Context, SHA256};

use super::{FileOp, hex_digest, len64, path_from_bytes, take};

/// Largest `WRITE`/`DATA` packet accepted: 16 MiB of data plus room for the header fields.
pub const MAX_DATA_PACKET: u64 = 16 * 1024 * 1024 + 4096;
/// Largest packet of any other type accepted.
pub const MAX_CONTROL_PACKET: u64 = 256 * 1024;
/// Most bytes of a packet's head that are buffered; the rest is skipped unread.
pub const PREFIX_CAP: usize = 64 * 1024;
/// Longest handle string tracked (draft-02: "MUST NOT be longer than 256 bytes").
pub const MAX_HANDLE_LEN: usize = 256;
/// Most file handles tracked at once.
pub const MAX_HANDLES: usize = 1024;
/// Most requests awaiting a reply that are remembered.
pub const MAX_PENDING: usize = 4096;
/// Most bytes of paths and handles held by remembered requests together.
pub const MAX_PENDING_BYTES: usize = 2 * 1024 * 1024;

const FXP_INIT: u8 = 1;
const FXP_VERSION: u8 = 2;
const FXP_OPEN: u8 = 3;
const FXP_CLOSE: u8 = 4;
const FXP_READ: u8 = 5;
const FXP_WRITE: u8 = 6;
const FXP_SETSTAT: u8 = 9;
const FXP_FSETSTAT: u8 = 10;
const FXP_OPENDIR: u8 = 11;
const FXP_REMOVE: u8 = 13;
const FXP_MKDIR: u8 = 14;
const FXP_RMDIR: u8 = 15;
const FXP_RENAME: u8 = 18;
const FXP_SYMLINK: u8 = 20;
const FXP_STATUS: u8 = 101;
const FXP_HANDLE: u8 = 102;
const FXP_DATA: u8 = 103;
const FXP_NAME: u8 = 104;
const FXP_ATTRS: u8 = 105;
const FXP_EXTENDED: u8 = 200;
const FXP_EXTENDED_REPLY: u8 = 201;

const FX_OK: u32 = 0;
const FX_EOF: u32 = 1;

const FXF_READ: u32 = 0x01;
const FXF_WRITE: u32 = 0x02;

/// The only protocol version whose request layouts this tracker knows.
const SUPPORTED_VERSION: u32 = 3;

/// Type byte + request id + a uint32 length: the head of `DATA`, and the part of `WRITE` before its handle.
const TYPE_ID_LEN: usize = 9;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Server,
}

/// The stream did not turn out to be SFTP v3.
struct GiveUp;

/// Tracks one SFTP session (one channel) and reports the file operations in it.
pub struct SftpTracker {
    client: Framer,
    server: Framer,
    core: Core,
    gave_up: bool,
}

impl Default for SftpTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl SftpTracker {
    pub fn new() -> Self {
        Self { client: Framer::new(), server: Framer::new(), core: Core::default(), gave_up: false }
    }

    /// Bytes the engineer's client sent to the server (requests). Returns ops completed by these bytes (usually
    /// none; ops complete on responses).
    pub fn client_bytes(&mut self, data: &[u8]) -> Vec<FileOp> {
        self.feed(Side::Client, data)
    }

    /// Bytes the server sent back (responses).
    pub fn server_bytes(&mut self, data: &[u8]) -> Vec<FileOp> {
        self.feed(Side::Server, data)
    }

    /// The channel closed: flush every still-open handle as an incomplete Upload/Download (complete: false).
    pub fn finish(&mut self) -> Vec<FileOp> {
        let mut out = Vec::new();
        self.core.flush_all(&mut out);
        out
    }

    /// True once the stream was found not to be SFTP (bad framing); the tracker then ignores further input.
    pub fn gave_up(&self) -> bool {
        self.gave_up
    }

    /// How many handles and remembered requests were dropped because of the caps (see the module docs).
    pub fn evictions(&self) -> u64 {
        self.core.evictions
    }

    fn feed(&mut self, side: Side, data: &[u8]) -> Vec<FileOp> {
        let mut out = Vec::new();
        if self.gave_up {
            return out;
        }
        let framer = match side {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        };
        if framer.feed(side, data, &mut self.core, &mut out).is_err() {
            self.gave_up = true;
            // Nothing more will be parsed: report what the open handles had as incomplete now rather than
            // leaving it to finish(), and drop the buffers.
            self.core.flush_all(&mut out);
            self.client = Framer::new();
            self.server = Framer::new();
        }
        out
    }

    /// Bytes the framers hold for packet heads: at most [`PREFIX_CAP`] per direction whatever the peers send
    /// (checked by the tests and the fuzz target).
    pub fn buffered(&self) -> usize {
        self.client.head.capacity().saturating_add(self.server.head.capacity())
    }
}

/// Where a framer is inside the current packet. Counters are u64 so that no wire value can overflow them.
enum Phase {
    /// Reading the 4-byte length; `have` bytes of it are in `buf`.
    Length { buf: [u8; 4], have: usize },
    /// Buffering the head of a packet of `len` bytes until it holds `want` bytes; `left` bytes of the packet
    /// have not been read yet.
    Head { len: u64, left: u64, want: usize },
    /// Streaming `data_left` payload bytes of a `WRITE`/`DATA` into the handle `sink`; `after` bytes of the
    /// packet follow the payload.
    Payload { id: u32, sink: Option<Vec<u8>>, data_len: u64, data_left: u64, after: u64 },
    /// Discarding the rest of a packet.
    Skip { left: u64 },
}

/// What to do with a packet head once it holds the bytes asked for.
enum Plan {
    /// Buffer the head up to this many bytes and ask again.
    Need(usize),
    /// The head is all that is needed: handle it and skip the rest.
    Packet,
    /// The head is complete and is followed by this many payload bytes to stream.
    Stream(u64),
    /// Nothing here is of interest (or it is malformed): skip the rest.
    Skip,
}

/// Per-direction packet splitter.
struct Framer {
    phase: Phase,
    head: Vec<u8>,
    /// Whether the first packet (INIT/VERSION) has been seen.
    started: bool,
}

impl Framer {
    fn new() -> Self {
        Self { phase: Phase::Length { buf: [0; 4], have: 0 }, head: Vec::new(), started: false }
    }

    fn feed(&mut self, side: Side, mut input: &[u8], core: &mut Core, out: &mut Vec<FileOp>) -> Result<(), GiveUp> {
        while !input.is_empty() {
            match &mut self.phase {
                Phase::Length { buf, have } => {
                    for &b in take(&mut input, len64_usize(buf.len().saturating_sub(*have))) {
                        if let Some(slot) = buf.get_mut(*have) {
                            *slot = b;
                        }
                        *have = have.saturating_add(1);
                    }
                    if *have >= buf.len() {
                        let len = u64::from(u32::from_be_bytes(*buf));
                        // Checked before anything is allocated: a hostile length costs nothing.
                        if len == 0 || len > MAX_DATA_PACKET {
                            return Err(GiveUp);
                        }
                        self.head.clear();
                        self.phase = Phase::Head { len, left: len, want: 1 };
                    }
                }
                Phase::Head { len, left, want } => {
                    let need = want.saturating_sub(self.head.len());
                    let chunk = take(&mut input, len64_usize(need).min(*left));
                    // Grow by doubling as usual, but never past what the head needs: plain doubling took a
                    // 65 536-byte head's buffer to 80 000 bytes, past PREFIX_CAP.
                    let wanted = self.head.len().saturating_add(chunk.len());
                    let target = self.head.capacity().saturating_mul(2).min(*want).max(wanted);
                    self.head.reserve_exact(target.saturating_sub(self.head.len()));
                    self.head.extend_from_slice(chunk);
                    *left = left.saturating_sub(len64(chunk));
                    if self.head.len() < *want {
                        continue;
                    }
                    let (len, left) = (*len, *left);
                    let plan = self.plan(side, len)?;
                    self.phase = match plan {
                        Plan::Need(n)
                            if n > self.head.len() && len64_usize(n.saturating_sub(self.head.len())) <= left =>
                        {
                            Phase::Head { len, left, want: n }
                        }
                        Plan::Need(_) | Plan::Skip => Phase::Skip { left },
                        Plan::Packet => {
                            core.packet(side, &self.head, out)?;
                            Phase::Skip { left }
                        }
                        Plan::Stream(data_len) if data_len <= left => {
                            let (id, sink) = core.begin_stream(side, &self.head, data_len, out);
                            let after = left.saturating_sub(data_len);
                            Phase::Payload { id, sink, data_len, data_left: data_len, after }
                        }
                        // The payload claims to run past the end of its packet: not a packet we can use.
                        Plan::Stream(_) => Phase::Skip { left },
                    };
                    if !matches!(self.phase, Phase::Head { .. }) {
                        self.shrink_head();
                    }
                }
                Phase::Payload { sink, data_left, .. } => {
                    let chunk = take(&mut input, *data_left);
                    *data_left = data_left.saturating_sub(len64(chunk));
                    core.stream(side, sink.as_deref(), chunk);
                }
                Phase::Skip { left } => {
                    let chunk = take(&mut input, *left);
                    *left = left.saturating_sub(len64(chunk));
                }
            }
            self.settle(side, core);
        }
        Ok(())
    }

    /// Closes whatever just ran out, without waiting for more input: a payload with no bytes left (including a
    /// zero-length WRITE, whose reply may come before the client sends anything else) and a fully read packet.
    fn settle(&mut self, side: Side, core: &mut Core) {
        if let Phase::Payload { id, sink, data_len, data_left: 0, after } = &mut self.phase {
            core.end_stream(side, *id, sink.take(), *data_len);
            self.phase = Phase::Skip { left: *after };
        }
        if let Phase::Skip { left: 0 } = self.phase {
            self.phase = Phase::Length { buf: [0; 4], have: 0 };
        }
    }

    /// Drops a large head buffer once it has been used, so an idle tracker holds little.
    fn shrink_head(&mut self) {
        if self.head.capacity() > 4096 {
            self.head = Vec::new();
        }
    }

    /// Decides how much of the packet head is needed, from the bytes buffered so far (at least the type byte).
    fn plan(&mut self, side: Side, len: u64) -> Result<Plan, GiveUp> {
        let Some(&ty) = self.head.first() else { return Ok(Plan::Need(1)) };
        if self.head.len() == 1 {
            if !self.started {
                self.started = true;
                let first = match side {
                    Side::Client => FXP_INIT,
                    Side::Server => FXP_VERSION,
                };
                if ty != first {
                    return Err(GiveUp);
                }
            }
            let is_data = matches!((side, ty), (Side::Client, FXP_WRITE) | (Side::Server, FXP_DATA));
            if !is_data && len > MAX_CONTROL_PACKET {
                return Err(GiveUp);
            }
        }
        let whole = usize::try_from(len).unwrap_or(usize::MAX).min(PREFIX_CAP);
        let need_whole = |have: usize| if have < whole { Plan::Need(whole) } else { Plan::Packet };
        let have = self.head.len();
        Ok(match (side, ty) {
            (Side::Client, FXP_WRITE) => {
                // type, id, handle length; then the handle, offset (u64) and data length (u32).
                if have < TYPE_ID_LEN {
                    return Ok(Plan::Need(TYPE_ID_LEN));
                }
                let handle_len = be_u32(self.head.get(5..9)).and_then(|n| usize::try_from(n).ok());
                match handle_len {
                    Some(h) if h <= MAX_HANDLE_LEN => {
                        let full = TYPE_ID_LEN.saturating_add(h).saturating_add(12);
                        if have < full {
                            Plan::Need(full)
                        } else {
                            be_u32(self.head.get(full.saturating_sub(4)..full))
                                .map_or(Plan::Skip, |n| Plan::Stream(n.into()))
                        }
                    }
                    _ => Plan::Skip,
                }
            }
            (Side::Server, FXP_DATA) => {
                if have < TYPE_ID_LEN {
                    Plan::Need(TYPE_ID_LEN)
                } else {
                    be_u32(self.head.get(5..9)).map_or(Plan::Skip, |n| Plan::Stream(n.into()))
                }
            }
            // Replies we only need the request id of, to forget the request.
            (Side::Server, FXP_NAME | FXP_ATTRS | FXP_EXTENDED_REPLY) => {
                if have < 5 {
                    Plan::Need(5)
                } else {
                    Plan::Packet
                }
            }
            (Side::Server, FXP_VERSION | FXP_STATUS | FXP_HANDLE) => need_whole(have),
            (
                Side::Client,
                FXP_INIT | FXP_OPEN | FXP_CLOSE | FXP_READ | FXP_SETSTAT | FXP_FSETSTAT | FXP_OPENDIR | FXP_REMOVE
                | FXP_MKDIR | FXP_RMDIR | FXP_RENAME | FXP_SYMLINK | FXP_EXTENDED,
            ) => need_whole(have),
            _ => Plan::Skip,
        })
    }
}

fn len64_usize(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn be_u32(bytes: Option<&[u8]>) -> Option<u32> {
    Some(u32::from_be_bytes(bytes?.try_into().ok()?))
}

/// Cursor over a buffered packet head; every read is checked and yields `None` past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn u32(&mut self) -> Option<u32> {
        let (bytes, rest) = self.0.split_first_chunk::<4>()?;
        self.0 = rest;
        Some(u32::from_be_bytes(*bytes))
    }

    fn u64(&mut self) -> Option<u64> {
        let (bytes, rest) = self.0.split_first_chunk::<8>()?;
        self.0 = rest;
        Some(u64::from_be_bytes(*bytes))
    }

    fn string(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.u32()?).ok()?;
        let (s, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(s)
    }

    fn path(&mut self) -> Option<String> {
        self.string().map(path_from_bytes)
    }

    fn handle(&mut self) -> Option<Vec<u8>> {
        self.string().filter(|h| h.len() <= MAX_HANDLE_LEN).map(<[u8]>::to_vec)
    }
}

/// Data flowing one way through a handle.
struct Flow {
    /// SHA-256 of the bytes so far; `None` once they stopped being sequential from offset 0.
    hasher: Option<Context>,
    /// Offset the next sequential request must have.
    next_offset: u64,
    /// Bytes counted: acknowledged writes, or received data.
    done: u64,
    /// Write data sent whose reply has not (yet) been matched.
    unacked: u64,
    /// Requests seen (READ or WRITE).
    requests: u64,
    /// False once a request was refused or its reply could not be tracked.
    clean: bool,
}

impl Flow {
    fn new() -> Self {
        Self { hasher: Some(Context::new(&SHA256)), next_offset: 0, done: 0, unacked: 0, requests: 0, clean: true }
    }

    /// `len` bytes at `offset` (a WRITE, or the DATA of a READ): the hash survives only if they continue
    /// exactly where the bytes hashed so far end.
    fn continues(&mut self, offset: u64, len: u64) {
        match offset.checked_add(len) {
            Some(end) if offset == self.next_offset => self.next_offset = end,
            _ => self.hasher = None,
        }
    }

    fn update(&mut self, data: &[u8]) {
        if let Some(h) = &mut self.hasher {
            h.update(data);
        }
    }

    fn digest(&mut self) -> Option<String> {
        self.hasher.take().map(hex_digest)
    }
}

struct Handle {
    seq: u64,
    path: String,
    flags: u32,
    write: Flow,
    read: Flow,
}

impl Handle {
    fn new(seq: u64, path: String, flags: u32) -> Self {
        Self { seq, path, flags, write: Flow::new(), read: Flow::new() }
    }

    /// The events for a handle that is going away. A handle that was both written and read gives both.
    fn into_events(mut self, closed_ok: bool, out: &mut Vec<FileOp>) {
        let wrote = self.write.requests > 0;
        let read = self.read.requests > 0;
        let upload = wrote || (self.flags & FXF_WRITE != 0 && !read);
        // Read-only handles (including OPEN with neither flag) report a download even when nothing was read.
        let download = read || !upload || (self.flags & FXF_READ != 0 && self.flags & FXF_WRITE == 0);
        if upload {
            let w = &mut self.write;
            out.push(FileOp::Upload {
                path: self.path.clone(),
                bytes: w.done.saturating_add(w.unacked),
                sha256: w.digest(),
                complete: closed_ok && w.clean && w.unacked == 0,
            });
        }
        if download {
            let r = &mut self.read;
            out.push(FileOp::Download {
                path: self.path,
                bytes: r.done,
                sha256: r.digest(),
                complete: closed_ok && r.clean,
            });
        }
    }
}

/// The operations that take a single path and answer with a plain status.
#[derive(Debug, Clone, Copy)]
enum PathOp {
    Remove,
    Mkdir,
    Rmdir,
    Setstat,
}

impl PathOp {
    fn name(self) -> &'static str {
        match self {
            PathOp::Remove => "remove",
            PathOp::Mkdir => "mkdir",
            PathOp::Rmdir => "rmdir",
            PathOp::Setstat => "setstat",
        }
    }

    fn event(self, path: String) -> FileOp {
        match self {
            PathOp::Remove => FileOp::Remove { path },
            PathOp::Mkdir => FileOp::Mkdir { path },
            PathOp::Rmdir => FileOp::Rmdir { path },
            PathOp::Setstat => FileOp::Setstat { path },
        }
    }
}

/// A request awaiting its reply.
enum Pending {
    Open { path: String, flags: u32 },
    OpenDir { path: String },
    Close { handle: Vec<u8> },
    Read { handle: Vec<u8>, offset: u64 },
    Write { handle: Vec<u8>, len: u64 },
    Fsetstat { handle: Vec<u8> },
    CopyData { handle: Vec<u8>, len: u64 },
    Path { op: PathOp, path: String },
    Rename { from: String, to: String },
    Symlink { link: String, target: String },
}

impl Pending {
    /// Heap bytes held, for the [`MAX_PENDING_BYTES`] budget.
    fn weight(&self) -> usize {
        match self {
            Pending::Open { path, .. } | Pending::OpenDir { path } | Pending::Path { path, .. } => path.len(),
            Pending::Close { handle }
            | Pending::Read { handle, .. }
            | Pending::Write { handle, .. }
            | Pending::Fsetstat { handle }
            | Pending::CopyData { handle, .. } => handle.len(),
            Pending::Rename { from: a, to: b } | Pending::Symlink { link: a, target: b } => {
                a.len().saturating_add(b.len())
            }
        }
    }
}

/// State shared by both directions: open handles and requests awaiting replies.
#[derive(Default)]
struct Core {
    handles: HashMap<Vec<u8>, Handle>,
    /// Handles by age, oldest first (for eviction and a deterministic finish order).
    handle_order: BTreeMap<u64, Vec<u8>>,
    pending: HashMap<u32, (u64, Pending)>,
    /// Pending request ids by age, oldest first.
    pending_order: BTreeMap<u64, u32>,
    pending_bytes: usize,
    seq: u64,
    evictions: u64,
    version_checked: bool,
}

impl Core {
    fn next_seq(&mut self) -> u64 {
        self.seq = self.seq.saturating_add(1);
        self.seq
    }

    /// A packet fully described by its head.
    fn packet(&mut self, side: Side, head: &[u8], out: &mut Vec<FileOp>) -> Result<(), GiveUp> {
        let mut r = Reader(head);
        let Some(ty) = r.u8() else { return Ok(()) };
        match side {
            Side::Client => {
                // A request that does not parse is one the server will reject too: nothing to record.
                let _ = self.request(ty, &mut r, out);
                Ok(())
            }
            Side::Server => self.reply(ty, &mut r, out),
        }
    }

    fn request(&mut self, ty: u8, r: &mut Reader<'_>, out: &mut Vec<FileOp>) -> Option<()> {
        if ty == FXP_INIT {
            return Some(());
        }
        let id = r.u32()?;
        let pending = match ty {
            FXP_OPEN => {
                let path = r.path()?;
                Pending::Open { path, flags: r.u32()? }
            }
            FXP_CLOSE => Pending::Close { handle: r.handle()? },
            FXP_READ => {
                let handle = r.handle()?;
                let offset = r.u64()?;
                // The length asked for is not needed: DATA says how much was read.
                let _len = r.u32()?;
                self.ensure_handle(&handle, FXF_READ, out);
                if let Some(h) = self.handles.get_mut(&handle) {
                    h.read.requests = h.read.requests.saturating_add(1);
                }
                Pending::Read { handle, offset }
            }
            FXP_SETSTAT => Pending::Path { op: PathOp::Setstat, path: r.path()? },
            FXP_FSETSTAT => Pending::Fsetstat { handle: r.handle()? },
            FXP_OPENDIR => Pending::OpenDir { path: r.path()? },
            FXP_REMOVE => Pending::Path { op: PathOp::Remove, path: r.path()? },
            FXP_MKDIR => Pending::Path { op: PathOp::Mkdir, path: r.path()? },
            FXP_RMDIR => Pending::Path { op: PathOp::Rmdir, path: r.path()? },
            FXP_RENAME => {
                let from = r.path()?;
                Pending::Rename { from, to: r.path()? }
            }
            FXP_SYMLINK => {
                // OpenSSH order (see the module docs): target first, then the link to create.
                let target = r.path()?;
                Pending::Symlink { link: r.path()?, target }
            }
            FXP_EXTENDED => match r.string()? {
                b"posix-rename@openssh.com" => {
                    let from = r.path()?;
                    Pending::Rename { from, to: r.path()? }
                }
                b"lsetstat@openssh.com" => Pending::Path { op: PathOp::Setstat, path: r.path()? },
                b"copy-data" => {
                    // Server-side copy into a write handle: data the gateway never sees, so no hash.
                    let _src = r.handle()?;
                    let _src_offset = r.u64()?;
                    let len = r.u64()?;
                    let handle = r.handle()?;
                    self.ensure_handle(&handle, FXF_WRITE, out);
                    if let Some(h) = self.handles.get_mut(&handle) {
                        h.write.hasher = None;
                        h.write.requests = h.write.requests.saturating_add(1);
                    }
                    Pending::CopyData { handle, len }
                }
                _ => return Some(()),
            },
            _ => return Some(()),
        };
        self.remember(id, pending);
        Some(())
    }

    fn reply(&mut self, ty: u8, r: &mut Reader<'_>, out: &mut Vec<FileOp>) -> Result<(), GiveUp> {
        if ty == FXP_VERSION {
            // The framer guarantees the first server packet is VERSION; a later one is a protocol error we ignore.
            if self.version_checked {
                return Ok(());
            }
            self.version_checked = true;
            return if r.u32() == Some(SUPPORTED_VERSION) { Ok(()) } else { Err(GiveUp) };
        }
        let Some(id) = r.u32() else { return Ok(()) };
        let Some(pending) = self.forget(id) else { return Ok(()) };
        match ty {
            FXP_STATUS => {
                let code = r.u32().unwrap_or(u32::MAX);
                // Very old servers omit the message; keep what parses.
                let message = r.string().map(path_from_bytes).unwrap_or_default();
                self.status(pending, code, message, out);
            }
            FXP_HANDLE => match (pending, r.handle()) {
                (Pending::Open { path, flags }, Some(handle)) => {
                    let seq = self.next_seq();
                    self.insert_handle(handle, Handle::new(seq, path, flags), out);
                }
                (Pending::OpenDir { path }, Some(_)) => out.push(FileOp::List { path }),
                (other, _) => self.abandon(other),
            },
            _ => self.abandon(pending),
        }
        Ok(())
    }

    fn status(&mut self, pending: Pending, code: u32, message: String, out: &mut Vec<FileOp>) {
        let ok = code == FX_OK;
        let failed = code != FX_OK && code != FX_EOF;
        let fail = |op: &str, path: String| FileOp::Failed { op: op.to_owned(), path, status: code, message };
        match pending {
            Pending::Open { path, .. } if failed => out.push(fail("open", path)),
            Pending::OpenDir { path } if failed => out.push(fail("opendir", path)),
            Pending::Open { .. } | Pending::OpenDir { .. } => {}
            Pending::Close { handle } => {
                if let Some(h) = self.remove_handle(&handle) {
                    h.into_events(ok, out);
                }
            }
            Pending::Read { handle, .. } => {
                if let Some(h) = self.handles.get_mut(&handle)
                    && failed
                {
                    h.read.clean = false;
                }
            }
            Pending::Write { handle, len } => {
                if let Some(h) = self.handles.get_mut(&handle) {
                    h.write.unacked = h.write.unacked.saturating_sub(len);
                    if ok {
                        h.write.done = h.write.done.saturating_add(len);
                    } else {
                        // The hash already includes this data, but the server did not store it.
                        h.write.hasher = None;
                        h.write.clean = false;
                    }
                }
            }
            Pending::CopyData { handle, len } => {
                if let Some(h) = self.handles.get_mut(&handle) {
                    if ok {
                        h.write.done = h.write.done.saturating_add(len);
                    }
                    // Length 0 means "until EOF": the amount copied is unknown.
                    if !ok || len == 0 {
                        h.write.clean = false;
                    }
                }
            }
            Pending::Fsetstat { handle } => {
                let path = self.handle_path(&handle);
                if ok {
                    out.push(FileOp::Setstat { path });
                } else if failed {
                    out.push(fail("setstat", path));
                }
            }
            Pending::Path { op, path } => {
                if ok {
                    out.push(op.event(path));
                } else if failed {
                    out.push(fail(op.name(), path));
                }
            }
            Pending::Rename { from, to } => {
                if ok {
                    out.push(FileOp::Rename { from, to });
                } else if failed {
                    out.push(fail("rename", from));
                }
            }
            Pending::Symlink { link, target } => {
                if ok {
                    out.push(FileOp::Symlink { link, target });
                } else if failed {
                    out.push(fail("symlink", link));
                }
            }
        }
    }

    /// Parses a `WRITE`/`DATA` head and returns the request id and the handle the payload belongs to.
    fn begin_stream(
        &mut self,
        side: Side,
        head: &[u8],
        data_len: u64,
        out: &mut Vec<FileOp>,
    ) -> (u32, Option<Vec<u8>>) {
        let mut r = Reader(head.get(1..).unwrap_or_default());
        let Some(id) = r.u32() else { return (0, None) };
        match side {
            Side::Client => {
                // WRITE: id, handle, offset, data length (already taken by the framer).
                let (Some(handle), Some(offset)) = (r.handle(), r.u64()) else { return (id, None) };
                self.ensure_handle(&handle, FXF_WRITE, out);
                if let Some(h) = self.handles.get_mut(&handle) {
                    h.write.requests = h.write.requests.saturating_add(1);
                    h.write.continues(offset, data_len);
                }
                (id, Some(handle))
            }
            Side::Server => match self.forget(id) {
                Some(Pending::Read { handle, offset }) => match self.handles.get_mut(&handle) {
                    Some(h) => {
                        h.read.continues(offset, data_len);
                        (id, Some(handle))
                    }
                    None => (id, None),
                },
                Some(other) => {
                    self.abandon(other);
                    (id, None)
                }
                None => (id, None),
            },
        }
    }

    /// Payload bytes of the current `WRITE`/`DATA`.
    fn stream(&mut self, side: Side, sink: Option<&[u8]>, chunk: &[u8]) {
        let Some(h) = sink.and_then(|k| self.handles.get_mut(k)) else { return };
        match side {
            Side::Client => {
                h.write.update(chunk);
                h.write.unacked = h.write.unacked.saturating_add(len64(chunk));
            }
            Side::Server => {
                h.read.update(chunk);
                h.read.done = h.read.done.saturating_add(len64(chunk));
            }
        }
    }

    /// The payload is complete. Only now is a `WRITE` remembered: a reply cannot legitimately precede its data.
    fn end_stream(&mut self, side: Side, id: u32, sink: Option<Vec<u8>>, len: u64) {
        if let (Side::Client, Some(handle)) = (side, sink) {
            self.remember(id, Pending::Write { handle, len });
        }
    }

    /// Makes sure a READ/WRITE/copy-data handle is tracked: one never seen opened (the gateway attached late, or
    /// the OPEN was dropped by a cap) gets a placeholder path so its data is still recorded.
    fn ensure_handle(&mut self, handle: &[u8], flags: u32, out: &mut Vec<FileOp>) {
        if !self.handles.contains_key(handle) {
            let seq = self.next_seq();
            self.insert_handle(handle.to_vec(), Handle::new(seq, unknown_handle_path(handle), flags), out);
        }
    }

    fn handle_path(&self, handle: &[u8]) -> String {
        self.handles.get(handle).map_or_else(|| unknown_handle_path(handle), |h| h.path.clone())
    }

    fn insert_handle(&mut self, key: Vec<u8>, handle: Handle, out: &mut Vec<FileOp>) {
        // A server reusing a handle string we think is open: the old file's CLOSE reply was missed.
        if let Some(old) = self.remove_handle(&key) {
            old.into_events(false, out);
        }
        while self.handles.len() >= MAX_HANDLES {
            let Some((_, oldest)) = self.handle_order.pop_first() else { break };
            if let Some(old) = self.handles.remove(&oldest) {
                self.evictions = self.evictions.saturating_add(1);
                old.into_events(false, out);
            }
        }
        self.handle_order.insert(handle.seq, key.clone());
        self.handles.insert(key, handle);
    }

    fn remove_handle(&mut self, key: &[u8]) -> Option<Handle> {
        let h = self.handles.remove(key)?;
        self.handle_order.remove(&h.seq);
        Some(h)
    }

    fn remember(&mut self, id: u32, pending: Pending) {
        // A reused id replaces the request still waiting under it, whose reply can no longer be told apart.
        if let Some(old) = self.forget(id) {
            self.abandon(old);
        }
        let weight = pending.weight();
        while self.pending.len() >= MAX_PENDING || self.pending_bytes.saturating_add(weight) > MAX_PENDING_BYTES {
            let Some((_, oldest)) = self.pending_order.first_key_value().map(|(&s, &i)| (s, i)) else { break };
            match self.forget(oldest) {
                Some(old) => {
                    self.evictions = self.evictions.saturating_add(1);
                    self.abandon(old);
                }
                // Cannot happen (the order map mirrors the pending map), but never loop forever.
                None => {
                    self.pending_order.pop_first();
                }
            }
        }
        let seq = self.next_seq();
        self.pending_bytes = self.pending_bytes.saturating_add(weight);
        self.pending_order.insert(seq, id);
        self.pending.insert(id, (seq, pending));
    }

    fn forget(&mut self, id: u32) -> Option<Pending> {
        let (seq, pending) = self.pending.remove(&id)?;
        self.pending_order.remove(&seq);
        self.pending_bytes = self.pending_bytes.saturating_sub(pending.weight());
        Some(pending)
    }

    /// A request whose reply will never be matched: its handle's figures can no longer be complete.
    fn abandon(&mut self, pending: Pending) {
        match pending {
            Pending::Read { handle, .. } => {
                if let Some(h) = self.handles.get_mut(&handle) {
                    h.read.clean = false;
                }
            }
            Pending::Write { handle, .. } | Pending::CopyData { handle, .. } => {
                if let Some(h) = self.handles.get_mut(&handle) {
                    h.write.clean = false;
                }
            }
            _ => {}
        }
    }

    /// Emits every open handle as incomplete, oldest first, and forgets all state.
    fn flush_all(&mut self, out: &mut Vec<FileOp>) {
        let order = std::mem::take(&mut self.handle_order);
        for key in order.into_values() {
            if let Some(h) = self.handles.remove(&key) {
                h.into_events(false, out);
            }
        }
        self.handles.clear();
        self.pending.clear();
        self.pending_order.clear();
        self.pending_bytes = 0;
    }
}

fn unknown_handle_path(handle: &[u8]) -> String {
    format!("<unknown handle {}>", hex::encode(handle))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::arithmetic_side_effects, clippy::panic)]
mod tests {
    use super::*;

    const CREATE: u32 = FXF_WRITE | 0x08 | 0x10; // WRITE | CREAT | TRUNC

    /// Encodes one SFTP packet: uint32 length, type byte, then the fields pushed.
    struct Pkt(Vec<u8>);

    impl Pkt {
        fn new(ty: u8) -> Self {
            Pkt(vec![ty])
        }
        fn u32(mut self, v: u32) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn u64(mut self, v: u64) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn str(self, s: impl AsRef<[u8]>) -> Self {
            let s = s.as_ref();
            let mut p = self.u32(s.len() as u32);
            p.0.extend_from_slice(s);
            p
        }
        fn done(self) -> Vec<u8> {
            let mut out = (self.0.len() as u32).to_be_bytes().to_vec();
            out.extend_from_slice(&self.0);
            out
        }
    }

    fn init() -> Vec<u8> {
        Pkt::new(FXP_INIT).u32(3).done()
    }
    fn version() -> Vec<u8> {
        Pkt::new(FXP_VERSION).u32(3).str("posix-rename@openssh.com").str("1").done()
    }
    fn open(id: u32, path: &str, flags: u32) -> Vec<u8> {
        Pkt::new(FXP_OPEN).u32(id).str(path).u32(flags).u32(0).done()
    }
    fn handle(id: u32, h: &str) -> Vec<u8> {
        Pkt::new(FXP_HANDLE).u32(id).str(h).done()
    }
    fn status(id: u32, code: u32, msg: &str) -> Vec<u8> {
        Pkt::new(FXP_STATUS).u32(id).u32(code).str(msg).str("").done()
    }
    fn ok(id: u32) -> Vec<u8> {
        status(id, FX_OK, "Success")
    }
    fn write(id: u32, h: &str, offset: u64, data: &[u8]) -> Vec<u8> {
        Pkt::new(FXP_WRITE).u32(id).str(h).u64(offset).str(data).done()
    }
    fn read(id: u32, h: &str, offset: u64, len: u32) -> Vec<u8> {
        Pkt::new(FXP_READ).u32(id).str(h).u64(offset).u32(len).done()
    }
    fn data(id: u32, bytes: &[u8]) -> Vec<u8> {
        Pkt::new(FXP_DATA).u32(id).str(bytes).done()
    }
    fn close(id: u32, h: &str) -> Vec<u8> {
        Pkt::new(FXP_CLOSE).u32(id).str(h).done()
    }
    fn path_req(ty: u8, id: u32, path: &str) -> Vec<u8> {
        Pkt::new(ty).u32(id).str(path).u32(0).done()
    }
    fn two_paths(ty: u8, id: u32, a: &str, b: &str) -> Vec<u8> {
        Pkt::new(ty).u32(id).str(a).str(b).done()
    }
    fn extended(id: u32, name: &str, a: &str, b: &str) -> Vec<u8> {
        Pkt::new(FXP_EXTENDED).u32(id).str(name).str(a).str(b).done()
    }

    fn sha(data: &[u8]) -> String {
        hex::encode(ring::digest::digest(&SHA256, data))
    }

    fn payload(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    use Side::{Client as C, Server as S};

    /// Feeds a transcript in causal order. Consecutive steps of one side are coalesced into one chunk (several
    /// packets per read), then chunks are cut wherever `cut(global_offset)` says. Returns events incl. finish().
    fn run_with(steps: &[(Side, Vec<u8>)], cut: impl Fn(usize) -> bool) -> (Vec<FileOp>, SftpTracker) {
        let mut merged: Vec<(Side, Vec<u8>)> = Vec::new();
        for (side, bytes) in steps {
            match merged.last_mut() {
                Some((s, b)) if s == side => b.extend_from_slice(bytes),
                _ => merged.push((*side, bytes.clone())),
            }
        }
        let mut t = SftpTracker::new();
        let mut out = Vec::new();
        let mut pos = 0;
        for (side, bytes) in &merged {
            let mut feed = |chunk: &[u8]| {
                let ops = match side {
                    C => t.client_bytes(chunk),
                    S => t.server_bytes(chunk),
                };
                out.extend(ops);
            };
            let mut start = 0;
            for i in 1..bytes.len() {
                if cut(pos + i) {
                    feed(&bytes[start..i]);
                    start = i;
                }
            }
            feed(&bytes[start..]);
            pos += bytes.len();
        }
        out.extend(t.finish());
        (out, t)
    }

    fn run(steps: &[(Side, Vec<u8>)]) -> Vec<FileOp> {
        let (out, t) = run_with(steps, |_| false);
        assert!(!t.gave_up());
        out
    }

    /// Same events whatever the chunking: every single cut point, and byte by byte.
    fn assert_split_invariant(steps: &[(Side, Vec<u8>)], expected: &[FileOp]) {
        assert_eq!(run(steps), expected, "whole chunks");
        let total: usize = steps.iter().map(|(_, b)| b.len()).sum();
        for k in 1..total {
            let (out, t) = run_with(steps, |p| p == k);
            assert_eq!(out, expected, "cut at {k}");
            assert!(!t.gave_up());
        }
        let (out, _) = run_with(steps, |_| true);
        assert_eq!(out, expected, "byte by byte");
        // Two cuts at pseudo-random places, to split inside lengths and payloads at once.
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..200 {
            let (a, b) = (rng.below(total), rng.below(total));
            let (out, _) = run_with(steps, |p| p == a || p == b);
            assert_eq!(out, expected, "cuts at {a} and {b}");
        }
    }

    fn upload_steps(parts: &[&[u8]]) -> Vec<(Side, Vec<u8>)> {
        let mut steps = vec![(C, init()), (S, version()), (C, open(1, "/srv/up.bin", CREATE)), (S, handle(1, "H1"))];
        let mut offset = 0;
        for (i, p) in parts.iter().enumerate() {
            steps.push((C, write(10 + i as u32, "H1", offset, p)));
            offset += p.len() as u64;
        }
        for i in 0..parts.len() {
            steps.push((S, ok(10 + i as u32)));
        }
        steps.push((C, close(99, "H1")));
        steps.push((S, ok(99)));
        steps
    }

    #[test]
    fn upload_three_writes_any_chunking() {
        let (a, b, c) = (payload(7, 1), payload(300, 2), payload(1, 3));
        let steps = upload_steps(&[&a, &b, &c]);
        let whole = [a.as_slice(), &b, &c].concat();
        let expected =
            vec![FileOp::Upload { path: "/srv/up.bin".into(), bytes: 308, sha256: Some(sha(&whole)), complete: true }];
        assert_split_invariant(&steps, &expected);
    }

    #[test]
    fn empty_upload_has_empty_hash() {
        let steps = upload_steps(&[]);
        assert_eq!(
            run(&steps),
            vec![FileOp::Upload { path: "/srv/up.bin".into(), bytes: 0, sha256: Some(sha(b"")), complete: true }]
        );
    }

    #[test]
    fn download_pipelined_with_short_final_read() {
        let file = payload(25, 9);
        let steps = vec![
            (C, init()),
            (S, version()),
            (C, open(1, "/etc/hosts", FXF_READ)),
            (S, handle(1, "HD")),
            (C, read(2, "HD", 0, 10)),
            (C, read(3, "HD", 10, 10)),
            (C, read(4, "HD", 20, 10)),
            (C, read(5, "HD", 30, 10)),
            (S, data(2, &file[..10])),
            (S, data(3, &file[10..20])),
            (S, data(4, &file[20..])),
            (S, status(5, FX_EOF, "End of file")),
            (C, close(6, "HD")),
            (S, ok(6)),
        ];
        let expected =
            vec![FileOp::Download { path: "/etc/hosts".into(), bytes: 25, sha256: Some(sha(&file)), complete: true }];
        assert_split_invariant(&steps, &expected);
    }

    #[test]
    fn download_with_gap_has_no_hash() {
        // A short read mid-file makes OpenSSH re-request the gap after later data arrived: order is lost.
        let file = payload(30, 4);
        let steps = vec![
            (C, init()),
            (S, version()),
            (C, open(1, "/f", FXF_READ)),
            (S, handle(1, "H")),
            (C, read(2, "H", 0, 10)),
            (C, read(3, "H", 10, 10)),
            (S, data(2, &file[..5])),
            (S, data(3, &file[10..20])),
            (C, read(4, "H", 5, 5)),
            (S, data(4, &file[5..10])),
            (C, close(5, "H")),
            (S, ok(5)),
        ];
        assert_eq!(run(&steps), vec![FileOp::Download { path: "/f".into(), bytes: 20, sha256: None, complete: true }]);
    }

    #[test]
    fn zero_length_write_at_the_end_of_a_chunk() {
        let steps = vec![
            (C, init()),
            (S, version()),
            (C, open(1, "/z", CREATE)),
            (S, handle(1, "H")),
            (C, write(2, "H", 0, b"")),
            (S, ok(2)),
            (C, close(3, "H")),
            (S, ok(3)),
        ];
        let expected = vec![FileOp::Upload { path: "/z".into(), bytes: 0, sha256: Some(sha(b"")), complete: true }];
        assert_split_invariant(&steps, &expected);
    }

    #[test]
    fn non_sequential_write_has_no_hash() {
        let steps = vec![
            (C, init()),
            (S, version()),
            (C, open(1, "/srv/resume", FXF_WRITE)),
            (S, handle(1, "H")),
            (C, write(2, "H", 0, b"hello")),
            (C, write(3, "H", 10, b"world")),
            (S, ok(2)),
            (S, ok(3)),
            (C, close(4, "H")),
            (S, ok(4)),
        ];
        assert_eq!(
            run(&steps),
            vec![FileOp::Upload { path: "/srv/resume".into(), bytes: 10, sha256: None, complete: true }]
        );
    }

    #[test]
    fn refused_write_is_not_counted() {
        let steps = vec![
            (C, init()),
            (S, version()),
            (C, open(1, "/full", CREATE)),
            (S, handle(1, "H")),
            (C, write(2, "H", 0, b"abc")),
            (C, write(3, "H", 3, b"def")),
            (S, ok(2)),
            (S, status(3, 4, "No space left on device")),
            (C, close(4, "H")),
            (S, ok(4)),
        ];
        assert_eq!(run(&steps), vec![FileOp::Upload { path: "/full".into(), bytes: 3, sha256: None, complete: false }]);
    }

    #[test]
    fn read_error_makes_download_incomplete() {
        let steps = vec![
            (C, init()),
            (S, version()),
            (C, open(1, "/dev/bad", FXF_READ)),
            (S, handle(1, "H")),
            (C, read(2, "H", 0, 10)),
            (S, status(2, 4, "Input/output error")),
            (C, close(3, "H")),
            (S, ok(3)),
        ];
        assert_eq!(
            run(&steps),
            vec![FileOp::Download { path: "/dev/bad".into(), bytes: 0, sha256: Some(sha(b"")), complete: false }]
        );
    }

    #[test]
    fn failed_open() {
        let steps = vec![
            (C, init()),
            (S, version()),
            (C, open(1, "/root/secret", CREATE)),
            (S, status(1, 3, "Permission denied")),
        ];
        assert_eq!(
            run(&steps),
            vec![FileOp::Failed {
                op: "open".into(),
                path: "/root/secret".into(),
                status: 3,
                message: "Permission denied".into()
            }]
        );
    }

    #[test]
    fn path_operations() {
        let failed = |op: &str, path: &str, status: u32| FileOp::Failed {
            op: op.into(),
            path: path.into(),
            status,
            message: "nope".into(),
        };
        let table: Vec<(Vec<u8>, Vec<u8>, Vec<FileOp>)> = vec![
            (path_req(FXP_REMOVE, 7, "/tmp/a"), ok(7), vec![FileOp::Remove { path: "/tmp/a".into() }]),
            (path_req(FXP_REMOVE, 7, "/tmp/a"), status(7, 2, "nope"), vec![failed("remove", "/tmp/a", 2)]),
            (two_paths(FXP_RENAME, 7, "/a", "/b"), ok(7), vec![FileOp::Rename { from: "/a".into(), to: "/b".into() }]),
            (two_paths(FXP_RENAME, 7, "/a", "/b"), status(7, 4, "nope"), vec![failed("rename", "/a", 4)]),
            (
                extended(7, "posix-rename@openssh.com", "/a", "/b"),
                ok(7),
                vec![FileOp::Rename { from: "/a".into(), to: "/b".into() }],
            ),
            (path_req(FXP_MKDIR, 7, "/d"), ok(7), vec![FileOp::Mkdir { path: "/d".into() }]),
            (path_req(FXP_MKDIR, 7, "/d"), status(7, 4, "nope"), vec![failed("mkdir", "/d", 4)]),
            (path_req(FXP_RMDIR, 7, "/d"), ok(7), vec![FileOp::Rmdir { path: "/d".into() }]),
            (path_req(FXP_RMDIR, 7, "/d"), status(7, 3, "nope"), vec![failed("rmdir", "/d", 3)]),
            (path_req(FXP_SETSTAT, 7, "/f"), ok(7), vec![FileOp::Setstat { path: "/f".into() }]),
            (path_req(FXP_SETSTAT, 7, "/f"), status(7, 3, "nope"), vec![failed("setstat", "/f", 3)]),
            (
                Pkt::new(FXP_EXTENDED).u32(7).str("lsetstat@openssh.com").str("/l").u32(0).done(),
                ok(7),
                vec![FileOp::Setstat { path: "/l".into() }],
            ),
            // OpenSSH order: target first, then the link.
            (
                two_paths(FXP_SYMLINK, 7, "/etc/passwd", "/tmp/pw"),
                ok(7),
                vec![FileOp::Symlink { link: "/tmp/pw".into(), target: "/etc/passwd".into() }],
            ),
            (
                two_paths(FXP_SYMLINK, 7, "/etc/passwd", "/tmp/pw"),
                status(7, 4, "nope"),
                vec![failed("symlink", "/tmp/pw", 4)],
            ),
            (
                Pkt::new(FXP_OPENDIR).u32(7).str("/var").done(),
                handle(7, "DH"),
                vec![FileOp::List { path: "/var".into() }],
            ),
            (
                Pkt::new(FXP_OPENDIR).u32(7).str("/root").done(),
                status(7, 3, "nope"),
                vec![failed("opendir", "/root", 3)],
            ),
            // Ignored: other extensions, STAT, and EOF on a path op.
            (extended(7, "hardlink@openssh.com", "/a", "/b"), ok(7), vec![]),
            (Pkt::new(17).u32(7).str("/f").done(), Pkt::new(FXP_ATTRS).u32(7).u32(0).done(), vec![]),
            (path_req(FXP_REMOVE, 7, "/tmp/a"), status(7, FX_EOF, "nope"), vec![]),
            // A reply to an id never asked about.
            (path_req(FXP_REMOVE, 8, "/tmp/a"), ok(7), vec![]),
        ];
        for (i, (req, reply, expected)) in table.into_iter().enumerate() {
            let steps = vec![(C, init()), (S, version()), (C, req), (S, reply)];
            assert_eq!(run(&steps), expected, "row {i}");
        }
    }

    #[test]
    fn fsetstat_uses_the_handle_path() {
        let steps = vec![
            (C, init()),
            (S, version()),
            (C, open(1, "/srv/x", CREATE)),
            (S, handle(1, "H")),
            (C, Pkt::new(FXP_FSETSTAT).u32(2).str("H").u32(4).u32(0o600).done()),
            (S, ok(2)),
            (C, close(3, "H")),
            (S, ok(3)),
        ];
        assert_eq!(
            run(&steps),
            vec![
                FileOp::Setstat { path: "/srv/x".into() },
                FileOp::Upload { path: "/srv/x".into(), bytes: 0, sha256: Some(sha(b"")), complete: true },
            ]
        );
    }

    #[test]
    fn finish_flushes_open_handles_as_incomplete() {
        let steps = vec![
            (C, init()),
            (S, version()),
            (C, open(1, "/up", CREATE)),
            (S, handle(1, "HU")),
            (C, open(2, "/down", FXF_READ)),
            (S, handle(2, "HR")),
            (C, write(3, "HU", 0, b"acked")),
            (S, ok(3)),
            // Never acknowledged: still counted at finish.
            (C, write(4, "HU", 5, b"pending")),
            (C, read(5, "HR", 0, 100)),
            (S, data(5, b"partial")),
        ];
        assert_eq!(
            run(&steps),
            vec![
                FileOp::Upload { path: "/up".into(), bytes: 12, sha256: Some(sha(b"ackedpending")), complete: false },
                FileOp::Download { path: "/down".into(), bytes: 7, sha256: Some(sha(b"partial")), complete: false },
            ]
        );
        // A WRITE cut off in the middle of its data counts what arrived.
        let mut t = SftpTracker::new();
        t.client_bytes(&init());
        t.server_bytes(&version());
        t.client_bytes(&open(1, "/cut", CREATE));
        t.server_bytes(&handle(1, "H"));
        let w = write(2, "H", 0, b"0123456789");
        t.client_bytes(&w[..w.len() - 4]);
        assert_eq!(
            t.finish(),
            vec![FileOp::Upload { path: "/cut".into(), bytes: 6, sha256: Some(sha(b"012345")), complete: false }]
        );
        assert_eq!(t.finish(), vec![]);
    }

    #[test]
    fn write_to_unknown_handle_is_still_recorded() {
        let steps = vec![(C, init()), (S, version()), (C, write(2, "hh", 0, b"data")), (S, ok(2))];
        assert_eq!(
            run(&steps),
            vec![FileOp::Upload {
                path: "<unknown handle 6868>".into(),
                bytes: 4,
                sha256: Some(sha(b"data")),
                complete: false
            }]
        );
    }

    #[test]
    fn malformed_packet_is_skipped_by_its_length() {
        // A WRITE whose data length runs past the packet, and an OPEN with a truncated path: both framed
        // correctly, so parsing resumes at the next packet.
        let mut bad_write = Pkt::new(FXP_WRITE).u32(2).str("H").u64(0).u32(1000).done();
        bad_write.extend_from_slice(&Pkt::new(FXP_OPEN).u32(3).u32(500).done());
        let steps = vec![(C, init()), (S, version()), (C, bad_write), (C, path_req(FXP_REMOVE, 4, "/x")), (S, ok(4))];
        assert_eq!(run(&steps), vec![FileOp::Remove { path: "/x".into() }]);
    }

    #[test]
    fn gives_up_on_non_sftp() {
        let cases: Vec<(Side, Vec<u8>)> = vec![
            (C, b"SSH-2.0-OpenSSH_9.6\r\n".to_vec()),
            (C, b"ls -la\n".to_vec()),
            (C, open(1, "/x", CREATE)),               // first client packet is not INIT
            (S, ok(1)),                               // first server packet is not VERSION
            (C, vec![0, 0, 0, 0]),                    // zero length
            (S, Pkt::new(FXP_VERSION).u32(6).done()), // a version we cannot parse correctly
            (S, Pkt::new(FXP_VERSION).done()),        // VERSION without a version
        ];
        for (i, (side, bytes)) in cases.into_iter().enumerate() {
            let mut t = SftpTracker::new();
            match side {
                C => t.client_bytes(&bytes),
                S => t.server_bytes(&bytes),
            };
            assert!(t.gave_up(), "case {i}");
            // Further input is ignored.
            assert_eq!(t.client_bytes(&init()), vec![]);
            assert_eq!(t.server_bytes(&version()), vec![]);
            assert_eq!(t.buffered(), 0);
        }
    }

    #[test]
    fn give_up_reports_open_transfers() {
        let mut t = SftpTracker::new();
        t.client_bytes(&init());
        t.server_bytes(&version());
        t.client_bytes(&open(1, "/up", CREATE));
        t.server_bytes(&handle(1, "H"));
        t.client_bytes(&write(2, "H", 0, b"abc"));
        let out = t.client_bytes(&[0xff, 0xff, 0xff, 0xff]);
        assert!(t.gave_up());
        assert_eq!(
            out,
            vec![FileOp::Upload { path: "/up".into(), bytes: 3, sha256: Some(sha(b"abc")), complete: false }]
        );
        assert_eq!(t.finish(), vec![]);
    }

    #[test]
    fn huge_lengths_give_up_without_allocating() {
        let mut t = SftpTracker::new();
        t.client_bytes(&[0xff, 0xff, 0xff]);
        assert!(!t.gave_up());
        t.client_bytes(&[0xf0]);
        assert!(t.gave_up());
        assert_eq!(t.buffered(), 0);

        // A control packet over 256 KiB gives up once its type is known.
        let mut t = SftpTracker::new();
        t.client_bytes(&init());
        t.client_bytes(&(300 * 1024u32).to_be_bytes());
        assert!(!t.gave_up());
        t.client_bytes(&[FXP_OPEN]);
        assert!(t.gave_up());

        // A 16 MiB WRITE is fine and streams: only its header is ever buffered.
        let mut t = SftpTracker::new();
        t.client_bytes(&init());
        t.server_bytes(&version());
        let n = 16 * 1024 * 1024u32;
        let head = Pkt::new(FXP_WRITE).u32(2).str("H").u64(0).u32(n).done();
        let declared = (head.len() - 4) as u32 + n;
        t.client_bytes(&declared.to_be_bytes());
        t.client_bytes(&head[4..]);
        let chunk = vec![0x5a; 64 * 1024];
        for _ in 0..(n as usize / chunk.len()) {
            t.client_bytes(&chunk);
            assert!(t.buffered() <= 4096);
        }
        t.server_bytes(&ok(2));
        assert!(!t.gave_up());
        let out = t.finish();
        let FileOp::Upload { bytes, sha256: Some(_), complete: false, .. } = &out[0] else { panic!("{out:?}") };
        assert_eq!(*bytes, u64::from(n));

        // Over 16 MiB + overhead: give up at the length.
        let mut t = SftpTracker::new();
        t.client_bytes(&init());
        t.client_bytes(&(17 * 1024 * 1024u32).to_be_bytes());
        assert!(t.gave_up());
    }

    #[test]
    fn handle_cap_evicts_oldest_as_incomplete() {
        let mut t = SftpTracker::new();
        t.client_bytes(&init());
        t.server_bytes(&version());
        let mut out = Vec::new();
        let n = MAX_HANDLES + 76;
        for i in 0..n as u32 {
            t.client_bytes(&open(i, &format!("/f{i}"), FXF_READ));
            out.extend(t.server_bytes(&handle(i, &format!("h{i}"))));
        }
        assert_eq!(t.core.handles.len(), MAX_HANDLES);
        assert_eq!(t.core.handle_order.len(), MAX_HANDLES);
        assert_eq!(t.evictions(), 76);
        assert_eq!(out.len(), 76);
        assert_eq!(out[0], FileOp::Download { path: "/f0".into(), bytes: 0, sha256: Some(sha(b"")), complete: false });
        // The newest handles still work.
        t.client_bytes(&close(5000, &format!("h{}", n - 1)));
        let closed = t.server_bytes(&ok(5000));
        assert_eq!(closed.len(), 1);
        assert_eq!(t.finish().len(), MAX_HANDLES - 1);
    }

    #[test]
    fn pending_caps_bound_memory() {
        let mut t = SftpTracker::new();
        t.client_bytes(&init());
        t.server_bytes(&version());
        t.client_bytes(&open(1, "/big", FXF_READ));
        t.server_bytes(&handle(1, "H"));
        for i in 0..5000u32 {
            t.client_bytes(&read(10 + i, "H", u64::from(i) * 10, 10));
        }
        assert_eq!(t.core.pending.len(), MAX_PENDING);
        assert_eq!(t.core.pending_order.len(), MAX_PENDING);
        assert_eq!(t.evictions(), 5000 - MAX_PENDING as u64);
        // Dropped READs make the download incomplete.
        t.client_bytes(&close(2, "H"));
        let out = t.server_bytes(&ok(2));
        assert!(matches!(&out[..], [FileOp::Download { complete: false, .. }]), "{out:?}");

        // Long paths: the byte budget binds before the count.
        let mut t = SftpTracker::new();
        t.client_bytes(&init());
        t.server_bytes(&version());
        let long = "p".repeat(4000);
        for i in 0..1000u32 {
            t.client_bytes(&two_paths(FXP_RENAME, i, &long, &long));
            assert!(t.core.pending_bytes <= MAX_PENDING_BYTES);
        }
        let held: usize = t.core.pending.values().map(|(_, p)| p.weight()).sum();
        assert_eq!(held, t.core.pending_bytes);
        assert!(t.core.pending.len() < 1000);
        // The most recent request is still answered.
        assert_eq!(t.server_bytes(&ok(999)), vec![FileOp::Rename { from: long.clone(), to: long }]);
    }

    #[test]
    fn reused_request_id_replaces_the_old_request() {
        let steps = vec![
            (C, init()),
            (S, version()),
            (C, path_req(FXP_REMOVE, 7, "/old")),
            (C, path_req(FXP_MKDIR, 7, "/new")),
            (S, ok(7)),
        ];
        assert_eq!(run(&steps), vec![FileOp::Mkdir { path: "/new".into() }]);
    }

    /// xorshift64: a tiny deterministic PRNG so the property tests need no extra crate.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
        fn bytes_upto(&mut self, max: usize) -> Vec<u8> {
            let n = self.below(max);
            (0..n).map(|_| self.next() as u8).collect()
        }
    }

    #[test]
    fn head_buffers_stop_at_the_prefix_cap() {
        // Found with the fuzz target: a head arriving in uneven pieces grew its buffer by doubling to 80 000
        // bytes per direction. Both heads here are cut short, so neither buffer is released.
        let mut t = SftpTracker::new();
        t.client_bytes(&init());
        t.server_bytes(&version());
        let open = Pkt::new(FXP_OPEN).u32(1).str(vec![b'a'; 70_000]).u32(0).u32(0).done();
        let status = Pkt::new(FXP_STATUS).u32(1).u32(0).str(vec![b'm'; 70_000]).str("").done();
        for (packet, client) in [(open, true), (status, false)] {
            for piece in [&packet[..5], &packet[5..40_004], &packet[40_004..60_004]] {
                if client {
                    t.client_bytes(piece)
                } else {
                    t.server_bytes(piece)
                };
            }
        }
        assert!(t.buffered() <= 2 * PREFIX_CAP, "buffered {}", t.buffered());
    }

    fn assert_bounded(t: &SftpTracker) {
        assert!(t.buffered() <= 2 * PREFIX_CAP, "buffered {}", t.buffered());
        assert!(t.core.pending.len() <= MAX_PENDING);
        assert!(t.core.pending_bytes <= MAX_PENDING_BYTES);
        assert!(t.core.handles.len() <= MAX_HANDLES);
        assert_eq!(t.core.handles.len(), t.core.handle_order.len());
        assert_eq!(t.core.pending.len(), t.core.pending_order.len());
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        for _ in 0..3000 {
            let mut t = SftpTracker::new();
            for _ in 0..rng.below(8) {
                let chunk = rng.bytes_upto(64);
                if rng.below(2) == 0 {
                    t.client_bytes(&chunk);
                } else {
                    t.server_bytes(&chunk);
                }
                assert_bounded(&t);
            }
            t.finish();
        }
    }

    #[test]
    fn random_well_framed_packets_never_panic() {
        // Valid framing with random types and bodies gets past the framer and exercises the field parsers.
        let types = [
            FXP_OPEN,
            FXP_CLOSE,
            FXP_READ,
            FXP_WRITE,
            FXP_SETSTAT,
            FXP_FSETSTAT,
            FXP_OPENDIR,
            FXP_REMOVE,
            FXP_MKDIR,
            FXP_RMDIR,
            FXP_RENAME,
            FXP_SYMLINK,
            FXP_EXTENDED,
            FXP_STATUS,
            FXP_HANDLE,
            FXP_DATA,
            FXP_NAME,
            FXP_VERSION,
            0,
            255,
        ];
        let mut rng = XorShift(0xdead_beef_cafe_f00d);
        let mut events = 0usize;
        for _ in 0..3000 {
            let mut t = SftpTracker::new();
            t.client_bytes(&init());
            t.server_bytes(&version());
            for _ in 0..rng.below(40) {
                let ty = types[rng.below(types.len())];
                // Small ids and handles so requests and replies sometimes match.
                let mut p = Pkt::new(ty).u32(rng.below(4) as u32);
                match rng.below(4) {
                    0 => p = p.str(["H", "G"][rng.below(2)]).u64(rng.below(3) as u64 * 4).u32(rng.below(8) as u32),
                    1 => p = p.str(rng.bytes_upto(12)).str(rng.bytes_upto(12)),
                    2 => p = p.u32(rng.below(5) as u32).str("msg"),
                    _ => p.0.extend(rng.bytes_upto(40)),
                }
                let bytes = p.done();
                let mut rest = bytes.as_slice();
                let client = ty < 100;
                while !rest.is_empty() {
                    let (chunk, tail) = rest.split_at(1 + rng.below(rest.len()));
                    rest = tail;
                    let out = if client { t.client_bytes(chunk) } else { t.server_bytes(chunk) };
                    events += out.len();
                }
                assert_bounded(&t);
            }
            events += t.finish().len();
        }
        // The generator does reach the event paths.
        assert!(events > 100, "{events}");
    }
}
