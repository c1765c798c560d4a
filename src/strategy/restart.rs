//! How a process ended, and whether a service's restart policy (OTP
//! permanent / transient / temporary) restarts it after that.

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

/// Whether `policy` restarts a service whose main process ended with `status`.
pub fn restarts(policy: RestartPolicy, status: ExitStatus) -> bool {
    match policy {
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => !status.success(),
        RestartPolicy::Never => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RestartPolicy::*;

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
        for (policy, status, want) in cases {
            assert_eq!(restarts(policy, status), want, "{policy:?} {status:?}");
        }
    }
}
