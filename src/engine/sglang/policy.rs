//! SGLang 0.5.23's `SchedulePolicy.calc_priority` (`managers/schedule_policy.py:188-560`):
//! the order in which the waiting queue is offered to the prefill adder.
//!
//! The queue is sorted in place and the order persists: fcfs never re-sorts, so an order
//! an earlier lpm pass left stays while lpm has fallen back to fcfs (above 128 waiting).
//! Cache-aware policies match every waiting request against the tree (which stamps and
//! may split nodes); cache-agnostic ones instead touch the first 128 waiting requests'
//! prefixes every 32nd pass, the queue's head last, so that LRU eviction spares them.

use super::config::{
    SchedulePolicy, IN_BATCH_CHECK_THRESHOLD, IN_BATCH_DEPRIORITIZE_THRESHOLD,
    WAITING_PREFIX_REFRESH_INTERVAL, WAITING_QUEUE_PREFIX_MATCH_MAX,
};
use super::radix::{NodeId, RadixTree};
use super::request::SglReq;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use std::collections::HashMap;

/// The policy's state across passes.
#[derive(Debug)]
pub struct Policy {
    /// The configured policy.
    pub policy: SchedulePolicy,
    refresh_calls: u64,
    rng: StdRng,
}

/// The requests of the queue, by slot.
pub type Slots = [Option<SglReq>];

fn req(reqs: &Slots, slot: u32) -> &SglReq {
    reqs[slot as usize].as_ref().expect("a waiting request")
}

fn req_mut(reqs: &mut Slots, slot: u32) -> &mut SglReq {
    reqs[slot as usize].as_mut().expect("a waiting request")
}

