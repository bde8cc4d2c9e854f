//! Legacy scp ("rcp" protocol, `scp -O`) tracker for exec channels running `scp -t` (sink) or `scp -f` (source).
//!
//! Only the *sending* side's bytes are parsed (the client's in sink mode, the server's in source mode); the
//! other side only sends one-byte acknowledgements, which carry nothing to record. The sender emits:
//! `C<mode> <size> <name>\n` followed by exactly `size` bytes and a `\0`; `D<mode> 0 <name>\n` / `E\n` to
//! enter / leave a directory; `T<mtime> 0 <atime> 0\n` (ignored); and `\x01msg\n` / `\x02msg\n` warnings and
//! errors. Stray `\0` bytes between records are tolerated.
//!
//! # Bounded memory
//! Control lines are buffered up to [`MAX_LINE`] bytes; a longer one means this is not scp and the tracker
//! gives up (reporting a file in progress as incomplete). File bodies are streamed into the hash, never
//! buffered, so the declared size (any u64) costs nothing. The directory stack is at most [`MAX_DEPTH`] deep
//! (each level adds at least two bytes to a path, so a deeper one cannot exist under PATH_MAX).
//!
//! # Events
//! An Upload (sink) or Download (source) is emitted when the byte after the file body arrives: `\0` →
//! `complete: true`; an error line (the sender failed reading its file and padded the body) → `complete: false`.
//! A file still in progress at [`ScpTracker::finish`] is emitted with `complete: false` and the hash of the bytes
//! seen. `sha256` always covers exactly `bytes`.
//!
//! # Path rule
//! The gateway cannot look at the remote filesystem, so the path is derived from the command line:
//! - **Sink** (`scp -t TARGET`): the file is `TARGET/<dirs>/<name>` when the target is known to be a directory —
//!   `-r` or `-d` was given (OpenSSH's client adds `-d` when it sends several files), the file is inside a `D`
//!   record, or the target is syntactically a directory (`.`, `..`, `~`, empty, or ending in `/`, `/.`, `/..`).
//!   Otherwise the file is written *as* `TARGET` (`scp f host:/tmp/g` → `/tmp/g`). The ambiguous case
//!   `scp f host:/tmp` (no `-d`, existing directory) is recorded as `/tmp`; and with `-r`, a top-level `D` is
//!   assumed to go *inside* the target, as it does when the target exists.
//! - **Source** (`scp -f SOURCE`): a top-level file named like the source's last component is the source itself;
//!   anything else (glob expansion, `D` records of `-r`) is placed under the source's parent directory, so
//!   `scp -r -f /etc/app` + `D app` + `C conf` → `/etc/app/conf`.
//!
//! [`detect_scp`] only accepts a plain `scp` invocation: shell words with quotes and backslashes are unquoted,
//! but any unquoted shell operator (`;`, `|`, `&`, redirections, `$`, backquotes, …) makes it `None`, since the
//! channel would then carry something else too. Only the first operand of `-f` is kept (OpenSSH's client runs
//! one `scp -f` per source).

use ring::digest::{Context, SHA256};

use super::{FileOp, cap_chars, hex_digest, len64, path_from_bytes, take};

/// Longest control or error line accepted.
pub const MAX_LINE: usize = 8 * 1024;
/// Deepest directory nesting accepted.
pub const MAX_DEPTH: usize = 4096;
/// Longest directory prefix kept while descending; paths are capped far below this anyway.
const MAX_DIR_PATH: usize = 4 * super::MAX_PATH_CHARS;
/// Most bytes a tracker buffers ([`ScpTracker::buffered`]): a control line (its buffer may grow to twice the
/// line cap) and the directory path (the kept prefix plus one name of at most four bytes per char and `…`).
pub const MAX_BUFFERED: usize = 2 * MAX_LINE + MAX_DIR_PATH + 4 * super::MAX_PATH_CHARS + 8;

/// Which way files go on an scp exec channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScpMode {
    /// `scp -t …`: engineer uploads; client sends C/D/E/T lines + data.
    Sink,
    /// `scp -f …`: engineer downloads; server sends them.
    Source,
}

/// A parsed scp server invocation.
struct ScpCommand {
    mode: ScpMode,
    target: String,
    /// `-r` or `-d`: the sink target is a directory.
    target_is_dir: bool,
}

