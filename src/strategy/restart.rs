//! What happens after a service's main process ends on its own: the restart
//! policy (OTP permanent / transient / temporary) and the young-death
//! backoff that keeps a crash loop from eating a core.

use std::time::Duration;

use super::policy::RestartPolicy;

/// How a process ended, as `waitid` reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

impl ExitStatus {
    pub fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Start the service again after `delay` (zero: at once).
    Respawn { delay: Duration },
    /// The policy says this exit ends the service.
    Done,
}

pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// History of one service that the decision needs: how many deaths in a row
/// came before `min_uptime`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestartHistory {
    pub young_deaths: u32,
}

impl RestartHistory {
    /// Decide what follows an exit after `uptime`, and record it.
    pub fn on_exit(
        &mut self,
        policy: RestartPolicy,
        min_uptime: Duration,
        status: ExitStatus,
        uptime: Duration,
    ) -> Decision {
        let restart = match policy {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => !status.success(),
            RestartPolicy::Never => false,
        };
        if uptime >= min_uptime {
            self.young_deaths = 0;
        } else {
            self.young_deaths = self.young_deaths.saturating_add(1);
        }
        if !restart {
            return Decision::Done;
        }
        Decision::Respawn {
            delay: backoff(self.young_deaths),
        }
    }
}

/// `FIRST_BACKOFF × 2^(k−1)` after the k-th young death in a row, capped at
/// `MAX_BACKOFF`; zero when the last run was long enough.
pub fn backoff(young_deaths: u32) -> Duration {
    if young_deaths == 0 {
        return Duration::ZERO;
    }
    let exp = (young_deaths - 1).min(20);
    FIRST_BACKOFF.saturating_mul(1 << exp).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;
    use RestartPolicy::*;

    const MIN: Duration = Duration::from_secs(1);
    const OLD: Duration = Duration::from_secs(5);
    const YOUNG: Duration = Duration::from_millis(10);

    #[test]
    fn policy_matrix() {
        let cases = [
            (Always, ExitStatus::Code(0), true),
            (Always, ExitStatus::Code(1), true),
            (Always, ExitStatus::Signal(9), true),
            (OnFailure, ExitStatus::Code(0), false),
            (OnFailure, ExitStatus::Code(2), true),
            (OnFailure, ExitStatus::Signal(15), true),
            (Never, ExitStatus::Code(1), false),
            (Never, ExitStatus::Signal(9), false),
        ];
        for (policy, status, restarts) in cases {
            let mut h = RestartHistory::default();
            let d = h.on_exit(policy, MIN, status, OLD);
            let want = if restarts {
                Decision::Respawn {
                    delay: Duration::ZERO,
                }
            } else {
                Decision::Done
            };
            assert_eq!(d, want, "{policy:?} {status:?}");
        }
    }

    #[test]
    fn young_deaths_back_off_exponentially_and_cap() {
        let mut h = RestartHistory::default();
        let delays: Vec<Duration> = (0..12)
            .map(
                |_| match h.on_exit(Always, MIN, ExitStatus::Code(1), YOUNG) {
                    Decision::Respawn { delay } => delay,
                    Decision::Done => panic!(),
                },
            )
            .collect();
        assert_eq!(delays[0], Duration::from_millis(100));
        assert_eq!(delays[1], Duration::from_millis(200));
        assert_eq!(delays[2], Duration::from_millis(400));
        assert_eq!(delays[8], Duration::from_millis(25_600));
        assert_eq!(delays[9], MAX_BACKOFF);
        assert_eq!(delays[11], MAX_BACKOFF);
    }

    #[test]
    fn a_long_run_resets_the_backoff() {
        let mut h = RestartHistory::default();
        for _ in 0..5 {
            h.on_exit(Always, MIN, ExitStatus::Code(1), YOUNG);
        }
        assert_eq!(
            h.on_exit(Always, MIN, ExitStatus::Code(1), OLD),
            Decision::Respawn {
                delay: Duration::ZERO
            }
        );
        assert_eq!(h.young_deaths, 0);
    }

    #[test]
    fn backoff_never_exceeds_cap() {
        for k in 0..1000 {
            assert!(backoff(k) <= MAX_BACKOFF);
        }
    }
}
