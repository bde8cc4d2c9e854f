//! The terminal as the engineer saw it, rendered on the server for the panel's live view
//! and replay: a vt100 screen is fed the recording's output and resizes, and produces
//! [`Frame`]s — the rows that changed since the previous frame, as HTML. The browser then
//! needs no terminal emulator, only to swap rows in a grid.
//!
//! The HTML is escaped text in `<span>`s with a small fixed set of classes (styled by
//! `web/static/player.css`), never inline styles, so the panel's CSP can forbid them:
//! `f0`–`f255` / `g0`–`g255` foreground / background from the 256-colour palette (24-bit
//! colours are mapped to the nearest palette entry), `fr` / `gr` the default background /
//! foreground swapped in by inverse video, `bd` bold, `it` italic, `ul` underline and `cu`
//! the cursor's cell. A keyframe carries every row, so a client can seek to it.

use std::io::{Read, Seek};

use serde::Serialize;

use super::cast::{self, CastError, Event};
use super::keys;

/// Frames at most this often in a replay (seconds between frames): ~30/s.
pub const REPLAY_INTERVAL: f64 = 1.0 / 30.0;
/// A keyframe at least this often (seconds of recording), so seeking replays little.
pub const KEYFRAME_EVERY: f64 = 5.0;
/// The size of one part of a replay (its frames, serialised, roughly): a long busy
/// recording comes in several parts, so neither side holds it whole at once.
pub const PART_BUDGET: usize = 8 << 20;

/// One update of the terminal: the rows that changed (all of them in a keyframe).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Frame {
    /// Seconds into the recording.
    #[serde(rename = "t", serialize_with = "millis")]
    pub time: f64,
    /// A keyframe: `lines` holds every row.
    #[serde(rename = "k", skip_serializing_if = "std::ops::Not::not")]
    pub key: bool,
    #[serde(rename = "w")]
    pub cols: u16,
    #[serde(rename = "h")]
    pub rows: u16,
    /// `(row, html)` of each changed row.
    #[serde(rename = "l")]
    pub lines: Vec<(u16, String)>,
    /// `(row, col)`, absent while the cursor is hidden.
    #[serde(rename = "c")]
    pub cursor: Option<(u16, u16)>,
}

impl Frame {
    /// Roughly what the frame costs serialised, to bound a response.
    fn weight(&self) -> usize {
        48 + self.lines.iter().map(|(_, l)| l.len() + 8).sum::<usize>()
    }
}

fn millis<S: serde::Serializer>(t: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((t * 1000.0).round() / 1000.0)
}

/// A terminal screen that remembers what it last reported.
pub struct Screen {
    parser: vt100::Parser,
    /// The rows as last sent, and the size they were sent at.
    sent: Vec<String>,
    sent_size: (u16, u16),
}

impl std::fmt::Debug for Screen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Screen").field("size", &self.parser.screen().size()).finish_non_exhaustive()
    }
}

impl Screen {
    pub fn new(cols: u32, rows: u32) -> Self {
        Self { parser: vt100::Parser::new(clamp(rows), clamp(cols), 0), sent: Vec::new(), sent_size: (0, 0) }
    }

    /// Feeds one recording event; keystrokes do not change the screen.
    pub fn apply(&mut self, e: &Event) {
        match e.code.as_str() {
            "o" => self.parser.process(e.data.as_bytes()),
            "r" => {
                if let Some((cols, rows)) = parse_size(&e.data) {
                    self.parser.screen_mut().set_size(clamp(rows), clamp(cols));
                }
            }
            _ => {}
        }
    }

    /// The rows that changed since the last frame, or `None` when nothing did.
    pub fn frame(&mut self, time: f64) -> Option<Frame> {
        let (rows, cols, html) = self.render();
        if self.sent_size != (cols, rows) {
            // A new size: the client rebuilds its grid, so it needs every row.
            self.sent = html;
            return Some(self.full(time, rows, cols));
        }
        let mut lines = Vec::new();
        for (i, (row, old)) in html.into_iter().zip(self.sent.iter_mut()).enumerate() {
            if row != *old {
                lines.push((i as u16, row.clone()));
                *old = row;
            }
        }
        let cursor = self.cursor();
        (!lines.is_empty()).then_some(Frame { time, key: false, cols, rows, lines, cursor })
    }

    /// Every row, for a client starting (or seeking) here.
    pub fn keyframe(&mut self, time: f64) -> Frame {
        let (rows, cols, html) = self.render();
        self.sent = html;
        self.full(time, rows, cols)
    }

