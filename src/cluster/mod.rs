//! A cluster of engine replicas on one event clock: where they sit on the machines
//! ([`topology`]), how requests are routed to them ([`routers`]), and, with prefill/decode
//! disaggregation, how a prompt's KV moves from a prefill replica to a decode replica
//! (over the links between them, one transfer at a time per prefill replica).

pub mod data_parallel;
pub mod routers;
pub mod topology;

use crate::engine::config::EngineSetup;
use crate::engine::replica::{Replica, Role};
use crate::engine::request::EngineRequest;
use crate::scenario::Scenario;
use data_parallel::{DpBalancer, GroupView};
use routers::{ClusterView, Router};
use topology::{Route, Topology};

/// The replicas as a router sees them, with the token ids of the prompt being routed
/// (an SGLang replica's radix tree is keyed by them; empty for vLLM).
struct ReplicaView<'a> {
    replicas: &'a [Replica],
    tokens: &'a [u64],
    block_size: u32,
}

impl ClusterView for ReplicaView<'_> {
    fn outstanding_tokens(&self, i: usize) -> u64 {
        self.replicas[i].outstanding_tokens()
    }
    fn outstanding_requests(&self, i: usize) -> u64 {
        self.replicas[i].outstanding_requests()
    }
    fn kv_usage(&self, i: usize) -> f64 {
        self.replicas[i].kv_usage()
    }
    fn cached_prefix_blocks(&self, i: usize, hashes: &[u64]) -> usize {
        self.replicas[i].cached_prefix_blocks(hashes, self.tokens, self.block_size)
    }
}

/// Where replicas sit: replica (engine core) `r` holds GPUs `r * g .. (r + 1) * g`
/// (numbered node by node), stage `s` of it the `tp` GPUs from `r * g + s * tp`. With data
/// parallelism the `dp` cores of one deployment are consecutive.
#[derive(Debug, Clone)]
pub struct Placement {
    /// The machines.
    pub topology: Topology,
    /// GPUs per replica.
    pub gpus_per_replica: u32,
    /// Tensor-parallel degree.
    pub tp: u32,
    /// Pipeline stages.
    pub pp: u32,
    /// GPUs per node.
    pub gpus_per_node: u32,
    /// Data-parallel engine cores per deployment.
    pub dp: u32,
}

impl Placement {
    /// Place `deployments` deployments of `setup` (each `data_parallel_size` engine
    /// cores) on as many nodes as they need.
    pub fn new(scenario: &Scenario, setup: &EngineSetup, deployments: u32) -> Placement {
        let g = setup.parallel.gpus();
        let dp = setup.parallel.dp.max(1);
        let per_node = scenario.cluster.gpus_per_node.max(1);
        let nodes = (deployments * dp * g).div_ceil(per_node).max(1);
        Placement {
            topology: Topology::new(nodes, per_node, &setup.gpu, &scenario.cluster.links),
            gpus_per_replica: g,
            tp: setup.parallel.tp,
            pp: setup.parallel.pp,
            gpus_per_node: per_node,
            dp,
        }
    }

    /// The slowest link of the ring through the first GPUs of core `r`'s data-parallel
    /// group (free when the group has one core).
    pub fn core_group_link(&self, r: u32) -> Route {
        let first = r / self.dp * self.dp;
        let gpu = |k: u32| self.first_gpu(first + k % self.dp);
        self.slowest(
            (0..self.dp)
                .map(|k| (gpu(k), gpu(k + 1)))
                .filter(|(a, b)| a != b),
        )
    }

    /// First GPU of replica `r`.
    pub fn first_gpu(&self, r: u32) -> u32 {
        r * self.gpus_per_replica
    }

    /// The slowest neighbour link of replica `r`'s tensor-parallel rings.
    pub fn tp_link(&self, r: u32) -> Route {
        let base = self.first_gpu(r);
        let pairs = (0..self.pp).flat_map(|s| {
            let first = base + s * self.tp;
            (0..self.tp).map(move |k| (first + k, first + (k + 1) % self.tp))
        });
        self.slowest(pairs.filter(|(a, b)| a != b))
    }

    /// Whether each tensor-parallel group of replica `r` lies within one node, so that with
    /// NVLink every pair of its GPUs is joined through the node's NVSwitch.
    pub fn tp_within_node(&self, r: u32) -> bool {
        let base = self.first_gpu(r);
        (0..self.pp).all(|s| {
            let first = base + s * self.tp;
            first / self.gpus_per_node == (first + self.tp - 1) / self.gpus_per_node
        })
    }

    /// The slowest link between consecutive pipeline stages of replica `r`.
    pub fn stage_link(&self, r: u32) -> Route {
        let base = self.first_gpu(r);
        self.slowest((1..self.pp).map(|s| (base + (s - 1) * self.tp, base + s * self.tp)))
    }

