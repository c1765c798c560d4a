//! `reload` and SIGHUP: read the services file again, off the loop (a
//! file on a hung disk must not stop supervision), then apply what changed
//! — or, for a file that is not valid, change nothing and keep the errors
//! for `status` until a reload succeeds.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use tokio::sync::{mpsc, oneshot};

use super::daemon::{Daemon, ServiceRt};
use super::probes::ProbeRt;
use super::{budget, plan, spawn};
use crate::config::diff::{self, Change, Diff, Running};
use crate::config::webhook::WebhookSpec;
use crate::config::{GroupSpec, Plan, ServiceSpec, SupervisorSpec};
use crate::control::protocol::{
    ErrorKind, EventRecord, ReloadChanges, ReloadError, Response, ServiceChange,
};
use crate::control::server::Reply;
use crate::strategy::system::Reconfigure;
use crate::timefmt::format_time;

/// What the running configuration came from, besides its services.
pub(super) struct Reloads {
    pub file: PathBuf,
    /// The state dir in use: a reload may not move it.
    state_dir: PathBuf,
    /// `up --state-dir` chose it: the file's `state_dir` is not read.
    state_dir_from_flag: bool,
    groups: Vec<GroupSpec>,
    supervisor: SupervisorSpec,
    exit_on_critical: bool,
    /// The HTTP API's settings: bound at `up`, not moved by a reload.
    api: Option<crate::config::ApiSpec>,
    /// The resource sampler's interval: set at `up`.
    resources: crate::config::limits::ResourcesSpec,
    webhook: Option<WebhookSpec>,
    /// The last reload that failed, until one succeeds.
    pub error: Option<ReloadError>,
    /// A thread is reading the file.
    reading: bool,
    /// Reloads asked for meanwhile, in order: each reads the file anew.
    waiting: std::collections::VecDeque<(bool, Option<oneshot::Sender<Reply>>)>,
    tx: mpsc::UnboundedSender<Loaded>,
}

/// A services file read off the loop.
pub(super) struct Loaded {
    plan: Result<Plan, String>,
    dry_run: bool,
    reply: Option<oneshot::Sender<Reply>>,
}

pub(super) type LoadedRx = mpsc::UnboundedReceiver<Loaded>;

impl Reloads {
    pub(super) fn new(plan: &Plan) -> (Reloads, LoadedRx) {
        let (tx, rx) = mpsc::unbounded_channel();
        let reloads = Reloads {
            file: plan.file.clone(),
            state_dir: plan.state_dir.clone(),
            state_dir_from_flag: plan.state_dir_from_flag,
            groups: plan.groups.clone(),
            supervisor: plan.supervisor.clone(),
            exit_on_critical: plan.exit_on_critical,
            api: plan.api.clone(),
            resources: plan.resources,
            webhook: plan.webhook.clone(),
            error: None,
            reading: false,
            waiting: Default::default(),
            tx,
        };
        (reloads, rx)
    }
}

/// Reloads waiting for the one reading the file, at most.
const MAX_WAITING: usize = 16;

fn refuse(reply: Option<oneshot::Sender<Reply>>, kind: ErrorKind, message: String) {
    match reply {
        Some(reply) => {
            let _ = reply.send(Response::error(kind, message).into());
        }
        None => tracing::warn!("reload: {message}"),
    }
}

/// Why a reload changed nothing.
type Refusal = (ErrorKind, String);

fn error(kind: ErrorKind, message: String) -> Refusal {
    (kind, message)
}

/// A diff as the reply's `changes`.
fn reload_changes(d: &Diff, dry_run: bool, deferred: Vec<String>) -> ReloadChanges {
    let services = (d.services.iter())
        .map(|(name, change)| {
            let (change, keys) = match change {
                Change::Added => ("added", Vec::new()),
                Change::Removed => ("removed", Vec::new()),
                Change::Restart(keys) => ("restart", keys.clone()),
                Change::InPlace(keys) => ("in_place", keys.clone()),
            };
            ServiceChange {
                name: name.clone(),
                change: change.into(),
                keys,
            }
        })
        .collect();
    ReloadChanges {
        dry_run,
        services,
        tree: d.tree.clone(),
        summary: d.summary(),
        deferred,
    }
}

