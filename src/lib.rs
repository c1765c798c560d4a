//! sentineld: a process supervisor.
//!
//! - [`config`] turns services.yaml into a validated [`config::Plan`].
//! - [`strategy`] holds the pure decisions (what to do after an exit, and when).
//! - [`supervisor`] is the runtime: one event loop on the main thread that
//!   forks, reaps, times and stops; a log thread that drains the children's pipes.
//! - [`control`] is the Unix-socket protocol between the daemon and the CLI.
//! - [`report`] renders status for people.
//! - [`state_dir`] names every file and directory in the state dir, checks
//!   that the dir is ours alone, and opens every file in it.
//! - [`color`] decides whether output is coloured (`--color`, `NO_COLOR`).
//! - [`timefmt`] writes times, durations and exits alike in every layer.

pub mod cli;
pub mod color;
pub mod commands;
pub mod config;
pub mod control;
pub mod report;
pub mod state_dir;
pub mod strategy;
pub mod supervisor;
pub mod timefmt;
