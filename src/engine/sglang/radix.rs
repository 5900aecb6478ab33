//! SGLang 0.5.23's radix tree over token ids (`UnifiedRadixCache` with its tree core,
//! `mem_cache/unified_cache/unified_tree_core.py` and `components/full.py`): nodes hold
//! page-aligned runs of tokens, children are keyed by their first page, matching splits a
//! node at the first differing page, and eviction removes the least recently used unlocked
//! leaf, whole, until enough tokens are freed.
//!
//! Only counts are kept (no KV slot indices): each node knows its tokens, its lock count and
//! its last access time. Times follow SGLang's global counter: every stamp takes the next
//! value, and a match stamps the matched node and then each ancestor a hair earlier
//! (`cur_time -= 1e-5` there; here one unit of [`TICK`] per level).

use crate::idhash::IdMap;
use crate::workload::mix;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};

/// A node's index in the tree's arena.
pub type NodeId = u32;

/// The root: holds no tokens, never evicted.
pub const ROOT: NodeId = 0;

/// Units of time per counter value: an ancestor stamped by a match is this many levels
/// earlier at most before it would tie with the previous counter value.
const TICK: u64 = 1 << 20;

#[derive(Debug, Clone, Default)]
struct Node {
    parent: NodeId,
    children: IdMap<NodeId>,
    key: Vec<u64>,
    lock_ref: u32,
    time: u64,
    /// When its key entered the parent's child map (a split keeps the position).
    order: u64,
    alive: bool,
}

/// What a match found: tokens matched and the node where the match ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    /// Tokens matched (a multiple of the page size).
    pub len: usize,
    /// The deepest matched node (the root when nothing matched).
    pub node: NodeId,
}

/// What an insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inserted {
    /// Tokens of the inserted key the inserting request held itself and the tree already
    /// had: their slots are freed (`FreeDeviceKV` of the overlap past `prev_prefix_len`).
    pub duplicate: usize,
    /// The node holding the key's last token (the root for an empty key).
    pub node: NodeId,
    /// Tokens of the page-aligned key (the path length to `node`).
    pub len: usize,
}

/// The radix tree of one engine core.
#[derive(Debug, Clone)]
pub struct RadixTree {
    page: usize,
    nodes: Vec<Node>,
    spare: Vec<NodeId>,
    clock: u64,
    order: u64,
    evictable: u64,
    protected: u64,
    leaves: HashSet<NodeId>,
}

impl RadixTree {
    /// An empty tree matching and inserting at `page` tokens.
    pub fn new(page: usize) -> Self {
        let root = Node {
            alive: true,
            ..Node::default()
        };
        RadixTree {
            page: page.max(1),
            nodes: vec![root],
            spare: Vec::new(),
            clock: 1,
            order: 0,
            evictable: 0,
            protected: 0,
            leaves: HashSet::new(),
        }
    }

    /// Page size, tokens.
    pub fn page(&self) -> usize {
        self.page
    }

    /// Tokens in nodes no running request locks (`evictable_size`).
    pub fn evictable(&self) -> u64 {
        self.evictable
    }

    /// Tokens in nodes some request locks (`protected_size`).
    pub fn protected(&self) -> u64 {
        self.protected
    }

    /// Nodes in the tree, the root included.
    pub fn num_nodes(&self) -> usize {
        self.nodes.len() - self.spare.len()
    }

    fn next_time(&mut self) -> u64 {
        let t = self.clock * TICK;
        self.clock += 1;
        t
    }

    fn floor_page(&self, n: usize) -> usize {
        n - n % self.page
    }

    fn page_key(&self, tokens: &[u64]) -> u64 {
        if self.page == 1 {
            return tokens[0];
        }
        tokens[..self.page]
            .iter()
            .fold(0x0050_676b_6579, |h, &t| mix(h, t))
    }

    /// The child of `node` whose first page is `key`'s.
    fn child(&self, node: NodeId, key: &[u64]) -> Option<NodeId> {
        let c = *self.nodes[node as usize]
            .children
            .get(&self.page_key(key))?;
        (self.nodes[c as usize].key[..self.page] == key[..self.page]).then_some(c)
    }

