//! `tidings agent --encrypt` as processes: encrypting agents (one by the flag, one by `encrypt = true`
//! in its config file) form a cluster and replicate; an agent that only signs, under the same keys, is
//! refused by them and refuses them, counted on `/metrics`; `--encrypt` without keys stops at start.

mod common;

use common::{cli, eventually, free_port, http, members, tcp_port, Proc};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn tidings() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tidings"))
}

/// An agent named `name` on loopback, joining through `seed`, with `flags`.
fn agent(name: &str, gossip: u16, api: u16, seed: Option<u16>, dir: &Path, flags: &[&str]) -> Proc {
    let mut cmd = tidings();
    cmd.args(["agent", "--preset", "local", "--name", name])
        .args(["--bind", &format!("127.0.0.1:{gossip}")])
        .args(["--http", &format!("127.0.0.1:{api}")])
        .arg("--data-dir")
        .arg(dir.join(name))
        .args(flags);
    if let Some(seed) = seed {
        cmd.args(["--seed", &format!("127.0.0.1:{seed}")]);
    }
    Proc(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// A key file with one new key, readable by its owner only.
fn key_file(dir: &Path) -> String {
    let key = tidings().arg("keygen").output().unwrap();
    let path = dir.join("keys");
    std::fs::write(&path, &key.stdout).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.to_str().unwrap().to_owned()
}

/// The value of `tidings_rejected_datagrams_total{reason="encryption_mismatch"}` on an agent.
async fn mismatches(api: u16) -> u64 {
    let (_, text) = http(
        format!("127.0.0.1:{api}").parse().unwrap(),
        "GET",
        "/metrics",
        "",
    )
    .await;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("tidings_rejected_datagrams_total{reason=\"encryption_mismatch\"} ")
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn alive(api: u16) -> usize {
    members(api)
        .iter()
        .filter(|m| m["status"] == "alive")
        .count()
}

#[tokio::test]
async fn encrypting_agents_replicate_and_refuse_an_agent_that_only_signs() {
    let root = tempfile::tempdir().unwrap();
    let keys = key_file(root.path());
    let gossip = [free_port(), free_port(), free_port()];
    let api = [tcp_port(), tcp_port(), tcp_port()];
    let _a = agent(
        "enc-a",
        gossip[0],
        api[0],
        None,
        root.path(),
        &["--key-file", &keys, "--encrypt"],
    );
    let config = root.path().join("b.toml");
    std::fs::write(&config, format!("key_file = {keys:?}\nencrypt = true\n")).unwrap();
    let config = config.to_str().unwrap();
    let _b = agent(
        "enc-b",
        gossip[1],
        api[1],
        Some(gossip[0]),
        root.path(),
        &["--config", config],
    );
    eventually(
        "the encrypting agents join",
        Duration::from_secs(20),
        async || alive(api[0]) == 2 && alive(api[1]) == 2,
    )
    .await;
    let put = cli(api[0], &["kv", "put", "secret", "encrypted-value"], b"");
    assert!(put.status.success(), "{put:?}");
    eventually(
        "the write reaches the other agent",
        Duration::from_secs(10),
        async || cli(api[1], &["kv", "get", "secret"], b"").stdout == b"encrypted-value",
    )
    .await;

    // Signed under the same keys, not encrypted: it cannot join the encrypting agents, nor an
    // encrypting newcomer join it.
    let _c = agent(
        "signed-c",
        gossip[2],
        api[2],
        Some(gossip[0]),
        root.path(),
        &["--key-file", &keys],
    );
    let (d_gossip, d_api) = (free_port(), tcp_port());
    let flags = ["--key-file", keys.as_str(), "--encrypt"];
    let _d = agent(
        "enc-d",
        d_gossip,
        d_api,
        Some(gossip[2]),
        root.path(),
        &flags,
    );
    eventually(
        "the mismatch is counted on both sides",
        Duration::from_secs(20),
        async || mismatches(api[0]).await > 0 && mismatches(api[2]).await > 0,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(alive(api[0]), 2, "{:?}", members(api[0]));
    assert_eq!(alive(api[2]), 1, "{:?}", members(api[2]));
    assert_eq!(alive(d_api), 1, "{:?}", members(d_api));
}

#[test]
fn encrypt_without_a_key_file_stops_with_a_clear_error() {
    let out = tidings()
        .args(["agent", "--preset", "local", "--encrypt"])
        .args(["--bind", &format!("127.0.0.1:{}", free_port())])
        .args(["--http", &format!("127.0.0.1:{}", tcp_port())])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--encrypt needs") && stderr.contains("--key-file"),
        "{stderr}"
    );
}
