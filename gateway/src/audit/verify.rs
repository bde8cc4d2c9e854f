//! Verifying an audit chain, purely: the caller hands over the checkpoints, then feeds the
//! events one at a time in stored order (so a chain of millions is checked in bounded
//! memory), and for each ended session says what its recording's SHA-256 is now. The
//! first problem found is returned, named by its most specific cause.
//!
//! How each kind of tampering shows, and so how it is told apart:
//! - an edited field: the event's hash no longer recomputes, but its `prev_hash` still
//!   links to its predecessor: "event #n was edited";
//! - an edited event whose hash was recomputed: it checks out by itself, but its successor
//!   links to a different hash: "event #n was replaced";
//! - a deleted event: the numbers jump and the event after the gap is intact: "event #n is
//!   missing";
//! - swapped or moved events: the event found at #a neither recomputes nor links, but its
//!   content and `prev_hash` recompute to its stored hash under another number #b, so it is
//!   intact, only not where it was written: "events #a and #b are out of order" (reported
//!   instead of the hash breaks the move also causes);
//! - a fork (an event appended after an event that already had a successor): an intact
//!   event links to an event before its predecessor: "chain forked at #n";
//! - a cut-off tail: a signed checkpoint covers an event beyond the end: "tail cut";
//! - a chain rewritten consistently from some event on: the event a checkpoint covers has
//!   another hash than the one signed;
//! - the newest checkpoints cut together with the events after the one left: the one left
//!   promised a successor by a time that has passed (a serving gateway signs at least every
//!   `[audit] checkpoint_interval` and promises the next within twice that), or more than
//!   `checkpoint_every` events older than the interval are covered by no checkpoint;
//! - old events deleted and a forged `audit.retention` event appended: the retention event
//!   is not covered by a signed checkpoint (the gateway signs its own in the same
//!   transaction), or it deleted events younger than `[audit] retention_days` allows;
//! - a changed or deleted recording: its SHA-256 differs from the one `session.end` put into
//!   the chain (the chain's copy is authoritative; the session row can be edited).

use std::collections::VecDeque;
use std::fmt;
use std::path::{Component, Path};

use chrono::{DateTime, Utc};
use russh::keys::PublicKey;
use serde::Deserialize;

use super::checkpoint::{BadSignature, Checkpoint};
use super::retention::{self, ChainStart, RetentionDetails};
use iks_domain::audit::Event;
use iks_domain::ids::SessionId;

/// How many recent events are remembered to recognise a fork.
const FORK_MEMORY: usize = 64;

/// How far from where it was found a moved event is searched for (each candidate costs one
/// SHA-256, and only once a problem was found). An event moved further is reported as edited.
const MOVE_SEARCH: i64 = 100_000;

/// The first thing wrong with a chain, an export or a recording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("event #{seq} was edited (hash mismatch)")]
    Edited { seq: i64 },
    #[error("event #{seq} was replaced (event #{next} links to a different hash)")]
    Replaced { seq: i64, next: i64 },
    #[error("{} (chain jumps from #{after} to #{next})", Missing(.after + 1, .next - 1))]
    Missing { after: i64, next: i64 },
    #[error("{} (the log starts at #{first})", Missing(*.expected, .first - 1))]
    MissingAtStart { expected: i64, first: i64 },
    #[error("event #{seq} does not link to the start of the chain")]
    Unanchored { seq: i64 },
    #[error("event #{seq} precedes the start of the chain (#{start})")]
    BeforeStart { seq: i64, start: i64 },
    #[error("events #{0} and #{1} are out of order")]
    OutOfOrder(i64, i64),
    #[error("chain forked at #{seq}")]
    Forked { seq: i64 },
    #[error("event #{seq} appears twice")]
    Duplicate { seq: i64 },
    #[error("retention event #{seq} does not match the start the chain was checked from")]
    AnchorMismatch { seq: i64 },
    #[error("tail cut: checkpoint #{checkpoint} covers event #{covers} but {}", LogEnd(*.last))]
    TailCut { checkpoint: i64, covers: i64, last: Option<i64> },
    #[error("tail cut: retention event #{retention} starts the log but {}", LogEnd(*.last))]
    RetentionCut { retention: i64, last: Option<i64> },
    #[error("tail cut: the export was made through event #{through} but {}", LogEnd(*.last))]
    ExportCut { through: i64, last: Option<i64> },
    #[error("event #{seq} does not match checkpoint #{checkpoint} (the chain was rewritten after it was signed)")]
    Rewritten { seq: i64, checkpoint: i64 },
    #[error("checkpoint #{checkpoint} signature is invalid")]
    CheckpointSignature { checkpoint: i64 },
    #[error("checkpoint #{checkpoint} is signed by {signer}, not the audit key {trusted}")]
    CheckpointSigner { checkpoint: i64, signer: String, trusted: String },
    #[error("checkpoint #{checkpoint} cannot be checked: no audit public key given")]
    NoTrustedKey { checkpoint: i64 },
    #[error(
        "tail cut: no checkpoint since #{checkpoint} (event #{covers}), which promised the next by {}: \
         later checkpoints and the events after #{covers} were deleted, or the gateway was killed",
        iks_domain::time::to_db(*.due)
    )]
    CheckpointOverdue { checkpoint: i64, covers: i64, due: DateTime<Utc> },
    #[error(
        "checkpoints deleted: events #{first}–#{last} (the oldest from {}) are covered by no checkpoint, \
         more than [audit] checkpoint_every = {every} older than checkpoint_interval",
        iks_domain::time::to_db(*.since)
    )]
    UnsignedTail { first: i64, last: i64, since: DateTime<Utc>, every: u64 },
    #[error(
        "retention event #{retention} is not vouched for by a signed checkpoint \
         (events before #{first} were deleted without one)"
    )]
    RetentionUnvouched { retention: i64, first: i64 },
    #[error("retention event #{seq} deleted events up to {}, {}", iks_domain::time::to_db(*.cutoff), Policy(*.days))]
    RetentionPolicy { seq: i64, cutoff: DateTime<Utc>, days: u32 },
    #[error("retention event #{seq} has unreadable details")]
    RetentionMalformed { seq: i64 },
    #[error("checkpoint #{checkpoint} (event #{covers}) of the checkpoint log is not in the database: it was deleted")]
    CheckpointDeleted { checkpoint: i64, covers: i64 },
    #[error("recording of session {session} changed (sha256 {actual} expected {expected})")]
    RecordingChanged { session: SessionId, actual: String, expected: String },
    #[error("recording of session {session} is missing ({path})")]
    RecordingMissing { session: SessionId, path: String },
    #[error("recording of session {session} is unreadable ({path}: {error})")]
    RecordingUnreadable { session: SessionId, path: String, error: String },
    #[error("line {line}: {message}")]
    Malformed { line: u64, message: String },
    #[error("the export is not signed (no signature line: was it cut short?)")]
    ExportUnsigned,
    #[error("the export's signature is invalid (lines were added, removed or changed)")]
    ExportSignature,
    #[error("the export is signed by {signer}, not the audit key {trusted}")]
    ExportSigner { signer: String, trusted: String },
    #[error("the export cannot be checked: no audit public key given")]
    ExportNoTrustedKey,
}