impl Daemon {
    /// Read the file on a thread of its own; [`Self::on_loaded`] applies
    /// it. One read at a time, in the order asked: a reload asked for after
    /// the file changed reads the changed file, and a file on a hung disk
    /// holds one thread, not one per request.
    pub(super) fn reload(&mut self, dry_run: bool, reply: Option<oneshot::Sender<Reply>>) {
        if self.system.shutting_down() {
            let message = "sentineld is shutting down".to_string();
            return refuse(reply, ErrorKind::Conflict, message);
        }
        if self.reloads.reading {
            let waiting = &mut self.reloads.waiting;
            // SIGHUPs while one waits are that one.
            if reply.is_none() && waiting.iter().any(|(d, r)| !d && r.is_none()) {
                return;
            }
            if waiting.len() >= MAX_WAITING {
                let message = format!(
                    "{MAX_WAITING} reloads are already waiting for the services file to be read"
                );
                return refuse(reply, ErrorKind::Busy, message);
            }
            waiting.push_back((dry_run, reply));
            return;
        }
        self.reloads.reading = true;
        let file = self.reloads.file.clone();
        let tx = self.reloads.tx.clone();
        let spawned = std::thread::Builder::new()
            .name("reload".into())
            .spawn(move || {
                let plan = crate::config::load(&file).map_err(|e| e.to_string());
                let _ = tx.send(Loaded {
                    plan,
                    dry_run,
                    reply,
                });
            });
        if let Err(e) = spawned {
            self.reloads.reading = false;
            tracing::error!("reload: cannot start a thread to read the file: {e}");
        }
    }

    pub(super) fn on_loaded(&mut self, loaded: Loaded, now: Instant) {
        let Loaded {
            plan,
            dry_run,
            reply,
        } = loaded;
        self.reloads.reading = false;
        if let Some((dry_run, reply)) = self.reloads.waiting.pop_front() {
            self.reload(dry_run, reply);
        }
        if self.system.shutting_down() {
            let message = "sentineld is shutting down".to_string();
            return refuse(reply, ErrorKind::Conflict, message);
        }
        let outcome = plan
            .map_err(|message| error(ErrorKind::InvalidConfig, message))
            .and_then(|plan| {
                if dry_run {
                    return self.reload_plan(plan, dry_run, now);
                }
                super::selfnotify::reloading();
                let applied = self.reload_plan(plan, dry_run, now);
                let n = self.rt.len();
                super::selfnotify::ready(&format!("supervising {n} services; reloaded"));
                applied
            });
        let response = match outcome {
            Ok((message, changes)) => Response::Done {
                message,
                changes: Some(changes),
            },
            Err((kind, message)) => {
                if !dry_run {
                    self.reload_failed(kind, &message);
                }
                Response::error(kind, message)
            }
        };
        if let Some(reply) = reply {
            let _ = reply.send(response.into());
        }
    }

    fn reload_failed(&mut self, kind: ErrorKind, message: &str) {
        let first = message.lines().next().unwrap_or_default();
        tracing::error!("reload failed, nothing changed: {first}");
        self.system_event("reload", format!("reload failed, nothing changed: {first}"));
        if kind == ErrorKind::InvalidConfig {
            self.reloads.error = Some(ReloadError {
                at: format_time(SystemTime::now()),
                message: message.to_string(),
            });
        }
    }

    /// An event of no one service.
    fn system_event(&mut self, kind: &'static str, message: String) {
        self.metrics.event(kind);
        let record = EventRecord {
            id: 0,
            at: format_time(SystemTime::now()),
            service: String::new(),
            kind: kind.into(),
            message,
            severity: None,
            action: None,
        };
        self.webhooks.notify(None, &record);
        self.journal.push(record);
    }

    /// The running services, by index: none for a retired one.
    fn live(&self) -> impl Iterator<Item = (usize, &ServiceSpec)> {
        let live = |&(i, _): &(usize, _)| !self.system.is_retired(i);
        self.rt.iter().map(|r| &r.spec).enumerate().filter(live)
    }

