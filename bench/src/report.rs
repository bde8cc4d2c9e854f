//! The table: one row per figure, with the direct, gateway and agent-tunnel values, the
//! ratio to direct, the target from issue #8 and whether it was met.

use std::time::Duration;

use crate::measure::{Transfer, quantile_ms};

pub struct Row {
    figure: String,
    cells: [String; 3],
    ratio: String,
    target: String,
    verdict: String,
    errors: Vec<String>,
}

const NONE: &str = "—";

fn verdict(checks: &[Option<bool>]) -> String {
    let words: Vec<&str> = checks
        .iter()
        .map(|c| match c {
            Some(true) => "pass",
            Some(false) => "MISS",
            None => "?",
        })
        .collect();
    words.join(" / ")
}

/// Each result's value by `f`, or the error (kept for the notes).
fn values<'a, T: 'a, V>(
    results: impl IntoIterator<Item = &'a anyhow::Result<T>>,
    f: impl Fn(&T) -> V,
    errors: &mut Vec<String>,
) -> Vec<Option<V>> {
    results
        .into_iter()
        .map(|r| match r {
            Ok(t) => Some(f(t)),
            Err(e) => {
                errors.push(format!("{e:#}"));
                None
            }
        })
        .collect()
}

fn cell(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "error".into(), f)
}

impl Row {
    fn new(figure: &str) -> Self {
        Self {
            figure: figure.into(),
            cells: [NONE.into(), NONE.into(), NONE.into()],
            ratio: NONE.into(),
            target: NONE.into(),
            verdict: String::new(),
            errors: Vec::new(),
        }
    }

    /// MiB/s per route; ratios of the gateway and the tunnel to direct against `targets`.
    pub fn throughput(figure: &str, t: &[anyhow::Result<Transfer>], targets: (f64, f64)) -> Self {
        let mut row = Self::new(figure);
        let v = values(t, Transfer::mib_per_s, &mut row.errors);
        for (c, x) in row.cells.iter_mut().zip(&v) {
            *c = cell(*x, |x| format!("{x:.0} MiB/s"));
        }
        let ratio = |x: Option<f64>| x.zip(v[0]).map(|(x, d)| x / d);
        let (g, tun) = (ratio(v[1]), ratio(v[2]));
        let show = |r: Option<f64>| r.map_or("?".into(), |r| format!("{r:.2}"));
        row.ratio = format!("{} / {}", show(g), show(tun));
        row.target = format!("≥ {:.2} / ≥ {:.2}", targets.0, targets.1);
        row.verdict = verdict(&[g.map(|g| g >= targets.0), tun.map(|t| t >= targets.1)]);
        row
    }

    /// CPU seconds per GiB: the box's sshd for direct; the gateway (with the sshd of the
    /// same transfer beside it) for the two gateway routes; ratio gateway / that sshd.
    pub fn cpu(figure: &str, t: &[anyhow::Result<Transfer>]) -> Self {
        let mut row = Self::new(figure);
        let mut ignored = Vec::new();
        let v = values(t, |t| *t, &mut ignored);
        row.cells[0] = cell(v[0].map(|t| t.sshd_cpu_per_gib()), |x| format!("sshd {x:.2}"));
        row.cells[1] = v[1].map_or("error".into(), |t| {
            format!("gw {:.2} (sshd {:.2})", t.gateway_cpu_per_gib(), t.sshd_cpu_per_gib())
        });
        row.cells[2] = v[2].map_or("error".into(), |t| {
            format!(
                "gw {:.2} + agent {:.2} (sshd {:.2})",
                t.gateway_cpu_per_gib(),
                t.agent_cpu_per_gib(),
                t.sshd_cpu_per_gib()
            )
        });
        let ratio = |t: Option<Transfer>| t.map(|t| t.gateway_cpu / t.sshd_cpu);
        let (g, tun) = (ratio(v[1]), ratio(v[2]));
        let show = |r: Option<f64>| r.map_or("?".into(), |r| format!("{r:.2}"));
        row.ratio = format!("{} / {} gw÷sshd", show(g), show(tun));
        row.target = "≤ 1.00".into();
        row.verdict = verdict(&[g.map(|g| g <= 1.0), tun.map(|t| t <= 1.0)]);
        row
    }

