//! Agents on loopback: joining, replicating, crashing, restarting, leaving, bad input, the HTTP API.

mod common;

use common::{all_alive, cluster, config, eventually, http, http_bytes, status};
use std::time::Duration;
use tidings::node::Event;
use tidings::NodeId;
use tidings_tokio::{Agent, Handle};

#[tokio::test]
async fn agents_join_and_a_write_reaches_every_agent_within_two_seconds() {
    let agents = cluster(3, None).await;
    let handles: Vec<Handle> = agents.iter().map(Agent::handle).collect();
    eventually("membership", Duration::from_secs(20), async || {
        all_alive(&handles, 3).await
    })
    .await;
    handles[0].set(b"color", b"blue").await.unwrap();
    let took = eventually("replication", Duration::from_secs(2), async || {
        for h in &handles {
            if h.get(b"color").await.unwrap().as_deref() != Some(&b"blue"[..]) {
                return false;
            }
        }
        true
    })
    .await;
    assert!(took < Duration::from_secs(2));
    assert_eq!(
        handles[2].entries().await.unwrap(),
        vec![(b"color".to_vec(), b"blue".to_vec())]
    );
    handles[1].delete(b"color").await.unwrap();
    eventually("delete", Duration::from_secs(5), async || {
        for h in &handles {
            if h.get(b"color").await.unwrap().is_some() {
                return false;
            }
        }
        true
    })
    .await;
}

#[tokio::test]
async fn a_killed_agent_is_declared_dead_and_comes_back_with_its_data_and_a_higher_generation() {
    let root = tempfile::tempdir().unwrap();
    let mut agents = cluster(3, Some(root.path())).await;
    let handles: Vec<Handle> = agents.iter().map(Agent::handle).collect();
    eventually("membership", Duration::from_secs(20), async || {
        all_alive(&handles, 3).await
    })
    .await;
    handles[2].set(b"mine", b"kept").await.unwrap();
    handles[0].set(b"theirs", b"learned").await.unwrap();
    eventually("replication", Duration::from_secs(5), async || {
        handles[2].get(b"theirs").await.unwrap().is_some()
            && handles[0].get(b"mine").await.unwrap().is_some()
    })
    .await;
    // Learned writes are committed in the next batch: wait for it, then crash.
    eventually(
        "learned write committed",
        Duration::from_secs(5),
        async || {
            let m = handles[2].metrics().await.unwrap();
            m.commit_backlog == 0 && m.commits.is_some_and(|c| c.peer_writes >= 1)
        },
    )
    .await;
    let mut events = handles[0].subscribe();
    agents.pop().unwrap().abort();
    eventually("death", Duration::from_secs(20), async || {
        status(&handles[0], 3).await.is_some_and(|s| s.0 == "dead")
            && status(&handles[1], 3).await.is_some_and(|s| s.0 == "dead")
    })
    .await;
    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push(e);
    }
    assert!(seen.contains(&Event::MemberFailed(NodeId(3))), "{seen:?}");

    let back = Agent::start(config(
        3,
        Some(agents[0].local_addr()),
        Some(&root.path().join("n3")),
    ))
    .await
    .unwrap();
    let h = back.handle();
    assert_eq!(h.generation(), 1);
    assert_eq!(
        h.get(b"mine").await.unwrap().as_deref(),
        Some(&b"kept"[..]),
        "own write restored"
    );
    assert_eq!(
        h.get(b"theirs").await.unwrap().as_deref(),
        Some(&b"learned"[..]),
        "learned write restored"
    );
    eventually("rejoin", Duration::from_secs(20), async || {
        status(&handles[0], 3).await == Some(("alive", 1))
            && status(&handles[1], 3).await == Some(("alive", 1))
    })
    .await;
    let m = h.metrics().await.unwrap();
    assert_eq!(m.members_alive, 3);
}

#[tokio::test]
async fn a_graceful_leave_is_reported_as_left_not_failed() {
    let agents = cluster(3, None).await;
    let handles: Vec<Handle> = agents.iter().map(Agent::handle).collect();
    eventually("membership", Duration::from_secs(20), async || {
        all_alive(&handles, 3).await
    })
    .await;
    let mut events = handles[0].subscribe();
    let outcome = handles[1].leave(Duration::from_secs(5)).await.unwrap();
    assert_eq!(outcome, tidings_tokio::LeaveOutcome::Acknowledged);
    eventually("left", Duration::from_secs(15), async || {
        status(&handles[0], 2).await.is_some_and(|s| s.0 == "left")
            && status(&handles[2], 2).await.is_some_and(|s| s.0 == "left")
    })
    .await;
    // Well past the suspicion time, it is still left, never failed.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(status(&handles[0], 2).await.map(|s| s.0), Some("left"));
    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push(e);
    }
    assert!(seen.contains(&Event::MemberLeft(NodeId(2))), "{seen:?}");
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, Event::MemberFailed(_) | Event::MemberSuspected(_))),
        "{seen:?}"
    );
    assert!(handles[1].members().await.is_err(), "a left agent stops");
}

