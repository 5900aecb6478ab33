//! The machines of a cluster as a graph (petgraph): GPUs, each node's NVSwitch, host memory
//! and NIC, and the network between nodes. Edges are links with a bandwidth and a latency.
//! A transfer between two places takes the fastest path through the graph for its size;
//! it moves at the path's narrowest bandwidth after the sum of its latencies.

use crate::hardware::Gpu;
use crate::scenario::LinkSpec;
use petgraph::algo::astar;
use petgraph::graph::{NodeIndex, UnGraph};

/// A place data can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// GPU `gpu` of node `node`.
    Gpu {
        /// Node index.
        node: u32,
        /// GPU index within the node.
        gpu: u32,
    },
    /// A node's NVSwitch.
    NvSwitch(u32),
    /// A node's host memory.
    Host(u32),
    /// A node's network card.
    Nic(u32),
    /// The network fabric.
    Network,
}

/// A link: bandwidth in bytes per second, latency in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    /// Bytes per second, one direction.
    pub bytes_per_s: f64,
    /// Latency, ns.
    pub latency_ns: f64,
}

/// The path a transfer takes: its narrowest bandwidth and total latency.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Route {
    /// Bottleneck bandwidth, bytes per second.
    pub bytes_per_s: f64,
    /// Sum of the latencies, ns.
    pub latency_ns: f64,
    /// Links on the path.
    pub hops: u32,
}

impl Route {
    /// Time to move `bytes` along the route, ns.
    pub fn time_ns(&self, bytes: f64) -> f64 {
        self.latency_ns + bytes / self.bytes_per_s * 1e9
    }
}

/// The cluster's links as an undirected graph.
#[derive(Debug, Clone)]
pub struct Topology {
    graph: UnGraph<Place, Link>,
    gpus_per_node: u32,
    nodes: u32,
}

/// Bytes used to choose between paths (a typical KV block transfer).
const REFERENCE_BYTES: f64 = 1024.0 * 1024.0;

impl Topology {
    /// `nodes` nodes of `gpus_per_node` GPUs. Each GPU has a PCIe link to host memory and,
    /// if it has NVLink, a link to the node's NVSwitch; the NIC hangs off the host's PCIe
    /// root (as fast as the GPU's host link) and joins the network.
    pub fn new(nodes: u32, gpus_per_node: u32, gpu: &Gpu, links: &LinkSpec) -> Topology {
        let mut graph = UnGraph::new_undirected();
        let network = graph.add_node(Place::Network);
        let pcie = Link {
            bytes_per_s: gpu.host_link_bytes_per_s,
            latency_ns: links.pcie_latency_us * 1e3,
        };
        for node in 0..nodes {
            let host = graph.add_node(Place::Host(node));
            let nic = graph.add_node(Place::Nic(node));
            graph.add_edge(host, nic, pcie);
            graph.add_edge(
                nic,
                network,
                Link {
                    bytes_per_s: links.network_gbps * 1e9,
                    latency_ns: links.network_latency_us * 1e3 / 2.0,
                },
            );
            let switch =
                (gpu.nvlink_bytes_per_s > 0.0).then(|| graph.add_node(Place::NvSwitch(node)));
            for g in 0..gpus_per_node {
                let id = graph.add_node(Place::Gpu { node, gpu: g });
                graph.add_edge(id, host, pcie);
                if let Some(sw) = switch {
                    graph.add_edge(
                        id,
                        sw,
                        Link {
                            bytes_per_s: gpu.nvlink_bytes_per_s,
                            latency_ns: links.nvlink_latency_us * 1e3 / 2.0,
                        },
                    );
                }
            }
        }
        Topology {
            graph,
            gpus_per_node,
            nodes,
        }
    }

    /// Nodes in the cluster.
    pub fn nodes(&self) -> u32 {
        self.nodes
    }

    fn index(&self, p: Place) -> Option<NodeIndex> {
        self.graph.node_indices().find(|&i| self.graph[i] == p)
    }

