//! The audit export: JSON Lines that verify on their own, and CSV for SIEMs.
//!
//! A JSONL export is, one JSON object per line:
//! 1. `{"type":"export",…}`: when, by whom, with which filter, through which event (the
//!    export's own `audit.export` event ends the snapshot) and where the chain starts;
//! 2. `{"type":"checkpoint",…}` for every signed checkpoint up to that event;
//! 3. `{"type":"event",…}` for every event selected, in chain order, with every field the
//!    hash covers, exactly as stored, plus `prev_hash` and `hash`;
//! 4. `{"type":"signature",…}`: the audit key's SSH signature over every byte before it.
//!
//! So the file needs nothing but itself and the audit public key to be checked: each
//! event's hash recomputes from its line, consecutive events link, the checkpoints are
//! signed and match the events they cover, and the signature line shows that no line was
//! added, removed or changed since the gateway wrote it. A filtered export (any of since,
//! until, ticket, org) is a selection, not the chain: the gaps between its events cannot be
//! checked, only that every event in it is genuine and that the file is exactly what the
//! gateway exported. `docs/audit.md` spells this out for auditors.

use std::borrow::Cow;
use std::io::{self, BufRead, Write};

use chrono::{DateTime, Utc};
use ring::digest::{Context, SHA512};
use russh::keys::{PrivateKey, PublicKey};
use serde::{Deserialize, Serialize};

use super::checkpoint::{self, BadSignature, Checkpoint, SignError};
use super::retention::ChainStart;
use super::verify::{ChainVerifier, Coverage, Problem, RecordingState, Summary};
use iks_domain::audit::{Actor, ActorKind, Event, Subjects};
use iks_domain::ids::{BoxId, GrantId, OrgId, SessionId, TicketId};

/// The version written in the header; a reader refuses others.
pub const FORMAT_VERSION: u32 = 1;

/// The CSV header: one column per chained field, stable for SIEM parsers.
pub const CSV_HEADER: &str =
    "seq,at,actor_kind,actor_id,actor_name,action,org,ticket,box,grant,session,details,prev_hash,hash\n";

/// Which events an export selects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportFilter {
    /// Events at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Events before this instant.
    pub until: Option<DateTime<Utc>>,
    pub ticket: Option<TicketId>,
    pub org: Option<OrgId>,
    /// Absent from files that do not use it, so exports without it read as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionId>,
}

impl ExportFilter {
    /// Whether the export is the whole chain.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The filter as people read it: `ticket T-1042, since 2026-11-01T00:00:00.000000Z`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(t) = self.ticket {
            parts.push(format!("ticket {t}"));
        }
        if let Some(o) = self.org {
            parts.push(format!("organisation {o}"));
        }
        if let Some(s) = self.session {
            parts.push(format!("session {s}"));
        }
        if let Some(t) = self.since {
            parts.push(format!("since {}", iks_domain::time::to_db(t)));
        }
        if let Some(t) = self.until {
            parts.push(format!("until {}", iks_domain::time::to_db(t)));
        }
        if parts.is_empty() { "everything".into() } else { parts.join(", ") }
    }
}

/// The first line of a JSONL export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub version: u32,
    #[serde(with = "iks_domain::time::db_text")]
    pub exported_at: DateTime<Utc>,
    pub exported_by: String,
    pub filter: ExportFilter,
    /// The export's own `audit.export` event: the snapshot ends there.
    pub through_seq: i64,
    /// Where the chain starts; a complete export is checked from here.
    pub start: ChainStart,
}

/// An event as a line: the canonical fields in the order they are hashed, then the links.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct EventLine {
    seq: i64,
    at: String,
    actor_kind: String,
    actor_id: Option<i64>,
    actor_name: String,
    action: String,
    org: Option<i64>,
    ticket: Option<i64>,
    #[serde(rename = "box")]
    box_: Option<i64>,
    grant: Option<i64>,
    session: Option<i64>,
    details: String,
    prev_hash: String,
    hash: String,
}

