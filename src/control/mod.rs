//! The control socket: protocol types, the daemon's server and the CLI's
//! blocking client.

pub mod client;
pub mod connection;
pub mod http;
mod parse;
pub mod protocol;
pub mod server;
