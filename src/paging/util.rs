//! Data structures shared by the policies: intrusive doubly linked lists over page ids, a
//! lazily cleaned heap of keyed pages, pins, bit sets and sequence queues.

/// Marker for "no page".
pub const NONE: u32 = u32::MAX;

/// A doubly linked list whose nodes are page ids, with O(1) push, pop, unlink and
/// membership. Head is the most recently pushed end. A page's links sit side by side (one
/// cache line per node touched), and a page outside the list has the `prev` mark
/// [`NOT_LISTED`], so membership needs no array of its own.
#[derive(Debug, Clone, Default)]
pub struct DList {
    /// Per page: [prev, next].
    links: Vec<[u32; 2]>,
    head: u32,
    tail: u32,
    len: usize,
}

/// The `prev` link of a page that is not in the list.
const NOT_LISTED: u32 = u32::MAX - 1;

impl DList {
    /// An empty list for page ids below `n`.
    pub fn new(n: usize) -> Self {
        DList {
            links: vec![[NOT_LISTED, NONE]; n],
            head: NONE,
            tail: NONE,
            len: 0,
        }
    }

    /// Grow to hold page ids below `n`.
    pub fn reserve_ids(&mut self, n: usize) {
        if n > self.links.len() {
            self.links.resize(n, [NOT_LISTED, NONE]);
        }
    }

    /// Elements in the list.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when `id` is in the list.
    #[inline]
    pub fn contains(&self, id: u32) -> bool {
        self.links
            .get(id as usize)
            .is_some_and(|l| l[0] != NOT_LISTED)
    }

    /// The head (most recently pushed).
    pub fn head(&self) -> Option<u32> {
        (self.head != NONE).then_some(self.head)
    }

    /// The tail (least recently pushed).
    pub fn tail(&self) -> Option<u32> {
        (self.tail != NONE).then_some(self.tail)
    }

    /// The element after `id` towards the tail.
    pub fn next_of(&self, id: u32) -> Option<u32> {
        let n = self.links[id as usize][1];
        (n != NONE).then_some(n)
    }

    /// The element before `id` towards the head.
    pub fn prev_of(&self, id: u32) -> Option<u32> {
        let p = self.links[id as usize][0];
        (p != NONE).then_some(p)
    }

    /// Insert at the head.
    pub fn push_head(&mut self, id: u32) {
        self.reserve_ids(id as usize + 1);
        debug_assert!(!self.contains(id));
        self.links[id as usize] = [NONE, self.head];
        if self.head != NONE {
            self.links[self.head as usize][0] = id;
        } else {
            self.tail = id;
        }
        self.head = id;
        self.len += 1;
    }

    /// Remove `id` (which must be in the list).
    pub fn unlink(&mut self, id: u32) {
        debug_assert!(self.contains(id));
        let [p, n] = self.links[id as usize];
        if p != NONE {
            self.links[p as usize][1] = n;
        } else {
            self.head = n;
        }
        if n != NONE {
            self.links[n as usize][0] = p;
        } else {
            self.tail = p;
        }
        self.links[id as usize] = [NOT_LISTED, NONE];
        self.len -= 1;
    }

    /// Remove and return the tail.
    pub fn pop_tail(&mut self) -> Option<u32> {
        let t = self.tail()?;
        self.unlink(t);
        Some(t)
    }

    /// Move `id` (in the list) to the head.
    pub fn move_to_head(&mut self, id: u32) {
        if self.head != id {
            self.unlink(id);
            self.push_head(id);
        }
    }
}

/// Several doubly linked lists over page ids that share one array of links, a page being
/// in at most one of them, with a tag per page saying which (or a state outside every
/// list, such as "pinned"): ARC's four lists and its pins in two arrays instead of eight.
/// Heads are the most recently pushed ends; every operation is O(1).
#[derive(Debug, Clone)]
pub struct ListSet<const N: usize> {
    /// Per page: [prev, next].
    links: Vec<[u32; 2]>,
    /// Per page: its list, a state of its own (at least the number of lists), or
    /// [`ListSet::NOWHERE`].
    tag: Vec<u8>,
    ends: [[u32; 2]; N],
    lens: [usize; N],
}

