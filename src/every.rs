//! "Every N seconds until cancelled": the one loop shape every periodic part
//! of the daemon has (probes, peers, costs, the watcher, the healer, the
//! proxy's figures).
//!
//! A step that overran its period starts again at once but never bursts to
//! catch up ([`MissedTickBehavior::Delay`]), and cancellation wins both while
//! waiting for the next tick and while a step runs.

use std::future::Future;
use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// A period and the token that ends it.
pub struct Every {
    ticker: Interval,
    cancel: CancellationToken,
}

impl Every {
    /// The first tick at once, then one every `period` (at least 1 ms).
    pub fn new(period: Duration, cancel: &CancellationToken) -> Self {
        Self::starting(Instant::now(), period, cancel)
    }

    /// The first tick after one `period`: for loops that let the rest of
    /// the daemon fill the snapshot before their first step.
    pub fn after_one(period: Duration, cancel: &CancellationToken) -> Self {
        let period = period.max(Duration::from_millis(1));
        Self::starting(Instant::now() + period, period, cancel)
    }

    fn starting(start: Instant, period: Duration, cancel: &CancellationToken) -> Self {
        let mut ticker = tokio::time::interval_at(start, period.max(Duration::from_millis(1)));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            ticker,
            cancel: cancel.clone(),
        }
    }

    /// Waits for the next tick: `false` once cancelled.
    pub async fn tick(&mut self) -> bool {
        tokio::select! {
            biased;
            () = self.cancel.cancelled() => false,
            _ = self.ticker.tick() => true,
        }
    }

    /// Runs one step unless cancelled first: `None` when cancelled.
    pub async fn step<F: Future>(&self, step: F) -> Option<F::Output> {
        tokio::select! {
            biased;
            () = self.cancel.cancelled() => None,
            out = step => Some(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ticks_at_once_then_every_period_and_stops_when_cancelled() {
        let cancel = CancellationToken::new();
        let mut every = Every::new(Duration::from_secs(5), &cancel);
        let start = Instant::now();
        assert!(every.tick().await);
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert!(every.tick().await);
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        cancel.cancel();
        assert!(!every.tick().await);
        assert_eq!(every.step(async { 1 }).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn after_one_waits_a_period_first_and_an_overrun_does_not_burst() {
        let cancel = CancellationToken::new();
        let mut every = Every::after_one(Duration::from_secs(2), &cancel);
        let start = Instant::now();
        assert!(every.tick().await);
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        // A step of 7 s: the next tick is at once, the one after a full
        // period later, not three ticks in a row.
        let out = every
            .step(async {
                tokio::time::sleep(Duration::from_secs(7)).await;
                "done"
            })
            .await;
        assert_eq!(out, Some("done"));
        assert!(every.tick().await);
        assert_eq!(start.elapsed(), Duration::from_secs(9));
        assert!(every.tick().await);
        assert_eq!(start.elapsed(), Duration::from_secs(11));
    }

    #[tokio::test(start_paused = true)]
    async fn cancel_ends_a_running_step() {
        let cancel = CancellationToken::new();
        let every = Every::new(Duration::from_secs(1), &cancel);
        let stop = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            stop.cancel();
        });
        let out = every.step(std::future::pending::<()>()).await;
        assert_eq!(out, None);
    }
}
