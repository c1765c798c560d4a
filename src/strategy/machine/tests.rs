//! The transition matrix and the machine's invariants.
