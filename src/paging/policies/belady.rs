//! Belady's MIN, the offline optimum for unit pages: evict the cached page whose next
//! request is furthest in the future. Next uses come from one backward pass over the trace
//! ([`crate::paging::Trace::next_use`]), or in serving from the workload's next-use oracle.
//! The data structures are [`super::furthest::Furthest`]'s.

use super::furthest::{Furthest, FurthestKey};
use crate::paging::{Req, NEVER};

/// Keys by the true next use.
pub struct NextUse;

impl FurthestKey for NextUse {
    const NAME: &'static str = "belady";
    fn key(r: &Req) -> u64 {
        r.next_use
    }
    fn never(r: &Req) -> bool {
        r.next_use == NEVER
    }
}

/// Belady / MIN.
pub type Belady = Furthest<NextUse>;
