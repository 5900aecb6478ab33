//! CLOCK (second chance): pages sit in a circular buffer of `k` frames with a reference
//! bit set on every hit; the hand clears set bits and evicts the first page whose bit is
//! clear. A new page enters with its bit clear. In serving, the hand passes over frames
//! whose page is in use (they are out of the ring until released).

use crate::paging::util::{BitSet, Pins, NONE};
use crate::paging::{Eviction, Req};

/// CLOCK with one reference bit.
pub struct Clock {
    frames: Vec<u32>,
    referenced: Vec<bool>,
    frame_of: Vec<u32>,
    free: Vec<u32>,
    /// Frames holding an evictable page, in ring order.
    ring: BitSet,
    hand: u32,
    pins: Pins,
}

impl Clock {
    /// A CLOCK cache of `k` frames for page ids below `num_pages`.
    pub fn new(k: usize, num_pages: usize) -> Self {
        Clock {
            frames: vec![NONE; k],
            referenced: vec![false; k],
            frame_of: vec![NONE; num_pages],
            free: (0..k as u32).rev().collect(),
            ring: BitSet::new(k),
            hand: 0,
            pins: Pins::default(),
        }
    }

    fn frame(&self, page: u32) -> Option<usize> {
        self.frame_of
            .get(page as usize)
            .and_then(|&f| (f != NONE).then_some(f as usize))
    }

    /// Put `page` in a free frame, bit clear; returns the frame.
    fn place(&mut self, page: u32) -> u32 {
        let f = self.free.pop().expect("insert into a full CLOCK");
        if page as usize >= self.frame_of.len() {
            self.frame_of.resize(page as usize + 1, NONE);
        }
        self.frames[f as usize] = page;
        self.referenced[f as usize] = false;
        self.frame_of[page as usize] = f;
        f
    }

    /// The next evictable frame at or after `from`, wrapping around.
    fn next_frame(&self, from: u32) -> Option<u32> {
        self.ring.next_cyclic(from)
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
        let f = self.place(r.page);
        self.ring.insert(f);
    }
    fn evict(&mut self, _: &Req) -> u32 {
        let mut h = self
            .next_frame(self.hand)
            .expect("evict from an empty cache");
        while self.referenced[h as usize] {
            self.referenced[h as usize] = false;
            h = self.next_frame(h + 1).expect("non-empty");
        }
        self.hand = (h + 1) % self.frames.len() as u32;
        let page = self.frames[h as usize];
        self.remove(page);
        page
    }
    fn remove(&mut self, page: u32) {
        if let Some(f) = self.frame(page) {
            self.frames[f] = NONE;
            self.frame_of[page as usize] = NONE;
            self.free.push(f as u32);
            self.ring.remove(f as u32);
            self.pins.unpin(page);
        }
    }
    fn len(&self) -> usize {
        self.frames.len() - self.free.len()
    }
    fn contains(&self, page: u32) -> bool {
        self.frame(page).is_some()
    }
    fn serves(&self) -> bool {
        true
    }
    fn insert_pinned(&mut self, r: &Req) {
        self.place(r.page);
        self.pins.pin(r.page);
    }
    fn hit(&mut self, r: &Req) {
        self.find(r);
    }
    fn pin(&mut self, page: u32) {
        if let Some(f) = self.frame(page) {
            if self.ring.remove(f as u32) {
                self.pins.pin(page);
            }
        }
    }
    fn unpin(&mut self, r: &Req) {
        if self.pins.unpin(r.page) {
            let f = self.frame(r.page).expect("cached");
            self.ring.insert(f as u32);
        }
    }
}
