//! CLOCK (second chance): pages sit in a circular buffer of `k` frames with a reference
//! bit set on every hit; the hand clears set bits and evicts the first page whose bit is
//! clear. A new page enters with its bit clear.

use crate::paging::util::NONE;
use crate::paging::{Eviction, Req};

/// CLOCK with one reference bit.
pub struct Clock {
    frames: Vec<u32>,
    referenced: Vec<bool>,
    frame_of: Vec<u32>,
    free: Vec<u32>,
    hand: usize,
    len: usize,
}

impl Clock {
    /// A CLOCK cache of `k` frames for page ids below `num_pages`.
    pub fn new(k: usize, num_pages: usize) -> Self {
        Clock {
            frames: vec![NONE; k],
            referenced: vec![false; k],
            frame_of: vec![NONE; num_pages],
            free: (0..k as u32).rev().collect(),
            hand: 0,
            len: 0,
        }
    }

    fn frame(&self, page: u32) -> Option<usize> {
        self.frame_of
            .get(page as usize)
            .and_then(|&f| (f != NONE).then_some(f as usize))
    }
}

impl Eviction for Clock {
    fn name(&self) -> String {
        "clock".into()
    }
    fn find(&mut self, r: &Req) -> bool {
        match self.frame(r.page) {
            Some(f) => {
                self.referenced[f] = true;
                true
            }
            None => false,
        }
    }
    fn insert(&mut self, r: &Req) {
        let f = self.free.pop().expect("insert into a full CLOCK");
        if r.page as usize >= self.frame_of.len() {
            self.frame_of.resize(r.page as usize + 1, NONE);
        }
        self.frames[f as usize] = r.page;
        self.referenced[f as usize] = false;
        self.frame_of[r.page as usize] = f;
        self.len += 1;
    }
    fn evict(&mut self, _: &Req) -> u32 {
        assert!(self.len > 0, "evict from an empty cache");
        loop {
            let h = self.hand;
            self.hand = (self.hand + 1) % self.frames.len();
            let page = self.frames[h];
            if page == NONE {
                continue;
            }
            if self.referenced[h] {
                self.referenced[h] = false;
                continue;
            }
            self.remove(page);
            return page;
        }
    }
    fn remove(&mut self, page: u32) {
        if let Some(f) = self.frame(page) {
            self.frames[f] = NONE;
            self.frame_of[page as usize] = NONE;
            self.free.push(f as u32);
            self.len -= 1;
        }
    }
    fn len(&self) -> usize {
        self.len
    }
    fn contains(&self, page: u32) -> bool {
        self.frame(page).is_some()
    }
}