    /// The narrowest bandwidth and the longest latency over the routes between these GPU
    /// pairs (free and infinitely fast when there are none).
    fn slowest(&self, pairs: impl Iterator<Item = (u32, u32)>) -> Route {
        let mut worst = Route {
            bytes_per_s: f64::INFINITY,
            latency_ns: 0.0,
            hops: 0,
        };
        for (a, b) in pairs {
            let l = self.topology.gpu_route(a, b);
            worst.bytes_per_s = worst.bytes_per_s.min(l.bytes_per_s);
            worst.latency_ns = worst.latency_ns.max(l.latency_ns);
            worst.hops = worst.hops.max(l.hops);
        }
        worst
    }

    /// Replica `r`'s route to host memory (each GPU copies its own slice in parallel).
    pub fn host_link(&self, r: u32) -> Route {
        self.topology.host_route(self.first_gpu(r))
    }

    /// Whether two replicas start on the same node.
    pub fn same_node(&self, a: u32, b: u32) -> bool {
        self.first_gpu(a) / self.gpus_per_node == self.first_gpu(b) / self.gpus_per_node
    }

    /// The route from replica `from`'s first GPU to replica `to`'s.
    pub fn replica_route(&self, from: u32, to: u32) -> Route {
        self.topology
            .gpu_route(self.first_gpu(from), self.first_gpu(to))
    }

    /// Time to move `bytes_per_gpu` from every GPU of replica `from` to replica `to` along
    /// `route` (their [`Placement::replica_route`]): GPU pairs copy in parallel inside a
    /// node; across nodes the replica's whole KV shares the sending node's NIC.
    pub fn transfer_ns(&self, from: u32, to: u32, route: &Route, bytes_per_gpu: f64) -> f64 {
        let bytes = if self.same_node(from, to) {
            bytes_per_gpu
        } else {
            bytes_per_gpu * self.gpus_per_replica as f64
        };
        route.time_ns(bytes)
    }
}

/// Roles of the replicas a scenario asks for.
pub fn roles(scenario: &Scenario) -> Vec<Role> {
    match &scenario.cluster.disaggregation {
        None => vec![Role::Unified; scenario.cluster.replicas as usize],
        Some(d) => std::iter::repeat_n(Role::Prefill, d.prefill_replicas as usize)
            .chain(std::iter::repeat_n(
                Role::Decode,
                d.decode_replicas as usize,
            ))
            .collect(),
    }
}

/// KV moves between prefill and decode replicas.
#[derive(Debug, Default, Clone)]
pub struct TransferStats {
    /// Transfers completed.
    pub transfers: u64,
    /// Bytes moved (all GPUs of the sending replica).
    pub bytes: f64,
    /// Time on the link, ns, summed.
    pub link_ns: f64,
    /// Time waiting for the link, ns, summed.
    pub queue_ns: f64,
}

/// The replicas, their router and the transfers in flight.
pub struct Cluster {
    /// Replicas by index.
    pub replicas: Vec<Replica>,
    /// The router.
    pub router: Box<dyn Router>,
    /// Where they sit.
    pub placement: Placement,
    /// Replicas that take arriving requests.
    pub entry: Vec<usize>,
    /// Decode replicas (empty without disaggregation).
    pub decode: Vec<usize>,
    /// When each replica's outgoing link is free, ns.
    link_free_at: Vec<u64>,
    /// Requests on the wire, by slot.
    in_flight: Vec<Option<(u32, EngineRequest)>>,
    free_flight: Vec<u32>,
    /// Transfer figures.
    pub transfers: TransferStats,
    /// Routes between replicas, computed once per pair.
    routes: std::collections::HashMap<(u32, u32), Route>,
    bytes_per_token_per_gpu: f64,
    /// Engine cores per deployment (`data_parallel_size`).
    dp: usize,
    /// Cores that step together (a data-parallel group of a mixture-of-experts model), or 1.
    unit: usize,
    balancer: DpBalancer,
    /// Deployments that take arriving requests (with data parallelism).
    entry_groups: Vec<usize>,
    plans: Vec<crate::engine::replica::Planned>,
    /// Token ids of the prompt being routed, for routers that ask SGLang replicas what
    /// they hold ([`Cluster::wants_prompt_tokens`]); the caller fills it before routing.
    pub prompt_tokens: Vec<u64>,
    /// Tokens per block of the hashes routers see.
    block_size: u32,
}

impl Cluster {
    /// Assemble a cluster from built replicas.
    pub fn new(
        replicas: Vec<Replica>,
        router: Box<dyn Router>,
        placement: Placement,
        setup: &EngineSetup,
    ) -> Cluster {
        let entry: Vec<usize> = (0..replicas.len())
            .filter(|&i| replicas[i].role() != Role::Decode)
            .collect();
        let decode: Vec<usize> = (0..replicas.len())
            .filter(|&i| replicas[i].role() == Role::Decode)
            .collect();
        let n = replicas.len();
        let dp = setup.parallel.dp.max(1) as usize;
        let unit = if dp > 1 && setup.shard.moe_layers() > 0 {
            dp
        } else {
            1
        };
        let entry_groups = (0..n / dp)
            .filter(|g| replicas[g * dp].role() != Role::Decode)
            .collect();
        Cluster {
            replicas,
            router,
            placement,
            entry,
            decode,
            link_free_at: vec![0; n],
            in_flight: Vec::new(),
            free_flight: Vec::new(),
            transfers: TransferStats::default(),
            routes: std::collections::HashMap::new(),
            bytes_per_token_per_gpu: setup.memory.block_bytes as f64 / setup.block_size as f64,
            dp,
            unit,
            balancer: DpBalancer::new(n / dp, dp),
            entry_groups,
            plans: Vec::new(),
            prompt_tokens: Vec::new(),
            block_size: setup.block_size,
        }
    }