impl Problem {
    fn out_of_order(a: i64, b: i64) -> Self {
        Self::OutOfOrder(a.min(b), a.max(b))
    }
}

/// "event #5 is missing" or "events #5–#7 are missing".
struct Missing(i64, i64);

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self(a, b) if a == b => write!(f, "event #{a} is missing"),
            Self(a, b) => write!(f, "events #{a}–#{b} are missing"),
        }
    }
}

/// Why a retention event's cutoff breaks the policy.
struct Policy(u32);

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => write!(f, "but [audit] retention_days = 0 keeps every event"),
            days => write!(f, "younger than [audit] retention_days = {days} allows"),
        }
    }
}

/// "the log ends at #9" or "the log is empty".
struct LogEnd(Option<i64>);

impl fmt::Display for LogEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(seq) => write!(f, "the log ends at #{seq}"),
            None => write!(f, "the log is empty"),
        }
    }
}

/// How much of the chain the events fed are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coverage {
    /// All of it from `start`: every event must be there, in order, linked. `through`, if
    /// given, is the last event that must be present (an export's snapshot).
    Complete { start: ChainStart, through: Option<i64> },
    /// A selection (a filtered export): every event must be intact and events with
    /// consecutive numbers must link, but gaps between them are expected.
    Selection,
}

/// What the stored chain is held to beyond its own links: the gateway's configuration and
/// the time, which an export checked elsewhere does not carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectations {
    /// When the verification runs: a promised checkpoint that is not there by now shows a cut.
    pub now: DateTime<Utc>,
    /// `[audit] checkpoint_every`.
    pub checkpoint_every: u64,
    /// `[audit] checkpoint_interval`.
    pub checkpoint_interval: chrono::Duration,
    /// `[audit] retention_days`: what a retention event may have deleted.
    pub retention_days: u32,
}

/// What a clean verification saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub events: u64,
    /// Recordings whose SHA-256 matched the chain's.
    pub recordings: u64,
    /// Stretches of consecutive events: 1 for a complete chain that is not empty.
    pub runs: u64,
    /// The newest checkpoint: its ID and when it was signed.
    pub last_checkpoint: Option<(i64, DateTime<Utc>)>,
}

/// A recording the chain vouches for: a `session.end` event's file name and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingClaim {
    pub session: SessionId,
    /// Relative to the recordings directory.
    pub file: String,
    pub sha256: String,
}

impl RecordingClaim {
    /// The recording an event vouches for, if it is a `session.end` with one.
    pub fn of(e: &Event) -> Option<Self> {
        #[derive(Deserialize)]
        struct Details {
            recording: Option<String>,
            recording_sha256: Option<String>,
        }
        if e.action != "session.end" {
            return None;
        }
        let d: Details = serde_json::from_str(&e.details).ok()?;
        Some(Self { session: e.subjects.session?, file: d.recording?, sha256: d.recording_sha256? })
    }
}

/// What is found where a recording should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordingState {
    /// The file's SHA-256 (hex).
    Hashed(String),
    /// No file at this path.
    Missing(String),
    /// The file at this path could not be read, and why.
    Unreadable(String, String),
}

/// What is at a recording's place under `dir`: its SHA-256, or why there is none. The
/// name comes from the audit log, so it must stay inside `dir`.
pub fn recording_state(dir: &Path, name: &str) -> RecordingState {
    let path = dir.join(name);
    let shown = path.display().to_string();
    if !Path::new(name).components().all(|c| matches!(c, Component::Normal(_))) {
        return RecordingState::Unreadable(shown, "not a plain relative file name".into());
    }
    match crate::datadir::sha256_file(&path) {
        Ok(hash) => RecordingState::Hashed(hash),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => RecordingState::Missing(shown),
        Err(e) => RecordingState::Unreadable(shown, e.to_string()),
    }
}

