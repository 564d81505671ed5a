//! Rumors: member and data changes as they ride piggybacked on probes, acks and gossip.

use crate::data::WireEntry;
use crate::members::WireMember;
use crate::NodeId;
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
    /// Who suspects a member: independent suspicions shorten the suspicion (Lifeguard).
    Suspect(SuspectClaim),
}

/// `by` failed to reach member `id` in `generation` at `version`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuspectClaim {
    /// The suspected member.
    pub id: NodeId,
    /// Its generation, as the suspecter holds it.
    pub generation: u32,
    /// Its version, as the suspecter holds it.
    pub version: u64,
    /// The member whose probe went unanswered.
    pub by: NodeId,
}
