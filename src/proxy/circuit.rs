//! Circuit breakers per backend: keep a dead machine out of the routing path
//! without spending a client request on it each time.
//!
//! A circuit is closed while the backend works. After `failure_threshold`
//! consecutive failures it opens: requests skip the backend for `open_base`.
//! Then it is half-open: exactly one request (the probe) is let through while
//! the others keep skipping it. The probe's success closes the circuit and
//! forgets the failures; its failure opens it again for twice as long, up to
//! `open_max`.
//!
//! Pure state: the caller passes the time in (so tests need no clock) and
//! reports each admitted request's outcome with [`Circuit::success`] or
//! [`Circuit::failure`]. What counts as a failure is the router's business
//! (connect error, timeout, 5xx before the first byte); report at the first
//! byte, not at the end of a long generation.
//!
//! Not for: health polling (that feeds the same reports from its own
//! `/api/version` probes) or choosing among backends.

use std::time::{Duration, Instant};

/// How a circuit reacts to failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitConfig {
    /// Consecutive failures that open the circuit (0 is taken as 1).
    pub failure_threshold: u32,
    /// How long the circuit first stays open.
    pub open_base: Duration,
    /// The longest it stays open after repeated failed probes; also how long
    /// a probe may stay unanswered before another one is let through (a
    /// probe whose outcome is never reported must not shut the backend out
    /// for good).
    pub open_max: Duration,
}

impl Default for CircuitConfig {
    /// Three failures; open 5 s, doubling up to 5 min. A dead machine then
    /// costs one probe request every 5 minutes at most.
    fn default() -> Self {
        CircuitConfig {
            failure_threshold: 3,
            open_base: Duration::from_secs(5),
            open_max: Duration::from_secs(300),
        }
    }
}

/// Whether a request may go to the backend now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Yes: the circuit is closed.
    Closed,
    /// Yes, as the one probe of a half-open circuit; report its outcome.
    HalfOpenProbe,
    /// No: try another backend. `retry_in` is when this one may be tried
    /// again (the end of the open period, or when an unanswered probe is
    /// given up on).
    Open {
        /// Time until the circuit lets a request through again.
        retry_in: Duration,
    },
}

impl Admission {
    /// Whether the request may go to the backend.
    pub fn is_allowed(self) -> bool {
        !matches!(self, Admission::Open { .. })
    }
}

pub use crate::snapshot::CircuitState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { probe_since: Instant },
}

/// One backend's circuit breaker.
#[derive(Debug, Clone)]
pub struct Circuit {
    config: CircuitConfig,
    phase: Phase,
    failures: u32,
    /// The current (or next) open period: `open_base`, doubled after each
    /// failed probe, capped at `open_max`.
    open_for: Duration,
}

impl Circuit {
    /// A closed circuit.
    pub fn new(config: CircuitConfig) -> Self {
        let config = CircuitConfig {
            failure_threshold: config.failure_threshold.max(1),
            open_base: config.open_base.min(config.open_max),
            open_max: config.open_max,
        };
        Circuit {
            phase: Phase::Closed,
            failures: 0,
            open_for: config.open_base,
            config,
        }
    }

    /// Asks to send a request at `now`. A [`Admission::HalfOpenProbe`]
    /// answer makes this request the probe: its outcome must be reported.
    pub fn allow(&mut self, now: Instant) -> Admission {
        match self.phase {
            Phase::Closed => Admission::Closed,
            Phase::Open { until } if now < until => Admission::Open {
                retry_in: until - now,
            },
            Phase::Open { .. } => {
                self.phase = Phase::HalfOpen { probe_since: now };
                Admission::HalfOpenProbe
            }
            Phase::HalfOpen { probe_since } => {
                let given_up_at = later(probe_since, self.config.open_max);
                if now < given_up_at {
                    Admission::Open {
                        retry_in: given_up_at - now,
                    }
                } else {
                    // The probe never reported: let another one go.
                    self.phase = Phase::HalfOpen { probe_since: now };
                    Admission::HalfOpenProbe
                }
            }
        }
    }

    /// An admitted request worked: closes the circuit and forgets failures.
    /// Also from a request admitted before the circuit opened: the backend
    /// just answered, which is all a probe would show.
    pub fn success(&mut self) {
        self.phase = Phase::Closed;
        self.failures = 0;
        self.open_for = self.config.open_base;
    }