    /// Tokens of `child`'s key that `key` matches, in whole pages.
    fn common_pages(&self, child: NodeId, key: &[u64]) -> usize {
        let ck = &self.nodes[child as usize].key;
        let n = ck.len().min(key.len());
        // Whole runs first (one comparison each), then token by token to the mismatch.
        const RUN: usize = 64;
        let mut m = 0;
        while m + RUN <= n && ck[m..m + RUN] == key[m..m + RUN] {
            m += RUN;
        }
        m += ck[m..n]
            .iter()
            .zip(&key[m..n])
            .take_while(|(a, b)| a == b)
            .count();
        self.floor_page(m)
    }

    fn is_evictable_leaf(&self, id: NodeId) -> bool {
        let n = &self.nodes[id as usize];
        id != ROOT && n.alive && n.lock_ref == 0 && n.children.is_empty()
    }

    fn refresh_leaf(&mut self, id: NodeId) {
        if self.is_evictable_leaf(id) {
            self.leaves.insert(id);
        } else {
            self.leaves.remove(&id);
        }
    }

    fn new_node(&mut self, parent: NodeId, key: Vec<u64>, order: u64) -> NodeId {
        let time = self.next_time();
        let node = Node {
            parent,
            children: IdMap::default(),
            key,
            lock_ref: 0,
            time,
            order,
            alive: true,
        };
        match self.spare.pop() {
            Some(id) => {
                self.nodes[id as usize] = node;
                id
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as NodeId
            }
        }
    }

    /// Split `child` after `at` tokens (`_split_node`): a new node takes the first `at`
    /// tokens, the child's lock count and its place among its parent's children.
    fn split(&mut self, child: NodeId, at: usize) -> NodeId {
        let c = &mut self.nodes[child as usize];
        let tail = c.key.split_off(at);
        let head = std::mem::replace(&mut c.key, tail);
        let (parent, lock_ref, order) = (c.parent, c.lock_ref, c.order);
        let first = self.page_key(&head);
        let new = self.new_node(parent, head, order);
        self.nodes[new as usize].lock_ref = lock_ref;
        let child_first = self.page_key(&self.nodes[child as usize].key);
        self.nodes[new as usize].children.insert(child_first, child);
        self.nodes[child as usize].parent = new;
        self.nodes[parent as usize].children.insert(first, new);
        self.nodes[child as usize].time = self.next_time();
        self.refresh_leaf(new);
        self.refresh_leaf(child);
        new
    }

    /// Stamp `node` with a new time and its ancestors each a unit earlier (the end of
    /// `_match_prefix_helper`).
    fn stamp_path(&mut self, mut node: NodeId) {
        let mut t = self.next_time();
        loop {
            self.nodes[node as usize].time = t;
            if node == ROOT {
                break;
            }
            node = self.nodes[node as usize].parent;
            t -= 1;
        }
    }

    /// Match the first `min(tokens.len(), limit)` tokens, page-aligned down
    /// (`match_prefix`): splits the node where the match ends inside it and stamps the
    /// path. An empty key matches nothing and stamps nothing.
    pub fn match_prefix(&mut self, tokens: &[u64], limit: usize) -> Match {
        let n = self.floor_page(tokens.len().min(limit));
        if n == 0 {
            return Match { len: 0, node: ROOT };
        }
        let key = &tokens[..n];
        let (mut node, mut off) = (ROOT, 0);
        while off < n {
            let Some(child) = self.child(node, &key[off..]) else {
                break;
            };
            let m = self.common_pages(child, &key[off..]);
            off += m;
            if m < self.nodes[child as usize].key.len() {
                node = self.split(child, m);
                break;
            }
            node = child;
        }
        self.stamp_path(node);
        Match { len: off, node }
    }

    /// Tokens of `tokens` the tree holds as a prefix, page-aligned down, without touching
    /// anything (what a router asks; [`RadixTree::match_prefix`] is the engine's match).
    pub fn cached_prefix(&self, tokens: &[u64]) -> usize {
        let key = &tokens[..self.floor_page(tokens.len())];
        let (mut node, mut off) = (ROOT, 0);
        while off < key.len() {
            let Some(child) = self.child(node, &key[off..]) else {
                break;
            };
            let m = self.common_pages(child, &key[off..]);
            off += m;
            if m < self.nodes[child as usize].key.len() {
                break;
            }
            node = child;
        }
        off
    }