/// The last event accepted.
struct Link {
    seq: i64,
    hash: String,
}

/// A verification in progress; see the module documentation for what it detects.
pub struct ChainVerifier {
    coverage: Coverage,
    /// Sorted by (seq, id); those before `next_checkpoint` are done with.
    checkpoints: Vec<Checkpoint>,
    next_checkpoint: usize,
    last: Option<Link>,
    /// Recent (seq, hash) pairs, to tell a fork from a replaced event.
    recent: VecDeque<(i64, String)>,
    /// A jump in the numbers, judged when the next event shows whether events are missing
    /// or only out of order: (last seq before it, seq after it).
    gap: Option<(i64, i64)>,
    /// The highest event a checkpoint was found to match: what the signatures vouch for.
    vouched: Option<i64>,
    /// The newest checkpoint (by signing time), and the highest event any checkpoint covers.
    newest: Option<Checkpoint>,
    covered: Option<i64>,
    /// The first event no checkpoint covers, and when it was written.
    first_unsigned: Option<(i64, DateTime<Utc>)>,
    /// The first retention event the policy does not allow: reported at the end, after
    /// whether anything signed it at all (a forged one is "not vouched for", first).
    policy_breach: Option<Problem>,
    expectations: Option<Expectations>,
    summary: Summary,
}

impl ChainVerifier {
    /// Starts a verification; every checkpoint's signature is checked first, since the
    /// checkpoints are what the rest is compared against.
    pub fn new(
        coverage: Coverage,
        mut checkpoints: Vec<Checkpoint>,
        trusted: Option<&PublicKey>,
    ) -> Result<Self, Problem> {
        checkpoints.sort_by_key(|c| c.id);
        for c in &checkpoints {
            let Some(trusted) = trusted else {
                return Err(Problem::NoTrustedKey { checkpoint: c.id });
            };
            c.signed.check(trusted).map_err(|e| match e {
                BadSignature::Invalid => Problem::CheckpointSignature { checkpoint: c.id },
                BadSignature::ForeignKey(signer) => {
                    Problem::CheckpointSigner { checkpoint: c.id, signer, trusted: fingerprint(trusted) }
                }
            })?;
        }
        let last_checkpoint = checkpoints.last().map(|c| (c.id, c.signed.at));
        let newest = checkpoints.iter().max_by_key(|c| (c.signed.at, c.id)).cloned();
        let covered = checkpoints.iter().map(|c| c.signed.seq).max();
        checkpoints.sort_by_key(|c| (c.signed.seq, c.id));
        Ok(Self {
            coverage,
            checkpoints,
            next_checkpoint: 0,
            last: None,
            recent: VecDeque::with_capacity(FORK_MEMORY),
            gap: None,
            vouched: None,
            newest,
            covered,
            first_unsigned: None,
            policy_breach: None,
            expectations: None,
            summary: Summary { last_checkpoint, ..Summary::default() },
        })
    }

    /// Also holds the chain to the gateway's configuration at a time (the stored chain; an
    /// export checked elsewhere is held to its own links and signatures only).
    pub fn expecting(mut self, expectations: Expectations) -> Self {
        self.expectations = Some(expectations);
        self
    }

    /// Checks the next event. If it vouches for a recording, the caller looks the file up
    /// and reports with [`ChainVerifier::check_recording`] before the next event.
    pub fn push(&mut self, e: &Event) -> Result<Option<RecordingClaim>, Problem> {
        if let Some((after, next)) = self.gap.take() {
            // The event after a jump tells a deletion from events merely out of order.
            return Err(if e.seq < next {
                Problem::out_of_order(e.seq, next)
            } else {
                Problem::Missing { after, next }
            });
        }
        let expected_prev = match (&self.last, &self.coverage) {
            (Some(last), _) if e.seq == last.seq => {
                return Err(if e.hash == last.hash {
                    Problem::Duplicate { seq: e.seq }
                } else {
                    Problem::Forked { seq: e.seq }
                });
            }
            (Some(last), _) if e.seq < last.seq => return Err(Problem::out_of_order(e.seq, last.seq)),
            (Some(last), _) if e.seq == last.seq + 1 => Some(last.hash.clone()),
            (Some(last), Coverage::Complete { .. }) => {
                self.gap = Some((last.seq, e.seq));
                return Ok(None);
            }
            (Some(_), Coverage::Selection) | (None, Coverage::Selection) => {
                self.summary.runs += 1;
                None
            }
            (None, Coverage::Complete { start, .. }) => {
                if e.seq < start.seq {
                    return Err(Problem::BeforeStart { seq: e.seq, start: start.seq });
                }
                if e.seq > start.seq {
                    return Err(Problem::MissingAtStart { expected: start.seq, first: e.seq });
                }
                self.summary.runs = 1;
                Some(start.prev_hash.clone())
            }
        };
        self.check_links(e, expected_prev.as_deref())?;
        self.check_checkpoints(e)?;
        if let Coverage::Complete { start, .. } = &self.coverage
            && start.retention_event == Some(e.seq)
            && ChainStart::from_retention_event(e).as_ref() != Some(start)
        {
            return Err(Problem::AnchorMismatch { seq: e.seq });
        }
        if let Some(x) = &self.expectations
            && e.action == retention::ACTION
            && self.policy_breach.is_none()
        {
            self.policy_breach = check_retention_policy(e, x.retention_days).err();
        }
        if self.first_unsigned.is_none() && self.covered.is_none_or(|c| e.seq > c) {
            self.first_unsigned = Some((e.seq, e.at));
        }
        if self.recent.len() == FORK_MEMORY {
            self.recent.pop_front();
        }
        self.recent.push_back((e.seq, e.hash.clone()));
        self.last = Some(Link { seq: e.seq, hash: e.hash.clone() });
        self.summary.events += 1;
        Ok(RecordingClaim::of(e))
    }

