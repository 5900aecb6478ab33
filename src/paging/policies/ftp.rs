//! Follow-the-prediction, also called BlindOracle: evict the cached page whose predicted
//! next request is furthest away. With exact predictions it is Belady's MIN; with wrong
//! ones it has no worst-case guarantee (its cost grows with the prediction error and can
//! be unbounded against OPT), which is why the robust combinations exist. The data
//! structures are [`super::furthest::Furthest`]'s; a page predicted never to return
//! (`f64::MAX`) goes to its list.

use super::furthest::{Furthest, FurthestKey};
use crate::paging::util::ordered_f64;
use crate::paging::Req;

/// Keys by the predicted next use.
pub struct Predicted;

impl FurthestKey for Predicted {
    const NAME: &'static str = "ftp";
    fn key(r: &Req) -> u64 {
        ordered_f64(r.pred)
    }
    fn never(r: &Req) -> bool {
        r.pred == f64::MAX
    }
}

/// Follow the prediction.
pub type FollowPrediction = Furthest<Predicted>;
