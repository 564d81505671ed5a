//! Finding the cluster, with agent processes: a seed given by DNS name, a seeds file changed and
//! read again on SIGHUP, and a seed that starts after the agent (joining is retried).

mod common;

use common::{eventually, free_port, http, tcp_port, Proc};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn agent(name: &str, gossip: u16, api: u16, dir: &Path, extra: &[&str]) -> Proc {
    Proc(
        Command::new(env!("CARGO_BIN_EXE_tidings"))
            .args(["agent", "--preset", "local", "--name", name])
            .args(["--bind", &format!("127.0.0.1:{gossip}")])
            .args(["--http", &format!("127.0.0.1:{api}")])
            .arg("--data-dir")
            .arg(dir.join(name))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Names of the members `api`'s agent holds alive.
async fn alive(api: u16) -> Vec<String> {
    let addr: SocketAddr = ([127, 0, 0, 1], api).into();
    if tokio::net::TcpStream::connect(addr).await.is_err() {
        return Vec::new();
    }
    let (_, body) = http(addr, "GET", "/v1/members", "").await;
    let all: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let mut names: Vec<String> = all
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["status"] == "alive")
        .filter_map(|m| m["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn seeds_by_dns_name_from_a_reloaded_file_and_started_late_are_joined() {
    let root = tempfile::tempdir().unwrap();
    let (ga, gb, gc, gd, ge) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let (aa, ab, ac, ad, ae) = (tcp_port(), tcp_port(), tcp_port(), tcp_port(), tcp_port());
    let _a = agent("a", ga, aa, root.path(), &[]);
    // A seed by name.
    let by_name = format!("localhost:{ga}");
    let _b = agent("b", gb, ab, root.path(), &["--seed", &by_name]);
    eventually(
        "b joins through localhost",
        Duration::from_secs(20),
        async || alive(aa).await == ["a", "b"],
    )
    .await;

    // A seeds file with no seed yet: alone until the file names one and SIGHUP says so.
    let file = root.path().join("seeds");
    std::fs::write(&file, "# none yet\n").unwrap();
    let c = agent(
        "c",
        gc,
        ac,
        root.path(),
        &["--seeds-file", file.to_str().unwrap()],
    );
    eventually("c up", Duration::from_secs(20), async || {
        alive(ac).await == ["c"]
    })
    .await;
    std::fs::write(&file, format!("# the first agent\n127.0.0.1:{ga}\n")).unwrap();
    let pid = c.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    eventually(
        "c joins after SIGHUP",
        Duration::from_secs(10),
        async || alive(aa).await == ["a", "b", "c"],
    )
    .await;

    // A seed that is not up yet: the join is retried until it is.
    let late = format!("127.0.0.1:{ge}");
    let _d = agent("d", gd, ad, root.path(), &["--seed", &late]);
    eventually("d up", Duration::from_secs(20), async || {
        alive(ad).await == ["d"]
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _e = agent("e", ge, ae, root.path(), &[]);
    eventually(
        "d joins e once it is up",
        Duration::from_secs(20),
        async || alive(ae).await == ["d", "e"],
    )
    .await;
}