/// Parses an exec command line; Some when it is a legacy scp server invocation (`scp [-v] [-r] [-p] [-d] -t|-f
/// [--] path…`, possibly with a leading absolute path like /usr/bin/scp). The path is the first operand, unquoted.
pub fn detect_scp(command: &str) -> Option<(ScpMode, String)> {
    parse_command(command).map(|c| (c.mode, c.target))
}

fn parse_command(command: &str) -> Option<ScpCommand> {
    let words = shell_words(command)?;
    let mut words = words.into_iter();
    let program = words.next()?;
    if program.rsplit('/').next() != Some("scp") {
        return None;
    }
    let mut mode = None;
    let mut target_is_dir = false;
    let mut operands = Vec::new();
    while let Some(word) = words.next() {
        if word == "--" {
            operands.extend(words.by_ref());
            break;
        }
        let Some(flags) = word.strip_prefix('-').filter(|f| !f.is_empty()) else {
            // getopt stops at the first operand: the rest are operands even if they start with '-'.
            operands.push(word);
            operands.extend(words.by_ref());
            break;
        };
        let mut chars = flags.chars();
        while let Some(c) = chars.next() {
            match c {
                't' | 'f' => {
                    let m = if c == 't' { ScpMode::Sink } else { ScpMode::Source };
                    if mode.is_some_and(|old| old != m) {
                        return None;
                    }
                    mode = Some(m);
                }
                'r' | 'd' => target_is_dir = true,
                // OpenSSH scp's flags without an argument (getopt string "12346ABCTdfOpqRrstv").
                '1' | '2' | '3' | '4' | '6' | 'A' | 'B' | 'C' | 'O' | 'p' | 'q' | 'R' | 's' | 'T' | 'v' => {}
                // Options taking an argument, attached or as the next word; irrelevant in server mode.
                'c' | 'D' | 'F' | 'i' | 'J' | 'l' | 'M' | 'o' | 'P' | 'S' | 'X' => {
                    if chars.as_str().is_empty() {
                        words.next()?;
                    }
                    break;
                }
                _ => return None,
            }
        }
    }
    let mode = mode?;
    let mut operands = operands.into_iter();
    let target = operands.next()?;
    // The sink accepts exactly one target ("ambiguous target" otherwise).
    if mode == ScpMode::Sink && operands.next().is_some() {
        return None;
    }
    Some(ScpCommand { mode, target, target_is_dir })
}

/// Splits a command line into words like a POSIX shell would, for the subset that a plain invocation uses;
/// `None` for anything that needs a shell to evaluate.
fn shell_words(command: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => word.push(c),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            c @ ('"' | '\\' | '$' | '`') => word.push(c),
                            '\n' => {}
                            c => {
                                word.push('\\');
                                word.push(c);
                            }
                        },
                        '$' | '`' => return None,
                        c => word.push(c),
                    }
                }
            }
            '\\' => match chars.next()? {
                '\n' => {}
                c => {
                    in_word = true;
                    word.push(c);
                }
            },
            ';' | '&' | '|' | '<' | '>' | '(' | ')' | '$' | '`' | '\n' | '\r' => return None,
            '#' if !in_word => return None,
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Some(words)
}

/// A file whose body is being received.
struct ScpFile {
    path: String,
    bytes: u64,
    left: u64,
    hasher: Context,
}

enum State {
    /// Between records: the next byte says what comes.
    Start,
    /// Inside a C/D/E/T line (buffered in `line`).
    Control,
    /// Inside a `\x01`/`\x02` message line; `len` bytes of it so far (not kept: nothing to record).
    Message { len: usize },
    /// Receiving a file body.
    Body(ScpFile),
    /// The body is complete; waiting for the sender's status byte.
    Trailer(ScpFile),
    /// Not scp: everything further is ignored.
    GaveUp,
}

/// Tracks one legacy scp exec channel.
pub struct ScpTracker {
    mode: ScpMode,
    target: String,
    target_is_dir: bool,
    /// Joined names of the `D` records we are inside, e.g. `a/b`.
    dir_path: String,
    /// `dir_path`'s length before each `D`, to undo it on `E`.
    dir_stack: Vec<usize>,
    line: Vec<u8>,
    state: State,
}

impl ScpTracker {
    /// A tracker that knows only the mode and target; see [`ScpTracker::for_command`] to also honour `-r`/`-d`.
    pub fn new(mode: ScpMode, target: String) -> Self {
        Self::with(ScpCommand { mode, target, target_is_dir: false })
    }

