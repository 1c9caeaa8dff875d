//! What the mixer must be told, given what happens on stage. Sans-IO: stage notices, mixer events
//! and the results of plain-consumer calls go in; [`Action`]s come out for the driver to carry out.
//!
//! One `Broadcast` lives as long as a room's broadcast; a mixer restart is
//! [`Broadcast::mixer_started`] again, which replays the whole stage into the new process (seats
//! in stage order, then one bind per producer), so nothing is remembered only by the dead one.

use std::collections::BTreeMap;

use rostrum_sfu::router::{ParticipantInfo, PlainConsumerInfo};
use rostrum_sfu::{Kind, Notice, ParticipantId, ProducerId, TransportId};

use crate::protocol::{Command, Event, InputSpec, MediaKind};

/// Something the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write this line to the mixer.
    Mixer(Command),
    /// Point a plain consumer of `producer` at the mixer's socket on `127.0.0.1:port`, then call
    /// [`Broadcast::consumed`] (or [`Broadcast::consume_failed`]).
    PlainConsume { producer: ProducerId, port: u16 },
    /// Close a plain consumer the mixer no longer reads.
    ClosePlain { transport: TransportId },
}

#[derive(Debug, Clone)]
struct SeatState {
    name: String,
    video_off: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum InputState {
    /// `bind` sent, waiting for the port.
    Binding,
    /// Plain consumer being opened.
    Consuming,
    /// Flowing: the consumer to close when it goes.
    Added(TransportId),
}

#[derive(Debug, Clone)]
struct ProducerState {
    participant: ParticipantId,
    kind: Kind,
    muted: bool,
    /// `None` while no mixer runs.
    input: Option<InputState>,
}

/// A room's broadcast as the mixer should see it.
#[derive(Debug, Default)]
pub struct Broadcast {
    /// Seats in stage order (ids are random, so the order is kept separately).
    order: Vec<ParticipantId>,
    seats: BTreeMap<ParticipantId, SeatState>,
    producers: BTreeMap<ProducerId, ProducerState>,
    /// A mixer is running and accepts commands.
    running: bool,
}

impl Broadcast {
    pub fn new() -> Self {
        Self::default()
    }

    /// People on stage, in order.
    pub fn seats(&self) -> usize {
        self.order.len()
    }

    /// Who is on stage, in order.
    pub fn seat_ids(&self) -> Vec<String> {
        self.order.iter().map(|p| p.to_string()).collect()
    }

    /// Inputs the mixer is decoding.
    pub fn inputs_flowing(&self) -> usize {
        self.producers
            .values()
            .filter(|p| matches!(p.input, Some(InputState::Added(_))))
            .count()
    }

    /// Replace what we know with the router's roster (start, or after missing events).
    pub fn load_roster(&mut self, roster: &[ParticipantInfo]) -> Vec<Action> {
        let mut out = Vec::new();
        let keep: Vec<ParticipantId> = roster.iter().map(|p| p.id).collect();
        let gone: Vec<ParticipantId> = self
            .order
            .iter()
            .filter(|id| !keep.contains(id))
            .copied()
            .collect();
        for id in gone {
            self.participant_left(id, &mut out);
        }
        for p in roster {
            if !self.seats.contains_key(&p.id) {
                self.participant_joined(p.id, p.name.clone(), &mut out);
            }
            let ids: Vec<ProducerId> = p.producers.iter().map(|x| x.id).collect();
            let stale: Vec<ProducerId> = self
                .producers
                .iter()
                .filter(|(id, s)| s.participant == p.id && !ids.contains(id))
                .map(|(id, _)| *id)
                .collect();
            for id in stale {
                self.producer_removed(id, &mut out);
            }
            for pr in &p.producers {
                if !self.producers.contains_key(&pr.id) {
                    self.producer_added(pr.id, p.id, pr.kind, &mut out);
                }
                self.producer_muted(pr.id, pr.muted, &mut out);
            }
        }
        out
    }

    /// A stage notice about this room.
    pub fn notice(&mut self, notice: &Notice) -> Vec<Action> {
        let mut out = Vec::new();
        match notice {
            Notice::ParticipantJoined { id, name } => {
                self.participant_joined(*id, name.clone(), &mut out)
            }
            Notice::ParticipantLeft { id } => self.participant_left(*id, &mut out),
            Notice::ProducerAdded {
                id,
                participant_id,
                kind,
            } => self.producer_added(*id, *participant_id, *kind, &mut out),
            Notice::ProducerRemoved { id, .. } => self.producer_removed(*id, &mut out),
            Notice::ProducerMuted { id, muted, .. } => self.producer_muted(*id, *muted, &mut out),
            // The driver ends the broadcast on StageEnded; the leaves that follow empty the grid.
            Notice::Offer { .. }
            | Notice::Closed { .. }
            | Notice::StageEnded { .. }
            | Notice::Layers { .. } => {}
        }
        out
    }