    fn reload_plan(
        &mut self,
        mut new: Plan,
        dry_run: bool,
        now: Instant,
    ) -> Result<(String, ReloadChanges), Refusal> {
        if !self.reloads.state_dir_from_flag && new.state_dir != self.reloads.state_dir {
            let message = format!(
                "{}: state_dir: cannot change while sentineld runs (it is {}); stop and start it to move",
                new.file.display(),
                self.reloads.state_dir.display()
            );
            return Err(error(ErrorKind::InvalidConfig, message));
        }
        new.state_dir = self.reloads.state_dir.clone();
        let budget = budget::Budget::of(&new);
        if budget.needed > budget.limit {
            let message = budget.shortfall(new.services.len());
            return Err(error(ErrorKind::InvalidConfig, message));
        }
        let running = Running {
            services: self.live().map(|(_, s)| s).collect(),
            groups: &self.reloads.groups,
            supervisor: &self.reloads.supervisor,
            exit_on_critical: self.reloads.exit_on_critical,
            webhook: self.reloads.webhook.as_ref(),
        };
        let d = diff::diff(&running, &new);
        let retiring: HashSet<&str> = (self.system.retiring())
            .map(|i| self.rt[i].spec.name.as_str())
            .collect();
        for (name, change) in &d.services {
            if *change == Change::Added && retiring.contains(name.as_str()) {
                let message = format!(
                    "{name}: still stopping since an earlier reload removed it; reload again once it is down"
                );
                return Err(error(ErrorKind::Conflict, message));
            }
        }
        let deferred: Vec<String> = [
            (new.api != self.reloads.api, "api"),
            (new.resources != self.reloads.resources, "resources"),
        ]
        .into_iter()
        .filter(|(changed, _)| *changed)
        .map(|(_, what)| what.to_string())
        .collect();
        let mut text = format!("{}{}", d, d.summary());
        for what in &deferred {
            text.push_str(&format!(
                "\nnote: {what} changed; it takes effect when sentineld is started again"
            ));
        }
        let changes = reload_changes(&d, dry_run, deferred);
        if dry_run {
            return Ok((text, changes));
        }
        self.apply(new, &d, now);
        self.reloads.error = None;
        tracing::info!("reloaded {}: {}", self.reloads.file.display(), d.summary());
        self.system_event("reload", format!("reloaded: {}", d.summary()));
        Ok((text, changes))
    }

    /// Carry out a validated diff.
    fn apply(&mut self, new: Plan, d: &Diff, now: Instant) {
        let live: HashMap<String, usize> = self.live().map(|(i, s)| (s.name.clone(), i)).collect();
        let changes: HashMap<&str, &Change> =
            d.services.iter().map(|(n, c)| (n.as_str(), c)).collect();
        let mut slots = Vec::with_capacity(new.services.len());
        let (mut changed, mut added) = (Vec::new(), Vec::new());
        for spec in &new.services {
            let change = changes.get(spec.name.as_str()).copied();
            let Some(&i) = live.get(&spec.name) else {
                slots.push(self.rt.len());
                self.rt.push(ServiceRt::new(spec, &self.base_env));
                added.push(plan::machine_config(spec));
                continue;
            };
            slots.push(i);
            let Some(change) = change else {
                continue;
            };
            let restart = match change {
                Change::Restart(keys) => Some(format!(
                    "restarting: its configuration changed ({})",
                    keys.join(", ")
                )),
                _ => None,
            };
            self.respec(i, spec);
            changed.push((i, plan::machine_config(spec), restart));
        }
        let mut removed: Vec<usize> = (live.iter())
            .filter(|(name, _)| changes.get(name.as_str()) == Some(&&Change::Removed))
            .map(|(_, &i)| i)
            .collect();
        removed.sort_unstable();
        let r = Reconfigure {
            tree: plan::tree_over(&new, &slots, self.rt.len()),
            changed,
            added,
            removed,
            exit_on_critical: new.exit_on_critical,
        };
        // Before the core acts: the events of this reload go where the new
        // file says.
        let hooks = slots.iter().zip(&new.services);
        let hooks = hooks.map(|(&i, s)| (i, s.webhook.as_ref()));
        self.webhooks.follow(new.webhook.as_ref(), hooks);
        self.reloads.webhook = new.webhook;
        self.reloads.groups = new.groups;
        self.reloads.supervisor = new.supervisor;
        self.reloads.exit_on_critical = new.exit_on_critical;
        self.metrics.follow(&self.rt);
        let out = self.system.reconfigure(now, r);
        self.carry_out(now, out);
    }

    /// Service `i` takes `spec`: its process image, hooks and probes; a
    /// probe in flight finishes and reports.
    fn respec(&mut self, i: usize, spec: &ServiceSpec) {
        let mut probes = ProbeRt::for_service(spec, &self.base_env);
        let rt = &mut self.rt[i];
        for (new, old) in probes.iter_mut().zip(rt.probes.iter_mut()) {
            if let (Some(new), Some(old)) = (new.as_mut(), old.as_mut()) {
                new.carry_over(old);
            }
        }
        rt.image = spawn::SpawnSpec::new(spec, &self.base_env);
        rt.probes = probes;
        rt.needs_output = spec.classify.iter().any(|c| c.output_matches.is_some());
        rt.spec = spec.clone();
        if let Some(hub) = &self.logs {
            hub.set_limits(i, spec.logs.max_size, spec.logs.keep);
        }
    }
}