    fn full(&mut self, time: f64, rows: u16, cols: u16) -> Frame {
        self.sent_size = (cols, rows);
        let lines = self.sent.iter().enumerate().map(|(i, l)| (i as u16, l.clone())).collect();
        Frame { time, key: true, cols, rows, lines, cursor: self.cursor() }
    }

    /// `(cols, rows)`.
    pub fn size(&self) -> (u16, u16) {
        let (rows, cols) = self.parser.screen().size();
        (cols.get(), rows.get())
    }

    fn cursor(&self) -> Option<(u16, u16)> {
        let s = self.parser.screen();
        (!s.hide_cursor()).then(|| s.cursor_position())
    }

    fn render(&self) -> (u16, u16, Vec<String>) {
        let s = self.parser.screen();
        let (rows, cols) = s.size();
        let (rows, cols) = (rows.get(), cols.get());
        let cursor = self.cursor();
        let html = (0..rows).map(|r| row_html(s, r, cols, cursor.filter(|c| c.0 == r).map(|c| c.1))).collect();
        (rows, cols, html)
    }
}

/// A recording prepared for the player: frames, and the keystrokes beside them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Replay {
    /// The terminal's size at the start of this part.
    pub cols: u16,
    pub rows: u16,
    /// Seconds from the start to the last event of the whole recording.
    pub duration: f64,
    pub frames: Vec<Frame>,
    pub input: Vec<Keys>,
    /// Where the next part starts (ask again with `from` = this), when this part was cut to
    /// stay within its size budget; `None` when it reaches the end.
    pub next: Option<f64>,
}

/// Keystrokes typed together (up to an Enter, ^C or a pause), control keys made readable.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Keys {
    #[serde(serialize_with = "millis")]
    pub t: f64,
    pub text: String,
    /// Ended by Enter, ^C or ^D: the next key starts a new line.
    #[serde(skip)]
    closed: bool,
    /// When the last key was pressed.
    #[serde(skip)]
    last: f64,
}

/// A pause longer than this starts a new line in the input pane.
const KEYS_PAUSE: f64 = 5.0;

/// Renders the part of a recording from `from` seconds on, read as a stream (a recording of
/// hundreds of MB is never held whole). The part ends when its frames pass `budget` bytes;
/// [`Replay::next`] then says where the next part starts.
pub fn replay<R: Read + Seek>(mut source: R, from: f64, budget: usize) -> Result<Replay, CastError> {
    // The duration is the last event's time: read from the file's end, so a part need not
    // read past where it stops.
    let last = cast::last_time(&mut source)?;
    let mut reader = cast::Reader::new(source);
    let header = reader.header()?.clone();
    let mut screen = Screen::new(header.width, header.height);
    let mut out =
        Replay { cols: 0, rows: 0, duration: last.unwrap_or(0.0), frames: Vec::new(), input: Vec::new(), next: None };
    let (mut started, mut spent) = (false, 0usize);
    // The last frame's and last keyframe's times, and the time of an output not yet framed.
    let (mut last_frame, mut last_key, mut pending) = (f64::NEG_INFINITY, f64::NEG_INFINITY, None::<f64>);
    for e in reader.by_ref() {
        let e = e?;
        out.duration = out.duration.max(e.time);
        if !started && e.time >= from {
            started = true;
            (out.cols, out.rows) = screen.size();
            let f = screen.keyframe(from);
            (last_frame, last_key) = (from, from);
            spent = f.weight();
            out.frames.push(f);
        }
        // The screen as it was before this event is shown once a frame interval has passed
        // since the last frame: no later than `REPLAY_INTERVAL` after it was reached.
        if let Some(at) = pending
            && e.time - last_frame >= REPLAY_INTERVAL
        {
            pending = None;
            last_frame = at.max(last_frame + REPLAY_INTERVAL);
            spent += frame_at(&mut screen, &mut out.frames, last_frame, &mut last_key);
            if spent > budget {
                out.next = Some(e.time);
                break;
            }
        }
        screen.apply(&e);
        match e.code.as_str() {
            "o" | "r" if started => pending = Some(e.time),
            "i" if started => add_keys(&mut out.input, e.time, &e.data),
            _ => {}
        }
    }
    if !started {
        (out.cols, out.rows) = screen.size();
        out.frames.push(screen.keyframe(from.min(out.duration)));
    } else if let (Some(at), None) = (pending, out.next) {
        frame_at(&mut screen, &mut out.frames, at.max(last_frame + REPLAY_INTERVAL), &mut last_key);
    }
    Ok(out)
}