    /// The `q` quantile in ms per route; the ratio column is what the gateway adds.
    pub fn added_ms(figure: &str, t: &[anyhow::Result<Vec<Duration>>], q: f64, limit: Option<f64>) -> Self {
        let mut row = Self::new(figure);
        let v = values(t, |d| quantile_ms(d, q), &mut row.errors);
        for (c, x) in row.cells.iter_mut().zip(&v) {
            *c = cell(*x, |x| format!("{x:.2} ms"));
        }
        let added = |x: Option<f64>| x.zip(v[0]).map(|(x, d)| x - d);
        let (g, tun) = (added(v[1]), added(v[2]));
        let show = |a: Option<f64>| a.map_or("?".into(), |a| format!("{a:+.2}"));
        row.ratio = format!("{} / {} ms", show(g), show(tun));
        if let Some(limit) = limit {
            row.target = format!("≤ +{limit} ms");
            row.verdict = verdict(&[g.map(|g| g <= limit), tun.map(|t| t <= limit)]);
        }
        row
    }

    /// Memory per idle session: the box's sshd processes (direct column) and the gateway.
    pub fn idle_rss(opened: usize, sshd_kib: f64, gateway_kib: f64) -> Self {
        let mut row = Self::new(&format!("RSS per idle PTY session ({opened} open)"));
        row.cells[0] = format!("sshd {sshd_kib:.0} KiB");
        row.cells[1] = format!("{gateway_kib:.0} KiB");
        row.ratio = format!("{:.2} gw÷sshd", gateway_kib / sshd_kib);
        row.target = "≤ 256 KiB".into();
        row.verdict = verdict(&[Some(gateway_kib <= 256.0)]);
        row
    }

    pub fn idle_cpu(opened: usize, percent: f64) -> Self {
        let mut row = Self::new(&format!("gateway CPU, {opened} idle sessions (10 s)"));
        row.cells[1] = format!("{percent:.1} % of a core");
        row
    }

    /// One transfer through the bench's gateway process with recording off and on.
    pub fn recording(what: &str, off: &anyhow::Result<Transfer>, on: &anyhow::Result<Transfer>) -> Self {
        let mut row = Self::new(&format!("recording off → on, {what} (direct mode)"));
        let v = values([off, on], |t| *t, &mut row.errors);
        row.cells[0] = cell(v[0].map(|t| t.mib_per_s()), |x| format!("off {x:.0} MiB/s"));
        row.cells[1] = cell(v[1].map(|t| t.mib_per_s()), |x| format!("on {x:.0} MiB/s"));
        if let (Some(off), Some(on)) = (v[0], v[1]) {
            row.cells[2] = format!("gw CPU {:.2} → {:.2} s/GiB", off.gateway_cpu_per_gib(), on.gateway_cpu_per_gib());
            let r = on.mib_per_s() / off.mib_per_s();
            row.ratio = format!("{r:.2} on÷off");
            row.verdict = verdict(&[Some(r >= 0.95)]);
        }
        row.target = "≥ 0.95".into();
        row
    }

    pub fn failed(figure: &str, why: &str) -> Self {
        let mut row = Self::new(figure);
        row.errors.push(why.into());
        row.cells = ["error".into(), "error".into(), "error".into()];
        row
    }
}

pub struct Report {
    facts: Vec<(String, String)>,
    rows: Vec<Row>,
    notes: Vec<String>,
}

impl Report {
    pub fn new(facts: Vec<(String, String)>) -> Self {
        Self { facts, rows: Vec::new(), notes: Vec::new() }
    }

    pub fn push(&mut self, mut row: Row) {
        for e in row.errors.drain(..) {
            self.notes.push(format!("{}: {e}", row.figure));
        }
        self.rows.push(row);
    }

    pub fn note(&mut self, text: String) {
        self.notes.push(text);
    }

    pub fn print(&self) {
        println!();
        for (k, v) in &self.facts {
            println!("{k:>14}: {v}");
        }
        println!();
        let header = ["figure", "direct", "gateway", "agent tunnel", "gw / tunnel vs direct", "target", "result"];
        let lines: Vec<[&str; 7]> = self
            .rows
            .iter()
            .map(|r| {
                [&r.figure, &r.cells[0], &r.cells[1], &r.cells[2], &r.ratio, &r.target, &r.verdict].map(String::as_str)
            })
            .collect();
        let mut widths = header.map(|h| h.chars().count());
        for l in &lines {
            for (w, c) in widths.iter_mut().zip(l) {
                *w = (*w).max(c.chars().count());
            }
        }
        let print = |cols: &[&str; 7]| {
            let cells: Vec<String> = cols.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
            println!("| {} |", cells.join(" | "));
        };
        print(&header);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        println!("|-{}-|", rule.join("-|-"));
        for l in &lines {
            print(l);
        }
        println!();
        println!("direct: OpenSSH to the box's sshd (certificate from the gateway's CA). gateway: `ssh T-1001@gw`.");
        println!("agent tunnel: the same sshd as a second box reached through iks-agent. CPU s/GiB: the box's");
        println!("sshd counts its per-connection processes and the remote command; gw is the gateway process.");
        for n in &self.notes {
            println!("note: {n}");
        }
    }
}
