//! Belady's MIN, the offline optimum for unit pages: evict the cached page whose next
//! request is furthest in the future. Next uses come from one backward pass over the trace
//! ([`crate::paging::Trace::next_use`]), or in serving from the workload's next-use oracle.
//! Pages never used again sit in a list (most block contents of a request trace are never
//! reused), the others in an indexed heap: every step is O(1) or O(log k). In serving, a
//! page in use cannot be evicted; its next use is taken when it is released.

use crate::paging::util::{DList, KeyedCache};
use crate::paging::{Eviction, Req};

/// Belady / MIN.
pub struct Belady {
    /// Evictable pages next used at some time: key (next use, minus the time of the last
    /// use), the furthest on top; among equal keys the page used longest ago (in serving,
    /// the deeper block of a prompt, which is released first).
    cache: KeyedCache<(u64, i64)>,
    /// Evictable pages never used again, the earliest-released at the tail: evicted first.
    never: DList,
}

impl Belady {
    /// An empty cache.
    pub fn new(num_pages: usize) -> Self {
        Belady {
            cache: KeyedCache::default(),
            never: DList::new(num_pages),
        }
    }

    /// Make `page` evictable with the key of request `r`.
    fn place(&mut self, r: &Req) {
        if r.next_use == crate::paging::NEVER {
            self.never.push_head(r.page);
        } else {
            self.cache.set(r.page, (r.next_use, -(r.t as i64)));
        }
    }
}

impl Eviction for Belady {
    fn name(&self) -> String {
        "belady".into()
    }
    fn find(&mut self, r: &Req) -> bool {
        if !self.contains(r.page) {
            return false;
        }
        self.hit(r);
        true
    }
    fn insert(&mut self, r: &Req) {
        self.place(r);
    }
    fn evict(&mut self, _: &Req) -> u32 {
        self.never
            .pop_tail()
            .or_else(|| self.cache.pop())
            .expect("evict from an empty cache")
    }
    fn remove(&mut self, page: u32) {
        if self.never.contains(page) {
            self.never.unlink(page);
        }
        self.cache.remove(page);
    }
    fn len(&self) -> usize {
        self.cache.len() + self.never.len()
    }
    fn contains(&self, page: u32) -> bool {
        self.never.contains(page) || self.cache.contains(page)
    }
    fn serves(&self) -> bool {
        true
    }
    fn insert_pinned(&mut self, r: &Req) {
        self.cache.insert_pinned(r.page);
    }
    fn hit(&mut self, r: &Req) {
        // An evictable page takes the new key; a page in use gets its key when released.
        if self.never.contains(r.page) {
            self.never.unlink(r.page);
            self.place(r);
        } else if self.cache.is_evictable(r.page) {
            self.cache.remove(r.page);
            self.place(r);
        }
    }
    fn pin(&mut self, page: u32) {
        if self.never.contains(page) {
            self.never.unlink(page);
            self.cache.insert_pinned(page);
        } else {
            self.cache.pin(page);
        }
    }
    fn unpin(&mut self, r: &Req) {
        if self.cache.is_pinned(r.page) {
            self.cache.remove(r.page);
            self.place(r);
        }
    }
}
