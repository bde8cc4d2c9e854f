//! The store: every record the gateway keeps, on SQLite (the zero-setup default) or
//! PostgreSQL (several gateway nodes behind one address).
//!
//! One interface and one SQL text serve both backends through sqlx's `Any` driver: the
//! schema uses only integers and text (see `migrations/`), so the queries are written
//! once instead of being copied per backend. What does differ lives here, in [`Backend`]:
//! the migrations directory, how a write transaction starts (SQLite: one writer
//! connection and `BEGIN IMMEDIATE`, so two processes sharing the file queue up instead
//! of failing), and how the audit chain is locked (PostgreSQL: a transaction-level
//! advisory lock, so two gateway nodes append to one chain without forking it).
//!
//! Every method that changes something appends its audit event inside the same
//! transaction ([`Tx::audit`]), so a change without its event can never be committed.

mod agents;
mod audit;
mod directory;
mod export;
mod grants;
mod sessions;
#[cfg(test)]
pub(crate) mod tests;
mod tickets;
mod tokens;
mod transcripts;
mod web;

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

pub use agents::{EnrollError, Enrolled, Enrolment};
pub use audit::{CheckpointError, EventFilter, Held, PAGE, Retained, Signing, VerifyError};
pub use export::{ExportRunError, Exported, Sink};
pub use grants::GrantFilter;
pub use sessions::SessionFilter;
pub use tickets::TicketFilter;
pub use transcripts::{TranscriptHit, TranscriptLine, TranscriptQuery};
pub use web::{Credentials, LinkPurpose, WebSession};

use iks_domain::audit::{Event, GENESIS_HASH, NewEvent, Unsealed};

/// What can go wrong in the store, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The record asked for does not exist.
    #[error("no {what} {key}")]
    NotFound { what: &'static str, key: String },
    /// The change would break a uniqueness or consistency rule.
    #[error("{0}")]
    Conflict(String),
    /// The database URL or configuration is unusable.
    #[error("database configuration: {0}")]
    Config(String),
    /// The database could not be reached or answered with an error.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// A stored value could not be read back (edited by hand, or a bug).
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A checkpoint could not be signed.
    #[error(transparent)]
    Sign(#[from] crate::audit::checkpoint::SignError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => Self::NotFound { what: "row", key: String::new() },
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) | sqlx::Error::ColumnNotFound(_) => {
                Self::Corrupt(e.to_string())
            }
            _ => Self::Unavailable(e),
        }
    }
}

