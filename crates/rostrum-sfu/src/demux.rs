//! The node's media port is shared by every transport (like mediasoup's WebRtcServer):
//! STUN binding requests name their transport by ICE username; every other datagram is
//! routed by the remote address that STUN taught us.

use std::collections::HashMap;
use std::net::SocketAddr;

use str0m::net::Protocol;

use crate::ids::TransportId;

const STUN_MAGIC: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const ATTR_USERNAME: u16 = 0x0006;

/// The USERNAME of a STUN message, if `data` is one and carries it. Never panics, never allocates.
pub fn stun_username(data: &[u8]) -> Option<&[u8]> {
    if data.len() < 20 || data[0] & 0xC0 != 0 || data[4..8] != STUN_MAGIC {
        return None;
    }
    let declared = u16::from_be_bytes([data[2], data[3]]) as usize;
    let body = data.get(20..20 + declared)?;
    let mut at = 0;
    while at + 4 <= body.len() {
        let typ = u16::from_be_bytes([body[at], body[at + 1]]);
        let len = u16::from_be_bytes([body[at + 2], body[at + 3]]) as usize;
        let value = body.get(at + 4..at + 4 + len)?;
        if typ == ATTR_USERNAME {
            return Some(value);
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    None
}

/// Our side's ufrag: a request to us carries `USERNAME = <our ufrag>:<their ufrag>`.
pub fn local_ufrag(data: &[u8]) -> Option<&str> {
    let user = stun_username(data)?;
    let ours = user.split(|b| *b == b':').next()?;
    std::str::from_utf8(ours).ok()
}

/// Routing table from datagrams to transports.
#[derive(Default)]
pub struct Demux {
    by_ufrag: HashMap<String, TransportId>,
    by_addr: HashMap<(Protocol, SocketAddr), TransportId>,
    addrs_of: HashMap<TransportId, Vec<(Protocol, SocketAddr)>>,
    ufrag_of: HashMap<TransportId, String>,
}

impl Demux {
    pub fn insert(&mut self, tid: TransportId, ufrag: String) {
        self.by_ufrag.insert(ufrag.clone(), tid);
        self.ufrag_of.insert(tid, ufrag);
    }

    pub fn remove(&mut self, tid: TransportId) {
        if let Some(u) = self.ufrag_of.remove(&tid) {
            self.by_ufrag.remove(&u);
        }
        for a in self.addrs_of.remove(&tid).unwrap_or_default() {
            self.by_addr.remove(&a);
        }
    }

    /// Which transport a datagram from `source` belongs to.
    pub fn route(
        &mut self,
        proto: Protocol,
        source: SocketAddr,
        data: &[u8],
    ) -> Option<TransportId> {
        if let Some(tid) = self.by_addr.get(&(proto, source)) {
            return Some(*tid);
        }
        let tid = *self.by_ufrag.get(local_ufrag(data)?)?;
        self.by_addr.insert((proto, source), tid);
        self.addrs_of.entry(tid).or_default().push((proto, source));
        Some(tid)
    }

    pub fn len(&self) -> usize {
        self.ufrag_of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ufrag_of.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding_request(username: &[u8]) -> Vec<u8> {
        let mut attr = vec![0x00, 0x06];
        attr.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attr.extend_from_slice(username);
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        // A PRIORITY attribute first, so the parser must skip one.
        let mut body = vec![0x00, 0x24, 0x00, 0x04, 1, 2, 3, 4];
        body.extend_from_slice(&attr);
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(body.len() as u16).to_be_bytes());
        m.extend_from_slice(&STUN_MAGIC);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&body);
        m
    }

    #[test]
    fn finds_the_local_ufrag() {
        let m = binding_request(b"srv1:cli9");
        assert_eq!(local_ufrag(&m), Some("srv1"));
        assert_eq!(local_ufrag(&m[..m.len() - 3]), None, "truncated");
        assert_eq!(local_ufrag(&[0x80; 40]), None, "RTP is not STUN");
        assert_eq!(local_ufrag(&[]), None);
    }

    #[test]
    fn learns_addresses_from_stun_and_forgets_them() {
        let mut d = Demux::default();
        let tid = TransportId(7);
        d.insert(tid, "srv1".into());
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let dtls = [22u8, 254, 253, 0, 0];
        assert_eq!(
            d.route(Protocol::Udp, a, &dtls),
            None,
            "unknown address, not STUN"
        );
        assert_eq!(
            d.route(Protocol::Udp, a, &binding_request(b"srv1:x")),
            Some(tid)
        );
        assert_eq!(d.route(Protocol::Udp, a, &dtls), Some(tid));
        assert_eq!(
            d.route(Protocol::Tcp, a, &dtls),
            None,
            "protocol is part of the key"
        );
        assert_eq!(
            d.route(Protocol::Udp, a, &binding_request(b"other:x")),
            Some(tid)
        );
        d.remove(tid);
        assert_eq!(d.route(Protocol::Udp, a, &dtls), None);
        assert!(d.is_empty());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(5000))]
        #[test]
        fn stun_parser_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..120)) {
            let _ = local_ufrag(&data);
        }

        #[test]
        fn stun_parser_survives_mutated_requests(flip in 0usize..60, val in proptest::num::u8::ANY) {
            let mut m = binding_request(b"abcd:efgh");
            if flip < m.len() { m[flip] = val; }
            let _ = local_ufrag(&m);
        }
    }
}
