//! tidings-sim: a deterministic simulator and benchmark harness for tidings.
//!
//! Everything here drives the real core state machines through their sans-IO API, with virtual time and
//! a seeded network, so every run is reproducible from its seed.

pub mod cluster;
#[cfg(feature = "peers")]
pub mod compare;
pub mod net;
pub mod pair;
pub mod plot;
pub mod reconcile;
pub mod rng;
pub mod scenario;
pub mod storage;
