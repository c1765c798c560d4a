//! `webhook:`, at the top of the file (every event, system events too) and
//! in a service (that service's events).

use std::time::Duration;

use serde::{Serialize, Serializer};

use super::ser_duration;

/// Where and what to POST.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookSpec {
    /// `http://host[:port]/path` as written.
    pub url: String,
    /// `host:port` to connect to.
    pub authority: String,
    /// The request target (`/path?query`).
    pub path: String,
    /// Event kinds to send (`strategy::webhook::EVENT_KINDS`).
    pub events: Vec<String>,
    /// One try: connect, send, and the answer's head.
    pub timeout: Duration,
    /// Sent with every request; their values are never shown or logged.
    pub headers: Vec<(String, String)>,
    /// Notifications waiting to be sent at most; more are dropped.
    pub queue: usize,
}

impl Default for WebhookSpec {
    fn default() -> Self {
        WebhookSpec {
            url: String::new(),
            authority: String::new(),
            path: String::new(),
            events: (crate::strategy::webhook::DEFAULT_EVENTS.iter())
                .map(|s| s.to_string())
                .collect(),
            timeout: Duration::from_secs(5),
            headers: Vec::new(),
            queue: 1000,
        }
    }
}

/// As `check` shows it: the URL's path may hold a token, and header values
/// are secrets, so neither is shown (`reload` compares with `==`).
impl Serialize for WebhookSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Shown<'a> {
            endpoint: String,
            events: &'a [String],
            #[serde(serialize_with = "ser_duration")]
            timeout: Duration,
            headers: Vec<&'a str>,
            queue: usize,
        }
        Shown {
            endpoint: format!("http://{}", self.authority),
            events: &self.events,
            timeout: self.timeout,
            headers: self.headers.iter().map(|(k, _)| k.as_str()).collect(),
            queue: self.queue,
        }
        .serialize(s)
    }
}
