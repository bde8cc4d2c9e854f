//! The echo gate: what the engineer types at a terminal enters the recording only once the
//! box has echoed it, so a password typed at a prompt that does not echo (`sudo`, `su`,
//! `mysql -p`, `read -s`) is never stored — not in the keystroke stream, the downloads or
//! the search index. Only the bytes sent to the box carry it.
//!
//! How it is decided: printable keys are held. The box's output, with escape sequences and
//! control characters skipped, must continue with exactly the held keys, in order
//! (contiguously: the same characters scattered through later output do not count). Keys
//! matched that way are released as typed. At the first character that differs, the held
//! run of printable keys up to the next control key is dropped and recorded only as a
//! marker with its count ([`marker`]). Control keys (Enter, Backspace, Tab, ^C, arrows) are
//! no secret and are released in their place. A run still held when the channel ends, or
//! longer than [`HOLD_MAX`] keys, is dropped the same way. Keys typed while a program is
//! printing something else are therefore recorded as not echoed: the gate errs on the side
//! of not storing.

use std::collections::VecDeque;

use super::keys::escape_len;

/// Printable keys held at most while the box has not echoed them; beyond it the run is
/// dropped (a long paste into a program that does not echo).
pub const HOLD_MAX: usize = 4096;

/// What the gate lets into the recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Keys as typed (echoed printable keys, control keys).
    Keys(String),
    /// So many printable keys that the box did not echo.
    Hidden(usize),
}

/// The text a [`Piece::Hidden`] is recorded as, in the keystroke stream.
pub fn marker(count: usize) -> String {
    format!("⟦{count} keys not echoed⟧")
}

#[derive(Debug)]
enum Held {
    Printable(char),
    Control(String),
}

#[derive(Debug, Default)]
pub struct EchoGate {
    held: VecDeque<Held>,
    printable: usize,
}

impl EchoGate {
    /// Keys the engineer typed; returns what may be recorded now.
    pub fn typed(&mut self, text: &str) -> Vec<Piece> {
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            let len = if c == '\x1b' { key_len(rest) } else { c.len_utf8() };
            if c.is_control() {
                self.held.push_back(Held::Control(rest[..len].to_string()));
            } else {
                self.held.push_back(Held::Printable(c));
                self.printable += 1;
            }
            rest = &rest[len..];
        }
        let mut out = Vec::new();
        self.release_controls(&mut out);
        while self.printable > HOLD_MAX {
            self.hide_run(&mut out);
            self.release_controls(&mut out);
        }
        out
    }

    /// Output from the box; returns the keys it echoed and the runs it did not.
    pub fn echoed(&mut self, output: &str) -> Vec<Piece> {
        let mut out = Vec::new();
        self.release_controls(&mut out);
        for c in visible(output) {
            match self.held.front() {
                None => break,
                Some(Held::Printable(p)) if *p == c => {
                    self.held.pop_front();
                    self.printable -= 1;
                    push_keys(&mut out, c.encode_utf8(&mut [0; 4]));
                    self.release_controls(&mut out);
                }
                Some(_) => {
                    // Not the echo of what is held: the held run was typed unseen.
                    self.hide_run(&mut out);
                    self.release_controls(&mut out);
                    break;
                }
            }
        }
        out
    }

    /// The channel ended: whatever is still held was never echoed.
    pub fn finish(&mut self) -> Vec<Piece> {
        let mut out = Vec::new();
        while !self.held.is_empty() {
            self.release_controls(&mut out);
            self.hide_run(&mut out);
        }
        out
    }

    fn release_controls(&mut self, out: &mut Vec<Piece>) {
        while let Some(Held::Control(_)) = self.held.front() {
            if let Some(Held::Control(seq)) = self.held.pop_front() {
                push_keys(out, &seq);
            }
        }
    }

    /// Drops the printable keys at the front, up to the next control key.
    fn hide_run(&mut self, out: &mut Vec<Piece>) {
        let mut n = 0;
        while let Some(Held::Printable(_)) = self.held.front() {
            self.held.pop_front();
            n += 1;
        }
        self.printable -= n;
        if n == 0 {
            return;
        }
        match out.last_mut() {
            Some(Piece::Hidden(count)) => *count += n,
            _ => out.push(Piece::Hidden(n)),
        }
    }
}

/// The length of the key sequence at the start of `s` (which starts with ESC): what
/// keyboards send, ESC `[` digits and `;` then `A`–`Z` or `~` (arrows, function keys), or
/// ESC `O` and `A`–`Z`; ESC alone otherwise, so that no typed letter hides inside a
/// "sequence" and passes the gate as a control key.
fn key_len(s: &str) -> usize {
    let b = s.as_bytes();
    match b.get(1) {
        Some(b'[') => {
            let params = b[2..].iter().take_while(|c| c.is_ascii_digit() || **c == b';').count();
            match b.get(2 + params) {
                Some(c) if c.is_ascii_uppercase() || *c == b'~' => 3 + params,
                _ => 1,
            }
        }
        Some(b'O') if b.get(2).is_some_and(u8::is_ascii_uppercase) => 3,
        _ => 1,
    }
}