impl<const N: usize> ListSet<N> {
    /// The tag of a page in no list and no state.
    pub const NOWHERE: u8 = u8::MAX;

    /// `N` empty lists (at most 254) for page ids below `n`.
    pub fn new(n: usize) -> Self {
        assert!(N < Self::NOWHERE as usize);
        ListSet {
            links: vec![[NONE, NONE]; n],
            tag: vec![Self::NOWHERE; n],
            ends: [[NONE, NONE]; N],
            lens: [0; N],
        }
    }

    fn reserve_ids(&mut self, n: usize) {
        if n > self.tag.len() {
            self.links.resize(n, [NONE, NONE]);
            self.tag.resize(n, Self::NOWHERE);
        }
    }

    /// The tag of `id`: its list, its state, or [`ListSet::NOWHERE`].
    #[inline]
    pub fn tag(&self, id: u32) -> u8 {
        self.tag.get(id as usize).copied().unwrap_or(Self::NOWHERE)
    }

    /// Give `id`, which is in no list, a state outside the lists (a tag at least the
    /// number of lists, or [`ListSet::NOWHERE`]).
    pub fn set_state(&mut self, id: u32, state: u8) {
        debug_assert!(state as usize >= N);
        debug_assert!((self.tag(id) as usize) >= N);
        self.reserve_ids(id as usize + 1);
        self.tag[id as usize] = state;
    }

    /// Is `id` in list `l`?
    #[inline]
    pub fn contains(&self, l: u8, id: u32) -> bool {
        self.tag(id) == l
    }

    /// Elements of list `l`.
    pub fn len(&self, l: u8) -> usize {
        self.lens[l as usize]
    }

    /// True when list `l` is empty.
    pub fn is_empty(&self, l: u8) -> bool {
        self.lens[l as usize] == 0
    }

    /// Insert `id`, which is in no list, at the head of list `l`.
    pub fn push_head(&mut self, l: u8, id: u32) {
        self.reserve_ids(id as usize + 1);
        debug_assert!((self.tag[id as usize] as usize) >= N);
        let head = self.ends[l as usize][0];
        self.links[id as usize] = [NONE, head];
        if head != NONE {
            self.links[head as usize][0] = id;
        } else {
            self.ends[l as usize][1] = id;
        }
        self.ends[l as usize][0] = id;
        self.tag[id as usize] = l;
        self.lens[l as usize] += 1;
    }

    /// Take `id` out of its list (it must be in one); its tag becomes
    /// [`ListSet::NOWHERE`].
    pub fn unlink(&mut self, id: u32) {
        let l = self.tag[id as usize] as usize;
        debug_assert!(l < N);
        let [p, n] = self.links[id as usize];
        if p != NONE {
            self.links[p as usize][1] = n;
        } else {
            self.ends[l][0] = n;
        }
        if n != NONE {
            self.links[n as usize][0] = p;
        } else {
            self.ends[l][1] = p;
        }
        self.tag[id as usize] = Self::NOWHERE;
        self.lens[l] -= 1;
    }

    /// Remove and return the tail of list `l`.
    pub fn pop_tail(&mut self, l: u8) -> Option<u32> {
        let t = self.ends[l as usize][1];
        (t != NONE).then(|| {
            self.unlink(t);
            t
        })
    }

    /// Move `id`, in list `l`, to its head.
    pub fn move_to_head(&mut self, l: u8, id: u32) {
        if self.ends[l as usize][0] != id {
            self.unlink(id);
            self.push_head(l, id);
        }
    }
}

/// The pages in use in a serving run (pinned: cached but not evictable).
#[derive(Debug, Clone, Default)]
pub struct Pins {
    pinned: Vec<bool>,
    count: usize,
}

impl Pins {
    /// Is `page` pinned?
    pub fn is_pinned(&self, page: u32) -> bool {
        self.pinned.get(page as usize).copied().unwrap_or(false)
    }