    /// Detects the scp invocation in an exec command line and keeps its `-r`/`-d` flags for the sink path rule.
    pub fn for_command(command: &str) -> Option<Self> {
        parse_command(command).map(Self::with)
    }

    /// Which side sends the files: the engineer (`Sink`) or the box (`Source`).
    pub fn mode(&self) -> ScpMode {
        self.mode
    }

    fn with(cmd: ScpCommand) -> Self {
        let target_is_dir = cmd.target_is_dir || looks_like_dir(&cmd.target);
        Self {
            mode: cmd.mode,
            target: cmd.target,
            target_is_dir,
            dir_path: String::new(),
            dir_stack: Vec::new(),
            line: Vec::new(),
            state: State::Start,
        }
    }

    /// Bytes from the side that sends files (client in Sink mode, server in Source mode).
    pub fn sender_bytes(&mut self, mut data: &[u8]) -> Vec<FileOp> {
        let mut out = Vec::new();
        while !data.is_empty() {
            match &mut self.state {
                State::GaveUp => break,
                State::Start => {
                    let Some((&b, rest)) = data.split_first() else { break };
                    match b {
                        0 => data = rest,
                        1 | 2 => {
                            data = rest;
                            self.state = State::Message { len: 0 };
                        }
                        b'C' | b'D' | b'E' | b'T' => {
                            self.line.clear();
                            self.state = State::Control;
                        }
                        _ => self.give_up(&mut out),
                    }
                }
                State::Control => {
                    let (chunk, newline) = until_newline(&mut data);
                    if self.line.len().saturating_add(chunk.len()) > MAX_LINE {
                        self.give_up(&mut out);
                        continue;
                    }
                    self.line.extend_from_slice(chunk);
                    if newline {
                        self.state = State::Start;
                        let mut line = std::mem::take(&mut self.line);
                        if self.control(&line).is_some() {
                            // Keep the buffer's allocation for the next line.
                            line.clear();
                            self.line = line;
                        } else {
                            self.give_up(&mut out);
                        }
                    }
                }
                State::Message { len } => {
                    let (chunk, newline) = until_newline(&mut data);
                    *len = len.saturating_add(chunk.len());
                    if *len > MAX_LINE {
                        self.give_up(&mut out);
                    } else if newline {
                        self.state = State::Start;
                    }
                }
                State::Body(file) => {
                    let chunk = take(&mut data, file.left);
                    file.hasher.update(chunk);
                    file.left = file.left.saturating_sub(len64(chunk));
                    file.bytes = file.bytes.saturating_add(len64(chunk));
                    if file.left == 0 {
                        self.state = match std::mem::replace(&mut self.state, State::Start) {
                            State::Body(file) => State::Trailer(file),
                            other => other,
                        };
                    }
                }
                State::Trailer(_) => {
                    let Some((&b, rest)) = data.split_first() else { break };
                    let State::Trailer(file) = std::mem::replace(&mut self.state, State::Start) else { break };
                    match b {
                        0 => {
                            data = rest;
                            out.push(self.event(file, true));
                        }
                        1 | 2 => {
                            data = rest;
                            out.push(self.event(file, false));
                            self.state = State::Message { len: 0 };
                        }
                        _ => {
                            out.push(self.event(file, false));
                            self.give_up(&mut out);
                        }
                    }
                }
            }
        }
        out
    }

    /// The channel closed: a file still in progress is reported with `complete: false`.
    pub fn finish(&mut self) -> Vec<FileOp> {
        let mut out = Vec::new();
        match std::mem::replace(&mut self.state, State::Start) {
            State::Body(file) | State::Trailer(file) => out.push(self.event(file, false)),
            State::GaveUp => self.state = State::GaveUp,
            _ => {}
        }
        out
    }

    /// True once the stream was found not to be scp; further input is ignored.
    pub fn gave_up(&self) -> bool {
        matches!(self.state, State::GaveUp)
    }

    fn give_up(&mut self, out: &mut Vec<FileOp>) {
        if let State::Body(file) | State::Trailer(file) = std::mem::replace(&mut self.state, State::GaveUp) {
            out.push(self.event(file, false));
        }
        self.line = Vec::new();
        self.dir_stack = Vec::new();
        self.dir_path = String::new();
    }

