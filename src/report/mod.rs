//! Rendering of status for people.
pub mod table;