    /// Insert the first `tokens.len()` tokens, page-aligned down (`begin_insert` and its
    /// walk): every node walked is touched, a node the key ends or diverges in is split,
    /// the rest becomes a new leaf. Tokens the tree already had past `prev_prefix_len`
    /// are reported as the inserter's duplicates.
    pub fn insert(&mut self, tokens: &[u64], prev_prefix_len: usize) -> Inserted {
        let n = self.floor_page(tokens.len());
        self.nodes[ROOT as usize].time = self.next_time();
        let key = &tokens[..n];
        let (mut node, mut off, mut duplicate) = (ROOT, 0usize, 0usize);
        while off < n {
            let Some(mut child) = self.child(node, &key[off..]) else {
                break;
            };
            self.nodes[child as usize].time = self.next_time();
            let m = self.common_pages(child, &key[off..]);
            if m < self.nodes[child as usize].key.len() {
                child = self.split(child, m);
            }
            let dup_start = prev_prefix_len.saturating_sub(off);
            duplicate += m.saturating_sub(dup_start);
            node = child;
            off += m;
        }
        if off < n {
            let first = self.page_key(&key[off..]);
            self.order += 1;
            let leaf = self.new_node(node, key[off..].to_vec(), self.order);
            self.nodes[node as usize].children.insert(first, leaf);
            self.evictable += (n - off) as u64;
            self.refresh_leaf(leaf);
            self.refresh_leaf(node);
            node = leaf;
        }
        Inserted {
            duplicate,
            node,
            len: n,
        }
    }

    /// Lock the path from `node` to the root (`inc_lock_ref`).
    pub fn lock(&mut self, mut node: NodeId) {
        while node != ROOT {
            let n = &mut self.nodes[node as usize];
            if n.lock_ref == 0 {
                let len = n.key.len() as u64;
                self.evictable -= len;
                self.protected += len;
            }
            n.lock_ref += 1;
            let parent = n.parent;
            self.leaves.remove(&node);
            node = parent;
        }
    }

    /// Release a lock taken by [`RadixTree::lock`] (`dec_lock_ref`).
    pub fn unlock(&mut self, mut node: NodeId) {
        while node != ROOT {
            let n = &mut self.nodes[node as usize];
            debug_assert!(n.lock_ref > 0, "unlock of an unlocked node");
            n.lock_ref -= 1;
            if n.lock_ref == 0 {
                let len = n.key.len() as u64;
                self.protected -= len;
                self.evictable += len;
            }
            let parent = n.parent;
            self.refresh_leaf(node);
            node = parent;
        }
    }

    /// Evict least recently used unlocked leaves, whole, until at least `tokens` are
    /// freed or nothing is evictable; a parent left childless and unlocked becomes a
    /// candidate. Returns the tokens freed.
    pub fn evict(&mut self, tokens: u64) -> u64 {
        if tokens == 0 {
            return 0;
        }
        let mut heap: BinaryHeap<Reverse<(u64, NodeId)>> = self
            .leaves
            .iter()
            .map(|&id| Reverse((self.nodes[id as usize].time, id)))
            .collect();
        let mut freed = 0u64;
        while freed < tokens {
            let Some(Reverse((_, id))) = heap.pop() else {
                break;
            };
            if !self.leaves.contains(&id) {
                continue;
            }
            let len = self.nodes[id as usize].key.len() as u64;
            freed += len;
            self.evictable -= len;
            let parent = self.delete_leaf(id);
            if self.is_evictable_leaf(parent) {
                self.leaves.insert(parent);
                heap.push(Reverse((self.nodes[parent as usize].time, parent)));
            }
        }
        freed
    }

    fn delete_leaf(&mut self, id: NodeId) -> NodeId {
        self.leaves.remove(&id);
        let node = std::mem::take(&mut self.nodes[id as usize]);
        let first = self.page_key(&node.key);
        self.nodes[node.parent as usize].children.remove(&first);
        self.spare.push(id);
        node.parent
    }

    /// The node's parent (the root's is itself).
    pub fn parent(&self, node: NodeId) -> NodeId {
        self.nodes[node as usize].parent
    }

    /// The node's children in the order their keys entered its child map.
    pub fn children_in_order(&self, node: NodeId, out: &mut Vec<NodeId>) {
        out.clear();
        out.extend(self.nodes[node as usize].children.values().copied());
        out.sort_by_key(|&c| self.nodes[c as usize].order);
    }

