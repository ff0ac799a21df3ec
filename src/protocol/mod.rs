//! The sans-IO protocol core: connection state, command builders, topic names, key hashing and
//! backoff. Nothing here does I/O or reads the clock; the driver tasks pass time in.

pub mod acks;
pub mod attach;
pub mod backoff;
pub mod clock;
pub mod commands;
pub mod connection;
pub(crate) mod consumer;
pub mod flow;
#[cfg(any(test, feature = "unstable"))]
#[doc(hidden)]
pub mod fuzz;
pub mod hash;
pub mod hosts;
pub mod idle;
pub mod pending;
pub(crate) mod producer;
pub mod topic;
pub mod transaction;