    /// Pin `page`; returns false if it already was.
    pub fn pin(&mut self, page: u32) -> bool {
        if page as usize >= self.pinned.len() {
            self.pinned.resize(page as usize + 1, false);
        }
        let was = std::mem::replace(&mut self.pinned[page as usize], true);
        self.count += usize::from(!was);
        !was
    }

    /// Unpin `page`; returns false if it was not pinned.
    pub fn unpin(&mut self, page: u32) -> bool {
        let was = self.is_pinned(page);
        if was {
            self.pinned[page as usize] = false;
            self.count -= 1;
        }
        was
    }

    /// Pinned pages.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when no page is pinned.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// A heap-keyed cache whose victim is the evictable page with the largest key, for the
/// reused pages of Belady and follow-the-prediction (`policies/furthest.rs`); pages in use
/// sit aside until they are set evictable again with a fresh key. A key is a pair of
/// integers compared in order (an order-preserving encoding of the policy's key, see
/// [`ordered_f64`], then a tie-breaker), and the keys of the evictable pages must be
/// distinct, so that the victim is the same whatever the heap's shape.
///
/// Cost. The evictable pages are in a binary heap with lazy deletion: taking a page out of
/// the order (pin, remove, a new key) only marks it, and its stale entry is dropped when it
/// reaches the top or when stale entries outnumber live ones (a rebuild, amortized O(1)).
/// So `pin` and `remove` are O(1), `set` is a heap push (O(1) on average, O(log n) at
/// worst) and `pop` an O(log n) pop per entry, without the position bookkeeping of an
/// indexed heap.
#[derive(Debug, Clone, Default)]
pub struct KeyedCache {
    heap: std::collections::BinaryHeap<KeyedEntry>,
    /// Per page: the key of its live entry, or [`NOT_EVICTABLE`].
    live: Vec<(u64, u64)>,
    evictable: usize,
    pins: Pins,
}

/// The `live` key of a page that is not evictable (no policy key: the tie-breaker of a real
/// key is below `u64::MAX`).
const NOT_EVICTABLE: (u64, u64) = (u64::MAX, u64::MAX);

/// Fewest heap entries worth a rebuild of a [`KeyedCache`].
const MIN_KEYED_REBUILD: usize = 1024;

/// One entry of a [`KeyedCache`]'s heap (ordered by key, then page): live while the page's
/// live key is `key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct KeyedEntry {
    key: (u64, u64),
    page: u32,
}

/// An encoding of `x` (not NaN) as an integer in the same order (`-0.0` just below `0.0`).
#[inline]
pub fn ordered_f64(x: f64) -> u64 {
    let b = x.to_bits();
    if b >> 63 == 1 {
        !b
    } else {
        b | 1 << 63
    }
}

