//! The plain text a recorded terminal showed, for `session transcript` and search:
//! the recording's output is replayed through a terminal emulator (vt100), so cursor
//! movement, line editing and colours end up as the text the engineer actually saw.

use super::cast::Cast;
use super::screen::{clamp, parse_size};

/// Lines kept above the screen; a longer session loses its oldest lines.
const SCROLLBACK: usize = 100_000;

/// The terminal's text: everything that scrolled off, then the final screen, without
/// trailing blank lines.
pub fn transcript(cast: &Cast) -> String {
    let (mut rows, mut cols) = (clamp(cast.header.height), clamp(cast.header.width));
    let mut parser = vt100::Parser::new(rows, cols, SCROLLBACK);

    for e in &cast.events {
        match e.code.as_str() {
            "o" => parser.process(e.data.as_bytes()),
            "r" => {
                if let Some((c, r)) = parse_size(&e.data) {
                    (rows, cols) = (clamp(r), clamp(c));
                    parser.screen_mut().set_size(rows, cols);
                }
            }
            _ => {}
        }
    }
    let screen = parser.screen_mut();
    screen.set_scrollback(usize::MAX);
    let history = screen.scrollback();
    let mut lines: Vec<String> = Vec::with_capacity(history + usize::from(rows.get()));
    for back in (1..=history).rev() {
        screen.set_scrollback(back);
        lines.extend(screen.rows(0, cols.get()).next());
    }
    screen.set_scrollback(0);
    lines.extend(screen.rows(0, cols.get()));
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    let mut text = lines.iter().map(|l| l.trim_end()).collect::<Vec<_>>().join("\n");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::super::cast::{Event, Header};
    use super::*;

    fn cast(height: u32, output: &[&str]) -> Cast {
        Cast {
            header: Header { version: 2, width: 40, height, timestamp: 0, title: String::new() },
            events: output.iter().map(|o| Event { time: 0.0, code: "o".into(), data: (*o).into() }).collect(),
        }
    }

    #[test]
    fn shows_what_the_terminal_showed() {
        // Line editing: the typo is erased on screen, so it is not in the transcript.
        let c = cast(5, &["$ iptables -X", "\x08 \x08F\r\n", "\x1b[31mdone\x1b[0m\r\n", "$ "]);
        assert_eq!(transcript(&c), "$ iptables -F\ndone\n$\n");
    }

    #[test]
    fn keeps_lines_that_scrolled_off() {
        let lines: Vec<String> = (1..=12).map(|i| format!("line {i}\r\n")).collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let text = transcript(&cast(4, &refs));
        let want: String = (1..=12).map(|i| format!("line {i}\n")).collect();
        assert_eq!(text, want);
    }
}
