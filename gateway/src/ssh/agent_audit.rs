//! How many audit events one agent may cause. An agent's reports and reconnects are
//! audited, but the agent runs on a box the gateway does not control: a compromised one
//! alternating its reported version wrote two events per line, without limit. Each agent
//! gets `ssh.agent_audit_events` audited reports and connections (a connection counts once)
//! per `ssh.agent_audit_window`; beyond that
//! the gateway still acts on them at once (the kill switch, presence), but the store only
//! hears the agent's latest report when the window ends, with one summary event:
//! "N further reports and connections suppressed".

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::sync::lock;
use iks_domain::ids::AgentId;

/// How long after its window a held-back report is tried again (the summary goes first).
pub const RETRY: Duration = Duration::from_secs(1);

/// What to do with one report or connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Write it with its audit event.
    Audit,
    /// Act on it but write no event; `first` is the window's first suppression (its
    /// caller arranges the summary at `until`).
    Suppress { first: bool, until: Instant },
}

#[derive(Debug)]
struct Window {
    started: Instant,
    used: u32,
    suppressed: u32,
}

/// Every agent's current window.
#[derive(Debug)]
pub struct AgentAudit {
    window: Duration,
    per_window: u32,
    agents: Mutex<HashMap<AgentId, Window>>,
}

impl AgentAudit {
    pub fn new(window: Duration, per_window: u32) -> Self {
        Self { window, per_window, agents: Mutex::default() }
    }

    /// Counts one report or connection of `agent`.
    pub fn take(&self, agent: AgentId) -> Verdict {
        let now = Instant::now();
        let mut agents = lock(&self.agents);
        // Windows that ended with nothing suppressed are forgotten; a suppressed one stays
        // until its summary is taken.
        agents.retain(|_, w| w.suppressed > 0 || now < w.started + self.window);
        let w = agents.entry(agent).or_insert(Window { started: now, used: 0, suppressed: 0 });
        if w.suppressed == 0 && now >= w.started + self.window {
            *w = Window { started: now, used: 0, suppressed: 0 };
        }
        if w.used < self.per_window && w.suppressed == 0 {
            w.used += 1;
            return Verdict::Audit;
        }
        w.suppressed += 1;
        Verdict::Suppress { first: w.suppressed == 1, until: w.started + self.window }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// When a report held back now should be tried again: just after the agent's window
    /// (and its summary) ends, and never in the past.
    pub fn retry_at(&self, agent: AgentId) -> Instant {
        let now = Instant::now();
        let end = lock(&self.agents).get(&agent).map_or(now, |w| w.started + self.window);
        end.max(now) + RETRY
    }

    /// The number suppressed in `agent`'s window, once that window has ended; the agent
    /// then starts afresh. `None` while the window runs or when nothing was suppressed.
    pub fn summary(&self, agent: AgentId) -> Option<u32> {
        let now = Instant::now();
        let mut agents = lock(&self.agents);
        let w = agents.get(&agent)?;
        if w.suppressed == 0 || now < w.started + self.window {
            return None;
        }
        agents.remove(&agent).map(|w| w.suppressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_window_audits_its_budget_then_suppresses_and_summarises_once() {
        let budget = AgentAudit::new(Duration::from_millis(200), 3);
        let a = AgentId(1);
        let b = AgentId(2);
        for _ in 0..3 {
            assert_eq!(budget.take(a), Verdict::Audit);
        }
        let Verdict::Suppress { first: true, until } = budget.take(a) else { panic!("the 4th is suppressed") };
        for _ in 0..96 {
            assert!(matches!(budget.take(a), Verdict::Suppress { first: false, .. }));
        }
        assert_eq!(budget.take(b), Verdict::Audit, "another agent has its own budget");
        assert_eq!(budget.summary(a), None, "no summary while the window runs");
        tokio::time::sleep_until(until).await;
        // Still suppressed until the summary is taken: nothing escapes the count.
        assert!(matches!(budget.take(a), Verdict::Suppress { first: false, .. }));
        assert_eq!(budget.summary(a), Some(98));
        assert_eq!(budget.summary(a), None, "once");
        assert_eq!(budget.take(a), Verdict::Audit, "a new window");
    }
}