impl KeyedCache {
    /// Cached pages, in use or not.
    pub fn len(&self) -> usize {
        self.evictable + self.pins.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Is `page` cached?
    pub fn contains(&self, page: u32) -> bool {
        self.is_evictable(page) || self.pins.is_pinned(page)
    }

    /// Is `page` cached and evictable?
    #[inline]
    pub fn is_evictable(&self, page: u32) -> bool {
        self.live
            .get(page as usize)
            .is_some_and(|&k| k != NOT_EVICTABLE)
    }

    /// Is `page` cached and in use?
    pub fn is_pinned(&self, page: u32) -> bool {
        self.pins.is_pinned(page)
    }

    /// Heap entries, live or stale (what the memory grows with).
    pub fn entries(&self) -> usize {
        self.heap.len()
    }

    /// Take evictable `page` out of the order (its entry goes stale).
    fn unmark(&mut self, page: u32) {
        if self.is_evictable(page) {
            self.live[page as usize] = NOT_EVICTABLE;
            self.evictable -= 1;
        }
    }

    /// Cache `page` evictable with `key` (distinct from every other evictable page's, and
    /// with a tie-breaker below `u64::MAX`), or change the key of an evictable page.
    pub fn set(&mut self, page: u32, key: (u64, u64)) {
        debug_assert!(!self.pins.is_pinned(page) && key.1 != u64::MAX);
        if page as usize >= self.live.len() {
            self.live.resize(page as usize + 1, NOT_EVICTABLE);
        }
        self.unmark(page);
        if self.heap.len() >= MIN_KEYED_REBUILD && self.heap.len() > 2 * self.evictable {
            let live = &self.live;
            self.heap.retain(|e| live[e.page as usize] == e.key);
        }
        self.live[page as usize] = key;
        self.evictable += 1;
        self.heap.push(KeyedEntry { key, page });
    }

    /// Cache `page` in use.
    pub fn insert_pinned(&mut self, page: u32) {
        self.pins.pin(page);
    }

    /// Take evictable `page` out of the eviction order while it is in use.
    pub fn pin(&mut self, page: u32) {
        if self.is_evictable(page) {
            self.unmark(page);
            self.pins.pin(page);
        }
    }

    /// Remove and return the evictable page with the largest key.
    pub fn pop(&mut self) -> Option<u32> {
        while let Some(e) = self.heap.pop() {
            if self.live[e.page as usize] == e.key {
                self.unmark(e.page);
                return Some(e.page);
            }
        }
        None
    }

    /// Forget `page`, in use or not.
    pub fn remove(&mut self, page: u32) {
        self.unmark(page);
        self.pins.unpin(page);
    }
}

/// A set of integers below a fixed bound with O(1) insert and removal and a fast search
/// for the next member at or after a point (a bit per element and a bit per non-empty
/// word of 64).
#[derive(Debug, Clone, Default)]
pub struct BitSet {
    words: Vec<u64>,
    summary: Vec<u64>,
    len: usize,
}

impl BitSet {
    /// An empty set for members below `n`.
    pub fn new(n: usize) -> Self {
        let words = n.div_ceil(64);
        BitSet {
            words: vec![0; words],
            summary: vec![0; words.div_ceil(64)],
            len: 0,
        }
    }

    /// Members.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Make room for members below `n`.
    pub fn grow(&mut self, n: usize) {
        let words = n.div_ceil(64);
        if words > self.words.len() {
            self.words.resize(words, 0);
            self.summary.resize(words.div_ceil(64), 0);
        }
    }

    /// Is `i` a member?
    pub fn contains(&self, i: u32) -> bool {
        let i = i as usize;
        self.words
            .get(i / 64)
            .is_some_and(|w| w >> (i % 64) & 1 == 1)
    }

    /// Add `i`; returns false if it was a member.
    pub fn insert(&mut self, i: u32) -> bool {
        let i = i as usize;
        let (w, b) = (i / 64, 1u64 << (i % 64));
        if self.words[w] & b != 0 {
            return false;
        }
        self.words[w] |= b;
        self.summary[w / 64] |= 1 << (w % 64);
        self.len += 1;
        true
    }

    /// Remove `i`; returns false if it was not a member.
    pub fn remove(&mut self, i: u32) -> bool {
        let i = i as usize;
        let (w, b) = (i / 64, 1u64 << (i % 64));
        if self.words.get(w).is_none_or(|&x| x & b == 0) {
            return false;
        }
        self.words[w] &= !b;
        if self.words[w] == 0 {
            self.summary[w / 64] &= !(1 << (w % 64));
        }
        self.len -= 1;
        true
    }

    /// The smallest member at or after `from`, if any.
    pub fn next_at_or_after(&self, from: u32) -> Option<u32> {
        let from = from as usize;
        let w = from / 64;
        if w >= self.words.len() {
            return None;
        }
        let here = self.words[w] & (!0u64 << (from % 64));
        if here != 0 {
            return Some((w * 64 + here.trailing_zeros() as usize) as u32);
        }
        // The next non-empty word after `w`.
        let next = w + 1;
        let mut s = next / 64;
        let mut mask = !0u64 << (next % 64);
        while s < self.summary.len() {
            let m = self.summary[s] & mask;
            if m != 0 {
                let w = s * 64 + m.trailing_zeros() as usize;
                return Some((w * 64 + self.words[w].trailing_zeros() as usize) as u32);
            }
            s += 1;
            mask = !0;
        }
        None
    }

