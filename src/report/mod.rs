//! Rendering of status for people, and of metrics for Prometheus.
pub mod metrics;
pub mod table;
