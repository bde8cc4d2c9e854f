//! People's text on its way into a terminal. A reject note, a ticket's description, a name
//! or an SSH request's address is typed by someone the engineer does not control; written
//! raw, `ESC ] 52 ; … BEL` sets the engineer's clipboard, `ESC ] 0 ; …` their window title,
//! and other sequences move the cursor over what the gateway said. Everything the gateway
//! prints to a terminal from such text goes through [`for_terminal`] (or [`one_line`]),
//! which shows every control character instead of sending it.

/// `text` with every control character rendered visibly: C0 controls and DEL in caret
/// notation (`ESC` is `^[`, `BEL` is `^G`), C1 controls and the Unicode bidirectional
/// overrides (which reorder what the engineer reads) as `<U+XXXX>`. Newlines and tabs stay:
/// a note may have several lines. A CR is shown, so no line can overwrite another.
pub fn for_terminal(text: &str) -> String {
    render(text, true)
}

/// As [`for_terminal`], for a place that must stay one line (a refusal, a disconnect
/// message): newlines are shown as `^J` too.
pub fn one_line(text: &str) -> String {
    render(text, false)
}

fn render(text: &str, keep_newlines: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' if keep_newlines => out.push('\n'),
            '\t' => out.push('\t'),
            '\u{0}'..='\u{1f}' => {
                out.push('^');
                out.push(char::from(b'@' + c as u8));
            }
            '\u{7f}' => out.push_str("^?"),
            c if is_invisible_control(c) => out.push_str(&format!("<U+{:04X}>", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// C1 controls (an 8-bit CSI is U+009B) and the characters that reorder or hide text.
fn is_invisible_control(c: char) -> bool {
    matches!(c,
        '\u{80}'..='\u{9f}'
        | '\u{200e}' | '\u{200f}'          // left-to-right / right-to-left marks
        | '\u{202a}'..='\u{202e}'          // embeddings and overrides
        | '\u{2066}'..='\u{2069}'          // isolates
        | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osc52_and_title_sequences_are_shown_not_sent() {
        let note = "not now\u{1b}]52;c;ZWNobyBwd25lZA==\u{7}\u{1b}]0;owned\u{1b}\\";
        let shown = for_terminal(note);
        assert_eq!(shown, "not now^[]52;c;ZWNobyBwd25lZA==^G^[]0;owned^[\\");
        assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
    }

    #[test]
    fn every_control_is_rendered() {
        for b in (0u8..0x20).filter(|b| *b != b'\t').chain([0x7f]) {
            let c = char::from(b);
            let shown = one_line(&format!("a{c}b"));
            assert!(!shown.chars().any(char::is_control), "{b:#x}: {shown:?}");
        }
        assert_eq!(one_line("\u{9b}31m"), "<U+009B>31m");
        assert_eq!(for_terminal("abc\u{202e}fed"), "abc<U+202E>fed");
        assert_eq!(one_line("x\r\ny"), "x^M^Jy");
    }

    #[test]
    fn ordinary_text_is_unchanged() {
        for text in ["ООО Ромашка: «не сейчас»", "line one\nline two", "tab\there", "emoji 🙂", ""]
        {
            assert_eq!(for_terminal(text), text);
        }
        assert_eq!(for_terminal("a\nb"), "a\nb");
        assert_eq!(one_line("a\nb"), "a^Jb");
    }
}