    /// The smallest member at or after `from`, else the smallest member (wrapping around).
    pub fn next_cyclic(&self, from: u32) -> Option<u32> {
        self.next_at_or_after(from)
            .or_else(|| self.next_at_or_after(0))
    }
}

/// Pages in insertion order, each a member of any of `N` sets, with O(1) insertion and
/// removal and a fast search for a set's earliest-inserted member. Insertion numbers are
/// slots of one [`BitSet`] per set; when the slots run out, the pages still present are
/// renumbered in order (amortized O(1) per insertion), so the order never changes.
#[derive(Debug, Clone)]
pub struct SeqSets<const N: usize> {
    sets: [BitSet; N],
    /// Slot to page ([`NONE`]: the page left).
    page_at: Vec<u32>,
    /// Page to slot ([`NONE`]: absent).
    slot_of: Vec<u32>,
    next: u32,
    live: usize,
    /// Per set: no member lies below this slot.
    low: [u32; N],
}

impl<const N: usize> Default for SeqSets<N> {
    fn default() -> Self {
        SeqSets {
            sets: std::array::from_fn(|_| BitSet::default()),
            page_at: Vec::new(),
            slot_of: Vec::new(),
            next: 0,
            live: 0,
            low: [0; N],
        }
    }
}

impl<const N: usize> SeqSets<N> {
    /// Pages present (in any set or none).
    pub fn len(&self) -> usize {
        self.live
    }

    /// True when no page is present.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Members of set `set`.
    pub fn set_len(&self, set: usize) -> usize {
        self.sets[set].len()
    }

    /// The slot of `page`, if present.
    pub fn slot(&self, page: u32) -> Option<u32> {
        self.slot_of
            .get(page as usize)
            .copied()
            .filter(|&s| s != NONE)
    }

    /// The page at `slot`.
    pub fn page_at(&self, slot: u32) -> u32 {
        self.page_at[slot as usize]
    }

    /// Is `page` present?
    pub fn contains(&self, page: u32) -> bool {
        self.slot(page).is_some()
    }

    /// Is `page` present and a member of `set`?
    pub fn in_set(&self, set: usize, page: u32) -> bool {
        self.slot(page).is_some_and(|s| self.sets[set].contains(s))
    }

    /// Append `page` (absent) as the newest, in no set. May renumber the slots.
    pub fn push(&mut self, page: u32) {
        if self.next as usize >= self.page_at.len() {
            self.renumber();
        }
        let s = self.next;
        self.next += 1;
        self.page_at[s as usize] = page;
        grow(&mut self.slot_of, page, NONE);
        debug_assert_eq!(self.slot_of[page as usize], NONE);
        self.slot_of[page as usize] = s;
        self.live += 1;
    }

    fn renumber(&mut self) {
        let cap = (2 * self.live).max(1024);
        let mut sets: [BitSet; N] = std::array::from_fn(|_| BitSet::new(cap));
        let mut at = vec![NONE; cap];
        let mut n = 0u32;
        for (old, &p) in self.page_at[..self.next as usize].iter().enumerate() {
            if p == NONE {
                continue;
            }
            at[n as usize] = p;
            self.slot_of[p as usize] = n;
            for (new, set) in sets.iter_mut().zip(&self.sets) {
                if set.contains(old as u32) {
                    new.insert(n);
                }
            }
            n += 1;
        }
        self.sets = sets;
        self.page_at = at;
        self.next = n;
        self.low = [0; N];
    }

    /// Add present `page` to `set`; returns false if it was a member.
    #[inline]
    pub fn insert(&mut self, set: usize, page: u32) -> bool {
        let s = self.slot_of[page as usize];
        self.low[set] = self.low[set].min(s);
        self.sets[set].insert(s)
    }

    /// Take present `page` out of `set`; returns false if it was not a member.
    #[inline]
    pub fn remove(&mut self, set: usize, page: u32) -> bool {
        let s = self.slot_of[page as usize];
        self.sets[set].remove(s)
    }

    /// Take `page` out (if present), and out of every set.
    pub fn remove_page(&mut self, page: u32) {
        if let Some(s) = self.slot(page) {
            for set in &mut self.sets {
                set.remove(s);
            }
            self.page_at[s as usize] = NONE;
            self.slot_of[page as usize] = NONE;
            self.live -= 1;
        }
    }

