//! Pure decisions. Nothing in this module reads a clock, touches a process
//! or draws a random number on its own: time, history and random draws come
//! in as arguments and a decision goes out, so every rule is unit-tested
//! without sleeping.

pub mod admission;
pub mod availability;
pub mod backoff;
pub mod breaker;
pub mod classify;
pub mod correlation;
pub mod escalation;
pub mod leftovers;
pub mod limits;
pub mod machine;
pub mod orchestrator;
pub mod policy;
pub mod probe;
pub mod restart;
pub mod risk;
pub mod rng;
pub mod sampling;
pub mod signals;
pub mod system;
pub mod text;
pub mod tree;
pub mod webhook;