impl Policy {
    /// A policy; `seed` drives the `random` shuffle.
    pub fn new(policy: SchedulePolicy, seed: u64) -> Self {
        use rand::SeedableRng;
        Policy {
            policy,
            refresh_calls: 0,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// `_determine_active_policy`: lpm turns into fcfs above 128 waiting requests.
    pub fn active(&self, waiting: usize) -> SchedulePolicy {
        if self.policy == SchedulePolicy::Lpm && waiting > WAITING_QUEUE_PREFIX_MATCH_MAX {
            SchedulePolicy::Fcfs
        } else {
            self.policy
        }
    }

    /// `calc_priority`: sort `waiting` (slots) in place.
    pub fn calc_priority(&mut self, waiting: &mut [u32], reqs: &mut Slots, tree: &mut RadixTree) {
        let active = self.active(waiting.len());
        if self.policy != SchedulePolicy::Fcfs {
            match active {
                SchedulePolicy::Lpm => {
                    let deprioritized = compute_prefix_matches(waiting, reqs, tree);
                    let key = |s: &u32| -> i64 {
                        if deprioritized.contains(s) {
                            i64::MAX
                        } else {
                            -(req(reqs, *s).matched_for_sort as i64)
                        }
                    };
                    waiting.sort_by_key(key);
                }
                SchedulePolicy::DfsWeight => {
                    compute_prefix_matches(waiting, reqs, tree);
                    dfs_weight_sort(waiting, reqs, tree);
                }
                SchedulePolicy::Lof => {
                    waiting.sort_by_key(|s| std::cmp::Reverse(req(reqs, *s).max_new));
                }
                SchedulePolicy::Random => waiting.shuffle(&mut self.rng),
                SchedulePolicy::Fcfs => {}
            }
        }
        self.touch_waiting_prefixes(active, waiting, reqs, tree);
    }

    /// `_touch_waiting_prefixes`.
    fn touch_waiting_prefixes(
        &mut self,
        active: SchedulePolicy,
        waiting: &[u32],
        reqs: &mut Slots,
        tree: &mut RadixTree,
    ) {
        if active.is_cache_aware() || waiting.is_empty() {
            return;
        }
        let refresh = self
            .refresh_calls
            .is_multiple_of(WAITING_PREFIX_REFRESH_INTERVAL);
        self.refresh_calls += 1;
        if !refresh {
            return;
        }
        let n = waiting.len().min(WAITING_QUEUE_PREFIX_MATCH_MAX);
        for &s in waiting[..n].iter().rev() {
            let r = req_mut(reqs, s);
            r.materialize();
            tree.match_prefix(r.fill_ids(), usize::MAX);
        }
    }
}

/// `_compute_prefix_matches`: match every waiting request (no `len - 1` cap) and find
/// those whose short match is long against an earlier waiting request (in-batch dedup:
/// they are sorted last, so that one request of a group computes the shared prefix).
fn compute_prefix_matches(
    waiting: &[u32],
    reqs: &mut Slots,
    tree: &mut RadixTree,
) -> std::collections::HashSet<u32> {
    let mut deprioritized = std::collections::HashSet::new();
    let mut simulated = RadixTree::new(1);
    for &s in waiting {
        let r = req_mut(reqs, s);
        r.materialize();
        let m = tree.match_prefix(r.fill_ids(), usize::MAX);
        r.prefix_len = m.len;
        r.last_node = m.node;
        r.matched_for_sort = m.len.min(r.fill_len().saturating_sub(1));
        if r.prefix_len <= IN_BATCH_CHECK_THRESHOLD {
            let ids = r.fill_ids();
            if simulated.match_prefix(ids, usize::MAX).len >= IN_BATCH_DEPRIORITIZE_THRESHOLD {
                deprioritized.insert(s);
            } else {
                simulated.insert(ids, 0);
            }
        }
    }
    deprioritized
}

/// `_sort_by_dfs_weight`: a depth-first walk of the tree from the root, children by
/// descending weight (the number of waiting requests whose match ends in their subtree;
/// ties in child order), each node's own requests after its children's.
fn dfs_weight_sort(waiting: &mut [u32], reqs: &Slots, tree: &RadixTree) {
    let mut at: HashMap<NodeId, Vec<u32>> = HashMap::new();
    for &s in waiting.iter() {
        at.entry(req(reqs, s).last_node).or_default().push(s);
    }
    // Weights of the nodes on the paths from those nodes to the root.
    let mut weight: HashMap<NodeId, usize> = HashMap::new();
    for (&node, slots) in &at {
        let mut n = node;
        loop {
            *weight.entry(n).or_default() += slots.len();
            if n == super::radix::ROOT {
                break;
            }
            n = tree.parent(n);
        }
    }
    let mut order = Vec::with_capacity(waiting.len());
    let mut stack = vec![(super::radix::ROOT, false)];
    let mut children = Vec::new();
    while let Some((node, visited)) = stack.pop() {
        if visited {
            if let Some(s) = at.get(&node) {
                order.extend_from_slice(s);
            }
            continue;
        }
        stack.push((node, true));
        tree.children_in_order(node, &mut children);
        children.retain(|c| weight.contains_key(c));
        // Stable: equal weights keep child order.
        children.sort_by_key(|c| std::cmp::Reverse(weight[c]));
        for &c in children.iter().rev() {
            stack.push((c, false));
        }
    }
    waiting.copy_from_slice(&order);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::request::EngineRequest;
    use crate::workload::Request;

    fn sgl_req(id: u64, tokens: Vec<u64>, max_new: u32) -> SglReq {
        let er = EngineRequest::new(Request {
            id,
            arrival_ns: 0,
            input_tokens: tokens.len() as u32,
            output_tokens: max_new,
            session: None,
            segments: Vec::new(),
        });
        SglReq::new(er, tokens, max_new, false)
    }

    fn order(policy: SchedulePolicy, seed: u64, reqs: &mut [Option<SglReq>]) -> Vec<u32> {
        let mut tree = RadixTree::new(1);
        for t in [vec![1, 2, 3, 4], vec![1, 2, 5, 6], vec![7, 8]] {
            tree.insert(&t, 0);
        }
        let mut waiting: Vec<u32> = (0..reqs.len() as u32).collect();
        Policy::new(policy, seed).calc_priority(&mut waiting, reqs, &mut tree);
        waiting
    }

    fn queue() -> Vec<Option<SglReq>> {
        vec![
            Some(sgl_req(0, vec![7, 8, 9], 10)),
            Some(sgl_req(1, vec![1, 2, 3, 4, 10], 30)),
            Some(sgl_req(2, vec![1, 2, 5, 6, 11], 20)),
            Some(sgl_req(3, vec![1, 2, 3, 4, 12], 30)),
        ]
    }

    #[test]
    fn dfs_weight_walks_heavier_subtrees_first_and_a_node_after_its_children() {
        // Paths: [1,2] carries three waiting requests ([3,4] two, [5,6] one), [7,8] one.
        assert_eq!(
            order(SchedulePolicy::DfsWeight, 0, &mut queue()),
            [1, 3, 2, 0]
        );
    }

    #[test]
    fn lof_puts_the_longest_output_first_and_keeps_ties_in_queue_order() {
        assert_eq!(order(SchedulePolicy::Lof, 0, &mut queue()), [1, 3, 2, 0]);
        let mut q = queue();
        q[0].as_mut().unwrap().max_new = 40;
        assert_eq!(order(SchedulePolicy::Lof, 0, &mut q), [0, 1, 3, 2]);
    }

    #[test]
    fn random_is_a_seeded_permutation_and_fcfs_keeps_the_queue() {
        let a = order(SchedulePolicy::Random, 7, &mut queue());
        assert_eq!(a, order(SchedulePolicy::Random, 7, &mut queue()));
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, [0, 1, 2, 3]);
        let differs = (0..20).any(|s| order(SchedulePolicy::Random, s, &mut queue()) != a);
        assert!(differs, "the shuffle depends on the seed");
        assert_eq!(order(SchedulePolicy::Fcfs, 0, &mut queue()), [0, 1, 2, 3]);
    }

    #[test]
    fn lpm_sorts_by_cached_prefix_and_falls_back_to_fcfs_above_128_waiting() {
        // Matches: r0 2, r1 4, r2 4, r3 4 tokens (no len-1 cap when sorting).
        assert_eq!(order(SchedulePolicy::Lpm, 0, &mut queue()), [1, 2, 3, 0]);
        let p = Policy::new(SchedulePolicy::Lpm, 0);
        assert_eq!(p.active(128), SchedulePolicy::Lpm);
        assert_eq!(p.active(129), SchedulePolicy::Fcfs);
    }
}
