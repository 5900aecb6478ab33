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
        reqs: &Slots,
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
            tree.match_prefix(req(reqs, s).fill_ids(), usize::MAX);
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