#[tokio::test]
async fn random_and_truncated_datagrams_are_counted_and_change_nothing() {
    let agents = cluster(2, None).await;
    let handles: Vec<Handle> = agents.iter().map(Agent::handle).collect();
    eventually("membership", Duration::from_secs(20), async || {
        all_alive(&handles, 2).await
    })
    .await;
    handles[0].set(b"k", b"v").await.unwrap();
    let before = handles[0].members().await.unwrap();
    let attacker = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let target = agents[0].local_addr();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..5_000u32 {
        let len = (next() % 1400) as usize;
        let mut d: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // Half of them start like a real datagram, to get past the first checks.
        if i % 2 == 0 && d.len() >= 8 {
            d[..2].copy_from_slice(b"td");
            d[2] = 1;
        }
        attacker.send_to(&d, target).await.unwrap();
        if i % 50 == 0 {
            // Paced, so the socket's receive buffer never overflows and every one is judged.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let m = eventually("all counted", Duration::from_secs(10), async || {
        let m = handles[0].metrics().await.unwrap();
        let r = &m.node_stats.rejects;
        let rejected = r.truncated
            + r.oversized
            + r.bad_magic
            + r.unsupported_protocol
            + r.foreign_cluster
            + r.unknown_kind
            + r.malformed
            + m.node_stats.refused;
        rejected >= 4_500
    })
    .await;
    let _ = m;
    assert_eq!(
        handles[0].members().await.unwrap(),
        before,
        "membership unchanged"
    );
    assert_eq!(
        handles[0].entries().await.unwrap(),
        vec![(b"k".to_vec(), b"v".to_vec())]
    );
    handles[0].set(b"still", b"serving").await.unwrap();
    let text = handles[0].metrics().await.unwrap().prometheus();
    assert!(
        text.contains("tidings_rejected_datagrams_total{reason=\"bad_magic\"}"),
        "{text}"
    );
}

#[tokio::test]
async fn the_http_api_speaks_json_and_prometheus() {
    let agents = cluster(1, None).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = tidings_tokio::http::router(agents[0].handle());
    tokio::spawn(async move { axum::serve(listener, router).await });

    let json = |body: &str| serde_json::from_str::<serde_json::Value>(body).unwrap();
    assert_eq!(http(addr, "PUT", "/v1/kv/greeting", "hello").await.0, 200);
    let (code, body) = http(addr, "GET", "/v1/kv/greeting", "").await;
    assert_eq!(code, 200);
    assert_eq!(
        json(&body),
        serde_json::json!({"key": "greeting", "value": "hello"})
    );
    let (_, body) = http(addr, "GET", "/v1/kv", "").await;
    assert_eq!(
        json(&body),
        serde_json::json!([{"key": "greeting", "value": "hello"}])
    );
    let (code, body) = http(addr, "GET", "/v1/members", "").await;
    assert_eq!(code, 200);
    let members: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(members[0]["status"], "alive");
    assert_eq!(members[0]["id"], 1);
    let (code, body) = http(addr, "DELETE", "/v1/kv/greeting", "").await;
    assert_eq!(code, 200);
    let d = json(&body);
    assert_eq!(
        (d["deleted"].clone(), d["existed"].clone()),
        (true.into(), true.into())
    );
    // A delete of a key this agent never held still writes a tombstone, with a newer version.
    let (code, body) = http(addr, "DELETE", "/v1/kv/never-seen", "").await;
    assert_eq!(code, 200);
    let blind = json(&body);
    assert_eq!(blind["existed"], false);
    assert!(blind["version"].as_str().unwrap() > d["version"].as_str().unwrap());
    let (code, body) = http(addr, "GET", "/v1/ready", "").await;
    assert_eq!(
        (code, json(&body)),
        (200, serde_json::json!({"ready": true}))
    );
    let (code, body) = http(addr, "GET", "/v1/kv/greeting", "").await;
    assert_eq!(code, 404);
    assert!(body.contains("\"error\""), "{body}");
    let long = "x".repeat(5_000);
    let (code, body) = http(addr, "PUT", "/v1/kv/big", &long).await;
    assert_eq!(code, 413, "{body}");
    // Errors the framework raises are the documented JSON too.
    let huge = "x".repeat(tidings_tokio::http::MAX_BODY + 1);
    let (code, body) = http(addr, "PUT", "/v1/kv/huge", &huge).await;
    assert_eq!(code, 413, "{body}");
    assert!(json(&body)["error"].is_string(), "{body}");
    let (code, body) = http(addr, "POST", "/v1/kv/k", "").await;
    assert_eq!(code, 405, "{body}");
    assert!(json(&body)["error"].is_string(), "{body}");
    assert_eq!(http(addr, "GET", "/v1/nope", "").await.0, 404);
    let (code, page) = http(addr, "GET", "/ui", "").await;
    assert_eq!(code, 200);
    assert!(page.contains("<title>tidings</title>") && page.contains("/v1/events"));
    let (code, body) = http(addr, "GET", "/v1/health", "").await;
    assert_eq!(code, 200);
    assert!(body.contains("\"status\":\"ok\""), "{body}");
    let (code, body) = http(addr, "GET", "/metrics", "").await;
    assert_eq!(code, 200);
    assert!(
        body.contains("tidings_members{status=\"alive\"} 1"),
        "{body}"
    );
}