    /// The event itself, and its link to its predecessor (`expected_prev`, when known).
    fn check_links(&self, e: &Event, expected_prev: Option<&str>) -> Result<(), Problem> {
        let linked = expected_prev.is_none_or(|p| p == e.prev_hash);
        if e.recomputed_hash() != e.hash {
            // An intact event whose link is broken may just be in the wrong place. (With the
            // link intact it cannot have been moved: its prev_hash names its position.)
            if !linked || expected_prev.is_none() {
                let nearby = (1..=MOVE_SEARCH).flat_map(|d| [e.seq + d, e.seq - d]).filter(|&s| s >= 1);
                if let Some(original) = e.original_seq(nearby) {
                    return Err(Problem::out_of_order(e.seq, original));
                }
            }
            return Err(Problem::Edited { seq: e.seq });
        }
        if linked {
            return Ok(());
        }
        if let Some((seq, _)) = self.recent.iter().find(|(_, h)| *h == e.prev_hash) {
            return Err(Problem::Forked { seq: seq + 1 });
        }
        Err(match &self.last {
            Some(last) => Problem::Replaced { seq: last.seq, next: e.seq },
            None => Problem::Unanchored { seq: e.seq },
        })
    }

    /// Checkpoints signed for this event must name its hash.
    fn check_checkpoints(&mut self, e: &Event) -> Result<(), Problem> {
        while let Some(c) = self.checkpoints.get(self.next_checkpoint) {
            if c.signed.seq > e.seq {
                break;
            }
            // Checkpoints of events before this one are of events not in a selection, or
            // deleted by retention: only their signatures could be checked.
            if c.signed.seq == e.seq {
                if c.signed.hash != e.hash {
                    return Err(Problem::Rewritten { seq: e.seq, checkpoint: c.id });
                }
                self.vouched = Some(e.seq);
            }
            self.next_checkpoint += 1;
        }
        Ok(())
    }

    /// Compares what was found for a recording with what the chain vouches for.
    pub fn check_recording(&mut self, claim: &RecordingClaim, found: RecordingState) -> Result<(), Problem> {
        let session = claim.session;
        match found {
            RecordingState::Hashed(actual) if actual == claim.sha256 => {
                self.summary.recordings += 1;
                Ok(())
            }
            RecordingState::Hashed(actual) => {
                Err(Problem::RecordingChanged { session, actual, expected: claim.sha256.clone() })
            }
            RecordingState::Missing(path) => Err(Problem::RecordingMissing { session, path }),
            RecordingState::Unreadable(path, error) => Err(Problem::RecordingUnreadable { session, path, error }),
        }
    }

    /// Ends the verification: what remains to check is whether the chain ends too early.
    pub fn finish(self) -> Result<Summary, Problem> {
        if let Some((after, next)) = self.gap {
            return Err(Problem::Missing { after, next });
        }
        let Coverage::Complete { start, through } = &self.coverage else {
            return Ok(self.summary);
        };
        let last = self.last.as_ref().map(|l| l.seq);
        let beyond = |seq: i64| last.is_none_or(|l| seq > l);
        // Sorted by seq: the last checkpoint not yet reached covers the furthest event.
        let cut = self.checkpoints[self.next_checkpoint..].last().filter(|c| c.signed.seq >= start.seq);
        if let Some(c) = cut.filter(|c| beyond(c.signed.seq)) {
            return Err(Problem::TailCut { checkpoint: c.id, covers: c.signed.seq, last });
        }
        if let Some(retention) = start.retention_event.filter(|&r| beyond(r)) {
            return Err(Problem::RetentionCut { retention, last });
        }
        if let Some(through) = through.filter(|&t| beyond(t)) {
            return Err(Problem::ExportCut { through, last });
        }
        // The gateway signs its own retention event in the deletion's transaction, and
        // refuses to sign over anyone else's: an unsigned one deleted without a key.
        if let Some(retention) = start.retention_event
            && self.vouched.is_none_or(|v| v < retention)
        {
            return Err(Problem::RetentionUnvouched { retention, first: start.seq });
        }
        if let Some(breach) = &self.policy_breach {
            return Err(breach.clone());
        }
        if let Some(x) = &self.expectations {
            self.check_freshness(x, last)?;
        }
        Ok(self.summary)
    }

    /// The head is covered within the window: a cut back to an older checkpoint shows by its
    /// broken promise, a deletion of every checkpoint by a long and old unsigned tail.
    fn check_freshness(&self, x: &Expectations, last: Option<i64>) -> Result<(), Problem> {
        if let Some(c) = &self.newest
            && let Some(due) = c.signed.next
            && x.now > due
        {
            return Err(Problem::CheckpointOverdue { checkpoint: c.id, covers: c.signed.seq, due });
        }
        if let (Some((first, since)), Some(last)) = (self.first_unsigned, last) {
            let count = u64::try_from(last - first + 1).unwrap_or(0);
            if count >= x.checkpoint_every && x.now - since >= x.checkpoint_interval {
                return Err(Problem::UnsignedTail { first, last, since, every: x.checkpoint_every });
            }
        }
        Ok(())
    }
}