    /// An admitted request failed at `now`.
    pub fn failure(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        match self.phase {
            Phase::Closed if self.failures >= self.config.failure_threshold => {
                self.open(now, self.config.open_base);
            }
            Phase::Closed => {}
            Phase::HalfOpen { .. } => {
                let doubled = self.open_for.saturating_mul(2).min(self.config.open_max);
                self.open(now, doubled);
            }
            // A late report from a request let through before it opened:
            // already open, and the period is not stretched.
            Phase::Open { .. } => {}
        }
    }

    /// The state, for the snapshot.
    pub fn state(&self) -> CircuitState {
        let failures = self.failures;
        match self.phase {
            Phase::Closed => CircuitState::Closed { failures },
            Phase::Open { .. } => CircuitState::Open {
                failures,
                open_ms: u64::try_from(self.open_for.as_millis()).unwrap_or(u64::MAX),
            },
            Phase::HalfOpen { .. } => CircuitState::HalfOpen { failures },
        }
    }

    fn open(&mut self, now: Instant, period: Duration) {
        self.open_for = period;
        self.phase = Phase::Open {
            until: later(now, period),
        };
    }
}

/// `at + period`, or `at` when that is past what `Instant` can hold (an
/// absurd configured period then means "probe at once", never a panic).
fn later(at: Instant, period: Duration) -> Instant {
    at.checked_add(period).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy)]
    enum Event {
        Allow,
        Success,
        Failure,
    }
    use Event::*;

    fn closed(failures: u32) -> CircuitState {
        CircuitState::Closed { failures }
    }
    fn open(failures: u32, open_ms: u64) -> CircuitState {
        CircuitState::Open { failures, open_ms }
    }
    fn half_open(failures: u32) -> CircuitState {
        CircuitState::HalfOpen { failures }
    }
    fn refused(ms: u64) -> Option<Admission> {
        Some(Admission::Open {
            retry_in: Duration::from_millis(ms),
        })
    }
    const CLOSED: Option<Admission> = Some(Admission::Closed);
    const PROBE: Option<Admission> = Some(Admission::HalfOpenProbe);

    /// Runs (time in ms, event, admission expected for `Allow`, state after).
    fn run(config: CircuitConfig, steps: &[(u64, Event, Option<Admission>, CircuitState)]) {
        let start = Instant::now();
        let mut circuit = Circuit::new(config);
        for (n, &(at_ms, event, admission, state)) in steps.iter().enumerate() {
            let now = start + Duration::from_millis(at_ms);
            let got = match event {
                Allow => Some(circuit.allow(now)),
                Success => {
                    circuit.success();
                    None
                }
                Failure => {
                    circuit.failure(now);
                    None
                }
            };
            assert_eq!(got, admission, "step {n}: {event:?} at {at_ms} ms");
            assert_eq!(circuit.state(), state, "step {n}: {event:?} at {at_ms} ms");
        }
    }

    fn config() -> CircuitConfig {
        CircuitConfig {
            failure_threshold: 3,
            open_base: Duration::from_millis(1000),
            open_max: Duration::from_millis(5000),
        }
    }

    #[test]
    fn opens_after_consecutive_failures_and_a_success_resets() {
        run(
            config(),
            &[
                (0, Allow, CLOSED, closed(0)),
                (0, Failure, None, closed(1)),
                (10, Allow, CLOSED, closed(1)),
                (10, Failure, None, closed(2)),
                // A success in between: the count starts again.
                (20, Allow, CLOSED, closed(2)),
                (20, Success, None, closed(0)),
                (30, Failure, None, closed(1)),
                (40, Failure, None, closed(2)),
                (50, Failure, None, open(3, 1000)),
                (50, Allow, refused(1000), open(3, 1000)),
                (900, Allow, refused(150), open(3, 1000)),
            ],
        );
    }

    #[test]
    fn half_open_lets_exactly_one_probe_through() {
        run(
            config(),
            &[
                (0, Failure, None, closed(1)),
                (0, Failure, None, closed(2)),
                (0, Failure, None, open(3, 1000)),
                // At the end of the open period exactly one request goes.
                (1000, Allow, PROBE, half_open(3)),
                (1001, Allow, refused(4999), half_open(3)),
                (3000, Allow, refused(3000), half_open(3)),
                // The probe worked: closed, failures forgotten.
                (3500, Success, None, closed(0)),
                (3600, Allow, CLOSED, closed(0)),
            ],
        );
    }

    #[test]
    fn failed_probes_double_the_open_time_up_to_the_max() {
        run(
            config(),
            &[
                (0, Failure, None, closed(1)),
                (0, Failure, None, closed(2)),
                (0, Failure, None, open(3, 1000)),
                (1000, Allow, PROBE, half_open(3)),
                (1100, Failure, None, open(4, 2000)),
                (3099, Allow, refused(1), open(4, 2000)),
                (3100, Allow, PROBE, half_open(4)),
                (3200, Failure, None, open(5, 4000)),
                (7200, Allow, PROBE, half_open(5)),
                (7300, Failure, None, open(6, 5000)),
                (12300, Allow, PROBE, half_open(6)),
                (12400, Failure, None, open(7, 5000)),
                // Then a probe works: closed, and the next opening starts small.
                (17400, Allow, PROBE, half_open(7)),
                (17500, Success, None, closed(0)),
                (17600, Failure, None, closed(1)),
                (17700, Failure, None, closed(2)),
                (17800, Failure, None, open(3, 1000)),
                (18800, Allow, PROBE, half_open(3)),
            ],
        );
    }

    #[test]
    fn late_reports_while_open() {
        run(
            config(),
            &[
                (0, Failure, None, closed(1)),
                (0, Failure, None, closed(2)),
                (0, Failure, None, open(3, 1000)),
                // A request admitted before the opening fails late: the open
                // period is not stretched.
                (500, Failure, None, open(4, 1000)),
                (1000, Allow, PROBE, half_open(4)),
                (1000, Failure, None, open(5, 2000)),
                // One admitted earlier succeeds late: the backend answers, so
                // the circuit closes.
                (1500, Success, None, closed(0)),
                (1500, Allow, CLOSED, closed(0)),
            ],
        );
    }

    #[test]
    fn an_unanswered_probe_is_given_up_after_open_max() {
        run(
            config(),
            &[
                (0, Failure, None, closed(1)),
                (0, Failure, None, closed(2)),
                (0, Failure, None, open(3, 1000)),
                (1000, Allow, PROBE, half_open(3)),
                (5999, Allow, refused(1), half_open(3)),
                (6000, Allow, PROBE, half_open(3)),
                (6001, Allow, refused(4999), half_open(3)),
            ],
        );
    }

    #[test]
    fn odd_configurations() {
        // Threshold 0 acts as 1; a base above the max is cut to the max.
        run(
            CircuitConfig {
                failure_threshold: 0,
                open_base: Duration::from_millis(9000),
                open_max: Duration::from_millis(2000),
            },
            &[
                (0, Allow, CLOSED, closed(0)),
                (0, Failure, None, open(1, 2000)),
                (2000, Allow, PROBE, half_open(1)),
                (2000, Failure, None, open(2, 2000)),
            ],
        );
        // An open time too large for `Instant` never panics.
        run(
            CircuitConfig {
                failure_threshold: 1,
                open_base: Duration::MAX,
                open_max: Duration::MAX,
            },
            &[
                (0, Failure, None, open(1, u64::MAX)),
                (1, Allow, PROBE, half_open(1)),
            ],
        );
    }

    #[test]
    fn admission_says_whether_to_send() {
        assert!(Admission::Closed.is_allowed());
        assert!(Admission::HalfOpenProbe.is_allowed());
        assert!(
            !Admission::Open {
                retry_in: Duration::ZERO
            }
            .is_allowed()
        );
    }

    #[test]
    fn state_serializes_for_the_snapshot() {
        let cases = [
            (closed(2), r#"{"state":"closed","failures":2}"#),
            (
                open(3, 1000),
                r#"{"state":"open","failures":3,"open_ms":1000}"#,
            ),
            (half_open(3), r#"{"state":"half_open","failures":3}"#),
        ];
        for (state, json) in cases {
            assert_eq!(serde_json::to_string(&state).ok().as_deref(), Some(json));
            assert_eq!(serde_json::from_str::<CircuitState>(json).ok(), Some(state));
        }
    }
}