    /// The slot of the earliest-inserted member of `set`.
    pub fn first(&mut self, set: usize) -> Option<u32> {
        let s = self.sets[set].next_at_or_after(self.low[set])?;
        self.low[set] = s;
        Some(s)
    }

    /// The slot of the first member of `set` at or after `slot`.
    pub fn next_at_or_after(&self, set: usize, slot: u32) -> Option<u32> {
        self.sets[set].next_at_or_after(slot)
    }

    /// Slots allocated (what the memory grows with: at most twice the pages present, or
    /// 1024, after a renumbering).
    pub fn capacity(&self) -> usize {
        self.page_at.len()
    }
}

/// Pages in insertion order, each evictable or not (in use): a [`SeqSets`] with one set,
/// the evictable pages.
#[derive(Debug, Clone, Default)]
pub struct SeqQueue {
    seq: SeqSets<1>,
}

impl SeqQueue {
    /// Pages present (evictable or not).
    pub fn len(&self) -> usize {
        self.seq.len()
    }

    /// True when no page is present.
    pub fn is_empty(&self) -> bool {
        self.seq.is_empty()
    }

    /// Evictable pages.
    pub fn evictable_len(&self) -> usize {
        self.seq.set_len(0)
    }

    /// The slot of `page`, if present.
    pub fn slot(&self, page: u32) -> Option<u32> {
        self.seq.slot(page)
    }

    /// The page at `slot`.
    pub fn page_at(&self, slot: u32) -> u32 {
        self.seq.page_at(slot)
    }

    /// Is `page` present?
    pub fn contains(&self, page: u32) -> bool {
        self.seq.contains(page)
    }

    /// Is `page` present and evictable?
    pub fn is_evictable(&self, page: u32) -> bool {
        self.seq.in_set(0, page)
    }

    /// Append `page` (absent) as the newest, evictable or not. May renumber the slots.
    pub fn push(&mut self, page: u32, evictable: bool) {
        self.seq.push(page);
        if evictable {
            self.seq.insert(0, page);
        }
    }

    /// Make present `page` evictable or not; returns false if it already was so.
    pub fn set_evictable(&mut self, page: u32, evictable: bool) -> bool {
        if evictable {
            self.seq.insert(0, page)
        } else {
            self.seq.remove(0, page)
        }
    }

    /// Take `page` out (if present).
    pub fn remove(&mut self, page: u32) {
        self.seq.remove_page(page);
    }

    /// The slot of the oldest evictable page.
    pub fn first(&mut self) -> Option<u32> {
        self.seq.first(0)
    }

