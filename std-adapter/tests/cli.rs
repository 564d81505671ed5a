//! The `tidings` command line against agent processes started with a name and no id: `members`
//! lists them by name, `kv get|put|delete|list`, and `watch` sees a write, a kill, a restart and a
//! leave.

mod common;

use common::{cli, eventually, free_port, members, tcp_port, Proc};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn agent(id: u64, gossip: u16, api: u16, seed: u16, dir: &Path) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tidings"));
    cmd.args([
        "agent",
        "--preset",
        "local",
        "--name",
        &format!("agent-{id}"),
    ])
    .args(["--bind", &format!("127.0.0.1:{gossip}")])
    .args(["--http", &format!("127.0.0.1:{api}")])
    .args(["--seed", &format!("127.0.0.1:{seed}")])
    .arg("--data-dir")
    .arg(dir);
    Proc(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Waits for a line of `watch --json` whose data matches.
fn seen(
    lines: &mpsc::Receiver<serde_json::Value>,
    what: &str,
    f: impl Fn(&serde_json::Value) -> bool,
) {
    let until = std::time::Instant::now() + Duration::from_secs(30);
    while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(v) if f(&v) => return,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    panic!("watch never showed {what}");
}

#[tokio::test]
async fn the_cli_lists_members_reads_and_writes_and_watches_a_kill_a_restart_and_a_leave() {
    let root = tempfile::tempdir().unwrap();
    let gossip: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let api: Vec<u16> = (0..3).map(|_| tcp_port()).collect();
    let dir = |i: usize| root.path().join(format!("a{i}"));
    let mut agents: Vec<Option<Proc>> = (0..3)
        .map(|i| Some(agent(i as u64 + 1, gossip[i], api[i], gossip[0], &dir(i))))
        .collect();
    eventually("three alive members", Duration::from_secs(20), async || {
        members(api[0])
            .iter()
            .filter(|m| m["status"] == "alive")
            .count()
            == 3
    })
    .await;
    let table = cli(api[0], &["members"], b"");
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(table.status.success());
    assert!(text.starts_with("NAME"), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.contains("alive")).count(),
        3,
        "{text}"
    );

    let mut watch = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args([
            "watch",
            "--json",
            "--http",
            &format!("127.0.0.1:{}", api[0]),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    let out = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&line) {
                let _ = tx.send(v);
            }
        }
    });
    let _watch = Proc(watch);
    // Let the stream connect before the first event.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let put = cli(api[0], &["kv", "put", "greeting", "hello"], b"");
    assert!(put.status.success(), "{put:?}");
    seen(&lines, "the write", |v| {
        v["event"] == "kv" && v["data"]["key"] == "greeting" && v["data"]["value"] == "hello"
    });
    eventually(
        "the value on another agent",
        Duration::from_secs(10),
        async || cli(api[1], &["kv", "get", "greeting"], b"").stdout == b"hello",
    )
    .await;
    // Bytes from stdin come back byte for byte.
    let blob: Vec<u8> = (0..=255u8).rev().collect();
    assert!(cli(api[1], &["kv", "put", "app/blob", "-"], &blob)
        .status
        .success());
    eventually(
        "the bytes on a third agent",
        Duration::from_secs(10),
        async || cli(api[2], &["kv", "get", "app/blob"], b"").stdout == blob,
    )
    .await;
    let list = cli(api[1], &["kv", "list", "--prefix", "app/"], b"");
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.starts_with("app/blob=base64:"), "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");

    // Errors: a missing key, and no agent at all.
    let missing = cli(api[0], &["kv", "get", "nope"], b"");
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no key"),
        "{missing:?}"
    );
    let nobody = cli(tcp_port(), &["members"], b"");
    assert_eq!(nobody.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&nobody.stderr).contains("cannot reach"),
        "{nobody:?}"
    );

    // A kill, a restart, a leave.
    agents[2] = None;
    seen(&lines, "agent 3 failing", |v| {
        v["event"] == "member" && v["data"]["name"] == "agent-3" && v["data"]["event"] == "failed"
    });
    agents[2] = Some(agent(3, gossip[2], api[2], gossip[0], &dir(2)));
    seen(&lines, "agent 3 back", |v| {
        v["event"] == "member"
            && v["data"]["name"] == "agent-3"
            && (v["data"]["event"] == "restarted" || v["data"]["event"] == "joined")
    });
    let pid = agents[1].as_ref().unwrap().0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    seen(&lines, "agent 2 leaving", |v| {
        v["event"] == "member" && v["data"]["name"] == "agent-2" && v["data"]["event"] == "left"
    });
    let deleted = cli(api[0], &["kv", "delete", "greeting"], b"");
    assert!(deleted.status.success());
    assert!(String::from_utf8_lossy(&deleted.stdout).contains("deleted"));
}

#[tokio::test]
async fn a_second_agent_with_a_taken_name_stops_with_a_clear_error_and_the_first_keeps_running() {
    let root = tempfile::tempdir().unwrap();
    let (gossip, api) = ([free_port(), free_port()], [tcp_port(), tcp_port()]);
    // The first agent of a cluster: no seeds, so it is not joining anything.
    let first = Proc(
        Command::new(env!("CARGO_BIN_EXE_tidings"))
            .args(["agent", "--preset", "local", "--name", "agent-1"])
            .args(["--bind", &format!("127.0.0.1:{}", gossip[0])])
            .args(["--http", &format!("127.0.0.1:{}", api[0])])
            .arg("--data-dir")
            .arg(root.path().join("a"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    eventually(
        "the first agent answers",
        Duration::from_secs(10),
        async || members(api[0]).len() == 1,
    )
    .await;
    // The same name (agent-1), so the same id, on other ports, joining through the first.
    let twin = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["agent", "--preset", "local", "--name", "agent-1"])
        .args(["--bind", &format!("127.0.0.1:{}", gossip[1])])
        .args(["--http", &format!("127.0.0.1:{}", api[1])])
        .args(["--seed", &format!("127.0.0.1:{}", gossip[0])])
        .arg("--data-dir")
        .arg(root.path().join("b"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut twin = Proc(twin);
    let until = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = twin.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < until,
            "the second agent kept running with a taken name"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut twin.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("another agent at 127.0.0.1:{}", gossip[0]))
            && stderr.contains("--name"),
        "{stderr}"
    );
    // The first one is untouched: alive, and not told that it left.
    let list = members(api[0]);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["status"], "alive", "{list:?}");
    drop(first);
}
