//! `tidings demo`: a cluster of real agents on loopback, in this process, put through its paces:
//! join, replicate, crash, restart, leave.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tidings::auth::Keyring;
use tidings::config::Config;
use tidings::{ClusterId, NodeId};
use tidings_tokio::{Agent, AgentConfig, Handle};

struct Member {
    agent: Option<Agent>,
    handle: Handle,
    dir: PathBuf,
}

struct Demo {
    members: Vec<Member>,
    seed: SocketAddr,
    started: Instant,
    live: bool,
    /// Seconds between steps, so someone watching the live view sees each one.
    pause: Duration,
}

const KEYS: usize = 20;

async fn start(
    i: usize,
    dir: &Path,
    seed: Option<SocketAddr>,
    ring: Keyring,
) -> Result<Agent, String> {
    let bind: SocketAddr = "127.0.0.1:0".parse().expect("an address");
    let mut node = Config::lan(ClusterId::from_name("demo"), NodeId(i as u64 + 1));
    node.auth = Some(ring);
    let mut c = AgentConfig::new(node, bind);
    c.name = Some(format!("node-{}", i + 1));
    c.data_dir = Some(dir.to_path_buf());
    c.seeds.extend(seed);
    Agent::start(c)
        .await
        .map_err(|e| format!("node {}: {e}", i + 1))
}

impl Demo {
    async fn pause(&self) {
        tokio::time::sleep(self.pause).await;
    }

    fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    fn say(&self, what: &str) {
        if self.live {
            eprint!("\r\x1b[2K");
        }
        println!("[{:>5.1} s] {what}", self.elapsed());
    }

    fn show(&self, status: &str) {
        if self.live {
            eprint!("\r\x1b[2K[{:>5.1} s]   {status}", self.elapsed());
            let _ = std::io::stderr().flush();
        }
    }

