//! Three nodes on embassy-net stacks in one process, over IPv4.

mod three;

#[test]
fn three_embassy_nodes_join_replicate_and_detect_a_stopped_one() {
    three::run(false);
}
