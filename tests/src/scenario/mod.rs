//! Cluster scenarios: dissemination, steady state, partition healing and failure detection, each a
//! function from its parameters to a report, run on a [`Cluster`] of real nodes.

pub mod detect;
pub mod disseminate;
pub mod join;
pub mod partition;
pub mod steady;

use crate::cluster::{Cluster, CLUSTER};
use crate::net::NetConfig;
use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::time::Instant as WallClock;
use tidings::auth::Keyring;
use tidings::config::Config;
use tidings::tree::depth_for;
use tidings::{Duration, NodeId};

/// Settings every scenario shares.
#[derive(Clone, Copy, Debug)]
pub struct Common {
    /// Seed of the run: the same seed gives the same run.
    pub seed: u64,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Print a progress line to a terminal's stderr.
    pub progress: bool,
    /// What every datagram carries.
    pub seal: Seal,
}

/// What every datagram of a simulated cluster carries beside its message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Seal {
    /// No keyring: the tag's room is kept but left empty.
    #[default]
    None,
    /// A signing keyring: a 16-byte HMAC tag.
    Sign,
    /// An encrypting keyring: the message encrypted, a 12-byte nonce and a 16-byte tag.
    Encrypt,
}

impl Seal {
    /// The keyring every node of the cluster holds.
    pub fn keyring(self) -> Option<Keyring> {
        let ring = Keyring::new([0x5e; 32]);
        match self {
            Seal::None => None,
            Seal::Sign => Some(ring),
            Seal::Encrypt => Some(ring.with_encryption()),
        }
    }
}

impl Default for Common {
    fn default() -> Self {
        Common {
            seed: 1,
            loss: 0.0,
            progress: false,
            seal: Seal::None,
        }
    }
}

/// The node settings of a simulated cluster of about `n` nodes: [`Config::lan`], with a member tree
/// deep enough for `n` (about 16 members per leaf) and room for `n` plus joiners.
pub fn template(n: usize) -> Config {
    let mut c = Config::lan(CLUSTER, NodeId(0));
    c.members_depth = depth_for(n as u64, 16).max(1);
    c.max_members = n + 256;
    c
}

/// [`template`], under the run's keyring.
pub fn sealed(n: usize, common: &Common) -> Config {
    Config {
        auth: common.seal.keyring(),
        ..template(n)
    }
}

/// A LAN: 1 ms one way plus up to 1 ms of jitter (so datagrams reorder), and `loss`.
pub fn lan(loss: f64) -> NetConfig {
    NetConfig {
        latency: Duration::from_millis(1),
        jitter: Duration::from_millis(1),
        loss,
        duplicate: 0.0,
    }
}

/// A cluster of `n` nodes that agree on membership and have passed on the news of their joins.
pub fn settled(n: usize, common: &Common) -> Cluster {
    let mut c = Cluster::converged(sealed(n, common), lan(common.loss), n, common.seed);
    settle(&mut c, Duration::from_secs(60));
    c
}

/// Runs until no node has news left to piggyback, or `limit` has passed.
pub fn settle(c: &mut Cluster, limit: Duration) {
    let until = c.now + limit;
    while c.now < until {
        c.run_for(Duration::from_millis(500));
        if c.running()
            .all(|i| c.node(i).is_some_and(|n| n.queued_news() == 0))
        {
            break;
        }
    }
}

/// The `p`-th percentile (0..=100, nearest rank) of `values`; 0 for none.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Rounds to millisecond precision, for reports.
pub fn ms(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A progress line on stderr, redrawn at most every half second, only on a terminal.
pub struct Progress {
    on: bool,
    started: WallClock,
    last: WallClock,
    what: &'static str,
}

impl Progress {
    /// A progress line for `what`.
    pub fn new(what: &'static str, common: &Common) -> Self {
        let now = WallClock::now();
        Progress {
            on: common.progress && std::io::stderr().is_terminal(),
            started: now,
            last: now,
            what,
        }
    }

    /// Shows `status` if the line is due for a redraw.
    pub fn show(&mut self, status: impl FnOnce() -> String) {
        if !self.on || self.last.elapsed().as_millis() < 500 {
            return;
        }
        self.last = WallClock::now();
        let mut err = std::io::stderr();
        let _ = write!(
            err,
            "\r\x1b[2K{} [{:.0} s] {}",
            self.what,
            self.started.elapsed().as_secs_f64(),
            status()
        );
        let _ = err.flush();
    }

    /// Clears the line.
    pub fn done(&self) {
        if self.on {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}

/// Wall-clock seconds since `start`.
pub fn wall_secs(start: WallClock) -> f64 {
    ms(start.elapsed().as_secs_f64())
}