impl From<&Event> for EventLine {
    fn from(e: &Event) -> Self {
        let s = e.subjects;
        Self {
            seq: e.seq,
            at: iks_domain::time::to_db(e.at),
            actor_kind: e.actor.kind.as_str().into(),
            actor_id: e.actor.id,
            actor_name: e.actor.name.clone(),
            action: e.action.clone(),
            org: s.org.map(OrgId::get),
            ticket: s.ticket.map(TicketId::get),
            box_: s.box_.map(BoxId::get),
            grant: s.grant.map(GrantId::get),
            session: s.session.map(SessionId::get),
            details: e.details.clone(),
            prev_hash: e.prev_hash.clone(),
            hash: e.hash.clone(),
        }
    }
}

impl TryFrom<EventLine> for Event {
    type Error = String;

    fn try_from(l: EventLine) -> Result<Self, String> {
        Ok(Event {
            seq: l.seq,
            at: iks_domain::time::from_db(&l.at).map_err(|e| format!("at '{}': {e}", l.at))?,
            actor: Actor {
                kind: ActorKind::parse(&l.actor_kind)
                    .ok_or_else(|| format!("unknown actor_kind '{}'", l.actor_kind))?,
                id: l.actor_id,
                name: l.actor_name,
            },
            action: l.action,
            subjects: Subjects {
                org: l.org.map(OrgId),
                ticket: l.ticket.map(TicketId),
                box_: l.box_.map(BoxId),
                grant: l.grant.map(GrantId),
                session: l.session.map(SessionId),
            },
            details: l.details,
            prev_hash: l.prev_hash,
            hash: l.hash,
        })
    }
}

/// The last line of a JSONL export.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Trailer {
    key_fingerprint: String,
    /// Armored SSH signature over every byte of the file before this line.
    signature: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Line {
    Export(Header),
    Checkpoint(Checkpoint),
    Event(EventLine),
    Signature(Trailer),
}

/// Why an export could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("writing the export: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Sign(#[from] SignError),
}

/// Writes a JSONL export line by line, hashing as it goes, and signs it at the end.
pub struct JsonlWriter<W: Write> {
    out: W,
    sha512: Context,
}

impl<W: Write> JsonlWriter<W> {
    /// Starts an export with its header line.
    pub fn start(out: W, header: &Header) -> io::Result<Self> {
        let mut w = Self { out, sha512: Context::new(&SHA512) };
        w.line(&Line::Export(header.clone()))?;
        Ok(w)
    }

    pub fn checkpoint(&mut self, c: &Checkpoint) -> io::Result<()> {
        self.line(&Line::Checkpoint(c.clone()))
    }

    pub fn event(&mut self, e: &Event) -> io::Result<()> {
        self.line(&Line::Event(e.into()))
    }

    /// What was written since the last take, leaving the writer empty (for a page-by-page
    /// export into memory).
    pub fn take_written(&mut self) -> W
    where
        W: Default,
    {
        std::mem::take(&mut self.out)
    }

    fn line(&mut self, line: &Line) -> io::Result<()> {
        let mut bytes = serde_json::to_vec(line).map_err(io::Error::other)?;
        bytes.push(b'\n');
        self.sha512.update(&bytes);
        self.out.write_all(&bytes)
    }