    /// Handles one complete control line (without its newline); `None` if it is malformed.
    fn control(&mut self, line: &[u8]) -> Option<()> {
        let (&kind, rest) = line.split_first()?;
        match kind {
            b'C' => {
                let (size, name) = parse_record(rest)?;
                let path = self.file_path(&name);
                let file = ScpFile { path, bytes: 0, left: size, hasher: Context::new(&SHA256) };
                // A zero-length file has no body: go straight to its status byte.
                self.state = if size == 0 { State::Trailer(file) } else { State::Body(file) };
            }
            b'D' => {
                let (_, name) = parse_record(rest)?;
                if self.dir_stack.len() >= MAX_DEPTH {
                    return None;
                }
                self.dir_stack.push(self.dir_path.len());
                if self.dir_path.len() < MAX_DIR_PATH {
                    self.dir_path = join(&self.dir_path, &name);
                }
            }
            b'E' => {
                // An E at the top level ends the transfer; nothing to undo.
                if let Some(len) = self.dir_stack.pop() {
                    self.dir_path.truncate(len);
                }
            }
            // T (times) matters only for the file's mtime, which we do not record.
            b'T' => {}
            _ => return None,
        }
        Some(())
    }

    fn file_path(&self, name: &str) -> String {
        let path = match self.mode {
            ScpMode::Sink if self.dir_stack.is_empty() && !self.target_is_dir => self.target.clone(),
            ScpMode::Sink => join(&join(&self.target, &self.dir_path), name),
            ScpMode::Source => {
                let (parent, base) = split_last(&self.target);
                if self.dir_stack.is_empty() && base == name {
                    self.target.clone()
                } else {
                    join(&join(parent, &self.dir_path), name)
                }
            }
        };
        cap_chars(path)
    }

    fn event(&self, mut file: ScpFile, complete: bool) -> FileOp {
        let sha256 = Some(hex_digest(std::mem::replace(&mut file.hasher, Context::new(&SHA256))));
        match self.mode {
            ScpMode::Sink => FileOp::Upload { path: file.path, bytes: file.bytes, sha256, complete },
            ScpMode::Source => FileOp::Download { path: file.path, bytes: file.bytes, sha256, complete },
        }
    }

    /// Bytes the tracker holds for control lines and the directory path: bounded by [`MAX_LINE`] and the
    /// directory-path cap whatever the sender sends (checked by the tests and the fuzz target).
    pub fn buffered(&self) -> usize {
        self.line.capacity().saturating_add(self.dir_path.capacity())
    }
}

/// Splits off everything up to a `\n` (consumed, not returned); says whether the newline was found.
fn until_newline<'a>(data: &mut &'a [u8]) -> (&'a [u8], bool) {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => {
            let (line, rest) = data.split_at_checked(i).unwrap_or((data, &[]));
            *data = rest.get(1..).unwrap_or_default();
            (line, true)
        }
        None => (std::mem::take(data), false),
    }
}

/// Parses `<octal mode> <decimal size> <name>` (the part of a C/D line after its letter).
fn parse_record(rest: &[u8]) -> Option<(u64, String)> {
    let mut parts = rest.splitn(3, |&b| b == b' ');
    let mode = parts.next()?;
    let size = parts.next()?;
    let name = parts.next()?;
    if mode.is_empty() || !mode.iter().all(|b| (b'0'..=b'7').contains(b)) || name.is_empty() {
        return None;
    }
    let size = std::str::from_utf8(size).ok()?;
    if !size.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((size.parse().ok()?, path_from_bytes(name)))
}

/// Whether a sink target names a directory without needing to look at the filesystem.
fn looks_like_dir(target: &str) -> bool {
    matches!(target, "" | "." | ".." | "~")
        || target.ends_with('/')
        || target.ends_with("/.")
        || target.ends_with("/..")
}

/// `a/b`, without doubling a slash and without a leading one when `a` is empty.
fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_owned()
    } else if b.is_empty() {
        a.to_owned()
    } else if a.ends_with('/') {
        format!("{a}{b}")
    } else {
        format!("{a}/{b}")
    }
}

/// Parent and last component of a path, ignoring trailing slashes: `/etc/app/` → (`/etc`, `app`), `/etc` →
/// (`/`, `etc`), `file` → (``, `file`).
fn split_last(path: &str) -> (&str, &str) {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rsplit_once('/') {
        Some(("", base)) => ("/", base),
        Some((parent, base)) => (parent, base),
        None => ("", trimmed),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::arithmetic_side_effects, clippy::panic)]