    /// A (new) mixer process is ready: tell it the whole stage.
    pub fn mixer_started(&mut self) -> Vec<Action> {
        self.running = true;
        let mut out = Vec::new();
        for id in &self.order {
            let seat = &self.seats[id];
            out.push(Action::Mixer(Command::Seat {
                participant: id.to_string(),
                name: seat.name.clone(),
            }));
            if seat.video_off {
                out.push(Action::Mixer(Command::VideoOff {
                    participant: id.to_string(),
                    off: true,
                }));
            }
        }
        for (id, p) in self.producers.iter_mut() {
            p.input = Some(InputState::Binding);
            out.push(Action::Mixer(Command::Bind {
                input: id.to_string(),
            }));
        }
        out
    }

    /// The mixer is gone (exited, killed, stalled): close every consumer that fed it.
    pub fn mixer_stopped(&mut self) -> Vec<Action> {
        self.running = false;
        let mut out = Vec::new();
        for p in self.producers.values_mut() {
            if let Some(InputState::Added(t)) = p.input.take() {
                out.push(Action::ClosePlain { transport: t });
            }
        }
        out
    }

    /// An event from the mixer.
    pub fn mixer_event(&mut self, event: &Event) -> Vec<Action> {
        let mut out = Vec::new();
        if let Event::Bound { input, port } = event {
            let Ok(id) = input.parse::<ProducerId>() else {
                return out;
            };
            match self.producers.get_mut(&id) {
                Some(p) if p.input == Some(InputState::Binding) => {
                    p.input = Some(InputState::Consuming);
                    out.push(Action::PlainConsume {
                        producer: id,
                        port: *port,
                    });
                }
                // The producer went while the mixer was binding: free its socket.
                _ => out.push(Action::Mixer(Command::Remove {
                    input: input.clone(),
                })),
            }
        }
        out
    }

    /// The plain consumer asked for by [`Action::PlainConsume`] exists.
    pub fn consumed(&mut self, info: &PlainConsumerInfo) -> Vec<Action> {
        let mut out = Vec::new();
        let id = info.producer_id;
        match self.producers.get_mut(&id) {
            Some(p) if p.input == Some(InputState::Consuming) && self.running => {
                p.input = Some(InputState::Added(info.transport_id));
                out.push(Action::Mixer(Command::Add(InputSpec {
                    input: id.to_string(),
                    participant: p.participant.to_string(),
                    kind: match info.kind {
                        Kind::Audio => MediaKind::Audio,
                        Kind::Video => MediaKind::Video,
                    },
                    codec: info.codec.clone(),
                    payload_type: info.payload_type,
                    clock_rate: info.clock_rate,
                    channels: info.channels,
                    ssrc: info.ssrc,
                    fmtp: info.fmtp.clone(),
                })));
            }
            // Removed, or the mixer restarted, meanwhile: the consumer has nobody to feed.
            _ => out.push(Action::ClosePlain {
                transport: info.transport_id,
            }),
        }
        out
    }

    /// The plain consumer could not be opened (the producer went meanwhile): free the socket.
    pub fn consume_failed(&mut self, producer: ProducerId) -> Vec<Action> {
        if let Some(p) = self.producers.get_mut(&producer) {
            if p.input == Some(InputState::Consuming) {
                p.input = None;
            }
        }
        vec![Action::Mixer(Command::Remove {
            input: producer.to_string(),
        })]
    }

    fn participant_joined(&mut self, id: ParticipantId, name: String, out: &mut Vec<Action>) {
        if self.seats.contains_key(&id) {
            return;
        }
        self.order.push(id);
        self.seats.insert(
            id,
            SeatState {
                name: name.clone(),
                video_off: false,
            },
        );
        if self.running {
            out.push(Action::Mixer(Command::Seat {
                participant: id.to_string(),
                name,
            }));
        }
    }

    fn participant_left(&mut self, id: ParticipantId, out: &mut Vec<Action>) {
        let seated = self.seats.remove(&id).is_some();
        self.order.retain(|x| *x != id);
        let theirs: Vec<ProducerId> = self
            .producers
            .iter()
            .filter(|(_, p)| p.participant == id)
            .map(|(pr, _)| *pr)
            .collect();
        for pr in theirs {
            self.producer_removed(pr, out);
        }
        if seated && self.running {
            out.push(Action::Mixer(Command::Unseat {
                participant: id.to_string(),
            }));
        }
    }

    fn producer_added(
        &mut self,
        id: ProducerId,
        participant: ParticipantId,
        kind: Kind,
        out: &mut Vec<Action>,
    ) {
        if self.producers.contains_key(&id) {
            return;
        }
        let input = self.running.then(|| {
            out.push(Action::Mixer(Command::Bind {
                input: id.to_string(),
            }));
            InputState::Binding
        });
        self.producers.insert(
            id,
            ProducerState {
                participant,
                kind,
                muted: false,
                input,
            },
        );
    }