impl StoreError {
    /// Whether the database was out of reach (down, restarting, unreachable), so the same
    /// request may succeed later; a refused or malformed request is not retried.
    pub fn is_transient(&self) -> bool {
        let Self::Unavailable(e) = self else { return false };
        match e {
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => true,
            sqlx::Error::WorkerCrashed => true,
            // PostgreSQL's connection exceptions (08…), shutdown and recovery (57P…), too many clients.
            sqlx::Error::Database(d) => {
                d.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P") || c == "53300")
            }
            _ => false,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// First and longest pause between attempts of [`until_stored`].
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Runs `write` until the store takes it. Records that must not be lost (a session's end,
/// what happened inside it) are written this way: while the database is out of reach the
/// write is tried again, pausing 0.25 s doubling to 5 s. It gives up only when `shutdown`
/// is set (returning the last error): a session still unended then is ended at the next
/// start, when the node opens on the store again. Memory stays bounded by the callers, each of
/// which holds one pending write.
pub async fn until_stored<T, F, Fut>(shutdown: &tokio::sync::watch::Sender<bool>, what: &str, mut write: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut stopping = shutdown.subscribe();
    let mut pause = RETRY_FIRST;
    let mut failures = 0_u32;
    loop {
        match write().await {
            Ok(v) => {
                if failures > 0 {
                    tracing::info!(what, failures, "the store is back; written");
                }
                return Ok(v);
            }
            Err(e) if e.is_transient() && !*stopping.borrow() => {
                if failures == 0 {
                    tracing::warn!(what, error = %e, "store unavailable; trying again until it returns");
                }
                failures = failures.saturating_add(1);
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    _ = stopping.wait_for(|s| *s) => {}
                }
                pause = (pause * 2).min(RETRY_MAX);
            }
            Err(e) => return Err(e),
        }
    }
}

/// The database behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Picks the backend from a URL's scheme; anything else is refused rather than guessed.
    pub fn from_url(url: &str) -> Result<Self> {
        let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
        match scheme {
            "sqlite" => Ok(Self::Sqlite),
            "postgres" | "postgresql" => Ok(Self::Postgres),
            "" => Err(StoreError::Config(format!("'{url}' is not a database URL (use sqlite://PATH or postgres://…)"))),
            other => Err(StoreError::Config(format!(
                "unsupported database '{other}' in the URL (use sqlite://PATH or postgres://…)"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        }
    }
}

/// The gateway's store. Cheap to clone; clones share the pools.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    /// Every change goes through this pool; on SQLite it has exactly one connection.
    write: AnyPool,
    /// Reads; on PostgreSQL the same pool as `write`.
    read: AnyPool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("backend", &self.backend).finish_non_exhaustive()
    }
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// Arbitrary but fixed key of the advisory lock that serialises audit appends on PostgreSQL.
const AUDIT_CHAIN_LOCK: i64 = 0x1b5_a0d1;

impl Store {
    /// Connects, applies pending migrations and returns the store.
    pub async fn open(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let options = AnyConnectOptions::from_str(url).map_err(|e| StoreError::Config(format!("database URL: {e}")))?;
        let store = match backend {
            Backend::Sqlite => {
                let pool = |max: u32| {
                    AnyPoolOptions::new()
                        .max_connections(max)
                        .acquire_timeout(Duration::from_secs(30))
                        .after_connect(|conn, _| {
                            Box::pin(async move {
                                // WAL lets readers run beside the single writer; the busy
                                // timeout makes a second process wait for the lock, not fail.
                                sqlx::query("PRAGMA journal_mode = WAL").execute(&mut *conn).await?;
                                sqlx::query("PRAGMA busy_timeout = 10000").execute(&mut *conn).await?;
                                sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await?;
                                Ok(())
                            })
                        })
                        .connect_with(options.clone())
                };
                let write = pool(1).await.map_err(StoreError::Unavailable)?;
                SQLITE_MIGRATIONS.run(&write).await?;
                let read = pool(4).await.map_err(StoreError::Unavailable)?;
                Self { backend, write, read }
            }
            Backend::Postgres => {
                // sqlx retries a refused connection until the acquire timeout: keep it short,
                // so that while PostgreSQL is down an engineer hears "store unavailable"
                // within seconds and the watchdog keeps its pace.
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(3))
                    .connect_with(options)
                    .await
                    .map_err(StoreError::Unavailable)?;
                POSTGRES_MIGRATIONS.run(&pool).await?;
                Self { backend, write: pool.clone(), read: pool }
            }
        };
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a write transaction on the writer path.
    async fn begin(&self) -> Result<Tx> {
        let tx = match self.backend {
            Backend::Sqlite => self.write.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.write.begin().await?,
        };
        Ok(Tx { tx, backend: self.backend, chain_locked: false, head: None })
    }

    /// Closes the pools, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }
}

/// A write transaction. Dropping it without [`Tx::commit`] rolls everything back,
/// audit events included.
pub(crate) struct Tx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    backend: Backend,
    /// Whether this transaction holds the audit chain (PostgreSQL's advisory lock).
    chain_locked: bool,
    /// The newest event this transaction appended: while it holds the chain, the next
    /// event follows it without asking the database.
    head: Option<(i64, String)>,
}

impl Tx {
    pub(crate) fn conn(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }

    pub(crate) async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }

    /// Takes the audit chain for the rest of this transaction, so no one else appends
    /// meanwhile. (On SQLite the transaction already holds the only write lock.)
    pub(crate) async fn lock_chain(&mut self) -> Result<()> {
        if self.backend == Backend::Postgres && !self.chain_locked {
            sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(AUDIT_CHAIN_LOCK).execute(self.conn()).await?;
        }
        self.chain_locked = true;
        Ok(())
    }

    /// Appends an event to the audit chain as part of this transaction.
    pub(crate) async fn audit(&mut self, event: NewEvent) -> Result<Event> {
        self.lock_chain().await?;
        let (seq, prev_hash) = match self.head.take() {
            Some((seq, hash)) => (seq + 1, hash),
            None => {
                let last = sqlx::query("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
                    .fetch_optional(self.conn())
                    .await?;
                match last {
                    Some(row) => (row.try_get::<i64, _>("seq")? + 1, row.try_get::<String, _>("hash")?),
                    None => (1, GENESIS_HASH.to_string()),
                }
            }
        };
        let at = iks_domain::time::now();
        let details = event.details.to_string();
        let hash = iks_domain::audit::chain_hash(
            &prev_hash,
            &Unsealed {
                seq,
                at,
                actor: &event.actor,
                action: event.action,
                subjects: event.subjects,
                details: &details,
            },
        );
        let s = event.subjects;
        sqlx::query(
            "INSERT INTO audit_events (seq, at, actor_kind, actor_id, actor_name, action, org_id, ticket_id, \
             box_id, grant_id, session_id, details, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(seq)
        .bind(iks_domain::time::to_db(at))
        .bind(event.actor.kind.as_str())
        .bind(event.actor.id)
        .bind(&event.actor.name)
        .bind(event.action)
        .bind(s.org.map(|v| v.get()))
        .bind(s.ticket.map(|v| v.get()))
        .bind(s.box_.map(|v| v.get()))
        .bind(s.grant.map(|v| v.get()))
        .bind(s.session.map(|v| v.get()))
        .bind(&details)
        .bind(&prev_hash)
        .bind(&hash)
        .execute(self.conn())
        .await?;
        self.head = Some((seq, hash.clone()));
        Ok(Event {
            seq,
            at,
            actor: event.actor,
            action: event.action.to_string(),
            subjects: s,
            details,
            prev_hash,
            hash,
        })
    }
}

/// Typed access to the columns of a row, with errors that name the column.
pub(crate) trait RowExt {
    fn int(&self, col: &str) -> Result<i64>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>>;
    fn text(&self, col: &str) -> Result<String>;
    fn opt_text(&self, col: &str) -> Result<Option<String>>;
    fn flag(&self, col: &str) -> Result<bool> {
        Ok(self.int(col)? != 0)
    }
    fn time(&self, col: &str) -> Result<DateTime<Utc>> {
        parse_time(col, &self.text(col)?)
    }
    fn opt_time(&self, col: &str) -> Result<Option<DateTime<Utc>>> {
        self.opt_text(col)?.map(|s| parse_time(col, &s)).transpose()
    }
    fn opt_date(&self, col: &str) -> Result<Option<NaiveDate>> {
        self.opt_text(col)?
            .map(|s| iks_domain::time::parse_date(&s).map_err(|e| StoreError::Corrupt(format!("{col} = '{s}': {e}"))))
            .transpose()
    }
}

fn parse_time(col: &str, s: &str) -> Result<DateTime<Utc>> {
    iks_domain::time::from_db(s).map_err(|e| StoreError::Corrupt(format!("{col} = '{s}': {e}")))
}

impl RowExt for AnyRow {
    fn int(&self, col: &str) -> Result<i64> {
        Ok(self.try_get(col)?)
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        Ok(self.try_get(col)?)
    }
    fn text(&self, col: &str) -> Result<String> {
        Ok(self.try_get(col)?)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        Ok(self.try_get(col)?)
    }
}

/// Turns a unique-constraint violation into a [`StoreError::Conflict`] with `message`.
pub(crate) fn conflict_on_unique(e: sqlx::Error, message: impl FnOnce() -> String) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(message()),
        _ => e.into(),
    }
}

/// A stored value that must be one of a fixed set of names.
pub(crate) fn parse_enum<T>(col: &str, value: &str, parse: impl Fn(&str) -> Option<T>) -> Result<T> {
    parse(value).ok_or_else(|| StoreError::Corrupt(format!("{col} = '{value}' is not a known value")))
}

#[cfg(test)]
mod retry_tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn refused() -> StoreError {
        sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)).into()
    }

    #[test]
    fn only_an_unreachable_database_is_worth_another_try() {
        assert!(refused().is_transient());
        assert!(StoreError::from(sqlx::Error::PoolTimedOut).is_transient());
        assert!(!StoreError::from(sqlx::Error::PoolClosed).is_transient(), "closed at shutdown: final");
        assert!(!StoreError::from(sqlx::Error::RowNotFound).is_transient());
        assert!(!StoreError::Conflict("S-1 has already ended".into()).is_transient());
    }

    #[tokio::test]
    async fn writes_wait_for_the_store_and_give_up_only_at_shutdown() {
        let shutdown = tokio::sync::watch::channel(false).0;
        let tries = AtomicU32::new(0);
        // Down for two tries, then back: written on the third.
        let written = until_stored(&shutdown, "test", || async {
            if tries.fetch_add(1, Ordering::SeqCst) < 2 { Err(refused()) } else { Ok(7) }
        })
        .await;
        assert_eq!(written.unwrap(), 7);
        assert_eq!(tries.load(Ordering::SeqCst), 3);

        // A final error is not retried.
        tries.store(0, Ordering::SeqCst);
        let conflict = until_stored(&shutdown, "test", || async {
            tries.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(StoreError::Conflict("no".into()))
        })
        .await;
        assert!(matches!(conflict, Err(StoreError::Conflict(_))));
        assert_eq!(tries.load(Ordering::SeqCst), 1);

        // Down for good: shutdown ends the wait (one more try after it is set).
        tries.store(0, Ordering::SeqCst);
        let stop = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            stop.send_replace(true);
        });
        let gave_up = until_stored(&shutdown, "test", || async {
            tries.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(refused())
        })
        .await;
        assert!(gave_up.unwrap_err().is_transient());
        assert!(tries.load(Ordering::SeqCst) >= 2);
    }
}