mod tests {
    use super::*;

    fn sha(data: &[u8]) -> String {
        hex::encode(ring::digest::digest(&SHA256, data))
    }

    fn payload(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed)).collect()
    }

    /// Feeds `bytes` cut wherever `cut(offset)` says, then finishes.
    fn run_with(mut t: ScpTracker, bytes: &[u8], cut: impl Fn(usize) -> bool) -> (Vec<FileOp>, ScpTracker) {
        let mut out = Vec::new();
        let mut start = 0;
        for i in 1..bytes.len() {
            if cut(i) {
                out.extend(t.sender_bytes(&bytes[start..i]));
                start = i;
            }
        }
        out.extend(t.sender_bytes(&bytes[start..]));
        out.extend(t.finish());
        (out, t)
    }

    fn run(command: &str, bytes: &[u8]) -> Vec<FileOp> {
        let (out, t) = run_with(ScpTracker::for_command(command).unwrap(), bytes, |_| false);
        assert!(!t.gave_up());
        out
    }

    #[test]
    fn detect_scp_table() {
        use ScpMode::{Sink, Source};
        let table: &[(&str, Option<(ScpMode, &str)>)] = &[
            ("scp -t /tmp", Some((Sink, "/tmp"))),
            ("/usr/bin/scp -r -t -- /srv", Some((Sink, "/srv"))),
            ("scp -f file", Some((Source, "file"))),
            ("scp -v -r -p -d -t /srv/dir", Some((Sink, "/srv/dir"))),
            ("scp -pt '/tmp/with space'", Some((Sink, "/tmp/with space"))),
            ("scp -t \"/tmp/a b\"", Some((Sink, "/tmp/a b"))),
            ("scp -t /tmp/a\\ b", Some((Sink, "/tmp/a b"))),
            ("scp -f -- -weird", Some((Source, "-weird"))),
            ("scp -T -t x", Some((Sink, "x"))),
            ("scp -l 100 -t /x", Some((Sink, "/x"))),
            ("scp -f /var/log/*.log", Some((Source, "/var/log/*.log"))),
            ("scp -f a b", Some((Source, "a"))),
            ("  scp   -t   /tmp  ", Some((Sink, "/tmp"))),
            ("ls -t", None),
            ("scp -t", None),
            ("scp /a host:/b", None),
            ("scp -t a b", None),
            ("scp -t -f x", None),
            ("scp -t /tmp; rm -rf /", None),
            ("scp -t /tmp && id", None),
            ("scp -t $HOME", None),
            ("scp -t \"$HOME\"", None),
            ("scp -t `pwd`", None),
            ("scp -t /x > /dev/null", None),
            ("scp -Z -t x", None),
            ("sudo scp -t /x", None),
            ("scp -t 'unterminated", None),
            ("scpx -t /x", None),
            ("scp -t x #comment", None),
            ("", None),
        ];
        for (cmd, expected) in table {
            let got = detect_scp(cmd);
            assert_eq!(got, expected.map(|(m, p)| (m, p.to_owned())), "{cmd:?}");
            assert_eq!(ScpTracker::for_command(cmd).is_some(), expected.is_some(), "{cmd:?}");
        }
    }

    fn sink_stream(a: &[u8], b: &[u8]) -> Vec<u8> {
        let mut s = Vec::new();
        s.extend_from_slice(b"T1700000000 0 1700000000 0\n");
        s.extend_from_slice(b"D0755 0 dir\n");
        s.extend_from_slice(b"T1700000001 0 1700000001 0\n");
        s.extend_from_slice(format!("C0644 {} a.txt\n", a.len()).as_bytes());
        s.extend_from_slice(a);
        s.push(0);
        s.extend_from_slice(format!("C0600 {} b.bin\n", b.len()).as_bytes());
        s.extend_from_slice(b);
        s.push(0);
        s.extend_from_slice(b"E\n");
        s
    }

    #[test]
    fn sink_two_files_in_a_directory_any_chunking() {
        let (a, b) = (payload(5, 1), payload(300, 2));
        let stream = sink_stream(&a, &b);
        let expected = vec![
            FileOp::Upload { path: "/srv/dir/a.txt".into(), bytes: 5, sha256: Some(sha(&a)), complete: true },
            FileOp::Upload { path: "/srv/dir/b.bin".into(), bytes: 300, sha256: Some(sha(&b)), complete: true },
        ];
        let cmd = "scp -r -p -t /srv";
        assert_eq!(run(cmd, &stream), expected);
        for k in 1..stream.len() {
            let (out, t) = run_with(ScpTracker::for_command(cmd).unwrap(), &stream, |p| p == k);
            assert_eq!(out, expected, "cut at {k}");
            assert!(!t.gave_up());
        }
        let (out, _) = run_with(ScpTracker::for_command(cmd).unwrap(), &stream, |_| true);
        assert_eq!(out, expected, "byte by byte");
        // Without flags, new() still places files inside a D record under the target.
        let (out, _) = run_with(ScpTracker::new(ScpMode::Sink, "/srv".into()), &stream, |_| false);
        assert_eq!(out, expected);
    }

    #[test]
    fn source_mode_downloads() {
        let body = payload(40, 7);
        let mut stream = format!("C0644 {} hosts\n", body.len()).into_bytes();
        stream.extend_from_slice(&body);
        stream.push(0);
        let (out, _) = run_with(ScpTracker::new(ScpMode::Source, "/etc/hosts".into()), &stream, |_| true);
        assert_eq!(
            out,
            vec![FileOp::Download { path: "/etc/hosts".into(), bytes: 40, sha256: Some(sha(&body)), complete: true }]
        );
    }

    #[test]
    fn path_rules() {
        let file = b"C0644 3 f\nabc\0";
        let in_dir = b"D0755 0 x\nC0644 3 f\nabc\0E\n";
        let source_dir = b"D0755 0 app\nC0644 3 conf\nabc\0E\n";
        let table: &[(&str, &[u8], &str)] = &[
            ("scp -t /tmp/g", file, "/tmp/g"),
            ("scp -t /tmp", file, "/tmp"), // ambiguous without -d: recorded as the target
            ("scp -d -t /tmp", file, "/tmp/f"),
            ("scp -r -t /tmp", file, "/tmp/f"),
            ("scp -t /tmp/", file, "/tmp/f"),
            ("scp -t .", file, "./f"),
            ("scp -t ~", file, "~/f"),
            ("scp -t /tmp", in_dir, "/tmp/x/f"),
            ("scp -f /etc/hosts", b"C0644 3 hosts\nabc\0", "/etc/hosts"),
            ("scp -f hosts", b"C0644 3 hosts\nabc\0", "hosts"),
            ("scp -f /var/log/*.log", b"C0644 3 a.log\nabc\0", "/var/log/a.log"),
            ("scp -f /hosts", b"C0644 3 other\nabc\0", "/other"),
            ("scp -r -f /etc/app", source_dir, "/etc/app/conf"),
            ("scp -r -f /etc/app/", source_dir, "/etc/app/conf"),
            ("scp -r -f app", source_dir, "app/conf"),
        ];
        for (cmd, stream, path) in table {
            let out = run(cmd, stream);
            let (FileOp::Upload { path: got, .. } | FileOp::Download { path: got, .. }) = &out[0] else {
                panic!("{out:?}")
            };
            assert_eq!(got, path, "{cmd}");
            assert_eq!(out.len(), 1);
        }
    }

    #[test]
    fn truncated_file_at_finish() {
        let body = payload(40, 3);
        let mut stream = b"C0644 100 big\n".to_vec();
        stream.extend_from_slice(&body);
        assert_eq!(
            run("scp -t /tmp/big", &stream),
            vec![FileOp::Upload { path: "/tmp/big".into(), bytes: 40, sha256: Some(sha(&body)), complete: false }]
        );
        // Body complete but the status byte never came.
        assert_eq!(
            run("scp -t /tmp/big", b"C0644 3 big\nabc"),
            vec![FileOp::Upload { path: "/tmp/big".into(), bytes: 3, sha256: Some(sha(b"abc")), complete: false }]
        );
    }

    #[test]
    fn sender_error_and_messages() {
        let stream =
            b"\x01scp: /nope: No such file or directory\nC0644 3 a\nabc\x01scp: a: read error\nC0644 0 empty\n\0";
        assert_eq!(
            run("scp -d -t /d", stream),
            vec![
                FileOp::Upload { path: "/d/a".into(), bytes: 3, sha256: Some(sha(b"abc")), complete: false },
                FileOp::Upload { path: "/d/empty".into(), bytes: 0, sha256: Some(sha(b"")), complete: true },
            ]
        );
    }

    #[test]
    fn gives_up_on_non_scp() {
        let long_line = [b"C0644 1 ".as_slice(), &vec![b'n'; MAX_LINE]].concat();
        let cases: &[&[u8]] = &[
            b"hello\n",
            b"SSH-2.0-x\r\n",
            b"C0644 abc name\n",
            b"C0644 12\n",
            b"C0648 1 x\n",
            b"C0644 99999999999999999999999 x\n",
            b"C0644 1 \n",
            b"Cmode 1 x\n",
            &long_line,
            b"C0644 3 a\nabcX",
        ];
        for (i, case) in cases.iter().enumerate() {
            let mut t = ScpTracker::new(ScpMode::Sink, "/t".into());
            t.sender_bytes(case);
            assert!(t.gave_up(), "case {i}");
            assert_eq!(t.sender_bytes(b"C0644 1 x\nx\0"), vec![]);
            assert!(t.buffered() <= 2 * MAX_LINE);
        }
        // A bad status byte after the body reports the file as incomplete.
        let mut t = ScpTracker::new(ScpMode::Sink, "/t".into());
        assert_eq!(
            t.sender_bytes(b"C0644 3 a\nabcX"),
            vec![FileOp::Upload { path: "/t".into(), bytes: 3, sha256: Some(sha(b"abc")), complete: false }]
        );
        // Too deep.
        let mut t = ScpTracker::new(ScpMode::Sink, "/t".into());
        for _ in 0..=MAX_DEPTH {
            t.sender_bytes(b"D0755 0 d\n");
        }
        assert!(t.gave_up());
    }

    #[test]
    fn huge_declared_size_streams() {
        let mut t = ScpTracker::new(ScpMode::Sink, "/t".into());
        t.sender_bytes(b"C0644 18446744073709551615 x\n");
        let chunk = vec![0u8; 64 * 1024];
        for _ in 0..64 {
            t.sender_bytes(&chunk);
            assert!(t.buffered() <= MAX_LINE * 2);
        }
        let out = t.finish();
        assert!(matches!(&out[..], [FileOp::Upload { bytes: 4194304, complete: false, .. }]), "{out:?}");
    }

    /// xorshift64: a tiny deterministic PRNG so the property test needs no extra crate.
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
    }

    #[test]
    fn random_bytes_never_panic() {
        // Mostly well-formed records with random sizes, names and noise, cut into random chunks, so that records,
        // bodies, directory changes and give-ups all happen.
        let mut rng = XorShift(0x1234_5678_9abc_def1);
        let mut events = 0;
        let mut gave_up = 0;
        for i in 0..3000 {
            let mode = if i % 2 == 0 { ScpMode::Sink } else { ScpMode::Source };
            let mut t = ScpTracker::new(mode, "/target".into());
            let mut stream = Vec::new();
            for _ in 0..rng.below(12) {
                match rng.below(8) {
                    0 => stream.extend_from_slice(b"D0755 0 d\n"),
                    1 => stream.extend_from_slice(b"E\n"),
                    2 => stream.extend_from_slice(b"T1 0 2 0\n"),
                    3 => stream.extend_from_slice(b"\x01scp: warning\n"),
                    4 => stream.push(rng.next() as u8),
                    _ => {
                        let size = rng.below(20);
                        stream.extend_from_slice(format!("C0644 {size} f{}\n", rng.below(5)).as_bytes());
                        // Sometimes a body of the wrong length, to desynchronise.
                        let n = if rng.below(6) == 0 { rng.below(25) } else { size };
                        stream.extend((0..n).map(|_| rng.next() as u8));
                        stream.push([0, 0, 0, 1, b'x'][rng.below(5)]);
                    }
                }
            }
            let mut rest = stream.as_slice();
            while !rest.is_empty() {
                let (chunk, tail) = rest.split_at(1 + rng.below(rest.len()));
                rest = tail;
                events += t.sender_bytes(chunk).len();
                assert!(t.buffered() <= 64 * 1024);
                assert!(t.dir_stack.len() <= MAX_DEPTH);
            }
            gave_up += usize::from(t.gave_up());
            events += t.finish().len();
        }
        assert!(events > 1000, "{events}");
        assert!(gave_up > 100 && gave_up < 2900, "{gave_up}");
    }
}
