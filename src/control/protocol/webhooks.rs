//! A webhook endpoint's totals, in `status --json` (`system.webhooks`) and
//! in metrics. Neither its URL nor its headers: they may hold secrets.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WebhookReport {
    /// The service whose webhook it is; none for the top-level one.
    pub service: Option<String>,
    /// Notifications delivered (a 2xx or 3xx answer).
    pub sent: u64,
    /// Notifications given up on: a 4xx answer, or every retry failed.
    pub failed: u64,
    /// Notifications dropped because the queue was full.
    pub dropped: u64,
    /// Notifications waiting to be sent.
    pub queued: u64,
}
