//! Every eviction policy, one file each, and the registry that builds them by name. Adding
//! a policy is one file here and one line in [`REGISTRY`].

mod arc;
mod belady;
mod clock;
mod combine;
mod discard_lru;
mod fifo;
mod ftp;
mod furthest;
mod lfu;
mod lmarker;
mod lnonmarker;
mod lru;
mod mark0;
mod mark_predict;
mod marker;
mod marker_absent_first;
mod marking;
mod pred_marker;
mod s3fifo;
mod sieve;

pub use combine::{Combined, Scheme};

use super::predictor::PredictionKind;
use super::Eviction;
use crate::error::{Error, Result};

/// Parameters every constructor may use.
#[derive(Debug, Clone)]
pub struct PolicyParams {
    /// Cache size in pages.
    pub k: usize,
    /// Page ids are below this (sizes per-page arrays; they grow if exceeded).
    pub num_pages: usize,
    /// Seed of the policy's random choices.
    pub seed: u64,
    /// Bound growth of the deterministic combination.
    pub gamma: f64,
    /// Learning rate of the randomized combination.
    pub eps: f64,
}

impl PolicyParams {
    /// Defaults of the literature: gamma 0.01, eps 0.5.
    pub fn new(k: usize, num_pages: usize, seed: u64) -> Self {
        PolicyParams {
            k,
            num_pages,
            seed,
            gamma: 0.01,
            eps: 0.5,
        }
    }
}

type Build = fn(&PolicyParams) -> Box<dyn Eviction>;

/// A registered policy.
pub struct Entry {
    /// Name on the command line and in scenarios.
    pub name: &'static str,
    /// The kind of predictions it reads, if any.
    pub prediction: Option<PredictionKind>,
    /// Whether its choices are random (averaged over runs).
    pub randomized: bool,
    /// Constructor.
    pub build: Build,
}

fn combined(
    name: &str,
    a: Box<dyn Eviction>,
    b: Box<dyn Eviction>,
    p: &PolicyParams,
    scheme: Scheme,
) -> Box<dyn Eviction> {
    Box::new(Combined::new(
        name.to_string(),
        a,
        b,
        p.k,
        p.num_pages,
        scheme,
        p.seed ^ 0xc0b1,
    ))
}

