//! Finding the cluster: seeds named by DNS and in a file, resolved again and again.
//!
//! A seed is `HOST:PORT`, an address or a DNS name (a Kubernetes headless Service names every pod
//! behind it). [`run`] resolves the seeds given and those in the seeds file (one per line, `#`
//! comments), and joins through them while the node is alone, or knows none of the addresses they
//! resolve to (it joined a cluster that formed apart from the seeds'). It resolves again every
//! `every` (30 s by default), at once when told to reload (SIGHUP, in the agent), and, while the node
//! is alone, with a backoff from one second up to `every`: a node started before its seeds exist
//! joins as soon as they answer.

use crate::Handle;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;

/// Where the seeds come from.
#[derive(Clone, Debug, Default)]
pub struct Seeds {
    /// `HOST:PORT` strings.
    pub names: Vec<String>,
    /// A file of more, one per line, read again at every reload.
    pub file: Option<PathBuf>,
    /// The longest wait between two resolutions (30 s when zero).
    pub every: Duration,
}

impl Seeds {
    /// Every seed named, the file's included; the file's errors are reported, not fatal.
    pub fn all(&self) -> Vec<String> {
        let mut all = self.names.clone();
        if let Some(path) = &self.file {
            match std::fs::read_to_string(path) {
                Ok(text) => all.extend(parse_file(&text)),
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "seeds file unreadable")
                }
            }
        }
        all
    }
}

/// The seeds of a seeds file: one `HOST:PORT` per line; blank lines and `#` comments skipped.
pub fn parse_file(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Resolves `HOST:PORT` seeds; names that do not resolve are reported and skipped.
pub async fn resolve(seeds: &[String]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for seed in seeds {
        if let Ok(addr) = seed.parse::<SocketAddr>() {
            out.push(addr);
            continue;
        }
        let lookup = tokio::net::lookup_host(seed.as_str());
        match tokio::time::timeout(Duration::from_secs(5), lookup).await {
            Ok(Ok(addrs)) => out.extend(addrs),
            Ok(Err(e)) => tracing::warn!(seed, error = %e, "seed does not resolve"),
            Err(_) => tracing::warn!(seed, "seed resolution timed out"),
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Joins through the seeds whenever the node needs them, until the agent stops. `reload` asks for
/// an immediate new resolution (and a new read of the seeds file).
pub async fn run(handle: Handle, seeds: Seeds, mut reload: mpsc::Receiver<()>) {
    let every = if seeds.every.is_zero() {
        Duration::from_secs(30)
    } else {
        seeds.every
    };
    let mut backoff = Duration::from_secs(1);
    loop {
        let addrs = resolve(&seeds.all()).await;
        let Ok(members) = handle.members().await else {
            return;
        };
        let mine = Some(handle.local_addr());
        let known: HashSet<SocketAddr> = members
            .iter()
            .filter(|m| m.status == "alive" || m.status == "suspect")
            .map(|m| m.addr)
            .collect();
        let alone = known.len() <= 1;
        let others: Vec<SocketAddr> = addrs.into_iter().filter(|a| Some(*a) != mine).collect();
        let wait = if alone && !others.is_empty() {
            tracing::info!(seeds = ?others, "joining through the seeds");
            if handle.join(&others).await.is_err() {
                return;
            }
            let wait = backoff;
            backoff = (backoff * 2).min(every);
            wait
        } else {
            if !others.is_empty() && !others.iter().any(|a| known.contains(a)) {
                // In a cluster, but not the seeds' one: merge through them.
                tracing::info!(seeds = ?others, "none of the seeds is a member; joining them");
                if handle.join(&others).await.is_err() {
                    return;
                }
            }
            backoff = Duration::from_secs(1);
            every
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            r = reload.recv() => match r {
                Some(()) => tracing::info!("seeds reloaded"),
                None => return,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seeds_file_skips_blanks_and_comments() {
        let text = "# the seeds\n10.0.0.1:7946\n\n  seed.example:7946  # by name\n";
        assert_eq!(parse_file(text), ["10.0.0.1:7946", "seed.example:7946"]);
    }

    #[tokio::test]
    async fn names_and_addresses_resolve_and_bad_names_are_skipped() {
        let got = resolve(&[
            "localhost:7946".into(),
            "10.0.0.1:1".into(),
            "no-such-host.invalid:1".into(),
        ])
        .await;
        assert!(got.contains(&"10.0.0.1:1".parse().unwrap()), "{got:?}");
        assert!(
            got.iter().any(|a| a.ip().is_loopback() && a.port() == 7946),
            "{got:?}"
        );
        assert_eq!(got.len(), got.iter().collect::<HashSet<_>>().len());
    }
}
