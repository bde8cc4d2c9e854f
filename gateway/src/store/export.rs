//! The audit export read from the store: a snapshot of the log, written a page at a time
//! in the format [`crate::audit::export`] defines.

use std::io;

use russh::keys::PrivateKey;

use super::{EventFilter, PAGE, Store, StoreError};
use crate::audit::export::{
    CSV_HEADER, ExportError, ExportFilter, FORMAT_VERSION, Format, Header, JsonlWriter, csv_record,
};
use iks_domain::audit::Actor;
use iks_domain::audit::Event;

/// Where an export's bytes go, a page of events at a time: a file, or an HTTP response.
pub trait Sink {
    fn write(&mut self, bytes: Vec<u8>) -> impl std::future::Future<Output = io::Result<()>> + Send;
}

/// Why [`export_audit`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportRunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Export(#[from] ExportError),
}

impl From<io::Error> for ExportRunError {
    fn from(e: io::Error) -> Self {
        Self::Export(ExportError::Io(e))
    }
}

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct Exported {
    /// The export's own `audit.export` event; the snapshot ends there.
    pub event: Event,
    pub events: u64,
}

impl Store {
    /// Records the export (`audit.export`, by `actor`, naming `destination`) and writes it to
    /// `sink` a page at a time, so memory stays bounded however long the log is. The CLI and
    /// the panel both export through here.
    pub async fn export_audit(
        &self,
        key: &PrivateKey,
        actor: &Actor,
        filter: ExportFilter,
        format: Format,
        destination: &str,
        sink: &mut impl Sink,
    ) -> Result<Exported, ExportRunError> {
        let event = self.record_audit_export(actor, &filter, format.as_str(), destination).await?;
        // The snapshot ends with the export's own event, whatever is appended meanwhile.
        let mut selection = EventFilter {
            through_seq: Some(event.seq),
            org: filter.org,
            ticket: filter.ticket,
            session: filter.session,
            since: filter.since,
            until: filter.until,
            limit: Some(PAGE),
            ..Default::default()
        };
        let mut events = 0;
        let mut jsonl = match format {
            Format::Csv => {
                sink.write(CSV_HEADER.as_bytes().to_vec()).await?;
                None
            }
            Format::Jsonl => {
                let header = Header {
                    version: FORMAT_VERSION,
                    exported_at: event.at,
                    exported_by: event.actor.to_string(),
                    filter,
                    through_seq: event.seq,
                    start: self.audit_chain_start().await?,
                };
                let mut w = JsonlWriter::start(Vec::new(), &header)?;
                for c in self.audit_checkpoints(Some(event.seq)).await? {
                    w.checkpoint(&c)?;
                }
                Some(w)
            }
        };
        loop {
            let page = self.audit_events(&selection).await?;
            let Some(last) = page.last() else { break };
            selection.after_seq = Some(last.seq);
            events += page.len() as u64;
            let bytes = match &mut jsonl {
                Some(w) => {
                    for e in &page {
                        w.event(e)?;
                    }
                    w.take_written()
                }
                None => page.iter().map(csv_record).collect::<String>().into_bytes(),
            };
            sink.write(bytes).await?;
        }
        if let Some(w) = jsonl {
            sink.write(w.finish(key)?).await?;
        }
        Ok(Exported { event, events })
    }
}
