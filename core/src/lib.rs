//! tidings: cluster membership, failure detection and replicated key-value state by gossip, with
//! anti-entropy that heals whatever gossip missed.
//!
//! This crate is the whole protocol as a sans-IO state machine: `#![no_std]`, no allocator unless the
//! `alloc` feature is on, no clock and no sockets. Bytes and time go in; datagrams to send, events and
//! the next deadline come out. The `tidings-tokio` and `tidings-embassy` crates drive it on servers and
//! on microcontrollers. To drive it yourself from any runtime, or from plain threads, see
//! [`examples/blocking_udp.rs`](https://github.com/tidings-rs/tidings/blob/main/core/examples/blocking_udp.rs):
//! a blocking `std::net::UdpSocket` and one loop, about forty lines.
//!
//! # Modules
//! - [`time`]: the caller's millisecond clock as [`Instant`] and [`Duration`].
//! - [`auth`]: the keyring and the HMAC tag that authenticates every datagram.
//! - [`config`]: a node's settings and their validation.
//! - [`wire`]: datagram header, messages, and their bounded postcard encoding.
//! - [`tree`]: the fixed-shape digest tree whose 32-byte roots say whether two replicas agree.
//! - [`sync`]: the anti-entropy [`sync::Engine`] that drills down differing trees and ships only the
//!   entries that differ, over any [`sync::Replica`].
//! - [`data`]: the replicated last-writer-wins map.
//! - [`clock`]: the hybrid logical clock that versions its writes.
//! - [`members`]: the member table: statuses, generations, refutation and tombstones.
//! - [`node`]: the [`node::Node`] state machine that composes them all, with the bounded queue of
//!   changes piggybacked on outgoing datagrams ([`node::GossipStats`]).
//! - [`store`]: storage backends, heapless (fixed capacity) and hashbrown (feature `alloc`).
//! - [`hash`]: the keyed hashes of keys and entries ([`DigestKey`]).
//! - `sketch` (feature `sketch`): set reconciliation in one message, a sketch of weighted power
//!   sums over GF(2^64) beside the digest tree, which names up to its capacity of differing keys
//!   whatever the size of the tables.
//!
//! # Design tenets
//! - Bounded everything: every table and queue has a capacity; a full one refuses with a counted,
//!   typed reason and never grows.
//! - Bad input changes nothing: a datagram is validated whole before anything acts on it.
//! - Datagrams never exceed the configured maximum (1,200 bytes by default): no IP fragmentation.
//! - Deterministic: the same inputs give the same outputs, which the simulator relies on.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs, unreachable_pub)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        // At most 80 lines (core/clippy.toml): a longer function is asking to be split.
        clippy::too_many_lines
    )
)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod auth;
pub mod clock;
pub mod config;
pub mod data;
mod gossip;
pub mod hash;
mod id;
mod indexed;
pub mod members;
pub mod node;
mod pace;
mod rng;
#[cfg(feature = "sketch")]
pub mod sketch;
pub mod store;
pub mod sync;
pub mod time;
pub mod tree;
mod version;
pub mod wire;

pub use hash::DigestKey;
pub use id::{ClusterId, NodeId};
pub use time::{Duration, Instant};
pub use version::Version;
