//! `Consumer`: one producer forwarded to one receive (or WHEP) transport.

use std::collections::HashMap;

use str0m::media::{MediaKind, Mid, Pt};

use crate::ids::{ConsumerId, ProducerId, TransportId};
use crate::simulcast::VideoOut;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConsumerState {
    /// Waiting for the next offer on its transport.
    Queued,
    /// In an offer the client has not answered yet.
    Negotiating,
    /// Negotiated: packets flow.
    Active,
}

pub(crate) struct Consumer {
    pub id: ConsumerId,
    pub producer: ProducerId,
    pub transport: TransportId,
    pub kind: MediaKind,
    pub mid: Option<Mid>,
    pub state: ConsumerState,
    /// Producer payload type → the payload type this consumer's peer uses for the same codec.
    pub pt_map: HashMap<Pt, Option<Pt>>,
    /// Audio: the producer sequence number of the first packet sent, so ours start at 1.
    pub seq_base: Option<u64>,
    /// Video only: the layer it gets (tile size, hidden, estimate) and its rewriting.
    pub video: Option<VideoOut>,
}