/// [`replay`] of the recording file at `path`, off the async runtime, in parts of
/// [`PART_BUDGET`].
pub async fn replay_file(path: std::path::PathBuf, from: f64) -> Result<Replay, CastError> {
    let from = if from.is_finite() { from.max(0.0) } else { 0.0 };
    tokio::task::spawn_blocking(move || replay(std::fs::File::open(path)?, from, PART_BUDGET))
        .await
        .unwrap_or_else(|e| Err(CastError::Io(std::io::Error::other(e))))
}

/// Adds the screen's frame at `at` (a keyframe when one is due); returns its weight.
fn frame_at(screen: &mut Screen, frames: &mut Vec<Frame>, at: f64, last_key: &mut f64) -> usize {
    let frame = if at - *last_key >= KEYFRAME_EVERY {
        *last_key = at;
        Some(screen.keyframe(at))
    } else {
        screen.frame(at)
    };
    frame.map_or(0, |f| {
        let w = f.weight();
        frames.push(f);
        w
    })
}

/// Adds typed text to the input pane, continuing the last line unless it was ended.
fn add_keys(input: &mut Vec<Keys>, t: f64, data: &str) {
    for key in keys::keys(data) {
        match input.last_mut().filter(|k| t - k.last < KEYS_PAUSE && !k.closed) {
            Some(k) => k.text.push_str(&key.readable()),
            None => input.push(Keys { t, text: key.readable().into_owned(), closed: false, last: t }),
        }
        if let Some(k) = input.last_mut() {
            (k.closed, k.last) = (key.ends_line(), t);
        }
    }
}

/// A resize event's `COLSxROWS`, when both are positive numbers.
pub fn parse_size(data: &str) -> Option<(u32, u32)> {
    let (c, r) = data.split_once('x')?;
    let (c, r) = (c.parse::<u32>().ok()?, r.parse::<u32>().ok()?);
    (c > 0 && r > 0).then_some((c, r))
}

/// A terminal dimension the emulator accepts: 1..=1000.
pub fn clamp(n: u32) -> std::num::NonZeroU16 {
    std::num::NonZeroU16::new(n.clamp(1, 1000) as u16).unwrap_or(std::num::NonZeroU16::MIN)
}

/// How a run of cells looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Style {
    fg: Paint,
    bg: Paint,
    bold: bool,
    italic: bool,
    underline: bool,
    cursor: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Paint {
    #[default]
    Default,
    Idx(u8),
    /// The other default colour: what inverse video makes of a default colour.
    Swapped,
}

impl Style {
    fn of(cell: &vt100::Cell) -> Self {
        let paint = |c: vt100::Color| match c {
            vt100::Color::Default => Paint::Default,
            vt100::Color::Idx(i) => Paint::Idx(i),
            vt100::Color::Rgb(r, g, b) => Paint::Idx(nearest_256(r, g, b)),
        };
        let (mut fg, mut bg) = (paint(cell.fgcolor()), paint(cell.bgcolor()));
        if cell.inverse() {
            let swap = |p: Paint| if p == Paint::Default { Paint::Swapped } else { p };
            (fg, bg) = (swap(bg), swap(fg));
        }
        Self { fg, bg, bold: cell.bold(), italic: cell.italic(), underline: cell.underline(), cursor: false }
    }

    fn classes(&self) -> String {
        let mut c = Vec::new();
        match self.fg {
            Paint::Default => {}
            Paint::Idx(i) => c.push(format!("f{i}")),
            Paint::Swapped => c.push("fr".into()),
        }
        match self.bg {
            Paint::Default => {}
            Paint::Idx(i) => c.push(format!("g{i}")),
            Paint::Swapped => c.push("gr".into()),
        }
        for (on, name) in [(self.bold, "bd"), (self.italic, "it"), (self.underline, "ul"), (self.cursor, "cu")] {
            if on {
                c.push(name.into());
            }
        }
        c.join(" ")
    }
}