    fn running(&self) -> impl Iterator<Item = (usize, &Member)> {
        self.members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.agent.is_some())
    }

    /// How many running agents see `check` true, polled until all do or `limit` passes.
    async fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        check: impl Fn(&[tidings_tokio::MemberInfo], &[(Vec<u8>, Vec<u8>)], usize) -> bool,
    ) -> Result<f64, String> {
        let from = Instant::now();
        loop {
            let mut ok = 0;
            let mut total = 0;
            let mut bytes = 0;
            for (i, m) in self.running() {
                total += 1;
                let members = m.handle.members().await.unwrap_or_default();
                let entries = m.handle.entries().await.unwrap_or_default();
                if check(&members, &entries, i) {
                    ok += 1;
                }
                bytes += m
                    .handle
                    .metrics()
                    .await
                    .map_or(0, |s| s.node_stats.bytes_out);
            }
            self.show(&format!(
                "{what}: {ok}/{total} agents   ({bytes} bytes sent so far)"
            ));
            if ok == total {
                return Ok(from.elapsed().as_secs_f64());
            }
            if from.elapsed() > limit {
                return Err(format!("{what}: only {ok}/{total} agents after {limit:?}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn status_of(members: &[tidings_tokio::MemberInfo], id: u64) -> Option<(&'static str, u32)> {
    members
        .iter()
        .find(|m| m.id == id)
        .map(|m| (m.status, m.generation))
}

/// How the demo runs.
pub struct Options {
    /// Agents to start.
    pub nodes: usize,
    /// Where node 1 serves its API and the live view (`/ui`).
    pub http: SocketAddr,
    /// Pause between steps and keep the cluster running at the end, until Ctrl-C.
    pub stay: bool,
}

pub async fn run(o: Options) -> i32 {
    if o.nodes < 3 {
        eprintln!("error: --nodes must be at least 3");
        return 2;
    }
    match demo(o).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("\ndemo failed: {e}");
            1
        }
    }
}

async fn demo(o: Options) -> Result<(), String> {
    let n = o.nodes;
    let root = std::env::temp_dir().join(format!("tidings-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let key = tidings_tokio::keys::generate().map_err(|e| format!("random key: {e}"))?;
    let ring = tidings_tokio::keys::parse(&key)?;
    let mut members = Vec::new();
    let mut seed = None;
    for i in 0..n {
        let dir = root.join(format!("node-{}", i + 1));
        let agent = start(i, &dir, seed, ring).await?;
        seed = seed.or(Some(agent.local_addr()));
        members.push(Member {
            handle: agent.handle(),
            agent: Some(agent),
            dir,
        });
    }
    // Node 1 is never the one killed or the one that leaves: it serves the live view throughout.
    let listener = tokio::net::TcpListener::bind(o.http)
        .await
        .map_err(|e| format!("cannot serve the live view on {}: {e}", o.http))?;
    let view = listener.local_addr().map_err(|e| e.to_string())?;
    let api = tokio::spawn(tidings_tokio::http::serve_on(
        listener,
        members[0].handle.clone(),
        Default::default(),
    ));
    let mut d = Demo {
        members,
        seed: seed.expect("at least one agent"),
        started: Instant::now(),
        live: std::io::stderr().is_terminal(),
        pause: if o.stay {
            Duration::from_secs(4)
        } else {
            Duration::ZERO
        },
    };
    d.say(&format!(
        "started {n} agents on loopback (first at {}), datagrams authenticated under a fresh key, data under {}",
        d.seed,
        root.display()
    ));
    d.say(&format!("live view of node 1: http://{view}/ui"));
    d.pause().await;
    let limit = Duration::from_secs(60);

    let t = d
        .wait_for("members agreed", limit, |m, _, _| {
            m.iter().filter(|m| m.status == "alive").count() == n
        })
        .await?;
    d.say(&format!("all {n} agents see {n} alive members ({t:.1} s)"));

    for k in 0..KEYS {
        let (_, m) = d.running().nth(k % n).expect("running");
        m.handle
            .set(
                format!("key-{k:02}").as_bytes(),
                format!("value {k}").as_bytes(),
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    let t = d
        .wait_for("keys replicated", limit, |_, e, _| e.len() == KEYS)
        .await?;
    d.say(&format!(
        "{KEYS} keys written across the agents, every agent holds all of them ({t:.1} s)"
    ));

    d.pause().await;
    let victim = n - 1;
    let id = victim as u64 + 1;
    if let Some(a) = d.members[victim].agent.take() {
        a.abort();
    }
    d.say(&format!("killed node {id} without a word"));
    let t = d
        .wait_for(&format!("node {id} known dead"), limit, |m, _, _| {
            status_of(m, id).is_some_and(|s| s.0 == "dead")
        })
        .await?;
    d.say(&format!(
        "every other agent holds node {id} dead ({t:.1} s after the kill)"
    ));

    d.pause().await;
    let agent = start(victim, &d.members[victim].dir.clone(), Some(d.seed), ring).await?;
    let generation = agent.handle().generation();
    d.members[victim].handle = agent.handle();
    d.members[victim].agent = Some(agent);
    let keys = d.members[victim]
        .handle
        .entries()
        .await
        .map_err(|e| e.to_string())?
        .len();
    d.say(&format!(
        "restarted node {id} from its data directory: generation {generation}, {keys} keys restored"
    ));
    let t = d
        .wait_for(&format!("node {id} back"), limit, |m, e, _| {
            status_of(m, id) == Some(("alive", generation)) && e.len() == KEYS
        })
        .await?;
    d.say(&format!(
        "every agent holds node {id} alive in generation {generation} ({t:.1} s)"
    ));

    d.pause().await;
    let leaver = 1;
    let lid = leaver as u64 + 1;
    let outcome = d.members[leaver]
        .handle
        .leave(Duration::from_secs(5))
        .await
        .map_err(|e| e.to_string())?;
    if let Some(a) = d.members[leaver].agent.take() {
        a.stopped().await;
    }
    d.say(&format!("node {lid} left gracefully ({outcome:?})"));
    let t = d
        .wait_for(&format!("node {lid} known left"), limit, |m, _, _| {
            status_of(m, lid).is_some_and(|s| s.0 == "left")
        })
        .await?;
    d.say(&format!(
        "every agent reports node {lid} as left, not failed ({t:.1} s)"
    ));

    let mut bytes = 0;
    let mut datagrams = 0;
    let mut rejected = 0;
    for (_, m) in d.running() {
        let s = m.handle.metrics().await.map_err(|e| e.to_string())?;
        bytes += s.node_stats.bytes_out;
        datagrams += s.node_stats.datagrams_out;
        rejected += s.node_stats.refused;
    }
    let running = d.running().count();
    d.say(&format!(
        "done: {running} agents agree; they sent {datagrams} datagrams, {bytes} bytes in all \
         ({:.0} B/s per agent), {rejected} refused",
        bytes as f64 / running as f64 / d.elapsed()
    ));
    if o.stay {
        d.say(&format!(
            "the cluster keeps running: http://{view}/ui (Ctrl-C to stop)"
        ));
        let _ = tokio::signal::ctrl_c().await;
    }
    api.abort();
    for (_, m) in d.running() {
        m.handle.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}
