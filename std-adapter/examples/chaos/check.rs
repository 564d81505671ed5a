//! The checker: what the agents hold at the end against what they acknowledged.
//!
//! Every value written is unique, so a key's final value names the write that produced it. For each
//! acknowledged write W of a key:
//! - kept: the final state is W's (its value, or the key absent for a delete);
//! - superseded: the final state is that of another write of the key that did not end before W
//!   began (it may come after W in real time, so last-writer-wins may pick it);
//! - lost: anything else: the key holds a value written before W began, or is absent with no delete
//!   that could follow W (for a delete: a key deleted by W has come back).
//!
//! A write answered with an error must have changed nothing: its value found at the end on any
//! agent is a phantom. A key whose state differs between agents is divergent.
//!
//! [`local`] applies the same rule to one agent's own disk: every write that agent acknowledged
//! must be there, or superseded, when it restarts alone after a crash.

use crate::client::{Kind, Op, Outcome};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub attempts: usize,
    pub acknowledged: usize,
    pub failed: usize,
    pub indeterminate: usize,
    pub kept: usize,
    pub superseded: usize,
    pub lost: usize,
    pub resurrected: usize,
    pub phantom: usize,
    pub divergent: usize,
    pub keys: usize,
    pub examples: Vec<String>,
}

/// One agent's final state: key -> value.
pub type State = BTreeMap<String, String>;

pub fn check(ops: &[Op], finals: &[State]) -> Report {
    judge(ops, finals, None)
}

/// The writes acknowledged by `agent`, against that agent's state alone.
pub fn local(ops: &[Op], agent: usize, state: &State) -> Report {
    judge(ops, std::slice::from_ref(state), Some(agent))
}

fn judge(ops: &[Op], finals: &[State], only: Option<usize>) -> Report {
    let mut r = Report {
        attempts: ops.len(),
        ..Report::default()
    };
    let keys: BTreeSet<&String> = ops
        .iter()
        .map(|o| &o.key)
        .chain(finals.iter().flat_map(|f| f.keys()))
        .collect();
    r.keys = keys.len();
    for k in &keys {
        let states: Vec<Option<&String>> = finals.iter().map(|f| f.get(*k)).collect();
        if states.windows(2).any(|w| w[0] != w[1]) {
            r.divergent += 1;
            if r.examples.len() < 10 {
                r.examples.push(format!("divergent {k}: {states:?}"));
            }
        }
    }
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for o in ops {
        by_key.entry(&o.key).or_default().push(o);
        match o.outcome {
            Outcome::Ok => r.acknowledged += 1,
            Outcome::Failed(_) => r.failed += 1,
            Outcome::Unknown(_) => r.indeterminate += 1,
        }
    }
    let reference = finals.first().cloned().unwrap_or_default();
    for (key, writes) in &by_key {
        let last = reference.get(*key);
        for w in writes {
            if let (Outcome::Failed(why), Kind::Put { value }) = (&w.outcome, &w.kind) {
                if finals.iter().any(|f| f.get(*key) == Some(value)) {
                    r.phantom += 1;
                    if r.examples.len() < 10 {
                        r.examples.push(format!("phantom {key}={value} ({why})"));
                    }
                }
            }
        }
        let judged = |w: &&&Op| w.outcome == Outcome::Ok && only.is_none_or(|a| w.agent == a);
        for w in writes.iter().filter(judged) {
            let produced = |o: &Op| match (&o.kind, last) {
                (Kind::Put { value }, Some(v)) => value == v,
                (Kind::Delete, None) => true,
                _ => false,
            };
            if produced(w) {
                r.kept += 1;
                continue;
            }
            let may_follow = writes.iter().any(|o| {
                !std::ptr::eq(*o, *w)
                    && !matches!(o.outcome, Outcome::Failed(_))
                    && produced(o)
                    && o.end > w.start
            });
            if may_follow {
                r.superseded += 1;
            } else {
                r.lost += 1;
                if w.kind == Kind::Delete {
                    r.resurrected += 1;
                }
                if r.examples.len() < 10 {
                    r.examples.push(format!(
                        "lost {key}: {:?} acknowledged by agent {}, final {last:?}",
                        w.kind,
                        w.agent + 1
                    ));
                }
            }
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn op(key: &str, kind: Kind, at: u64, len: u64, outcome: Outcome) -> Op {
        let t0 = Instant::now();
        Op {
            key: key.into(),
            kind,
            agent: 0,
            start: t0 + Duration::from_millis(at),
            end: t0 + Duration::from_millis(at + len),
            outcome,
        }
    }

    fn put(v: &str) -> Kind {
        Kind::Put { value: v.into() }
    }

    fn state(kv: &[(&str, &str)]) -> State {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn an_older_value_at_the_end_is_a_loss_and_a_concurrent_one_is_not() {
        let ops = vec![
            op("k", put("a"), 0, 5, Outcome::Ok),
            op("k", put("b"), 10, 5, Outcome::Ok),
        ];
        let r = check(&ops, &[state(&[("k", "a")]), state(&[("k", "a")])]);
        assert_eq!((r.lost, r.kept, r.divergent), (1, 1, 0));
        let overlapping = vec![
            op("k", put("a"), 0, 20, Outcome::Ok),
            op("k", put("b"), 10, 5, Outcome::Ok),
        ];
        let r = check(&overlapping, &[state(&[("k", "a")])]);
        assert_eq!((r.lost, r.superseded), (0, 1));
    }

    #[test]
    fn a_deleted_key_that_comes_back_is_counted() {
        let ops = vec![
            op("k", put("a"), 0, 5, Outcome::Ok),
            op("k", Kind::Delete, 10, 5, Outcome::Ok),
        ];
        let r = check(&ops, &[state(&[("k", "a")])]);
        assert_eq!((r.lost, r.resurrected), (1, 1));
        let r = check(&ops, &[state(&[])]);
        assert_eq!((r.lost, r.superseded, r.kept), (0, 1, 1));
    }

    #[test]
    fn an_agent_is_judged_only_on_what_it_acknowledged() {
        let mut ops = vec![op("k", put("a"), 0, 5, Outcome::Ok)];
        ops[0].agent = 1;
        let r = local(&ops, 1, &state(&[]));
        assert_eq!(r.lost, 1);
        assert_eq!(local(&ops, 0, &state(&[])).lost, 0);
    }

    #[test]
    fn a_refused_write_that_took_effect_is_a_phantom_and_divergence_is_seen() {
        let ops = vec![op("k", put("a"), 0, 5, Outcome::Failed("507".into()))];
        let r = check(&ops, &[state(&[("k", "a")]), state(&[])]);
        assert_eq!((r.phantom, r.divergent), (1, 1));
    }
}