#[tokio::test]
async fn binary_values_round_trip_byte_for_byte() {
    use base64::Engine as _;
    let agents = cluster(1, None).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = tidings_tokio::http::router(agents[0].handle());
    tokio::spawn(async move { axum::serve(listener, router).await });

    // Random bytes, made sure not to be UTF-8.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut blob: Vec<u8> = (0..1000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    blob[0] = 0xff;
    assert_eq!(http_bytes(addr, "PUT", "/v1/kv/blob", &blob).await.0, 200);
    let (code, headers, raw) = http_bytes(addr, "GET", "/v1/kv/blob?raw", b"").await;
    assert_eq!(code, 200);
    assert!(headers.contains("application/octet-stream"), "{headers}");
    assert_eq!(raw, blob);
    let (_, body) = http(addr, "GET", "/v1/kv/blob", "").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v.get("value").is_none(), "{body}");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(v["value_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(decoded, blob);
    // Text stays text; a prefix lists only its keys.
    for k in ["app/a", "app/b", "other"] {
        assert_eq!(http(addr, "PUT", &format!("/v1/kv/{k}"), "x").await.0, 200);
    }
    let (_, body) = http(addr, "GET", "/v1/kv?prefix=app/", "").await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        serde_json::json!([{"key": "app/a", "value": "x"}, {"key": "app/b", "value": "x"}])
    );
}

