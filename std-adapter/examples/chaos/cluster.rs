//! The agents under test: `tidings agent` processes, on loopback or each in a network namespace of
//! its own, started, SIGKILLed, restarted, cut off and healed.
//!
//! With namespaces, every agent has two interfaces: `eth0` on a bridge shared with the other agents
//! (gossip), and `api0`, a point-to-point link to the host that carries only the checker's HTTP
//! requests. Cutting an agent takes its bridge port down: the agents are partitioned from each
//! other while clients on each side still reach their agent, as in a real network partition.

use std::fs::{self, OpenOptions};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Cluster {
    bin: PathBuf,
    work: PathBuf,
    netns: Option<String>,
    agents: Vec<Option<Child>>,
    cut: Vec<bool>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether network namespaces can be made here (root and `ip`).
pub fn netns_available() -> bool {
    let probe = format!("tdchk{}", std::process::id());
    let ok = ip(&["netns", "add", &probe]).is_ok();
    if ok {
        let _ = ip(&["netns", "del", &probe]);
    }
    ok
}

impl Cluster {
    /// A cluster of `n` agents (not started) with its files under `work`.
    pub fn new(bin: PathBuf, work: PathBuf, n: usize, netns: bool) -> Result<Self, String> {
        let keys = Command::new(&bin)
            .arg("keygen")
            .output()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        let key_file = work.join("keys");
        fs::write(&key_file, &keys.stdout).map_err(|e| e.to_string())?;
        let mut perms = fs::metadata(&key_file)
            .map_err(|e| e.to_string())?
            .permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
        fs::set_permissions(&key_file, perms).map_err(|e| e.to_string())?;
        let mut c = Cluster {
            bin,
            work,
            netns: netns.then(|| format!("tdc{}", std::process::id() % 100_000)),
            agents: (0..n).map(|_| None).collect(),
            cut: vec![false; n],
        };
        if c.netns.is_some() {
            c.make_network(n)?;
        }
        Ok(c)
    }

    fn ns(&self, i: usize) -> Option<String> {
        self.netns.as_ref().map(|p| format!("{p}n{}", i + 1))
    }

    fn bridge(&self) -> Option<String> {
        self.netns.as_ref().map(|p| format!("{p}br"))
    }

    fn make_network(&mut self, n: usize) -> Result<(), String> {
        let (Some(p), Some(br)) = (self.netns.clone(), self.bridge()) else {
            return Ok(());
        };
        ip(&["netns", "add", &br])?;
        ip(&["-n", &br, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &br, "link", "set", "br0", "up"])?;
        for i in 0..n {
            let ns = self.ns(i).unwrap_or_default();
            let k = i + 1;
            let (v, b, a, h) = (
                format!("{p}v{k}"),
                format!("{p}b{k}"),
                format!("{p}a{k}"),
                format!("{p}h{k}"),
            );
            ip(&["netns", "add", &ns])?;
            ip(&["link", "add", &v, "type", "veth", "peer", "name", &b])?;
            ip(&["link", "set", &v, "netns", &ns])?;
            ip(&["link", "set", &b, "netns", &br])?;
            ip(&["-n", &ns, "link", "set", &v, "name", "eth0"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("10.78.0.{k}/24"),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&["-n", &br, "link", "set", &b, "master", "br0"])?;
            ip(&["-n", &br, "link", "set", &b, "up"])?;
            // The API link: host side 10.79.k.1, agent side 10.79.k.2.
            ip(&["link", "add", &h, "type", "veth", "peer", "name", &a])?;
            ip(&["link", "set", &a, "netns", &ns])?;
            ip(&["-n", &ns, "link", "set", &a, "name", "api0"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("10.79.{k}.2/30"),
                "dev",
                "api0",
            ])?;
            ip(&["-n", &ns, "link", "set", "api0", "up"])?;
            ip(&["addr", "add", &format!("10.79.{k}.1/30"), "dev", &h])?;
            ip(&["link", "set", &h, "up"])?;
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.agents.len()
    }

    pub fn uses_netns(&self) -> bool {
        self.netns.is_some()
    }

    fn gossip_addr(&self, i: usize) -> String {
        match self.netns {
            Some(_) => format!("10.78.0.{}:7946", i + 1),
            None => format!("127.0.0.1:{}", 27_946 + i),
        }
    }

    /// Where agent `i` answers HTTP.
    pub fn api(&self, i: usize) -> SocketAddr {
        let s = match self.netns {
            Some(_) => format!("10.79.{}.2:8000", i + 1),
            None => format!("127.0.0.1:{}", 28_946 + i),
        };
        s.parse()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn log(&self, i: usize) -> PathBuf {
        self.work.join(format!("agent{}.log", i + 1))
    }

    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.work.join(format!("n{}", i + 1))
    }

    pub fn is_up(&self, i: usize) -> bool {
        self.agents.get(i).is_some_and(Option::is_some)
    }

    /// Starts agent `i` (seeded with every other agent).
    pub fn start(&mut self, i: usize) -> Result<(), String> {
        self.spawn(i, true)
    }

    /// Starts agent `i` with no seeds: alone, with nothing but its own disk.
    pub fn start_alone(&mut self, i: usize) -> Result<(), String> {
        self.spawn(i, false)
    }

    fn spawn(&mut self, i: usize, seeded: bool) -> Result<(), String> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log(i))
            .map_err(|e| e.to_string())?;
        let mut cmd = match self.ns(i) {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &ns]).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        let api = self.api(i);
        let http = match self.netns {
            Some(_) => format!("0.0.0.0:{}", api.port()),
            None => api.to_string(),
        };
        cmd.arg("agent")
            .args(["--node-id", &(i + 1).to_string()])
            .args(["--bind", &self.gossip_addr(i)])
            .args(["--http", &http])
            .arg("--data-dir")
            .arg(self.data_dir(i))
            .arg("--key-file")
            .arg(self.work.join("keys"));
        for j in (0..self.len()).filter(|&j| seeded && j != i) {
            cmd.args(["--seed", &self.gossip_addr(j)]);
        }
        let child = cmd
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{}: {e}", self.bin.display()))?;
        if let Some(slot) = self.agents.get_mut(i) {
            *slot = Some(child);
        }
        Ok(())
    }

    /// SIGKILLs agent `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.agents.get_mut(i).and_then(Option::take) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Takes agent `i`'s link to the other agents down (`up = false`) or back up.
    pub fn link(&mut self, i: usize, up: bool) -> Result<(), String> {
        let (Some(p), Some(br)) = (self.netns.clone(), self.bridge()) else {
            return Ok(());
        };
        let port = format!("{p}b{}", i + 1);
        ip(&[
            "-n",
            &br,
            "link",
            "set",
            &port,
            if up { "up" } else { "down" },
        ])?;
        if let Some(c) = self.cut.get_mut(i) {
            *c = !up;
        }
        Ok(())
    }

    pub fn is_cut(&self, i: usize) -> bool {
        self.cut.get(i).copied().unwrap_or(false)
    }

    /// The last lines of agent `i`'s log.
    pub fn tail(&self, i: usize, lines: usize) -> String {
        let text = fs::read_to_string(self.log(i)).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.len() {
            self.kill(i);
        }
        if let (Some(p), Some(br)) = (self.netns.clone(), self.bridge()) {
            for i in 0..self.len() {
                let _ = ip(&["link", "del", &format!("{p}h{}", i + 1)]);
                if let Some(ns) = self.ns(i) {
                    let _ = ip(&["netns", "del", &ns]);
                }
            }
            let _ = ip(&["netns", "del", &br]);
        }
    }
}

/// Removes `dir` and everything in it, if it exists.
pub fn clean(dir: &Path) {
    let _ = fs::remove_dir_all(dir);
}
