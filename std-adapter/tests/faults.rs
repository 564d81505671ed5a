//! Faults a server meets, one at a time: a disk that fills up and frees again, a byte flipped in the
//! data file, a data file deleted, a commit that fails. After each, every acknowledged write is
//! still there, nothing refused took effect anywhere, and damage is refused by name or recovered
//! from a peer.

mod common;

use common::{all_alive, cluster, config, eventually, http};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tidings_tokio::store::{OpenError, DATA_FILE};
use tidings_tokio::{Agent, AgentError, Handle, Readiness, StartError};

/// Flips every byte of a 4 KiB page in the middle of `path` (a page of records, not free space:
/// the file is written densely by the tests).
fn damage(path: &Path) {
    let mut bytes = fs::read(path).unwrap();
    let mid = bytes.len() / 2 / 4096 * 4096;
    for b in &mut bytes[mid..mid + 4096] {
        *b ^= 0x5a;
    }
    fs::write(path, bytes).unwrap();
}

async fn keys(h: &Handle) -> usize {
    h.entries().await.map(|e| e.len()).unwrap_or(0)
}

#[tokio::test]
async fn a_damaged_data_file_stops_the_agent_by_name_and_recover_refills_it_from_a_peer() {
    let root = tempfile::tempdir().unwrap();
    let mut agents = cluster(2, Some(root.path())).await;
    let handles: Vec<Handle> = agents.iter().map(Agent::handle).collect();
    eventually("membership", Duration::from_secs(20), async || {
        all_alive(&handles, 2).await
    })
    .await;
    for i in 0..1_500 {
        let v = format!("value-{i}-{}", "x".repeat(100));
        handles[0]
            .set(format!("k{i}").as_bytes(), v.as_bytes())
            .await
            .unwrap();
    }
    eventually("replication", Duration::from_secs(60), async || {
        keys(&handles[1]).await == 1_500
    })
    .await;
    handles[0].shutdown().await;
    agents.remove(0).stopped().await;
    let dir = root.path().join("n1");
    let file = dir.join(DATA_FILE);
    damage(&file);
    let damaged = fs::read(&file).unwrap();
    let peer = agents[0].local_addr();

    let e = Agent::start(config(1, Some(peer), Some(&dir)))
        .await
        .err()
        .expect("refused");
    let text = e.to_string();
    assert!(
        matches!(&e, StartError::DataDir(OpenError::Damaged { path, .. }) if *path == file),
        "{e}"
    );
    assert!(text.contains("--recover"), "{text}");
    assert_eq!(
        fs::read(&file).unwrap(),
        damaged,
        "a refused start changes nothing"
    );

    let mut recover = config(1, Some(peer), Some(&dir));
    recover.recover = true;
    let back = Agent::start(recover).await.unwrap();
    let h = back.handle();
    assert_eq!(h.generation(), 1);
    assert!(fs::read_dir(&dir).unwrap().any(|f| f
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with("data.redb.damaged-")));
    let mut saw_recovering = false;
    eventually(
        "ready after a refill",
        Duration::from_secs(60),
        async || match h.ready().await.unwrap() {
            Readiness::Recovering => {
                saw_recovering = true;
                false
            }
            Readiness::Ready => true,
            Readiness::Joining => false,
        },
    )
    .await;
    assert!(saw_recovering, "readiness was never held back");
    assert_eq!(h.metrics().await.unwrap().moved_aside, 1);
    assert_eq!(
        keys(&h).await,
        1_500,
        "ready only once the data matched a peer's"
    );
    assert!(!h.metrics().await.unwrap().recovering);
}

#[tokio::test]
async fn a_missing_data_file_stops_the_agent() {
    let root = tempfile::tempdir().unwrap();
    let agents = cluster(1, Some(root.path())).await;
    let h = agents[0].handle();
    h.set(b"k", b"v").await.unwrap();
    h.shutdown().await;
    for a in agents {
        a.stopped().await;
    }
    let dir = root.path().join("n1");
    fs::remove_file(dir.join(DATA_FILE)).unwrap();
    let e = Agent::start(config(1, None, Some(&dir)))
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(&e, StartError::DataDir(OpenError::Missing { .. })),
        "{e}"
    );
    assert!(e.to_string().contains(DATA_FILE), "{e}");
}