    /// Appends the signature line and returns the output, flushed.
    pub fn finish(mut self, key: &PrivateKey) -> Result<W, ExportError> {
        let signature = checkpoint::sign_sha512(key, self.sha512.clone().finish().as_ref())?;
        let trailer = Line::Signature(Trailer { key_fingerprint: crate::datadir::fingerprint(key), signature });
        let mut bytes = serde_json::to_vec(&trailer).map_err(io::Error::other)?;
        bytes.push(b'\n');
        self.out.write_all(&bytes)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// One CSV record (with its line end) for an event, in [`CSV_HEADER`]'s columns.
pub fn csv_record(e: &Event) -> String {
    let num = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    let s = e.subjects;
    let fields: [Cow<'_, str>; 14] = [
        e.seq.to_string().into(),
        iks_domain::time::to_db(e.at).into(),
        e.actor.kind.as_str().into(),
        num(e.actor.id).into(),
        csv_field(&e.actor.name),
        csv_field(&e.action),
        num(s.org.map(OrgId::get)).into(),
        num(s.ticket.map(TicketId::get)).into(),
        num(s.box_.map(BoxId::get)).into(),
        num(s.grant.map(GrantId::get)).into(),
        num(s.session.map(SessionId::get)).into(),
        csv_field(&e.details),
        e.prev_hash.as_str().into(),
        e.hash.as_str().into(),
    ];
    let mut record = fields.join(",");
    record.push('\n');
    record
}

/// A field quoted as RFC 4180 requires: when it holds a comma, a quote or a line break.
fn csv_field(s: &str) -> Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")).into() } else { s.into() }
}

/// The two export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON Lines that verify on their own.
    Jsonl,
    /// CSV for SIEMs: [`CSV_HEADER`], then one record per event.
    Csv,
}

impl Format {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "jsonl" => Some(Self::Jsonl),
            "csv" => Some(Self::Csv),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jsonl => "jsonl",
            Self::Csv => "csv",
        }
    }
}

/// What a clean export contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReport {
    pub header: Header,
    pub summary: Summary,
}

/// Verifies a JSONL export: its chain as far as it goes (all of it when unfiltered), its
/// checkpoints, recordings if `recordings` can look them up, and the signature line.
pub fn verify_file(
    input: impl BufRead,
    trusted: Option<&PublicKey>,
    mut recordings: Option<&mut dyn FnMut(&str) -> RecordingState>,
) -> Result<FileReport, Problem> {
    let mut lines = Lines { input, number: 0, raw: Vec::new() };
    let mut sha512 = Context::new(&SHA512);
    let header = match lines.next()? {
        Some(Line::Export(h)) => h,
        _ => return Err(lines.malformed("not an iks-gateway audit export (no header line)")),
    };
    if header.version != FORMAT_VERSION {
        return Err(lines.malformed(&format!("export format version {} is not supported", header.version)));
    }
    sha512.update(&lines.raw);
    let coverage = if header.filter.is_empty() {
        Coverage::Complete { start: header.start.clone(), through: Some(header.through_seq) }
    } else {
        Coverage::Selection
    };
    let mut checkpoints = Vec::new();
    let mut verifier = None;
    let mut trailer = None;
    while let Some(line) = lines.next()? {
        if trailer.is_some() {
            return Err(lines.malformed("text after the signature line"));
        }
        match line {
            Line::Export(_) => return Err(lines.malformed("a second header")),
            Line::Checkpoint(_) if verifier.is_some() => return Err(lines.malformed("a checkpoint after the events")),
            Line::Checkpoint(c) => checkpoints.push(c),
            Line::Event(l) => {
                let e = Event::try_from(l).map_err(|m| lines.malformed(&m))?;
                let v = match &mut verifier {
                    Some(v) => v,
                    None => verifier.insert(ChainVerifier::new(
                        coverage.clone(),
                        std::mem::take(&mut checkpoints),
                        trusted,
                    )?),
                };
                if let Some(claim) = v.push(&e)?
                    && let Some(lookup) = recordings.as_mut()
                {
                    v.check_recording(&claim, lookup(&claim.file))?;
                }
            }
            Line::Signature(t) => {
                trailer = Some(t);
                continue;
            }
        }
        sha512.update(&lines.raw);
    }
    let verifier = match verifier {
        Some(v) => v,
        None => ChainVerifier::new(coverage, checkpoints, trusted)?,
    };
    let summary = verifier.finish()?;
    let trailer = trailer.ok_or(Problem::ExportUnsigned)?;
    let trusted = trusted.ok_or(Problem::ExportNoTrustedKey)?;
    checkpoint::check_sha512(trusted, &trailer.signature, sha512.finish().as_ref()).map_err(|e| match e {
        BadSignature::Invalid => Problem::ExportSignature,
        BadSignature::ForeignKey(signer) => {
            Problem::ExportSigner { signer, trusted: trusted.fingerprint(russh::keys::HashAlg::Sha256).to_string() }
        }
    })?;
    Ok(FileReport { header, summary })
}

