//! Pure decisions. Nothing in this module reads a clock, touches a process
//! or draws a random number: time and history come in as arguments, a
//! decision goes out, so every rule is unit-tested without sleeping.

pub mod restart;