    /// The fastest path between two places for a transfer of about a megabyte, or `None`
    /// if either is not in the cluster. A place to itself is free and infinitely fast.
    pub fn route(&self, from: Place, to: Place) -> Option<Route> {
        let (a, b) = (self.index(from)?, self.index(to)?);
        if a == b {
            return Some(Route {
                bytes_per_s: f64::INFINITY,
                latency_ns: 0.0,
                hops: 0,
            });
        }
        let (_, path) = astar(
            &self.graph,
            a,
            |n| n == b,
            |e| {
                let l = e.weight();
                l.latency_ns + REFERENCE_BYTES / l.bytes_per_s * 1e9
            },
            |_| 0.0,
        )?;
        let mut r = Route {
            bytes_per_s: f64::INFINITY,
            latency_ns: 0.0,
            hops: 0,
        };
        for w in path.windows(2) {
            let e = self
                .graph
                .find_edge(w[0], w[1])
                .expect("consecutive path nodes are linked");
            let l = self.graph[e];
            r.bytes_per_s = r.bytes_per_s.min(l.bytes_per_s);
            r.latency_ns += l.latency_ns;
            r.hops += 1;
        }
        Some(r)
    }

    /// The GPU with global index `i` (GPUs numbered node by node).
    pub fn gpu(&self, i: u32) -> Place {
        Place::Gpu {
            node: i / self.gpus_per_node,
            gpu: i % self.gpus_per_node,
        }
    }

    /// The route between two GPUs by global index.
    pub fn gpu_route(&self, a: u32, b: u32) -> Route {
        self.route(self.gpu(a), self.gpu(b))
            .expect("GPU indices within the cluster")
    }

    /// The route from a GPU to its node's host memory.
    pub fn host_route(&self, gpu: u32) -> Route {
        let node = gpu / self.gpus_per_node;
        self.route(self.gpu(gpu), Place::Host(node))
            .expect("GPU index within the cluster")
    }
}

/// Ring all-reduce of `bytes` over `n` GPUs whose neighbours are joined by `link`:
/// `2 (n - 1) / n * bytes / bandwidth + 2 (n - 1) * latency` (reduce-scatter then
/// all-gather, each `n - 1` steps of `bytes / n`). Zero for one GPU.
pub fn ring_all_reduce_ns(n: u32, bytes: f64, link: &Route) -> f64 {
    if n <= 1 {
        return 0.0;
    }
    let n = n as f64;
    2.0 * (n - 1.0) / n * bytes / link.bytes_per_s * 1e9 + 2.0 * (n - 1.0) * link.latency_ns
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::HardwareSpec;

    fn gpu(name: &str) -> Gpu {
        Gpu::from_spec(&HardwareSpec {
            gpu: name.into(),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn gpus_in_a_node_use_nvlink_and_across_nodes_the_network() {
        let t = Topology::new(2, 8, &gpu("h100-sxm"), &LinkSpec::default());
        let r = t.gpu_route(0, 1);
        assert_eq!(r.hops, 2);
        assert_eq!(r.bytes_per_s, 450e9);
        assert!((r.latency_ns - 2000.0).abs() < 1e-9);
        let r = t.gpu_route(0, 8);
        // GPU -> host -> NIC -> network -> NIC -> host -> GPU.
        assert_eq!(r.hops, 6);
        assert_eq!(r.bytes_per_s, 50e9);
        assert!((r.latency_ns - (4.0 * 5000.0 + 10_000.0)).abs() < 1e-9);
        let h = t.host_route(3);
        assert_eq!((h.hops, h.bytes_per_s), (1, 55e9));
    }

    #[test]
    fn without_nvlink_gpus_meet_in_host_memory() {
        let t = Topology::new(1, 4, &gpu("l40s"), &LinkSpec::default());
        let r = t.gpu_route(0, 3);
        assert_eq!((r.hops, r.bytes_per_s), (2, 25e9));
    }

    #[test]
    fn ring_all_reduce_formula() {
        let link = Route {
            bytes_per_s: 100e9,
            latency_ns: 1000.0,
            hops: 2,
        };
        assert_eq!(ring_all_reduce_ns(1, 1e6, &link), 0.0);
        // n = 4: 2 * 3/4 * 1e6 / 100e9 s = 15 us, plus 6 * 1 us.
        assert!((ring_all_reduce_ns(4, 1e6, &link) - 21_000.0).abs() < 1e-6);
    }
}
