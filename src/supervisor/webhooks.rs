//! Webhooks: each event an endpoint wants is POSTed to it as JSON, from a
//! thread of its own.
//!
//! The event loop only serializes the event and offers it to each
//! endpoint's bounded queue with `try_send`, which never waits: when a
//! queue is full the new notification is dropped and counted. Everything
//! that can take time — resolving, connecting, waiting for an answer,
//! backing off between retries — happens on the `webhooks` thread, in a
//! current-thread runtime of its own, so a slow or dead endpoint never
//! delays supervision. The thread is started with the first endpoint and
//! never forks. Which events, what an answer means and how long to wait
//! are decided in [`crate::strategy::webhook`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use http_body_util::Full;
use hyper::body::Bytes;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::config::webhook::WebhookSpec;
use crate::control::protocol::{EventRecord, WebhookReport};
use crate::strategy::rng::Rng;
use crate::strategy::webhook::{Outcome, RETRIES, retry_delay, wants};

/// Sent with every request.
const USER_AGENT: &str = concat!("sentineld/", env!("CARGO_PKG_VERSION"));

/// Every endpoint: the top-level one and one per service that has one.
pub(super) struct Webhooks {
    global: Option<Endpoint>,
    /// By service index.
    services: Vec<Option<Endpoint>>,
    /// The `webhooks` thread's runtime, once there is an endpoint.
    thread: Option<tokio::runtime::Handle>,
    origin: Origin,
}

/// Who sent a notification: in every payload.
#[derive(Serialize)]
struct Origin {
    pid: u32,
    host: String,
}

/// An event as it is POSTed: the fields of `events --json`, and who sent it.
#[derive(Serialize)]
struct Payload<'a> {
    #[serde(flatten)]
    event: &'a EventRecord,
    sentineld: &'a Origin,
}

struct Endpoint {
    spec: WebhookSpec,
    queue: mpsc::Sender<Bytes>,
    counters: Arc<Counters>,
    /// Its sender: stopped, with its connection, once a reload replaces
    /// or removes the endpoint, so old endpoints hold no socket.
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An endpoint's totals, kept across reloads that change its settings.
#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

impl Webhooks {
    /// The endpoints of a plan's top level and its services, by index.
    pub(super) fn new<'a>(
        global: Option<&WebhookSpec>,
        services: impl Iterator<Item = Option<&'a WebhookSpec>>,
    ) -> Webhooks {
        let host = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut hooks = Webhooks {
            global: None,
            services: Vec::new(),
            thread: None,
            origin: Origin {
                pid: std::process::id(),
                host,
            },
        };
        hooks.follow(global, services.enumerate());
        hooks
    }

    /// After a reload: the new top-level endpoint and those of the
    /// services, by index; an endpoint whose settings changed starts a new
    /// queue (what the old one holds is still sent, the old way) and keeps
    /// its counts; one that is gone is dropped.
    pub(super) fn follow<'a>(
        &mut self,
        global: Option<&WebhookSpec>,
        services: impl Iterator<Item = (usize, Option<&'a WebhookSpec>)>,
    ) {
        let old = self.global.take();
        self.global = self.endpoint(old, global, None);
        let mut old = std::mem::take(&mut self.services);
        for (i, spec) in services {
            let kept = old.get_mut(i).and_then(Option::take);
            // Grown only for a service with a webhook: 10,000 services
            // without one cost nothing here.
            if let Some(e) = self.endpoint(kept, spec, Some(i)) {
                if self.services.len() <= i {
                    self.services.resize_with(i + 1, || None);
                }
                self.services[i] = Some(e);
            }
        }
    }

    fn endpoint(
        &mut self,
        old: Option<Endpoint>,
        spec: Option<&WebhookSpec>,
        service: Option<usize>,
    ) -> Option<Endpoint> {
        let spec = spec?;
        if let Some(old) = old {
            if old.spec == *spec {
                return Some(old);
            }
            return self.start(spec, old.counters.clone(), service);
        }
        self.start(spec, Arc::default(), service)
    }

    fn start(
        &mut self,
        spec: &WebhookSpec,
        counters: Arc<Counters>,
        service: Option<usize>,
    ) -> Option<Endpoint> {
        let thread = match &self.thread {
            Some(t) => t.clone(),
            None => match start_thread() {
                Ok(t) => self.thread.insert(t).clone(),
                Err(e) => {
                    let what =
                        service.map_or("the top-level".into(), |i| format!("service #{i}'s"));
                    tracing::error!("{what} webhook is off: cannot start the webhooks thread: {e}");
                    return None;
                }
            },
        };
        let (queue, rx) = mpsc::channel(spec.queue);
        let seed = u64::from(self.origin.pid) ^ (Arc::as_ptr(&counters) as u64);
        let task = thread.spawn(deliver(spec.clone(), rx, counters.clone(), seed));
        Some(Endpoint {
            spec: spec.clone(),
            queue,
            counters,
            task,
        })
    }

