//! Three nodes on embassy-net stacks in one process, over IPv6 (`--features ipv6`).

mod three;

#[test]
fn three_embassy_nodes_over_ipv6_join_replicate_and_detect_a_stopped_one() {
    three::run(true);
}
