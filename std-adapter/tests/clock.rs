//! Agent processes whose wall clocks are wrong (`faketime`): a restart with a clock behind never
//! makes a version below one it made before, and a clock further ahead than `max_clock_ahead`
//! (60 s) has its writes refused by the others, and counted.

mod common;

use common::{eventually, free_port, http, tcp_port, Proc};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// libfaketime, preloaded into the agent itself (the `faketime` wrapper would be the process a
/// SIGKILL reaches, not the agent).
fn libfaketime() -> Option<String> {
    let out = Command::new("dpkg")
        .args(["-L", "libfaketime"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.ends_with("/libfaketime.so.1"))
        .map(String::from)
}

/// `tidings agent` with its wall clock `offset` away from the real one (`None`: the real clock).
fn agent(
    id: u64,
    gossip: u16,
    api: u16,
    seed: Option<u16>,
    dir: &Path,
    offset: Option<&str>,
) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tidings"));
    if let Some(o) = offset {
        cmd.env("LD_PRELOAD", libfaketime().unwrap_or_default())
            .env("FAKETIME", o)
            // Only the wall clock is off; timers run at the real pace.
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    }
    cmd.args(["agent", "--preset", "local", "--node-id", &id.to_string()])
        .args(["--bind", &format!("127.0.0.1:{gossip}")])
        .args(["--http", &format!("127.0.0.1:{api}")])
        .arg("--data-dir")
        .arg(dir);
    if let Some(s) = seed {
        cmd.args(["--seed", &format!("127.0.0.1:{s}")]);
    }
    Proc(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

async fn value(api: u16, key: &str) -> Option<String> {
    let (code, body) = http_try(api, "GET", &format!("/v1/kv/{key}"), "").await?;
    (code == 200).then(|| {
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["value"].as_str().unwrap().to_string()
    })
}

/// A request, or `None` while the agent is not answering yet.
async fn http_try(api: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    tokio::net::TcpStream::connect(addr(api)).await.ok()?;
    Some(http(addr(api), method, path, body).await)
}

async fn put(api: u16, key: &str, v: &str) {
    eventually("a PUT answered", Duration::from_secs(20), async || {
        http_try(api, "PUT", &format!("/v1/kv/{key}"), v)
            .await
            .is_some_and(|(code, _)| code == 200)
    })
    .await;
}

async fn metric(api: u16, name: &str) -> u64 {
    let (_, text) = http_try(api, "GET", "/metrics", "")
        .await
        .unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_stale_clock_after_a_restart_never_goes_back_and_a_clock_far_ahead_is_refused() {
    if libfaketime().is_none() {
        eprintln!("SKIPPED clock test: libfaketime is not installed (Debian package faketime)");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let (ga, gb, aa, ab) = (free_port(), free_port(), tcp_port(), tcp_port());
    let (da, db) = (root.path().join("a"), root.path().join("b"));
    let _a = agent(1, ga, aa, None, &da, None);
    let mut b = agent(2, gb, ab, Some(ga), &db, None);
    put(ab, "x", "b1").await;
    eventually("b1 on A", Duration::from_secs(10), async || {
        value(aa, "x").await.as_deref() == Some("b1")
    })
    .await;

    // B restarts with its clock half a minute behind, and writes at once.
    drop(b);
    b = agent(2, gb, ab, Some(ga), &db, Some("-30s"));
    put(ab, "x", "b2").await;
    eventually(
        "b2 wins over b1 everywhere",
        Duration::from_secs(10),
        async || {
            value(aa, "x").await.as_deref() == Some("b2")
                && value(ab, "x").await.as_deref() == Some("b2")
        },
    )
    .await;
    // A write on A, with the right clock, acknowledged after b2: it wins.
    put(aa, "x", "a1").await;
    eventually("a1 wins everywhere", Duration::from_secs(10), async || {
        value(aa, "x").await.as_deref() == Some("a1")
            && value(ab, "x").await.as_deref() == Some("a1")
    })
    .await;
    assert_eq!(metric(aa, "tidings_versions_ahead_total").await, 0);
    assert_eq!(metric(ab, "tidings_versions_ahead_total").await, 0);

    // B restarts with its clock ten minutes ahead: A refuses B's new writes, and counts them.
    drop(b);
    let _b = agent(2, gb, ab, Some(ga), &db, Some("+600s"));
    put(ab, "ahead", "from the future").await;
    eventually("the refusal counted", Duration::from_secs(30), async || {
        metric(aa, "tidings_versions_ahead_total").await > 0
    })
    .await;
    assert_eq!(value(aa, "ahead").await, None);
}