/// Reads a Server-Sent Events response until `until` holds for what arrived (or 10 s pass).
async fn sse(
    addr: std::net::SocketAddr,
    last_event: Option<u64>,
    until: impl Fn(&str) -> bool,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let resume = last_event.map_or(String::new(), |id| format!("Last-Event-ID: {id}\r\n"));
    let req = format!("GET /v1/events HTTP/1.1\r\nHost: test\r\n{resume}\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    let read = async {
        while !until(&got) {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "the stream ended: {got}");
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .unwrap_or_else(|_| panic!("not seen in 10 s: {got}"));
    got
}

#[tokio::test]
async fn events_stream_resume_after_the_last_id_and_say_reset_when_history_is_gone() {
    let mut c = config(1, None, None);
    c.events_history = 4;
    let agent = Agent::start(c).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = tidings_tokio::http::router(agent.handle());
    tokio::spawn(async move { axum::serve(listener, router).await });

    // A live client sees a write as it happens.
    let live = tokio::spawn(sse(addr, None, |t| t.contains("\"key\":\"k1\"")));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(http(addr, "PUT", "/v1/kv/k1", "a").await.0, 200);
    let got = live.await.unwrap();
    assert!(got.contains("event: kv") && got.contains("id: 1"), "{got}");
    // A client that saw event 1 resumes at 2 and 3.
    assert_eq!(http(addr, "PUT", "/v1/kv/k2", "b").await.0, 200);
    assert_eq!(http(addr, "DELETE", "/v1/kv/k1", "").await.0, 200);
    let got = sse(addr, Some(1), |t| t.contains("id: 3")).await;
    assert!(!got.contains("id: 1\n"), "{got}");
    assert!(
        got.contains("\"key\":\"k2\"") && got.contains("\"deleted\":true"),
        "{got}"
    );
    // Beyond the history of 4: told to re-read, then given what is left.
    for i in 0..6 {
        http(addr, "PUT", &format!("/v1/kv/n{i}"), "x").await;
    }
    let got = sse(addr, Some(2), |t| t.contains("id: 9")).await;
    let reset = got.find("event: reset").expect("a reset event");
    assert!(reset < got.find("id: 6").unwrap(), "{got}");

    // A blocking read answers when the key changes, or when its wait ends.
    let (_, headers, _) = http_bytes(addr, "GET", "/v1/kv/k2", b"").await;
    let index: u64 = headers
        .lines()
        .find_map(|l| l.strip_prefix("x-tidings-index: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(index, 9);
    let started = std::time::Instant::now();
    let (code, body) = http(
        addr,
        "GET",
        &format!("/v1/kv/k2?index={index}&wait=300ms"),
        "",
    )
    .await;
    assert_eq!(code, 200);
    assert!(body.contains("\"b\""), "{body}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    let blocked = tokio::spawn(async move {
        http(
            addr,
            "GET",
            &format!("/v1/kv/k2?index={index}&wait=30s"),
            "",
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    assert_eq!(http(addr, "PUT", "/v1/kv/k2", "c").await.0, 200);
    let (code, body) = blocked.await.unwrap();
    assert_eq!(code, 200);
    assert!(body.contains("\"c\""), "{body}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let (code, body) = http(addr, "GET", "/v1/kv/k2?index=1&wait=soon", "").await;
    assert_eq!(code, 400, "{body}");
}

#[tokio::test]
async fn an_agent_given_seeds_is_ready_only_once_joined_and_in_sync() {
    use tidings_tokio::Readiness;
    // Alone by design (no seeds): ready at once.
    let first = Agent::start(config(1, None, None)).await.unwrap();
    assert_eq!(first.handle().ready().await.unwrap(), Readiness::Ready);
    // A seed that never answers: not ready.
    let nowhere = "127.0.0.1:9".parse().unwrap();
    let lost = Agent::start(config(2, Some(nowhere), None)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(lost.handle().ready().await.unwrap(), Readiness::Joining);
    // A seed that answers: ready once an exchange found equal data.
    let joined = Agent::start(config(3, Some(first.local_addr()), None))
        .await
        .unwrap();
    let h = joined.handle();
    eventually("ready after joining", Duration::from_secs(20), async || {
        h.ready().await.unwrap() == Readiness::Ready
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_storm_of_100_agents_drops_no_event() {
    let first = Agent::start(config(1, None, None)).await.unwrap();
    let seed = first.local_addr();
    let mut agents = vec![first];
    for i in 2..=100 {
        agents.push(Agent::start(config(i, Some(seed), None)).await.unwrap());
    }
    let handles: Vec<Handle> = agents.iter().map(Agent::handle).collect();
    eventually(
        "100 agents know 100 alive",
        Duration::from_secs(60),
        async || all_alive(&handles, 100).await,
    )
    .await;
    for h in &handles {
        let m = h.metrics().await.unwrap();
        assert_eq!(m.node_stats.events_dropped, 0, "agent {}", m.node);
    }
}

#[tokio::test]
async fn keyed_agents_converge_and_a_keyless_one_stays_out() {
    let ring = tidings_tokio::keys::parse(&tidings_tokio::keys::generate().unwrap()).unwrap();
    let keyed = |id, seed| {
        let mut c = config(id, seed, None);
        c.node.auth = Some(ring);
        c
    };
    let a = Agent::start(keyed(1, None)).await.unwrap();
    let b = Agent::start(keyed(2, Some(a.local_addr()))).await.unwrap();
    let outsider = Agent::start(config(3, Some(a.local_addr()), None))
        .await
        .unwrap();
    let handles = [a.handle(), b.handle()];
    eventually("keyed membership", Duration::from_secs(20), async || {
        all_alive(&handles, 2).await
    })
    .await;
    handles[0].set(b"secret", b"kept").await.unwrap();
    eventually("keyed replication", Duration::from_secs(5), async || {
        handles[1].get(b"secret").await.unwrap().is_some()
    })
    .await;
    eventually("outsider refused", Duration::from_secs(5), async || {
        handles[0]
            .metrics()
            .await
            .unwrap()
            .node_stats
            .rejects
            .unauthenticated
            > 0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        status(&handles[0], 3).await,
        None,
        "the keyless node never got in"
    );
    assert_eq!(outsider.handle().get(b"secret").await.unwrap(), None);
    assert_eq!(outsider.handle().members().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_write_acknowledged_later_wins_even_from_an_agent_that_just_started() {
    let first = Agent::start(config(1, None, None)).await.unwrap();
    let h1 = first.handle();
    // Many writes: a counter-ordered version would be far ahead of a newcomer's.
    for i in 0..2_000 {
        h1.set(b"x", format!("old-{i}").as_bytes()).await.unwrap();
    }
    // A new agent writes at once, before it has learned anything of the cluster's data.
    let second = Agent::start(config(2, Some(first.local_addr()), None))
        .await
        .unwrap();
    let h2 = second.handle();
    h2.set(b"x", b"new").await.unwrap();
    eventually(
        "the later write everywhere",
        Duration::from_secs(10),
        async || {
            h1.get(b"x").await.unwrap().as_deref() == Some(&b"new"[..])
                && h2.get(b"x").await.unwrap().as_deref() == Some(&b"new"[..])
        },
    )
    .await;
}

#[tokio::test]
async fn a_delete_through_an_agent_that_has_not_received_the_key_still_wins() {
    let root = tempfile::tempdir().unwrap();
    let agents = cluster(2, Some(root.path())).await;
    let handles: Vec<Handle> = agents.iter().map(Agent::handle).collect();
    eventually("membership", Duration::from_secs(20), async || {
        all_alive(&handles, 2).await
    })
    .await;
    let mut not_held = 0;
    for i in 0..20 {
        let key = format!("k{i}");
        handles[0].set(key.as_bytes(), b"v").await.unwrap();
        let d = handles[1].delete(key.as_bytes()).await.unwrap();
        not_held += usize::from(!d.existed);
    }
    // Both agents, after the writes have had time to arrive everywhere.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for h in &handles {
        for i in 0..20 {
            assert_eq!(
                h.get(format!("k{i}").as_bytes()).await.unwrap(),
                None,
                "k{i}"
            );
        }
    }
    assert!(
        not_held > 0,
        "every write had arrived before its delete: the case was not exercised"
    );
}

#[tokio::test]
async fn an_agent_back_from_downtime_catches_up_a_few_keys_through_one_sketch() {
    let root = tempfile::tempdir().unwrap();
    let mut agents = cluster(2, Some(root.path())).await;
    let handles: Vec<Handle> = agents.iter().map(Agent::handle).collect();
    eventually("membership", Duration::from_secs(20), async || {
        all_alive(&handles, 2).await
    })
    .await;
    for i in 0..200 {
        let key = format!("base-{i}");
        handles[0].set(key.as_bytes(), b"v1").await.unwrap();
    }
    eventually("replication", Duration::from_secs(20), async || {
        handles[1].metrics().await.unwrap().keys == 200
    })
    .await;
    eventually("committed", Duration::from_secs(5), async || {
        handles[1].metrics().await.unwrap().commit_backlog == 0
    })
    .await;
    agents.pop().unwrap().abort();
    // Written while the second agent is down: six rewrites and four new keys.
    let before = handles[0].metrics().await.unwrap().gossip.sent;
    for i in 0..6 {
        let key = format!("base-{i}");
        handles[0].set(key.as_bytes(), b"v2").await.unwrap();
    }
    for i in 0..4 {
        let key = format!("new-{i}");
        handles[0].set(key.as_bytes(), b"v1").await.unwrap();
    }
    // Their rumors spend their retransmits (two each in a cluster of two) on the old address
    // before the agent is back, so the writes can only reach it by anti-entropy: otherwise gossip
    // would often deliver them first and there would be nothing left for a sketch to find.
    eventually("rumors spent", Duration::from_secs(10), async || {
        handles[0].metrics().await.unwrap().gossip.sent >= before + 20
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let back = Agent::start(config(
        2,
        Some(agents[0].local_addr()),
        Some(&root.path().join("n2")),
    ))
    .await
    .unwrap();
    let h = back.handle();
    eventually("caught up", Duration::from_secs(20), async || {
        h.get(b"new-3").await.unwrap().is_some()
            && h.get(b"base-5").await.unwrap().as_deref() == Some(&b"v2"[..])
            && h.metrics().await.unwrap().keys == 204
    })
    .await;
    // Whichever side started the exchange decoded the other's sketch: no drill-down was needed.
    let (a, b) = (
        handles[0].metrics().await.unwrap().sync,
        h.metrics().await.unwrap().sync,
    );
    assert!(a.sketches_decoded + b.sketches_decoded >= 1, "{a:?} {b:?}");
    assert_eq!(a.sketches_failed + b.sketches_failed, 0, "{a:?} {b:?}");
}