/// A tmpfs of `mib` MiB mounted for the test, unmounted on drop; `None` where mounting is not
/// allowed (not root, or in a container without the capability).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(mib: u32) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?.keep();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tidings-test"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs(dir))
    }

    /// Takes every byte left; returns the filler to remove to give them back.
    fn fill(&self) -> PathBuf {
        let path = self.0.join("filler");
        let mut f = fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 64 << 10];
        while f.write_all(&chunk).is_ok() {}
        let small = [0u8; 512];
        while f.write_all(&small).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: a file still open in the runtime's threads would keep it busy.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn a_full_disk_refuses_writes_changes_nothing_and_loses_nothing_acknowledged() {
    let Some(disk) = Tmpfs::mount(16) else {
        eprintln!("SKIPPED disk-full test: cannot mount a tmpfs here (needs root)");
        return;
    };
    let dir = disk.0.join("n1");
    let first = Agent::start(config(1, None, Some(&dir))).await.unwrap();
    let peer = Agent::start(config(2, Some(first.local_addr()), None))
        .await
        .unwrap();
    let (h, p) = (first.handle(), peer.handle());
    eventually("membership", Duration::from_secs(20), async || {
        all_alive(&[h.clone(), p.clone()], 2).await
    })
    .await;
    let value = |i: usize| format!("{i}-{}", "v".repeat(1000));
    let mut acked = Vec::new();
    for i in 0..200 {
        h.set(format!("before{i}").as_bytes(), value(i).as_bytes())
            .await
            .unwrap();
        acked.push((format!("before{i}"), value(i)));
    }
    let filler = disk.fill();

    // Write until the disk refuses, then some more: every refusal is an error, nothing else.
    let mut refused = Vec::new();
    for i in 0..20_000 {
        let key = format!("full{i}");
        match h.set(key.as_bytes(), value(i).as_bytes()).await {
            Ok(_) => acked.push((key, value(i))),
            Err(AgentError::Io(e)) => {
                assert_eq!(e.kind(), std::io::ErrorKind::StorageFull, "{e}");
                refused.push(key);
                if refused.len() == 50 {
                    break;
                }
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(refused.len(), 50, "the disk never filled up");
    // Over HTTP: 507 with a JSON error.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap();
    let router = tidings_tokio::http::router(h.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let (code, body) = http(api, "PUT", "/v1/kv/over-http", "x").await;
    assert_eq!(code, 507, "{body}");
    assert!(body.contains("\"error\""), "{body}");
    refused.push("over-http".into());
    let deleted = h.delete(b"before0").await;
    assert!(deleted.is_err(), "a delete needs the disk too");

    // A refused write is nowhere: not here, not on the peer.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for key in &refused {
        assert_eq!(
            h.get(key.as_bytes()).await.unwrap(),
            None,
            "{key} applied here"
        );
        assert_eq!(
            p.get(key.as_bytes()).await.unwrap(),
            None,
            "{key} reached the peer"
        );
    }
    assert!(
        h.get(b"before0").await.unwrap().is_some(),
        "a refused delete took effect"
    );
    let m = h.metrics().await.unwrap();
    assert!(m.commits.unwrap().failed >= 50, "{:?}", m.commits);

    // Space comes back: writes are taken again.
    fs::remove_file(filler).unwrap();
    eventually("writes taken again", Duration::from_secs(10), async || {
        h.set(b"after", b"space").await.is_ok()
    })
    .await;
    acked.push(("after".into(), "space".into()));

    // Restart: every acknowledged write is there, no refused one.
    h.shutdown().await;
    first.stopped().await;
    // Alone: what it holds comes from its disk, not from the peer.
    let back = Agent::start(config(1, None, Some(&dir))).await.unwrap();
    let b = back.handle();
    for (k, v) in &acked {
        assert_eq!(
            b.get(k.as_bytes()).await.unwrap().as_deref(),
            Some(v.as_bytes()),
            "acknowledged {k} lost"
        );
    }
    for key in &refused {
        assert_eq!(
            b.get(key.as_bytes()).await.unwrap(),
            None,
            "refused {key} stored"
        );
    }
    b.shutdown().await;
    back.stopped().await;
    p.shutdown().await;
}