    fn producer_removed(&mut self, id: ProducerId, out: &mut Vec<Action>) {
        let Some(p) = self.producers.remove(&id) else {
            return;
        };
        match p.input {
            Some(InputState::Added(t)) => {
                out.push(Action::ClosePlain { transport: t });
                out.push(Action::Mixer(Command::Remove {
                    input: id.to_string(),
                }));
            }
            // Binding: removed when the port arrives. Consuming: when the consumer does.
            Some(InputState::Binding) | Some(InputState::Consuming) | None => {}
        }
        if p.kind == Kind::Video && p.muted {
            self.set_video_off(p.participant, false, out);
        }
    }

    fn producer_muted(&mut self, id: ProducerId, muted: bool, out: &mut Vec<Action>) {
        let Some(p) = self.producers.get_mut(&id) else {
            return;
        };
        if p.muted == muted {
            return;
        }
        p.muted = muted;
        // A muted audio producer just goes quiet; a muted camera is a placeholder at once.
        if p.kind == Kind::Video {
            let participant = p.participant;
            self.set_video_off(participant, muted, out);
        }
    }

    fn set_video_off(&mut self, participant: ParticipantId, off: bool, out: &mut Vec<Action>) {
        let Some(seat) = self.seats.get_mut(&participant) else {
            return;
        };
        if seat.video_off == off {
            return;
        }
        seat.video_off = off;
        if self.running {
            out.push(Action::Mixer(Command::VideoOff {
                participant: participant.to_string(),
                off,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rostrum_sfu::router::ProducerInfo;

    fn pid(n: u64) -> ParticipantId {
        format!("p-{n:x}").parse().unwrap()
    }
    fn prid(n: u64) -> ProducerId {
        format!("pr-{n:x}").parse().unwrap()
    }
    fn tid(n: u64) -> TransportId {
        format!("t-{n:x}").parse().unwrap()
    }

    fn info(
        producer: ProducerId,
        participant: ParticipantId,
        kind: Kind,
        t: u64,
    ) -> PlainConsumerInfo {
        PlainConsumerInfo {
            transport_id: tid(t),
            producer_id: producer,
            participant_id: participant,
            kind,
            ssrc: 7,
            payload_type: 96,
            codec: "VP8".into(),
            clock_rate: 90_000,
            channels: None,
            fmtp: String::new(),
        }
    }

    fn mixer_cmds(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .map(|a| match a {
                Action::Mixer(c) => c.to_line().trim_end().to_string(),
                Action::PlainConsume { producer, port } => format!("consume {producer} {port}"),
                Action::ClosePlain { transport } => format!("close {transport}"),
            })
            .collect()
    }

    /// Join + publish + bind + consume for one participant with one video producer.
    fn seated_with_video(b: &mut Broadcast, p: u64, pr: u64, port: u16) -> Vec<Action> {
        let mut all = b.notice(&Notice::ParticipantJoined {
            id: pid(p),
            name: format!("n{p}"),
        });
        all.extend(b.notice(&Notice::ProducerAdded {
            id: prid(pr),
            participant_id: pid(p),
            kind: Kind::Video,
        }));
        all.extend(b.mixer_event(&Event::Bound {
            input: prid(pr).to_string(),
            port,
        }));
        all.extend(b.consumed(&info(prid(pr), pid(p), Kind::Video, pr)));
        all
    }

    #[test]
    fn a_join_and_a_publish_become_seat_bind_consume_add() {
        let mut b = Broadcast::new();
        assert!(b.mixer_started().is_empty());
        let a = seated_with_video(&mut b, 1, 1, 40000);
        let lines = mixer_cmds(&a);
        assert_eq!(lines[0], r#"{"op":"seat","participant":"p-1","name":"n1"}"#);
        assert_eq!(lines[1], r#"{"op":"bind","input":"pr-1"}"#);
        assert_eq!(lines[2], "consume pr-1 40000");
        assert!(lines[3].starts_with(
            r#"{"op":"add","input":"pr-1","participant":"p-1","kind":"video","codec":"VP8""#
        ));
        assert_eq!(b.inputs_flowing(), 1);
    }

    #[test]
    fn leaving_closes_consumers_removes_inputs_and_unseats() {
        let mut b = Broadcast::new();
        b.mixer_started();
        seated_with_video(&mut b, 1, 1, 40000);
        let a = b.notice(&Notice::ParticipantLeft { id: pid(1) });
        assert_eq!(
            mixer_cmds(&a),
            vec![
                "close t-1".to_string(),
                r#"{"op":"remove","input":"pr-1"}"#.into(),
                r#"{"op":"unseat","participant":"p-1"}"#.into()
            ]
        );
        assert_eq!(b.seats(), 0);
        assert_eq!(b.inputs_flowing(), 0);
    }

    #[test]
    fn a_restart_replays_the_stage_in_order_and_closes_old_consumers() {
        let mut b = Broadcast::new();
        b.mixer_started();
        seated_with_video(&mut b, 2, 1, 40000);
        seated_with_video(&mut b, 1, 2, 40002);
        b.notice(&Notice::ProducerMuted {
            id: prid(2),
            participant_id: pid(1),
            kind: Kind::Video,
            muted: true,
        });
        let stop = b.mixer_stopped();
        assert_eq!(mixer_cmds(&stop), vec!["close t-1", "close t-2"]);
        let start = mixer_cmds(&b.mixer_started());
        assert_eq!(
            start,
            vec![
                r#"{"op":"seat","participant":"p-2","name":"n2"}"#,
                r#"{"op":"seat","participant":"p-1","name":"n1"}"#,
                r#"{"op":"video-off","participant":"p-1","off":true}"#,
                r#"{"op":"bind","input":"pr-1"}"#,
                r#"{"op":"bind","input":"pr-2"}"#,
            ]
        );
    }

    #[test]
    fn muting_the_camera_is_video_off_and_audio_mute_is_silent() {
        let mut b = Broadcast::new();
        b.mixer_started();
        seated_with_video(&mut b, 1, 1, 40000);
        b.notice(&Notice::ProducerAdded {
            id: prid(9),
            participant_id: pid(1),
            kind: Kind::Audio,
        });
        let mute = |id, kind, muted| Notice::ProducerMuted {
            id: prid(id),
            participant_id: pid(1),
            kind,
            muted,
        };
        assert!(b.notice(&mute(9, Kind::Audio, true)).is_empty());
        assert_eq!(
            mixer_cmds(&b.notice(&mute(1, Kind::Video, true))),
            vec![r#"{"op":"video-off","participant":"p-1","off":true}"#]
        );
        assert!(
            b.notice(&mute(1, Kind::Video, true)).is_empty(),
            "idempotent"
        );
        assert_eq!(
            mixer_cmds(&b.notice(&mute(1, Kind::Video, false))),
            vec![r#"{"op":"video-off","participant":"p-1","off":false}"#]
        );
    }

    #[test]
    fn races_with_the_mixer_free_what_nobody_uses() {
        let mut b = Broadcast::new();
        b.mixer_started();
        b.notice(&Notice::ParticipantJoined {
            id: pid(1),
            name: "a".into(),
        });
        b.notice(&Notice::ProducerAdded {
            id: prid(1),
            participant_id: pid(1),
            kind: Kind::Video,
        });
        // Gone before the port arrived: the socket is freed.
        b.notice(&Notice::ProducerRemoved {
            id: prid(1),
            participant_id: pid(1),
        });
        let a = b.mixer_event(&Event::Bound {
            input: prid(1).to_string(),
            port: 1,
        });
        assert_eq!(mixer_cmds(&a), vec![r#"{"op":"remove","input":"pr-1"}"#]);
        // Gone while consuming: the consumer is closed when it arrives.
        b.notice(&Notice::ProducerAdded {
            id: prid(2),
            participant_id: pid(1),
            kind: Kind::Video,
        });
        b.mixer_event(&Event::Bound {
            input: prid(2).to_string(),
            port: 2,
        });
        b.notice(&Notice::ProducerRemoved {
            id: prid(2),
            participant_id: pid(1),
        });
        let a = b.consumed(&info(prid(2), pid(1), Kind::Video, 2));
        assert_eq!(mixer_cmds(&a), vec!["close t-2"]);
        // A bogus port event for an input nobody asked for is removed, not consumed.
        let a = b.mixer_event(&Event::Bound {
            input: "nonsense".into(),
            port: 3,
        });
        assert!(a.is_empty());
    }

    #[test]
    fn nothing_reaches_a_stopped_mixer_but_the_stage_is_remembered() {
        let mut b = Broadcast::new();
        let a = b.load_roster(&[ParticipantInfo {
            id: pid(1),
            name: "a".into(),
            producers: vec![ProducerInfo {
                id: prid(1),
                kind: Kind::Video,
                muted: true,
            }],
        }]);
        assert!(a.is_empty(), "{a:?}");
        let start = mixer_cmds(&b.mixer_started());
        assert_eq!(start.len(), 3, "{start:?}");
        assert!(start[1].contains("video-off"));
        // The roster without them: everything of theirs goes.
        let a = mixer_cmds(&b.load_roster(&[]));
        assert_eq!(a, vec![r#"{"op":"unseat","participant":"p-1"}"#]);
    }
}
