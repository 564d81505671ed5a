//! Rumors: member and data changes as they ride piggybacked on probes, acks and gossip.

use crate::data::WireEntry;
use crate::members::WireMember;
use serde::{Deserialize, Serialize};

/// One piggybacked change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rumor<'a> {
    /// A member's state.
    #[serde(borrow)]
    Member(WireMember<'a>),
    /// A key-value write.
    #[serde(borrow)]
    Data(WireEntry<'a>),
}