    /// Offer `record` to the endpoints that want it: the top-level one and
    /// service `service`'s. Never waits.
    pub(super) fn notify(&self, service: Option<usize>, record: &EventRecord) {
        let action = record.action.as_deref();
        let own = service.and_then(|i| self.services.get(i)?.as_ref());
        let targets = [self.global.as_ref(), own]
            .map(|e| e.filter(|e| wants(&e.spec.events, &record.kind, action)));
        if targets.iter().all(Option::is_none) {
            return;
        }
        let payload = Payload {
            event: record,
            sentineld: &self.origin,
        };
        let body = Bytes::from(serde_json::to_vec(&payload).unwrap_or_default());
        for e in targets.into_iter().flatten() {
            if e.queue.try_send(body.clone()).is_err() {
                e.counters.dropped.fetch_add(1, Relaxed);
            }
        }
    }

    /// Each endpoint's totals; `name` gives a service index's name.
    pub(super) fn reports<'a>(&self, name: impl Fn(usize) -> &'a str) -> Vec<WebhookReport> {
        let report = |service: Option<String>, e: &Endpoint| WebhookReport {
            service,
            sent: e.counters.sent.load(Relaxed),
            failed: e.counters.failed.load(Relaxed),
            dropped: e.counters.dropped.load(Relaxed),
            queued: (e.queue.max_capacity() - e.queue.capacity()) as u64,
        };
        let global = self.global.iter().map(|e| report(None, e));
        let services = (self.services.iter().enumerate())
            .filter_map(|(i, e)| Some(report(Some(name(i).to_string()), e.as_ref()?)));
        global.chain(services).collect()
    }
}

/// A thread that runs the senders as long as the process lives.
fn start_thread() -> std::io::Result<tokio::runtime::Handle> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let handle = runtime.handle().clone();
    std::thread::Builder::new()
        .name("webhooks".into())
        .spawn(move || runtime.block_on(std::future::pending::<()>()))?;
    Ok(handle)
}

/// Send what arrives on `rx`, one notification at a time and in order,
/// each until it is delivered, refused or out of retries.
async fn deliver(
    spec: WebhookSpec,
    mut rx: mpsc::Receiver<Bytes>,
    counters: Arc<Counters>,
    seed: u64,
) {
    let mut rng = Rng::new(seed);
    let shown = format!("http://{}", spec.authority);
    while let Some(body) = rx.recv().await {
        let mut retry = 0;
        loop {
            let (outcome, said) =
                match tokio::time::timeout(spec.timeout, post(&spec, body.clone())).await {
                    Ok(Ok(status)) => (Outcome::of(Some(status)), format!("HTTP {status}")),
                    Ok(Err(e)) => (Outcome::Retry, e),
                    Err(_) => (Outcome::Retry, "no answer in time".into()),
                };
            match outcome {
                Outcome::Sent => counters.sent.fetch_add(1, Relaxed),
                Outcome::Retry if retry < RETRIES => {
                    tokio::time::sleep(retry_delay(retry, rng.next_f64())).await;
                    retry += 1;
                    continue;
                }
                Outcome::Refused | Outcome::Retry => {
                    tracing::warn!("webhook {shown}: gave up on a notification: {said}");
                    counters.failed.fetch_add(1, Relaxed)
                }
            };
            break;
        }
    }
}

/// One POST; the answer's status. The connection is driven here, not in a
/// task of its own, so a timeout that drops this future closes it.
async fn post(spec: &WebhookSpec, body: Bytes) -> Result<u16, String> {
    use hyper::header;
    let stream = tokio::net::TcpStream::connect(&spec.authority)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    let mut req = hyper::Request::post(spec.path.as_str())
        .header(header::HOST, spec.authority.as_str())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, USER_AGENT)
        .header(header::CONNECTION, "close");
    for (k, v) in &spec.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
    let mut conn = std::pin::pin!(conn);
    let mut answer = std::pin::pin!(sender.send_request(req));
    let status = |r: hyper::Result<hyper::Response<_>>| r.map(|r| r.status().as_u16());
    tokio::select! {
        a = &mut answer => return status(a).map_err(|e| e.to_string()),
        end = &mut conn => end.map_err(|e| e.to_string())?,
    }
    // The connection ended: an answer it read is in `answer` already.
    status(answer.await).map_err(|e| e.to_string())
}
