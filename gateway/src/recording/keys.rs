//! Keystrokes as the engineer pressed them: the input stream split into keys, shown
//! readably in the replay's input pane (`⏎`, `^C`, `⇥`, arrows) and replayed through
//! basic line editing for the transcript index.

use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key<'a> {
    Char(char),
    Enter,
    Tab,
    Backspace,
    /// A control character, by its letter: `Ctrl('C')` is ^C.
    Ctrl(char),
    Up,
    Down,
    Right,
    Left,
    Home,
    End,
    Delete,
    /// Any other escape sequence, whole.
    Escape(&'a str),
}

impl Key<'_> {
    /// Whether the key ends what was being typed (a command run or abandoned).
    pub fn ends_line(&self) -> bool {
        matches!(self, Key::Enter | Key::Ctrl('C' | 'D'))
    }

    pub fn readable(&self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            Key::Char(c) => return Cow::Owned(c.to_string()),
            Key::Enter => "⏎",
            Key::Tab => "⇥",
            Key::Backspace => "⌫",
            Key::Ctrl(c) => return Cow::Owned(format!("^{c}")),
            Key::Up => "↑",
            Key::Down => "↓",
            Key::Right => "→",
            Key::Left => "←",
            Key::Home => "⇱",
            Key::End => "⇲",
            Key::Delete => "⌦",
            Key::Escape(seq) => return Cow::Owned(format!("⎋{}", seq.trim_start_matches('\x1b'))),
        })
    }
}

/// The keys in a chunk of typed text.
pub fn keys(text: &str) -> impl Iterator<Item = Key<'_>> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let c = rest.chars().next()?;
        let mut len = c.len_utf8();
        let key = match c {
            '\r' | '\n' => Key::Enter,
            '\t' => Key::Tab,
            '\x7f' | '\x08' => Key::Backspace,
            '\x1b' => {
                len = escape_len(rest);
                match &rest[..len] {
                    "\x1b[A" | "\x1bOA" => Key::Up,
                    "\x1b[B" | "\x1bOB" => Key::Down,
                    "\x1b[C" | "\x1bOC" => Key::Right,
                    "\x1b[D" | "\x1bOD" => Key::Left,
                    "\x1b[H" | "\x1bOH" | "\x1b[1~" => Key::Home,
                    "\x1b[F" | "\x1bOF" | "\x1b[4~" => Key::End,
                    "\x1b[3~" => Key::Delete,
                    seq => Key::Escape(seq),
                }
            }
            c if c < ' ' => Key::Ctrl(char::from(c as u8 + 0x40)),
            c => Key::Char(c),
        };
        rest = &rest[len..];
        Some(key)
    })
}

/// The length of the escape sequence at the start of `s`: ESC `[`/`O` parameters and a
/// final byte, or ESC alone.
pub(crate) fn escape_len(s: &str) -> usize {
    let b = s.as_bytes();
    if b.len() < 2 || !(b[1] == b'[' || b[1] == b'O') {
        return 1;
    }
    match b[2..].iter().position(|&c| (0x40..=0x7e).contains(&c)) {
        Some(i) => i + 3,
        None => s.len(),
    }
}

/// The line being typed, with the editing a shell applies: backspace, ^U (kill the line),
/// ^W (kill a word); ^C discards the line. Keys it cannot follow (arrows, history, Tab)
/// are skipped, so the result is what was typed, not necessarily what ran.
#[derive(Debug, Default)]
pub struct LineEditor {
    line: String,
    /// When the line's first key was pressed.
    started: Option<f64>,
}

impl LineEditor {
    /// Feeds typed text at time `t`; returns each line ended by Enter, with its start time.
    pub fn feed(&mut self, t: f64, text: &str) -> Vec<(f64, String)> {
        let mut done = Vec::new();
        for key in keys(text) {
            self.started.get_or_insert(t);
            match key {
                Key::Char(c) => self.line.push(c),
                Key::Backspace => {
                    self.line.pop();
                }
                Key::Ctrl('U') | Key::Ctrl('C') => self.line.clear(),
                Key::Ctrl('W') => {
                    let kept = self.line.trim_end().rfind(' ').map_or(0, |i| i + 1);
                    self.line.truncate(kept);
                }
                Key::Enter => {
                    let line = std::mem::take(&mut self.line);
                    let started = self.started.take().unwrap_or(t);
                    if !line.trim().is_empty() {
                        done.push((started, line.trim().to_string()));
                    }
                }
                _ => {}
            }
            if self.line.is_empty() && key != Key::Enter {
                self.started = None;
            }
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_keys_are_readable() {
        let shown: String = keys("ls\t\x7f\r\x03\x1b[A\x1bOD\x1b[3~\x1b[5~\x1bé\x00").map(|k| k.readable()).collect();
        assert_eq!(shown, "ls⇥⌫⏎^C↑←⌦⎋[5~⎋é^@");
    }

    #[test]
    fn line_editing_applies() {
        let mut ed = LineEditor::default();
        assert_eq!(ed.feed(1.0, "rm -rf /\x03"), []);
        assert_eq!(ed.feed(2.0, "ipr"), []);
        assert_eq!(ed.feed(2.5, "\x7ftables -X\x08F"), []);
        assert_eq!(ed.feed(3.0, "\r"), [(2.0, "iptables -F".to_string())]);
        assert_eq!(ed.feed(4.0, "echo one two\x17\x17three\x15ls\r\r"), [(4.0, "ls".to_string())]);
    }
}