fn push_keys(out: &mut Vec<Piece>, keys: &str) {
    match out.last_mut() {
        Some(Piece::Keys(s)) => s.push_str(keys),
        _ => out.push(Piece::Keys(keys.to_string())),
    }
}

/// The characters of terminal output a person sees: escape sequences (CSI, OSC, two-byte)
/// and control characters are skipped.
fn visible(output: &str) -> impl Iterator<Item = char> + '_ {
    let mut rest = output;
    std::iter::from_fn(move || {
        loop {
            let c = rest.chars().next()?;
            if c == '\x1b' && rest[1..].starts_with(']') {
                // OSC (window titles): up to BEL or ESC \.
                let end = rest.find(['\x07', '\u{9c}']).map_or(rest.len(), |i| i + 1);
                let st = rest.find("\x1b\\").map_or(rest.len(), |i| i + 2);
                rest = &rest[end.min(st)..];
            } else if c == '\x1b' {
                let len = escape_len(rest);
                rest = &rest[len..];
                if len == 1 {
                    // A two-character sequence (ESC 7, ESC =): its second character too.
                    let next = rest.chars().next().map_or(0, char::len_utf8);
                    rest = &rest[next..];
                }
            } else {
                rest = &rest[c.len_utf8()..];
                if !c.is_control() {
                    return Some(c);
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(s: &str) -> Piece {
        Piece::Keys(s.into())
    }

    #[test]
    fn echoed_keys_are_released_and_a_silent_password_is_not() {
        let mut g = EchoGate::default();
        // Typed one key at a time, each echoed (readline colours do not matter).
        assert_eq!(g.typed("s"), []);
        assert_eq!(g.echoed("\x1b[1ms\x1b[0m"), [keys("s")]);
        assert_eq!(g.typed("udo -k\r"), []);
        assert_eq!(g.echoed("udo -k\r\n[sudo] password for root: "), [keys("udo -k\r")]);
        // The password: nothing echoed, then Enter and a new line.
        assert_eq!(g.typed("hunter2"), []);
        assert_eq!(g.typed("\r"), []);
        assert_eq!(g.echoed("\r\nroot@box:~# "), [Piece::Hidden(7), keys("\r")]);
        // Control keys alone are released at once.
        assert_eq!(g.typed("\x1b[A\t"), [keys("\x1b[A\t")]);
    }

    /// Random keys and output (escapes, multi-byte characters, controls): nothing panics,
    /// and a key the output never showed is never released.
    #[test]
    fn random_keys_and_output_never_leak_an_unshown_key() {
        let alphabet = ['a', 'b', 'z', 'é', '\x1b', '[', ']', 'O', '\x07', '\r', '\n', '\x7f', '\t', '1', ';'];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for _ in 0..2000 {
            let mut g = EchoGate::default();
            let mut released = String::new();
            for _ in 0..next(12) {
                let chunk: String = (0..next(8)).map(|_| alphabet[next(alphabet.len())]).collect();
                let pieces = if next(2) == 0 { g.typed(&chunk) } else { g.echoed(&chunk.replace('z', "a")) };
                for p in pieces.into_iter().chain(if next(10) == 0 { g.finish() } else { Vec::new() }) {
                    if let Piece::Keys(k) = p {
                        released.push_str(&k);
                    }
                }
            }
            assert!(!released.contains('z'), "a key never echoed was released: {released:?}");
        }
    }

    #[test]
    fn the_echo_must_be_contiguous_and_at_once() {
        let mut g = EchoGate::default();
        assert_eq!(g.typed("root\r"), []);
        // The same letters later in other output are no echo.
        assert_eq!(g.echoed("Sorry, try again.\r\nroot password: "), [Piece::Hidden(4), keys("\r")]);
        // An echo split across output chunks is still one echo.
        assert_eq!(g.typed("ls -l\r"), []);
        assert_eq!(g.echoed("ls"), [keys("ls")]);
        assert_eq!(g.echoed(" -l\r\n"), [keys(" -l\r")]);
        // Unechoed keys at the end, and a too long run, are dropped with their count.
        assert_eq!(g.typed("secret"), []);
        assert_eq!(g.finish(), [Piece::Hidden(6)]);
        let long = "x".repeat(HOLD_MAX + 1);
        assert_eq!(g.typed(&long), [Piece::Hidden(HOLD_MAX + 1)]);
        assert_eq!(g.printable, 0);
        assert!(marker(7).contains('7'));
    }
}
