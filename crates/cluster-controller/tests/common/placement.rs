//! What the pure planners' table tests share (`tests/plan.rs`, `tests/zones.rs`): peer ids by
//! ordinal, placements by collection name, and the shard operations they expect.

use std::collections::BTreeMap;

use cluster_controller::day2::plan::{CollectionPlacement, Peer, PeerId, ShardOp};

/// Collections by name, as the planners take them.
pub type Placement = BTreeMap<String, CollectionPlacement>;

/// Pod `i` runs peer `100 + i`.
pub fn id(ordinal: u32) -> PeerId {
    100 + u64::from(ordinal)
}

/// Pods `0..n` with their peers ([`id`]).
pub fn peers(n: u32) -> Vec<Peer> {
    (0..n)
        .map(|ordinal| Peer {
            ordinal,
            peer_id: id(ordinal),
        })
        .collect()
}

/// A placement of the named collections.
pub fn placement(cols: Vec<(&str, CollectionPlacement)>) -> Placement {
    cols.into_iter().map(|(n, c)| (n.to_owned(), c)).collect()
}

/// Move shard `shard_id` of `c` from peer `from` to `to`.
pub fn mv(c: &str, shard_id: u32, from: PeerId, to: PeerId) -> ShardOp {
    ShardOp::Move {
        collection: c.to_owned(),
        shard_id,
        from,
        to,
    }
}

/// Copy shard `shard_id` of `c` from peer `from` to `to`.
pub fn rep(c: &str, shard_id: u32, from: PeerId, to: PeerId) -> ShardOp {
    ShardOp::Replicate {
        collection: c.to_owned(),
        shard_id,
        from,
        to,
    }
}
