//! SGLang 0.5.23's token-slot allocator, as counts: `TokenToKVPoolAllocator` (page 1,
//! `mem_cache/allocator/token.py`) and `PagedTokenToKVPoolAllocator` (`allocator/paged.py`),
//! both of which hand out whole pages and report `available_size()` in tokens.

/// Free pages of one engine core's KV pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotPool {
    page: u64,
    total_pages: u64,
    free_pages: u64,
}

impl SlotPool {
    /// A pool of `total_tokens` slots, `page` to a page (`num_pages = size // page`).
    pub fn new(total_tokens: u64, page: u64) -> Self {
        let page = page.max(1);
        SlotPool {
            page,
            total_pages: total_tokens / page,
            free_pages: total_tokens / page,
        }
    }

    /// Page size, tokens.
    pub fn page(&self) -> u64 {
        self.page
    }

    /// Slots in the pool, tokens (whole pages).
    pub fn total(&self) -> u64 {
        self.total_pages * self.page
    }

    /// Free slots, tokens (`available_size()`: free pages times the page size).
    pub fn available(&self) -> u64 {
        self.free_pages * self.page
    }

    /// Pages needed to hold `tokens` tokens.
    pub fn pages_for(&self, tokens: u64) -> u64 {
        tokens.div_ceil(self.page)
    }

    /// Take `pages` pages; false (and nothing taken) if fewer are free.
    pub fn alloc(&mut self, pages: u64) -> bool {
        if pages > self.free_pages {
            return false;
        }
        self.free_pages -= pages;
        true
    }

    /// Return `pages` pages.
    pub fn free(&mut self, pages: u64) {
        self.free_pages += pages;
        debug_assert!(self.free_pages <= self.total_pages, "pool over-freed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_whole_pages() {
        let mut p = SlotPool::new(100, 16);
        assert_eq!((p.total(), p.available()), (96, 96));
        assert_eq!(p.pages_for(17), 2);
        assert!(p.alloc(6));
        assert!(!p.alloc(1));
        p.free(2);
        assert_eq!(p.available(), 32);
    }
}