    /// True when routing reads the prompt's token ids: a router that asks for cached
    /// prefixes over SGLang replicas.
    pub fn wants_prompt_tokens(&self) -> bool {
        self.router.needs_hashes()
            && self.entry.len() > 1
            && self.replicas.iter().any(|r| r.core().sglang().is_some())
    }

    /// Choose a replica among `candidates` for a prompt with these block hashes. With
    /// data parallelism, the router chooses a deployment and vLLM's balancer one of its
    /// cores ([`data_parallel`]).
    pub fn route(&mut self, hashes: &[u64], decode: bool) -> usize {
        if self.dp > 1 {
            let groups = &self.entry_groups;
            let group = if groups.len() == 1 {
                groups[0]
            } else {
                let view = GroupView {
                    cores: &self.replicas,
                    dp: self.dp,
                };
                self.router.route(hashes, &view, groups)
            };
            return self.balancer.pick(group, &self.replicas);
        }
        let c = if decode { &self.decode } else { &self.entry };
        if c.len() == 1 {
            return c[0];
        }
        let view = ReplicaView {
            replicas: &self.replicas,
            tokens: &self.prompt_tokens,
            block_size: self.block_size,
        };
        self.router.route(hashes, &view, c)
    }

    /// Step units: data-parallel groups whose cores step together, else single replicas.
    pub fn units(&self) -> usize {
        self.replicas.len() / self.unit
    }

    /// The step unit replica `i` belongs to.
    pub fn unit_of(&self, i: usize) -> usize {
        i / self.unit
    }

    /// The replicas of step unit `u`.
    pub fn unit_replicas(&self, u: usize) -> std::ops::Range<usize> {
        u * self.unit..(u + 1) * self.unit
    }

    /// Whether unit `u` is idle but has work a step could do.
    pub fn unit_wants_step(&self, u: usize) -> bool {
        let r = &self.replicas[self.unit_replicas(u)];
        !r.iter().any(|c| c.is_busy()) && r.iter().any(|c| c.has_work())
    }

    /// Start a step of unit `u` at `now_ns`; returns when its finish is due. A replica
    /// first fast-forwards the steady decode steps whose events are due before
    /// `horizon_ns`, the next event of the rest of the simulation
    /// ([`Replica::fast_forward`]; data-parallel groups step one by one).
    pub fn start_unit_step(
        &mut self,
        u: usize,
        now_ns: u64,
        horizon_ns: u64,
        rec: &mut crate::sim::recorder::Recorder,
    ) -> crate::error::Result<Option<u64>> {
        if self.unit == 1 {
            let r = &mut self.replicas[u];
            let at = r.fast_forward(now_ns, horizon_ns, rec)?;
            return r.start_step(at, rec);
        }
        let range = self.unit_replicas(u);
        data_parallel::start_group_step(&mut self.replicas[range], now_ns, rec, &mut self.plans)
    }

    /// Start moving a finished prompt from replica `from` to a decode replica at `now_ns`;
    /// returns the slot of the transfer and when it completes.
    pub fn start_transfer(
        &mut self,
        from: usize,
        er: EngineRequest,
        hashes: &[u64],
        now_ns: u64,
    ) -> (u32, u64) {
        let to = self.route(hashes, true);
        let bytes = er.req.input_tokens as f64 * self.bytes_per_token_per_gpu;
        let (a, b) = (from as u32, to as u32);
        let placement = &self.placement;
        let route = *self
            .routes
            .entry((a, b))
            .or_insert_with(|| placement.replica_route(a, b));
        let link = self.placement.transfer_ns(a, b, &route, bytes);
        let start = now_ns.max(self.link_free_at[from]);
        let done = start + (link.ceil() as u64).max(1);
        self.link_free_at[from] = done;
        let t = &mut self.transfers;
        t.transfers += 1;
        t.bytes += bytes * self.placement.gpus_per_replica as f64;
        t.link_ns += link;
        t.queue_ns += (start - now_ns) as f64;
        let slot = match self.free_flight.pop() {
            Some(s) => s,
            None => {
                self.in_flight.push(None);
                self.in_flight.len() as u32 - 1
            }
        };
        self.in_flight[slot as usize] = Some((to as u32, er));
        (slot, done)
    }

    /// Take a completed transfer: the decode replica and the request.
    pub fn finish_transfer(&mut self, slot: u32) -> (usize, EngineRequest) {
        let (to, er) = self.in_flight[slot as usize]
            .take()
            .expect("a transfer completes once");
        self.free_flight.push(slot);
        (to as usize, er)
    }
}