/// Reads an export's lines, keeping each one's raw bytes for the signature.
struct Lines<R> {
    input: R,
    number: u64,
    raw: Vec<u8>,
}

impl<R: BufRead> Lines<R> {
    fn next(&mut self) -> Result<Option<Line>, Problem> {
        self.raw.clear();
        self.number += 1;
        let n = self.input.read_until(b'\n', &mut self.raw).map_err(|e| self.malformed(&e.to_string()))?;
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_slice(self.raw.strip_suffix(b"\n").unwrap_or(&self.raw))
            .map(Some)
            .map_err(|e| self.malformed(&format!("not an export line ({e})")))
    }

    fn malformed(&self, message: &str) -> Problem {
        Problem::Malformed { line: self.number, message: message.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::audit::checkpoint::test_key;
    use iks_domain::audit::{GENESIS_HASH, Unsealed, chain_hash};

    fn events(n: i64) -> Vec<Event> {
        let mut out: Vec<Event> = Vec::new();
        for seq in 1..=n {
            let prev = out.last().map_or(GENESIS_HASH.to_string(), |e| e.hash.clone());
            let actor = Actor::person(iks_domain::ids::PersonId(1), "ivanov, \"the\" engineer");
            let at = iks_domain::time::now();
            let subjects = Subjects { ticket: Some(TicketId(1000 + seq % 2)), ..Default::default() };
            let details = json!({ "n": seq, "text": "a,b\nc" }).to_string();
            let hash = chain_hash(
                &prev,
                &Unsealed { seq, at, actor: &actor, action: "ticket.open", subjects, details: &details },
            );
            out.push(Event { seq, at, actor, action: "ticket.open".into(), subjects, details, prev_hash: prev, hash });
        }
        out
    }

    fn export(events: &[Event], filter: ExportFilter, key: &PrivateKey) -> String {
        let header = Header {
            version: FORMAT_VERSION,
            exported_at: iks_domain::time::now(),
            exported_by: "root (cli)".into(),
            filter,
            through_seq: events.last().map_or(0, |e| e.seq),
            start: ChainStart::genesis(),
        };
        let mut w = JsonlWriter::start(Vec::new(), &header).unwrap();
        let last = events.last().unwrap();
        w.checkpoint(&Checkpoint {
            id: 1,
            signed: checkpoint::sign(key, last.seq, &last.hash, last.at, None).unwrap(),
        })
        .unwrap();
        for e in events {
            w.event(e).unwrap();
        }
        String::from_utf8(w.finish(key).unwrap()).unwrap()
    }

    fn verify(text: &str, key: &PrivateKey) -> Result<FileReport, String> {
        verify_file(text.as_bytes(), Some(key.public_key()), None).map_err(|p| p.to_string())
    }

    #[test]
    fn an_export_verifies_on_its_own() {
        let key = test_key();
        let all = events(6);
        let text = export(&all, ExportFilter::default(), &key);
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 1 + 1 + 6 + 1);
        assert!(lines[0].starts_with(r#"{"type":"export","version":1,"#), "{}", lines[0]);
        assert!(lines[2].starts_with(r#"{"type":"event","seq":1,"at":""#), "{}", lines[2]);
        assert!(lines[8].starts_with(r#"{"type":"signature","#), "{}", lines[8]);
        let report = verify(&text, &key).unwrap();
        assert_eq!((report.summary.events, report.summary.runs), (6, 1));
        assert_eq!(report.summary.last_checkpoint.map(|c| c.0), Some(1));

        // The canonical JSON is the line without its type and links.
        let line: serde_json::Value = serde_json::from_str(lines[2]).unwrap();
        assert_eq!(line["hash"], all[0].hash);
        assert_eq!(line["details"], all[0].details);
    }

    #[test]
    fn a_filtered_export_is_a_verifiable_selection() {
        let key = test_key();
        let all = events(6);
        let picked: Vec<_> = all.iter().filter(|e| e.subjects.ticket == Some(TicketId(1001))).cloned().collect();
        let filter = ExportFilter { ticket: Some(TicketId(1001)), ..Default::default() };
        let text = export(&picked, filter, &key);
        let report = verify(&text, &key).unwrap();
        assert_eq!((report.summary.events, report.summary.runs), (3, 3));
        assert_eq!(report.header.filter.describe(), "ticket T-1001");
        // Dropping a line from a selection is invisible in the chain, not in the signature.
        let dropped: String =
            text.lines().enumerate().filter(|(i, _)| *i != 3).map(|(_, l)| format!("{l}\n")).collect();
        assert_eq!(
            verify(&dropped, &key).unwrap_err(),
            "the export's signature is invalid (lines were added, removed or changed)"
        );
    }

    #[test]
    fn tampered_exports_are_named() {
        let key = test_key();
        let text = export(&events(6), ExportFilter::default(), &key);
        let edit_line = |n: usize, f: &dyn Fn(&str) -> String| -> String {
            text.lines().enumerate().map(|(i, l)| if i == n { f(l) } else { l.to_string() } + "\n").collect()
        };
        let other = test_key();
        let cases: Vec<(String, String)> = vec![
            (edit_line(4, &|l| l.replace(r#"\"n\":3"#, r#"\"n\":4"#)), "event #3 was edited (hash mismatch)".into()),
            (edit_line(4, &|_| String::new()), "line 5: not an export line (".into()),
            (
                edit_line(8, &|_| String::new()).replace("\n\n", "\n"),
                "the export is not signed (no signature line: was it cut short?)".into(),
            ),
            (
                text.lines().take(7).chain(text.lines().skip(8)).map(|l| format!("{l}\n")).collect(),
                "tail cut: checkpoint #1 covers event #6 but the log ends at #5".into(),
            ),
            (format!("{text}{{}}\n"), "line 10: not an export line (missing field `type`".into()),
            (
                text.replace(r#""type":"export""#, r#""type":"export ""#),
                "line 1: not an export line (unknown variant `export `".into(),
            ),
            (
                {
                    let body: String = text.lines().take(8).map(|l| format!("{l}\n")).collect();
                    let mut sha = Context::new(&SHA512);
                    sha.update(body.as_bytes());
                    let sig = checkpoint::sign_sha512(&other, sha.finish().as_ref()).unwrap();
                    format!("{body}{}\n", json!({ "type": "signature", "key_fingerprint": "x", "signature": sig }))
                },
                format!(
                    "the export is signed by {}, not the audit key {}",
                    crate::datadir::fingerprint(&other),
                    crate::datadir::fingerprint(&key)
                ),
            ),
        ];
        for (tampered, want) in cases {
            let got = verify(&tampered, &key).unwrap_err();
            assert!(got.starts_with(&want), "got '{got}', want '{want}…'");
        }
    }

    #[test]
    fn csv_has_a_stable_header_and_quotes_what_needs_it() {
        let e = &events(1)[0];
        let record = csv_record(e);
        assert!(
            record.starts_with(&format!(
                "1,{},person,1,\"ivanov, \"\"the\"\" engineer\",ticket.open,,1001,,,,",
                iks_domain::time::to_db(e.at)
            )),
            "{record}"
        );
        assert!(record.contains(r#""{""n"":1,""text"":""a,b\nc""}""#), "{record}");
        assert!(record.ends_with(&format!(",{},{}\n", GENESIS_HASH, e.hash)), "{record}");
    }
}