    /// Recount evictable and protected tokens from the nodes and compare with the running
    /// totals; also check every parent link. For audits.
    pub fn audit(&self) -> Result<(u64, u64), String> {
        let (mut ev, mut pr) = (0u64, 0u64);
        for (i, n) in self.nodes.iter().enumerate() {
            if !n.alive || i == ROOT as usize {
                continue;
            }
            let p = &self.nodes[n.parent as usize];
            if !p.alive || !p.children.values().any(|&c| c as usize == i) {
                return Err(format!("node {i} is not among its parent's children"));
            }
            if n.key.is_empty() || n.key.len() % self.page != 0 {
                return Err(format!("node {i} holds {} tokens", n.key.len()));
            }
            if n.lock_ref == 0 {
                ev += n.key.len() as u64;
            } else {
                pr += n.key.len() as u64;
            }
        }
        if (ev, pr) != (self.evictable, self.protected) {
            return Err(format!(
                "tree counts evictable {} protected {}, nodes hold {ev} and {pr}",
                self.evictable, self.protected
            ));
        }
        Ok((ev, pr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(range: std::ops::Range<u64>) -> Vec<u64> {
        range.collect()
    }

    #[test]
    fn insert_then_match_splits_at_the_divergence() {
        let mut t = RadixTree::new(1);
        let a = toks(0..10);
        let ins = t.insert(&a, 0);
        assert_eq!((ins.duplicate, ins.len), (0, 10));
        assert_eq!(t.evictable(), 10);
        let mut b = toks(0..6);
        b.extend(100..104);
        let m = t.match_prefix(&b, usize::MAX);
        assert_eq!(m.len, 6);
        assert_eq!(
            t.num_nodes(),
            3,
            "root, the 6-token head and the 4-token tail"
        );
        let ins = t.insert(&b, 6);
        assert_eq!(
            ins.duplicate, 0,
            "the request's own prefix is not a duplicate"
        );
        assert_eq!(t.evictable(), 14);
        t.audit().unwrap();
    }

    #[test]
    fn pages_round_matches_and_inserts_down() {
        let mut t = RadixTree::new(4);
        let a = toks(0..10);
        assert_eq!(t.insert(&a, 0).len, 8);
        let mut b = toks(0..6);
        b.extend(50..60);
        assert_eq!(t.match_prefix(&b, usize::MAX).len, 4);
        assert_eq!(
            t.match_prefix(&a, 7).len,
            4,
            "limit 7 rounds down to one page"
        );
        t.audit().unwrap();
    }

    #[test]
    fn duplicates_past_prev_prefix_are_reported() {
        let mut t = RadixTree::new(1);
        t.insert(&toks(0..8), 0);
        // A second request computed all 8 tokens itself (matched nothing before).
        let ins = t.insert(&toks(0..12), 0);
        assert_eq!(ins.duplicate, 8);
        assert_eq!(t.evictable(), 12);
    }

    #[test]
    fn locks_protect_and_eviction_takes_lru_leaves_whole() {
        let mut t = RadixTree::new(1);
        let a = t.insert(&toks(0..10), 0).node;
        let mut b = toks(0..4);
        b.extend(20..26);
        let bn = t.insert(&b, 0).node; // splits a at 4: head 4, tails 6 and 6
        t.lock(bn);
        assert_eq!((t.evictable(), t.protected()), (6, 10));
        // Only a's tail is an unlocked leaf.
        assert_eq!(t.evict(1), 6);
        assert_eq!(t.evict(100), 0, "the locked path stays");
        t.unlock(bn);
        assert_eq!((t.evictable(), t.protected()), (10, 0));
        // b's tail (6) goes, then the head (4) becomes a leaf and goes too.
        assert_eq!(t.evict(7), 10);
        assert_eq!(t.num_nodes(), 1);
        let _ = a;
        t.audit().unwrap();
    }

    #[test]
    fn eviction_order_follows_access_time() {
        let mut t = RadixTree::new(1);
        t.insert(&toks(0..5), 0);
        t.insert(&toks(10..15), 0);
        t.match_prefix(&toks(0..5), usize::MAX); // the first is now newer
        assert_eq!(t.evict(1), 5);
        assert_eq!(t.match_prefix(&toks(0..5), usize::MAX).len, 5);
        assert_eq!(t.match_prefix(&toks(10..15), usize::MAX).len, 0);
    }
}