    /// The slot of the first evictable page at or after `slot`.
    pub fn next_at_or_after(&self, slot: u32) -> Option<u32> {
        self.seq.next_at_or_after(0, slot)
    }
}

/// Grow `v` to hold index `page`.
pub fn grow<T: Clone>(v: &mut Vec<T>, page: u32, fill: T) {
    if page as usize >= v.len() {
        v.resize(page as usize + 1, fill);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitset_matches_an_ordered_set() {
        use rand::{Rng, SeedableRng};
        use std::collections::BTreeSet;
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for n in [1usize, 63, 64, 65, 4096, 5000, 300_000] {
            let (mut b, mut o) = (BitSet::new(n), BTreeSet::new());
            for _ in 0..3000 {
                let i = rng.gen_range(0..n as u32);
                if rng.gen::<bool>() {
                    assert_eq!(b.insert(i), o.insert(i));
                } else {
                    assert_eq!(b.remove(i), o.remove(&i));
                }
                let f = rng.gen_range(0..n as u32);
                let expect = o.range(f..).next().or_else(|| o.iter().next()).copied();
                assert_eq!(b.next_cyclic(f), expect);
                assert_eq!(b.len(), o.len());
                assert_eq!(b.contains(i), o.contains(&i));
            }
        }
    }

    #[test]
    fn seq_queue_matches_an_ordered_set() {
        use rand::{Rng, SeedableRng};
        use std::collections::BTreeMap;
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let (mut q, mut o) = (SeqQueue::default(), BTreeMap::new());
        let mut seq: Vec<Option<(u64, bool)>> = vec![None; 500];
        let mut t = 0u64;
        for _ in 0..200_000 {
            let p = rng.gen_range(0..500u32);
            match (seq[p as usize], rng.gen_range(0..4)) {
                (None, _) => {
                    t += 1;
                    let e = rng.gen::<bool>();
                    q.push(p, e);
                    seq[p as usize] = Some((t, e));
                    if e {
                        o.insert(t, p);
                    }
                }
                (Some((s, _)), 0) => {
                    q.remove(p);
                    o.remove(&s);
                    seq[p as usize] = None;
                }
                (Some((s, e)), _) => {
                    assert!(q.set_evictable(p, !e));
                    if e {
                        o.remove(&s);
                    } else {
                        o.insert(s, p);
                    }
                    seq[p as usize] = Some((s, !e));
                }
            }
            let first = q.first().map(|s| q.page_at(s));
            assert_eq!(first, o.values().next().copied());
            assert_eq!(q.evictable_len(), o.len());
        }
    }

    #[test]
    fn seq_sets_match_one_ordered_set_per_set() {
        use rand::{Rng, SeedableRng};
        use std::collections::BTreeSet;
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut q = SeqSets::<3>::default();
        // Model: each page's insertion time, and per set the (time, page) members.
        let mut time: Vec<Option<u64>> = vec![None; 400];
        let mut model: [BTreeSet<(u64, u32)>; 3] = Default::default();
        let mut t = 0u64;
        for _ in 0..200_000 {
            let p = rng.gen_range(0..400u32);
            let set = rng.gen_range(0..3usize);
            match (time[p as usize], rng.gen_range(0..5)) {
                (None, _) => {
                    t += 1;
                    q.push(p);
                    time[p as usize] = Some(t);
                }
                (Some(s), 0) => {
                    q.remove_page(p);
                    for m in &mut model {
                        m.remove(&(s, p));
                    }
                    time[p as usize] = None;
                }
                (Some(s), 1 | 2) => {
                    assert_eq!(q.insert(set, p), model[set].insert((s, p)));
                }
                (Some(s), _) => {
                    assert_eq!(q.remove(set, p), model[set].remove(&(s, p)));
                }
            }
            for (i, m) in model.iter().enumerate() {
                let first = q.first(i).map(|s| q.page_at(s));
                assert_eq!(first, m.iter().next().map(|&(_, p)| p));
                assert_eq!(q.set_len(i), m.len());
                assert_eq!(
                    q.in_set(i, p),
                    time[p as usize].is_some_and(|s| m.contains(&(s, p)))
                );
            }
            // The members of a set after `p`, in order, are the model's.
            if let Some(s) = q.slot(p) {
                let after = q.next_at_or_after(set, s + 1).map(|s| q.page_at(s));
                let ts = time[p as usize].unwrap();
                let want = model[set].range((ts + 1, 0)..).next().map(|&(_, p)| p);
                assert_eq!(after, want);
            }
        }
        assert!(t > 4 * 1024 && q.capacity() <= 1024);
    }

    #[test]
    fn dlist_order() {
        let mut l = DList::new(4);
        for i in 0..4 {
            l.push_head(i);
        }
        l.move_to_head(0);
        l.unlink(2);
        assert_eq!(l.pop_tail(), Some(1));
        assert_eq!(l.pop_tail(), Some(3));
        assert_eq!(l.pop_tail(), Some(0));
        assert!(l.is_empty());
    }

    #[test]
    fn list_set_matches_vectors_per_list() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let mut ls = ListSet::<3>::new(10);
        // Model: each list as a vector, head first; states beside.
        let mut model: [Vec<u32>; 3] = Default::default();
        let mut state = [ListSet::<3>::NOWHERE; 200];
        for _ in 0..50_000 {
            let id = rng.gen_range(0..200u32);
            let l = rng.gen_range(0..3u8);
            match (ls.tag(id), rng.gen_range(0..4)) {
                (t, 0 | 1) if t >= 3 => {
                    ls.push_head(l, id);
                    model[l as usize].insert(0, id);
                    state[id as usize] = l;
                }
                (t, 0) if t < 3 => {
                    ls.move_to_head(t, id);
                    let m = &mut model[t as usize];
                    m.retain(|&x| x != id);
                    m.insert(0, id);
                }
                (t, 1) if t < 3 => {
                    ls.unlink(id);
                    model[t as usize].retain(|&x| x != id);
                    state[id as usize] = 7;
                    ls.set_state(id, 7);
                }
                (_, 2) => {
                    let got = ls.pop_tail(l);
                    let want = model[l as usize].pop();
                    assert_eq!(got, want);
                    if let Some(x) = got {
                        state[x as usize] = ListSet::<3>::NOWHERE;
                    }
                }
                _ => {}
            }
            for (l, m) in model.iter().enumerate() {
                assert_eq!(ls.len(l as u8), m.len());
            }
            assert_eq!(ls.tag(id), state[id as usize], "page {id}");
        }
        // The lists read back in order through their tails.
        for (l, m) in model.iter_mut().enumerate() {
            while let Some(want) = m.pop() {
                assert_eq!(ls.pop_tail(l as u8), Some(want));
            }
            assert!(ls.is_empty(l as u8));
        }
    }

    #[test]
    fn keyed_cache_pops_the_largest_key_and_stays_bounded() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut c = KeyedCache::default();
        // Model: per page, None (absent), Some(None) (pinned) or Some(Some(key)).
        let mut model: Vec<Option<Option<(u64, u64)>>> = vec![None; 300];
        let mut t = 0u64;
        for _ in 0..100_000 {
            let p = rng.gen_range(0..300u32);
            t += 1;
            let key = (rng.gen_range(0..20u64), u64::MAX - 1 - t);
            match (model[p as usize], rng.gen_range(0..5)) {
                (None, 0) => {
                    c.insert_pinned(p);
                    model[p as usize] = Some(None);
                }
                (None | Some(Some(_)), 1 | 2) => {
                    c.set(p, key);
                    model[p as usize] = Some(Some(key));
                }
                (Some(Some(_)), 0) => {
                    c.pin(p);
                    model[p as usize] = Some(None);
                }
                (Some(None), 1) => {
                    c.remove(p);
                    c.set(p, key);
                    model[p as usize] = Some(Some(key));
                }
                (Some(_), 3) => {
                    c.remove(p);
                    model[p as usize] = None;
                }
                (_, 4) => {
                    let want = (0..300u32)
                        .filter_map(|q| model[q as usize].flatten().map(|k| (k, q)))
                        .max()
                        .map(|(_, q)| q);
                    assert_eq!(c.pop(), want);
                    if let Some(q) = want {
                        model[q as usize] = None;
                    }
                }
                _ => {}
            }
            let evictable = model.iter().filter(|m| matches!(m, Some(Some(_)))).count();
            let cached = model.iter().filter(|m| m.is_some()).count();
            assert_eq!(c.len(), cached);
            assert_eq!(
                c.is_evictable(p),
                matches!(model[p as usize], Some(Some(_)))
            );
            assert!(c.entries() <= (2 * evictable + 1).max(MIN_KEYED_REBUILD));
        }
    }

    #[test]
    fn ordered_f64_keeps_the_order() {
        let xs = [
            f64::NEG_INFINITY,
            -1e300,
            -2.5,
            -0.0,
            0.0,
            1e-300,
            1.0,
            12031.5,
            f64::MAX,
            f64::INFINITY,
        ];
        for w in xs.windows(2) {
            assert!(ordered_f64(w[0]) < ordered_f64(w[1]), "{} < {}", w[0], w[1]);
        }
    }

    #[test]
    fn bitset_grows_keeping_members() {
        let mut b = BitSet::default();
        b.grow(10);
        b.insert(3);
        b.grow(100_000);
        b.insert(99_999);
        assert!(b.contains(3) && b.contains(99_999) && b.len() == 2);
        assert_eq!(b.next_at_or_after(4), Some(99_999));
        assert_eq!(b.next_at_or_after(0), Some(3));
    }
}
