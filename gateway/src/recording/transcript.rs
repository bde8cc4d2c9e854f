//! The plain text a recorded terminal showed, for `session transcript` and search:
//! the recording's output is replayed through a terminal emulator (vt100), so cursor
//! movement, line editing and colours end up as the text the engineer actually saw.

use super::cast::Cast;
use super::screen::{clamp, parse_size};

/// Lines kept above the screen; a longer session loses its oldest lines.
const SCROLLBACK: usize = 100_000;
/// Cells kept above the screen: the emulator stores every row at the terminal's width, so
/// a wide terminal keeps fewer lines (60 000 newlines on a 1000-column terminal, a 120 KB
/// recording, took 2 GB). 100 000 lines of 80 columns fit.
const SCROLLBACK_CELLS: usize = 8_000_000;

/// The first line of a transcript that lost its oldest lines.
pub fn cut_notice(kept: usize) -> String {
    format!(
        "[iks-gateway] earlier lines are cut: a transcript keeps the last {kept} lines; \
         the recording has them all (session replay, download)"
    )
}

/// The terminal's text: everything that scrolled off, then the final screen, without
/// trailing blank lines. When more scrolled off than the scrollback keeps, the first line
/// says so ([`cut_notice`]).
pub fn transcript(cast: &Cast) -> String {
    let (mut rows, mut cols) = (clamp(cast.header.height), clamp(cast.header.width));
    let widest =
        cast.events.iter().filter(|e| e.code == "r").filter_map(|e| parse_size(&e.data)).map(|(c, _)| clamp(c));
    let widest = widest.fold(cols, std::cmp::max);
    let scrollback = SCROLLBACK.min(SCROLLBACK_CELLS / usize::from(widest.get()));
    let mut parser = vt100::Parser::new(rows, cols, scrollback);

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
    let mut lines: Vec<String> = Vec::with_capacity(history + 1 + usize::from(rows.get()));
    // A full scrollback has dropped lines (or is about to): say so rather than pass the
    // rest off as the whole session.
    if history >= scrollback {
        lines.push(cut_notice(history));
    }
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
    fn a_wide_terminal_keeps_fewer_lines() {
        // Found with the fuzz target: every scrolled-off row is stored at the terminal's width.
        let mut c = cast(4, &["\n".repeat(30_000).as_str(), "last\r\n"]);
        c.events.insert(0, Event { time: 0.0, code: "r".into(), data: "1000x4".into() });
        let text = transcript(&c);
        assert!(text.lines().count() <= SCROLLBACK_CELLS / 1000 + 5, "{} lines", text.lines().count());
        assert!(text.ends_with("last\n"));
        assert!(text.starts_with(&cut_notice(SCROLLBACK_CELLS / 1000)), "the cut is said: {}", &text[..200]);
    }

    #[test]
    fn keeps_lines_that_scrolled_off() {
        let lines: Vec<String> = (1..=12).map(|i| format!("line {i}\r\n")).collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let text = transcript(&cast(4, &refs));
        let want: String = (1..=12).map(|i| format!("line {i}\n")).collect();
        assert_eq!(text, want, "nothing cut, nothing said");
    }
}
