//! The part Belady and follow-the-prediction share: evict the evictable page whose next
//! request (known, or predicted) is furthest away. Pages never requested again sit in a list
//! (most block contents of a request trace are never reused), the earliest released first;
//! the others in a heap ([`KeyedCache`]) keyed by (next request, minus the time of the last
//! use), so that among equal keys the page used longest ago goes first (in serving, the
//! deeper block of a prompt, which is released first). Every step is O(1) or O(log k). In
//! serving, a page in use cannot be evicted; its key is taken when it is released.

use crate::paging::util::{DList, KeyedCache};
use crate::paging::{Eviction, Req};
use std::marker::PhantomData;

/// Which next request a [`Furthest`] policy reads.
pub trait FurthestKey {
    /// The policy's name.
    const NAME: &'static str;
    /// The key of request `r`, encoded as an integer (larger is later).
    fn key(r: &Req) -> u64;
    /// True when `r` says the page is never requested again.
    fn never(r: &Req) -> bool;
}

/// Evict the page requested furthest in the future.
pub struct Furthest<F: FurthestKey> {
    /// Evictable pages requested again: the furthest on top.
    cache: KeyedCache,
    /// Evictable pages never requested again, the earliest-released at the tail.
    never: DList,
    key: PhantomData<F>,
}

impl<F: FurthestKey> Furthest<F> {
    /// An empty cache.
    pub fn new(num_pages: usize) -> Self {
        Furthest {
            cache: KeyedCache::default(),
            never: DList::new(num_pages),
            key: PhantomData,
        }
    }

    /// Make `page` evictable with the key of request `r`.
    fn place(&mut self, r: &Req) {
        if F::never(r) {
            self.never.push_head(r.page);
        } else {
            // Distinct keys: one request (one `t`) places one page.
            self.cache.set(r.page, (F::key(r), u64::MAX - 1 - r.t));
        }
    }
}

impl<F: FurthestKey> Eviction for Furthest<F> {
    fn name(&self) -> String {
        F::NAME.into()
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