/// The registry: one line per policy.
pub const REGISTRY: &[Entry] = &[
    Entry {
        name: "lru",
        prediction: None,
        randomized: false,
        build: |p| Box::new(lru::Lru::new(p.num_pages)),
    },
    Entry {
        name: "fifo",
        prediction: None,
        randomized: false,
        build: |p| Box::new(fifo::Fifo::new(p.num_pages)),
    },
    Entry {
        name: "clock",
        prediction: None,
        randomized: false,
        build: |p| Box::new(clock::Clock::new(p.k, p.num_pages)),
    },
    Entry {
        name: "lfu",
        prediction: None,
        randomized: false,
        build: |_| Box::new(lfu::Lfu::new()),
    },
    Entry {
        name: "arc",
        prediction: None,
        randomized: false,
        build: |p| Box::new(arc::Arc::new(p.k, p.num_pages)),
    },
    Entry {
        name: "s3fifo",
        prediction: None,
        randomized: false,
        build: |p| Box::new(s3fifo::S3Fifo::new(p.k, p.num_pages, 0.1, 2)),
    },
    Entry {
        name: "sieve",
        prediction: None,
        randomized: false,
        build: |_| Box::new(sieve::Sieve::new()),
    },
    Entry {
        name: "marker",
        prediction: None,
        randomized: true,
        build: |p| Box::new(marker::Marker::new(p.num_pages, p.seed)),
    },
    Entry {
        name: "belady",
        prediction: None,
        randomized: false,
        build: |p| Box::new(belady::Belady::new(p.num_pages)),
    },
    Entry {
        name: "ftp",
        prediction: Some(PredictionKind::NextRequest),
        randomized: false,
        build: |p| Box::new(ftp::FollowPrediction::new(p.num_pages)),
    },
    Entry {
        name: "predictive-marker",
        prediction: Some(PredictionKind::NextRequest),
        randomized: true,
        build: |p| Box::new(pred_marker::PredictiveMarker::new(p.k, p.num_pages, p.seed)),
    },
    Entry {
        name: "lmarker",
        prediction: Some(PredictionKind::NextRequest),
        randomized: true,
        build: |p| Box::new(lmarker::LMarker::new(p.num_pages, p.seed)),
    },
    Entry {
        name: "lnonmarker",
        prediction: Some(PredictionKind::NextRequest),
        randomized: true,
        build: |p| {
            let core = Box::new(lnonmarker::LNonMarkerCore::new(p.k, p.num_pages, p.seed));
            let marker = Box::new(marker::Marker::new(p.num_pages, p.seed ^ 0x6d61));
            combined(
                "lnonmarker",
                core,
                marker,
                p,
                Scheme::Deterministic { gamma: p.gamma },
            )
        },
    },
    Entry {
        name: "robust-ftp",
        prediction: Some(PredictionKind::NextRequest),
        randomized: true,
        build: |p| {
            let marker = Box::new(marker::Marker::new(p.num_pages, p.seed ^ 0x6d61));
            combined(
                "robust-ftp",
                marker,
                Box::new(ftp::FollowPrediction::new(p.num_pages)),
                p,
                Scheme::Randomized { eps: p.eps },
            )
        },
    },
    Entry {
        name: "switch-ftp",
        prediction: Some(PredictionKind::NextRequest),
        randomized: false,
        build: |p| {
            combined(
                "switch-ftp",
                Box::new(ftp::FollowPrediction::new(p.num_pages)),
                Box::new(lru::Lru::new(p.num_pages)),
                p,
                Scheme::Deterministic { gamma: p.gamma },
            )
        },
    },
    Entry {
        name: "discard-lru",
        prediction: Some(PredictionKind::DiscardBit),
        randomized: false,
        build: |p| Box::new(discard_lru::DiscardLru::new(p.num_pages)),
    },
    Entry {
        name: "robust-discard-lru",
        prediction: Some(PredictionKind::DiscardBit),
        randomized: true,
        build: |p| {
            let marker = Box::new(marker::Marker::new(p.num_pages, p.seed ^ 0x6d61));
            combined(
                "robust-discard-lru",
                marker,
                Box::new(discard_lru::DiscardLru::new(p.num_pages)),
                p,
                Scheme::Randomized { eps: p.eps },
            )
        },
    },
    Entry {
        name: "marker-absent-first",
        prediction: Some(PredictionKind::PhaseBit),
        randomized: true,
        build: |p| {
            Box::new(marker_absent_first::MarkerAbsentFirst::new(
                p.num_pages,
                p.seed,
            ))
        },
    },
    Entry {
        name: "mark0",
        prediction: Some(PredictionKind::DiscardBit),
        randomized: true,
        build: |p| Box::new(mark0::Mark0::new(p.num_pages, p.seed)),
    },
    Entry {
        name: "mark-predict",
        prediction: Some(PredictionKind::PhaseBit),
        randomized: true,
        build: |p| Box::new(mark_predict::MarkPredict::new(p.num_pages, p.seed)),
    },
];

impl Entry {
    /// Whether it reads predictions.
    pub fn uses_predictions(&self) -> bool {
        self.prediction.is_some()
    }

    /// Whether it acts in a serving run ([`Eviction::serves`]).
    pub fn serves(&self) -> bool {
        (self.build)(&PolicyParams::new(2, 0, 0)).serves()
    }
}

/// Names of the policies that act in a serving run ([`Eviction::serves`]).
pub fn serving_names() -> Vec<&'static str> {
    REGISTRY
        .iter()
        .filter(|e| e.serves())
        .map(|e| e.name)
        .collect()
}

/// Names of every policy.
pub fn policy_names() -> Vec<&'static str> {
    REGISTRY.iter().map(|e| e.name).collect()
}

/// The registry entry for `name`.
pub fn entry(name: &str) -> Result<&'static Entry> {
    REGISTRY.iter().find(|e| e.name == name).ok_or_else(|| {
        Error::input(format!(
            "unknown policy `{name}`; known: {}",
            policy_names().join(", ")
        ))
    })
}

/// Build a policy by name.
pub fn make_policy(name: &str, p: &PolicyParams) -> Result<Box<dyn Eviction>> {
    Ok((entry(name)?.build)(p))
}