/// A retention event may only have deleted what `[audit] retention_days` allows: events
/// older than that many days when it ran. The rule is the configured one now, so turning
/// retention off after it ran makes its past deletions show.
fn check_retention_policy(e: &Event, days: u32) -> Result<(), Problem> {
    let d: RetentionDetails =
        serde_json::from_str(&e.details).map_err(|_| Problem::RetentionMalformed { seq: e.seq })?;
    match retention::cutoff(days, e.at) {
        Some(allowed) if d.cutoff <= allowed => Ok(()),
        _ => Err(Problem::RetentionPolicy { seq: e.seq, cutoff: d.cutoff, days }),
    }
}

/// Every checkpoint kept outside the database must still be in it, unchanged: a cut of
/// the newest checkpoints together with the events after them is then seen at once, not
/// only when a promise runs out.
pub fn cross_check(logged: &[Checkpoint], stored: &[Checkpoint]) -> Result<(), Problem> {
    let stored: std::collections::HashMap<i64, &Checkpoint> = stored.iter().map(|c| (c.id, c)).collect();
    match logged.iter().find(|c| stored.get(&c.id) != Some(c)) {
        Some(c) => Err(Problem::CheckpointDeleted { checkpoint: c.id, covers: c.signed.seq }),
        None => Ok(()),
    }
}

fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(russh::keys::HashAlg::Sha256).to_string()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;
    use crate::audit::checkpoint::{self, test_key};
    use crate::audit::retention::{self, RetentionDetails};
    use iks_domain::audit::{Actor, GENESIS_HASH, Subjects, Unsealed, chain_hash};
    use iks_domain::ids::TicketId;

    const RECORDING: &str = "2026/11/24/S-7.cast";

    /// An event after `prev_hash`, sealed as the store would.
    fn seal(seq: i64, prev_hash: &str, action: &str, subjects: Subjects, details: &str) -> Event {
        let actor = Actor::person(iks_domain::ids::PersonId(3), "ivanov");
        let at = iks_domain::time::from_db("2026-11-24T10:00:00.000000Z").unwrap() + chrono::Duration::seconds(seq);
        let hash = chain_hash(prev_hash, &Unsealed { seq, at, actor: &actor, action, subjects, details });
        Event {
            seq,
            at,
            actor,
            action: action.into(),
            subjects,
            details: details.into(),
            prev_hash: prev_hash.into(),
            hash,
        }
    }

    fn reseal(e: &Event, prev_hash: &str) -> Event {
        seal(e.seq, prev_hash, &e.action, e.subjects, &e.details)
    }

    /// A chain of `n` events; #5 ends session S-7 with a recording.
    fn chain(n: i64) -> Vec<Event> {
        let mut events: Vec<Event> = Vec::new();
        for seq in 1..=n {
            let prev = events.last().map_or(GENESIS_HASH.to_string(), |e| e.hash.clone());
            let e = if seq == 5 {
                let subjects = Subjects { session: Some(SessionId(7)), ..Default::default() };
                let details =
                    json!({ "reason": "client-exit", "recording": RECORDING, "recording_sha256": "ab".repeat(32) });
                seal(seq, &prev, "session.end", subjects, &details.to_string())
            } else {
                let subjects = Subjects { ticket: Some(TicketId(1042)), ..Default::default() };
                seal(seq, &prev, "ticket.open", subjects, &json!({ "n": seq }).to_string())
            };
            events.push(e);
        }
        events
    }

    fn checkpoint(id: i64, e: &Event, key: &russh::keys::PrivateKey) -> Checkpoint {
        Checkpoint { id, signed: checkpoint::sign(key, e.seq, &e.hash, e.at, None).unwrap() }
    }

    /// A checkpoint a serving gateway signs: it promises the next within two minutes.
    fn promising(id: i64, e: &Event, key: &russh::keys::PrivateKey) -> Checkpoint {
        let next = e.at + chrono::Duration::minutes(2);
        Checkpoint { id, signed: checkpoint::sign(key, e.seq, &e.hash, e.at, Some(next)).unwrap() }
    }

    struct Case {
        coverage: Coverage,
        events: Vec<Event>,
        checkpoints: Vec<Checkpoint>,
        recordings: HashMap<&'static str, RecordingState>,
        expectations: Option<Expectations>,
    }

    impl Case {
        fn complete(events: Vec<Event>) -> Self {
            Self {
                coverage: Coverage::Complete { start: ChainStart::genesis(), through: None },
                events,
                checkpoints: Vec::new(),
                recordings: HashMap::from([(RECORDING, RecordingState::Hashed("ab".repeat(32)))]),
                expectations: None,
            }
        }

        fn run(self, trusted: &PublicKey) -> Result<Summary, Problem> {
            let mut v = ChainVerifier::new(self.coverage, self.checkpoints, Some(trusted))?;
            if let Some(x) = self.expectations {
                v = v.expecting(x);
            }
            for e in &self.events {
                if let Some(claim) = v.push(e)? {
                    let found = self.recordings.get(claim.file.as_str()).cloned();
                    v.check_recording(&claim, found.unwrap_or_else(|| RecordingState::Missing(claim.file.clone())))?;
                }
            }
            v.finish()
        }
    }

    #[test]
    fn an_intact_chain_verifies() {
        let key = test_key();
        let events = chain(8);
        let mut case = Case::complete(events.clone());
        case.checkpoints = vec![checkpoint(1, &events[3], &key), checkpoint(2, &events[7], &key)];
        let summary = case.run(key.public_key()).unwrap();
        assert_eq!((summary.events, summary.recordings, summary.runs), (8, 1, 1));
        assert_eq!(summary.last_checkpoint, Some((2, events[7].at)));
        assert_eq!(Case::complete(Vec::new()).run(key.public_key()), Ok(Summary::default()));
    }

    #[test]
    fn each_tampering_is_named() {
        let key = test_key();
        let events = chain(8);
        let tampered = |edit: &dyn Fn(&mut Vec<Event>)| {
            let mut e = events.clone();
            edit(&mut e);
            Case::complete(e)
        };
        let with_checkpoints = |mut case: Case, at: &[usize]| {
            case.checkpoints =
                at.iter().enumerate().map(|(i, &n)| checkpoint(i as i64 + 1, &events[n], &key)).collect();
            case
        };
        let swap = |a: usize, b: usize| {
            tampered(&move |e: &mut Vec<Event>| {
                let (sa, sb) = (e[a].seq, e[b].seq);
                e.swap(a, b);
                (e[a].seq, e[b].seq) = (sa, sb);
            })
        };
        let other_key = test_key();
        let cases: Vec<(&str, Case, String)> = vec![
            (
                "details",
                tampered(&|e| e[2].details = r#"{"n":33}"#.into()),
                "event #3 was edited (hash mismatch)".into(),
            ),
            ("actor", tampered(&|e| e[2].actor.name = "petrov".into()), "event #3 was edited (hash mismatch)".into()),
            (
                "time",
                tampered(&|e| e[7].at += chrono::Duration::hours(1)),
                "event #8 was edited (hash mismatch)".into(),
            ),
            (
                "rehashed edit",
                tampered(&|e| {
                    e[2].details = r#"{"n":33}"#.into();
                    e[2] = reseal(&e[2], &e[2].prev_hash.clone());
                }),
                "event #3 was replaced (event #4 links to a different hash)".into(),
            ),
            ("deleted", tampered(&|e| drop(e.remove(3))), "event #4 is missing (chain jumps from #3 to #5)".into()),
            (
                "two deleted",
                tampered(&|e| drop(e.drain(3..5))),
                "events #4–#5 are missing (chain jumps from #3 to #6)".into(),
            ),
            ("first deleted", tampered(&|e| drop(e.remove(0))), "event #1 is missing (the log starts at #2)".into()),
            ("swapped", swap(2, 4), "events #3 and #5 are out of order".into()),
            ("adjacent swapped", swap(5, 6), "events #6 and #7 are out of order".into()),
            ("lines reordered", tampered(&|e| e.swap(2, 3)), "events #3 and #4 are out of order".into()),
            ("duplicated", tampered(&|e| e.insert(4, e[4].clone())), "event #5 appears twice".into()),
            (
                "forked",
                tampered(&|e| {
                    let branch = reseal(&e[5], &e[3].hash.clone());
                    e[5] = branch;
                }),
                "chain forked at #5".into(),
            ),
            ("second head", tampered(&|e| e.insert(5, reseal(&e[5], &e[3].hash.clone()))), "chain forked at #5".into()),
            (
                "tail cut",
                with_checkpoints(tampered(&|e| e.truncate(6)), &[3, 7]),
                "tail cut: checkpoint #2 covers event #8 but the log ends at #6".into(),
            ),
            (
                "all cut",
                with_checkpoints(tampered(&|e| e.clear()), &[7]),
                "tail cut: checkpoint #1 covers event #8 but the log is empty".into(),
            ),
            (
                "rewritten",
                with_checkpoints(
                    tampered(&|e| {
                        e[5].details = r#"{"n":66}"#.into();
                        for i in 5..e.len() {
                            let prev = e[i - 1].hash.clone();
                            e[i] = reseal(&e[i], &prev);
                        }
                    }),
                    &[3, 7],
                ),
                "event #8 does not match checkpoint #2 (the chain was rewritten after it was signed)".into(),
            ),
            (
                "checkpoint moved",
                with_checkpoints(tampered(&|_| {}), &[3]).map_checkpoints(|c| c.signed.seq = 5),
                "checkpoint #1 signature is invalid".into(),
            ),
            (
                "checkpoint forged",
                {
                    let mut case = tampered(&|_| {});
                    case.checkpoints = vec![checkpoint(1, &events[7], &other_key)];
                    case
                },
                format!(
                    "checkpoint #1 is signed by {}, not the audit key {}",
                    crate::datadir::fingerprint(&other_key),
                    crate::datadir::fingerprint(&key)
                ),
            ),
            (
                "recording changed",
                tampered(&|_| {}).with_recording(RecordingState::Hashed("cd".repeat(32))),
                format!("recording of session S-7 changed (sha256 {} expected {})", "cd".repeat(32), "ab".repeat(32)),
            ),
            (
                "recording missing",
                tampered(&|_| {}).with_recording(RecordingState::Missing("/data/recordings/x.cast".into())),
                "recording of session S-7 is missing (/data/recordings/x.cast)".into(),
            ),
        ];
        for (what, case, want) in cases {
            let got = case.run(key.public_key()).map_err(|p| p.to_string());
            assert_eq!(got, Err(want), "{what}");
        }
    }

    impl Case {
        fn map_checkpoints(mut self, f: impl Fn(&mut Checkpoint)) -> Self {
            self.checkpoints.iter_mut().for_each(f);
            self
        }

        fn with_recording(mut self, state: RecordingState) -> Self {
            self.recordings.insert(RECORDING, state);
            self
        }
    }

    /// A chain whose events #1–#3 were deleted by policy (events before `cutoff`); #9 is
    /// the retention event.
    fn retained() -> (Vec<Event>, ChainStart) {
        retained_before(chain(8)[3].at)
    }

    fn retained_before(cutoff: DateTime<Utc>) -> (Vec<Event>, ChainStart) {
        let mut events = chain(8);
        let details = RetentionDetails { cutoff, deleted: 3, first_seq: 4, first_prev_hash: events[2].hash.clone() };
        let retention =
            seal(9, &events[7].hash, retention::ACTION, Subjects::default(), &serde_json::to_string(&details).unwrap());
        let start = ChainStart::from_retention_event(&retention).unwrap();
        events.push(retention);
        events.drain(..3);
        (events, start)
    }

    #[test]
    fn retention_moves_the_start_and_nothing_else() {
        let key = test_key();
        let (events, start) = retained();
        let vouch = checkpoint(1, events.last().unwrap(), &key);
        let complete = |events: Vec<Event>, start: &ChainStart| Case {
            coverage: Coverage::Complete { start: start.clone(), through: None },
            checkpoints: vec![vouch.clone()],
            ..Case::complete(events)
        };
        let summary = complete(events.clone(), &start).run(key.public_key()).unwrap();
        assert_eq!(summary.events, 6);

        let mut more = events.clone();
        more.remove(0);
        assert_eq!(
            complete(more, &start).run(key.public_key()).unwrap_err().to_string(),
            "event #4 is missing (the log starts at #5)"
        );
        let mut cut = events.clone();
        cut.pop();
        let unvouched = Case { checkpoints: Vec::new(), ..complete(cut, &start) };
        assert_eq!(
            unvouched.run(key.public_key()).unwrap_err().to_string(),
            "tail cut: retention event #9 starts the log but the log ends at #8"
        );
        let forged = ChainStart { seq: 5, prev_hash: events[0].hash.clone(), retention_event: Some(9) };
        assert_eq!(
            complete(events[1..].to_vec(), &forged).run(key.public_key()).unwrap_err().to_string(),
            "retention event #9 does not match the start the chain was checked from"
        );
        assert_eq!(
            complete(chain(8), &start).run(key.public_key()).unwrap_err().to_string(),
            "event #1 precedes the start of the chain (#4)"
        );
    }

    #[test]
    fn a_retention_needs_a_checkpoint_to_vouch_for_it() {
        let key = test_key();
        let (events, start) = retained();
        let with = |checkpoints: Vec<Checkpoint>| Case {
            coverage: Coverage::Complete { start: start.clone(), through: None },
            checkpoints,
            ..Case::complete(events.clone())
        };
        let unvouched = "retention event #9 is not vouched for by a signed checkpoint \
                         (events before #4 were deleted without one)";
        // Appended with recomputed hashes by someone without the key: no checkpoint, or only
        // older ones, cover it.
        assert_eq!(with(Vec::new()).run(key.public_key()).unwrap_err().to_string(), unvouched);
        let older = vec![checkpoint(1, &chain(8)[1], &key), checkpoint(2, &events[4], &key)];
        assert_eq!(with(older).run(key.public_key()).unwrap_err().to_string(), unvouched);
        assert!(with(vec![checkpoint(1, &events[5], &key)]).run(key.public_key()).is_ok());
        // A checkpoint of a later event vouches too: the chain links back to the retention.
        let (mut longer, start) = retained();
        longer.push(seal(10, &longer[5].hash, "ticket.open", Subjects::default(), "{}"));
        let case = Case {
            coverage: Coverage::Complete { start, through: None },
            checkpoints: vec![checkpoint(1, &longer[6], &key)],
            ..Case::complete(longer)
        };
        assert!(case.run(key.public_key()).is_ok());
    }

    fn expectations(now: DateTime<Utc>, every: u64, retention_days: u32) -> Expectations {
        Expectations { now, checkpoint_every: every, checkpoint_interval: chrono::Duration::minutes(1), retention_days }
    }

    #[test]
    fn a_retention_must_keep_what_the_policy_keeps() {
        let key = test_key();
        let case = |cutoff: DateTime<Utc>, days: u32| {
            let (events, start) = retained_before(cutoff);
            let now = events.last().unwrap().at;
            Case {
                coverage: Coverage::Complete { start, through: None },
                checkpoints: vec![checkpoint(1, events.last().unwrap(), &key)],
                expectations: Some(expectations(now, 1000, days)),
                ..Case::complete(events)
            }
        };
        let at = chain(8)[8 - 1].at + chrono::Duration::seconds(1);
        let month_ago = at - chrono::Duration::days(30);
        assert!(case(month_ago, 30).run(key.public_key()).is_ok());
        assert!(case(month_ago, 7).run(key.public_key()).is_ok());
        assert_eq!(
            case(month_ago, 31).run(key.public_key()).unwrap_err().to_string(),
            format!(
                "retention event #9 deleted events up to {}, younger than [audit] retention_days = 31 allows",
                iks_domain::time::to_db(month_ago)
            )
        );
        assert_eq!(
            case(month_ago, 0).run(key.public_key()).unwrap_err().to_string(),
            format!(
                "retention event #9 deleted events up to {}, but [audit] retention_days = 0 keeps every event",
                iks_domain::time::to_db(month_ago)
            )
        );
    }

    #[test]
    fn the_head_is_covered_within_the_window() {
        let key = test_key();
        let events = chain(8);
        let t = |seq: usize, secs: i64| events[seq - 1].at + chrono::Duration::seconds(secs);
        // A serving gateway's checkpoints: #1 covers event #4, #2 event #8; each promises the
        // next within two minutes.
        let serving = vec![promising(1, &events[3], &key), promising(2, &events[7], &key)];
        let run = |events: Vec<Event>, checkpoints: Vec<Checkpoint>, x: Expectations| {
            Case { checkpoints, expectations: Some(x), ..Case::complete(events) }.run(key.public_key())
        };
        assert!(run(events.clone(), serving.clone(), expectations(t(8, 60), 1000, 0)).is_ok());
        // Checkpoint #2 and the events after #1's deleted: #1's promise is broken once its time
        // has passed; before that, the cut is within the window and not seen.
        let cut = events[..4].to_vec();
        assert!(run(cut.clone(), serving[..1].to_vec(), expectations(t(4, 119), 1000, 0)).is_ok());
        assert_eq!(
            run(cut, serving[..1].to_vec(), expectations(t(4, 121), 1000, 0)).unwrap_err().to_string(),
            format!(
                "tail cut: no checkpoint since #1 (event #4), which promised the next by {}: later checkpoints \
                 and the events after #4 were deleted, or the gateway was killed",
                iks_domain::time::to_db(t(4, 120))
            )
        );
        // A checkpoint without a promise (signed at shutdown or by `audit checkpoint`) expects none.
        let stopped = vec![serving[0].clone(), checkpoint(2, &events[7], &key)];
        assert!(run(events.clone(), stopped, expectations(t(8, 86_400), 1000, 0)).is_ok());

        // Every checkpoint deleted: a tail longer than checkpoint_every and older than the
        // interval shows it; a young or short one is a fresh database.
        let x = |secs: i64, every: u64| expectations(t(1, secs), every, 0);
        assert!(run(events.clone(), Vec::new(), x(59, 5)).is_ok(), "young");
        assert!(run(events.clone(), Vec::new(), x(3600, 9)).is_ok(), "fewer than the window");
        assert_eq!(
            run(events.clone(), Vec::new(), x(3600, 8)).unwrap_err().to_string(),
            format!(
                "checkpoints deleted: events #1–#8 (the oldest from {}) are covered by no checkpoint, more than \
                 [audit] checkpoint_every = 8 older than checkpoint_interval",
                iks_domain::time::to_db(t(1, 0))
            )
        );
        let partly = vec![checkpoint(1, &events[2], &key)];
        assert!(run(events.clone(), partly.clone(), x(3600, 6)).is_ok());
        assert!(run(events.clone(), partly, x(3600, 5)).unwrap_err().to_string().contains("events #4–#8"));
    }

    #[test]
    fn a_selection_checks_each_event_and_each_run() {
        let key = test_key();
        let events = chain(8);
        let pick = |seqs: &[usize]| Case {
            coverage: Coverage::Selection,
            ..Case::complete(seqs.iter().map(|&s| events[s - 1].clone()).collect())
        };
        let summary = pick(&[2, 3, 6, 7, 8]).run(key.public_key()).unwrap();
        assert_eq!((summary.events, summary.runs), (5, 2));
        let mut edited = pick(&[2, 3, 6]);
        edited.events[2].details = "{}".into();
        assert_eq!(edited.run(key.public_key()).unwrap_err().to_string(), "event #6 was edited (hash mismatch)");
        let mut moved = pick(&[2, 6]);
        moved.events[1].seq = 4;
        assert_eq!(moved.run(key.public_key()).unwrap_err().to_string(), "events #4 and #6 are out of order");
        // A selection's gaps are not a cut tail.
        let mut early = pick(&[1, 2]);
        early.checkpoints = vec![checkpoint(1, &events[7], &key)];
        assert!(early.run(key.public_key()).is_ok());
    }

    #[test]
    fn every_logged_checkpoint_must_be_stored() {
        let key = test_key();
        let events = chain(8);
        let stored = vec![checkpoint(1, &events[3], &key), checkpoint(2, &events[7], &key)];
        assert_eq!(cross_check(&stored, &stored), Ok(()));
        assert_eq!(cross_check(&stored[..1], &stored), Ok(()), "the log may lag behind");
        assert_eq!(
            cross_check(&stored, &stored[..1]).unwrap_err().to_string(),
            "checkpoint #2 (event #8) of the checkpoint log is not in the database: it was deleted"
        );
        let mut replaced = stored.clone();
        replaced[1] = checkpoint(2, &events[6], &key);
        assert!(cross_check(&stored, &replaced).is_err(), "a stored checkpoint replaced under the same ID");
    }

    #[test]
    fn checkpoints_need_a_key_to_be_trusted() {
        let key = test_key();
        let events = chain(2);
        let checkpoints = vec![checkpoint(4, &events[1], &key)];
        let coverage = Coverage::Complete { start: ChainStart::genesis(), through: None };
        let err = ChainVerifier::new(coverage, checkpoints, None).err().unwrap();
        assert_eq!(err.to_string(), "checkpoint #4 cannot be checked: no audit public key given");
    }

    #[test]
    fn recordings_are_hashed_inside_their_directory() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("a.cast"), b"abc").unwrap();
        let sha_abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(recording_state(tmp.path(), "a.cast"), RecordingState::Hashed(sha_abc.into()));
        let missing = tmp.path().join("b.cast").display().to_string();
        assert_eq!(recording_state(tmp.path(), "b.cast"), RecordingState::Missing(missing));
        assert!(matches!(recording_state(tmp.path(), "../etc/passwd"), RecordingState::Unreadable(..)));
        assert!(matches!(recording_state(tmp.path(), "/etc/passwd"), RecordingState::Unreadable(..)));
    }
}