/// One row as HTML: runs of equally styled cells, trailing blanks dropped.
fn row_html(s: &vt100::Screen, row: u16, cols: u16, cursor: Option<u16>) -> String {
    let mut runs: Vec<(Style, String)> = Vec::new();
    for col in 0..cols {
        let Some(cell) = s.cell(row, col) else { break };
        if cell.is_wide_continuation() {
            continue;
        }
        let mut style = Style::of(cell);
        style.cursor = cursor == Some(col);
        let text = if cell.has_contents() { cell.contents() } else { " " };
        match runs.last_mut() {
            Some((st, t)) if *st == style => t.push_str(text),
            _ => runs.push((style, text.to_string())),
        }
    }
    // Blanks at the end look the same as no cells at all, unless coloured.
    while let Some((st, t)) = runs.last_mut()
        && st.bg == Paint::Default
        && !st.cursor
        && !st.underline
    {
        let kept = t.trim_end_matches(' ').len();
        t.truncate(kept);
        if !t.is_empty() {
            break;
        }
        runs.pop();
    }
    let mut html = String::new();
    for (style, text) in runs {
        let classes = style.classes();
        if classes.is_empty() {
            escape_into(&mut html, &text);
        } else {
            html.push_str("<span class=\"");
            html.push_str(&classes);
            html.push_str("\">");
            escape_into(&mut html, &text);
            html.push_str("</span>");
        }
    }
    html
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
}

/// The xterm palette entry closest to a 24-bit colour: the 6×6×6 cube or the grey ramp.
fn nearest_256(r: u8, g: u8, b: u8) -> u8 {
    const LEVELS: [u8; 6] = [0, 95, 135, 175, 215, 255];
    let level = |v: u8| (0..6).min_by_key(|&i| (i32::from(LEVELS[i]) - i32::from(v)).abs()).unwrap_or(0);
    let (ri, gi, bi) = (level(r), level(g), level(b));
    let cube = (LEVELS[ri], LEVELS[gi], LEVELS[bi]);
    let avg = (u32::from(r) + u32::from(g) + u32::from(b)) / 3;
    let gi_ = ((avg.saturating_sub(8) + 5) / 10).min(23);
    let grey = (8 + 10 * gi_) as u8;
    let dist = |(x, y, z): (u8, u8, u8)| {
        [(x, r), (y, g), (z, b)].iter().map(|&(a, b)| (i32::from(a) - i32::from(b)).pow(2)).sum::<i32>()
    };
    if dist((grey, grey, grey)) < dist(cube) { 232 + gi_ as u8 } else { (16 + 36 * ri + 6 * gi + bi) as u8 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(s: &mut Screen, data: &str) {
        s.apply(&Event { time: 0.0, code: "o".into(), data: data.into() });
    }

    #[test]
    fn colours_and_attributes_become_classes() {
        let mut s = Screen::new(20, 3);
        out(&mut s, "\x1b[?25l\x1b[1;31mred\x1b[0m \x1b[4;38;5;200mpink\x1b[0m \x1b[7minv\x1b[0m <&>");
        let f = s.keyframe(0.0);
        assert!(f.key);
        assert_eq!((f.cols, f.rows, f.cursor), (20, 3, None), "the cursor is hidden");
        assert_eq!(
            f.lines[0].1,
            "<span class=\"f1 bd\">red</span> <span class=\"f200 ul\">pink</span> \
             <span class=\"fr gr\">inv</span> &lt;&amp;&gt;"
        );
        assert_eq!(f.lines[1], (1, String::new()));
        out(&mut s, "\r\n\x1b[38;2;255;0;0;48;2;18;18;18mx");
        let f = s.frame(0.1).unwrap();
        assert_eq!(f.lines, [(1, "<span class=\"f196 g233\">x</span>".to_string())], "24-bit colours mapped");
    }

    #[test]
    fn only_changed_rows_are_sent_and_the_cursor_is_drawn() {
        let mut s = Screen::new(10, 4);
        out(&mut s, "one\r\ntwo\r\n$ ");
        let key = s.keyframe(1.0);
        assert_eq!(key.cursor, Some((2, 2)));
        assert_eq!(key.lines[2].1, "$ <span class=\"cu\"> </span>");
        assert_eq!(s.frame(1.5), None, "nothing changed");
        // Cursor movement: up two rows and overwrite; the prompt row loses its cursor.
        out(&mut s, "\x1b[2;1HTWO");
        let f = s.frame(2.0).unwrap();
        assert!(!f.key);
        assert_eq!(f.cursor, Some((1, 3)));
        assert_eq!(f.lines, [(1, "TWO<span class=\"cu\"> </span>".into()), (2, "$".into())]);
        // Clearing the screen empties every row that had text.
        out(&mut s, "\x1b[2J\x1b[H");
        let f = s.frame(3.0).unwrap();
        assert_eq!(f.lines.iter().map(|l| l.0).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(f.lines[0].1, "<span class=\"cu\"> </span>");
    }

    #[test]
    fn resize_and_the_alternate_screen() {
        let mut s = Screen::new(10, 2);
        out(&mut s, "shell");
        s.keyframe(0.0);
        s.apply(&Event { time: 1.0, code: "r".into(), data: "30x5".into() });
        let f = s.frame(1.0).unwrap();
        assert!(f.key, "a new size sends every row");
        assert_eq!((f.cols, f.rows, f.lines.len()), (30, 5, 5));
        s.apply(&Event { time: 1.5, code: "r".into(), data: "31x5".into() });
        assert!(s.frame(1.5).unwrap().key, "so does a new width alone");
        // A full-screen program, then back: the shell's screen comes back as it was.
        out(&mut s, "\x1b[?1049h\x1b[H\x1b[2Jtop");
        assert!(s.frame(2.0).unwrap().lines.iter().any(|l| l.1.starts_with("top")));
        out(&mut s, "\x1b[?1049l");
        let f = s.frame(3.0).unwrap();
        assert!(f.lines.iter().any(|l| l == &(0, "shell<span class=\"cu\"> </span>".to_string())), "{f:?}");
        assert_eq!(parse_size("0x5"), None);
        assert_eq!(parse_size("80x"), None);
    }

    fn cast(events: &[(f64, &str, &str)]) -> Vec<u8> {
        let mut f = b"{\"version\":2,\"width\":20,\"height\":3,\"timestamp\":1}\n".to_vec();
        for (t, c, d) in events {
            f.extend(serde_json::to_vec(&(t, c, d)).unwrap());
            f.push(b'\n');
        }
        f
    }

    #[test]
    fn replay_coalesces_frames_and_places_keyframes() {
        // 3000 outputs over 10 s: at most 30 frames a second.
        let mut events: Vec<(f64, &str, String)> =
            (0..3000).map(|i| (i as f64 / 300.0, "o", format!("{i} "))).collect();
        events.push((10.5, "i", "ls -l\r".into()));
        events.push((11.0, "i", "\x03".into()));
        events.push((20.0, "i", "q".into()));
        let refs: Vec<_> = events.iter().map(|(t, c, d)| (*t, *c, d.as_str())).collect();
        let bytes = cast(&refs);
        let r = replay(std::io::Cursor::new(&bytes), 0.0, usize::MAX).unwrap();
        assert_eq!(r.duration, 20.0);
        assert_eq!(r.next, None);
        assert!(r.frames[0].key && r.frames[0].time == 0.0);
        let n = r.frames.len();
        assert!((250..=320).contains(&n), "{n} frames for 10 s of continuous output");
        for w in r.frames.windows(2) {
            assert!(w[1].time - w[0].time >= REPLAY_INTERVAL - 1e-9, "{} then {}", w[0].time, w[1].time);
        }
        let keys: Vec<f64> = r.frames.iter().filter(|f| f.key).map(|f| f.time).collect();
        assert_eq!(keys.len(), 2, "{keys:?}");
        assert!(keys[0] == 0.0 && keys[1] >= KEYFRAME_EVERY && keys[1] < KEYFRAME_EVERY + 0.1, "{keys:?}");
        let last = r.frames.last().unwrap().time;
        assert!((2999.0 / 300.0..2999.0 / 300.0 + REPLAY_INTERVAL).contains(&last), "the last output is shown: {last}");
        let input: Vec<_> = r.input.iter().map(|k| (k.t, k.text.as_str())).collect();
        assert_eq!(input, [(10.5, "ls -l⏎"), (11.0, "^C"), (20.0, "q")]);

        // Seeking: a part from 6 s starts with a keyframe of the state then.
        let part = replay(std::io::Cursor::new(&bytes), 6.0, usize::MAX).unwrap();
        assert!(part.frames[0].key && part.frames[0].time == 6.0);
        assert!(part.frames[1..].iter().all(|f| f.time >= 6.0));
        // A small budget cuts the part; the next one continues from where it stopped.
        let cut = replay(std::io::Cursor::new(&bytes), 0.0, 4000).unwrap();
        let next = cut.next.expect("cut short");
        assert!(cut.frames.len() < n && cut.frames.last().unwrap().time <= next);
        assert_eq!(cut.duration, 20.0, "the duration is of the whole recording");
        let rest = replay(std::io::Cursor::new(&bytes), next, usize::MAX).unwrap();
        assert!(rest.frames[0].key && rest.frames[0].time == next);
        let rest_last = rest.frames.last().unwrap().time;
        assert!((2999.0 / 300.0..2999.0 / 300.0 + REPLAY_INTERVAL).contains(&rest_last), "{rest_last}");
    }
}
