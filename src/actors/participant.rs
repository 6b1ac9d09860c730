//! `ParticipantActor`: one per WebSocket connection. It reads and checks the client's frames,
//! keeps the heartbeat, enforces size and error limits, and reports its departure. It talks
//! only to its session actor; the session writes to the socket through the connection's outlet.

use std::{
    collections::VecDeque,
    sync::Arc,
    time::{Duration, Instant},
};

use actix::prelude::*;
use actix_ws::{AggregatedMessage, ProtocolError};

use super::{
    connection::{Outbound, Outlet},
    messages::{Departed, Evicted, FromClient, Join, JoinRefusal, Joiner, StreamFrame},
    protocol::{ClientFrame, FrameError, ServerFrame, parse_client_frame},
    session::SessionActor,
};
use crate::{
    config::WsSettings,
    domain::{
        ids::ParticipantId,
        rate::TokenBucket,
        session::{Channel, LeaveReason, close_code},
    },
};

/// The per-connection limits, from `[ws]` in the config.
#[derive(Debug, Clone)]
pub struct WsLimits {
    pub ping_interval: Duration,
    pub client_timeout: Duration,
    pub max_text_bytes: usize,
    pub max_binary_bytes: usize,
    pub max_errors_per_minute: usize,
    pub max_chat_chars: usize,
    pub outbound_queue: usize,
    pub chat_per_sec: u32,
    pub binary_bytes_per_sec: u64,
    pub agent_frames_per_sec: u32,
}

impl From<&WsSettings> for WsLimits {
    fn from(s: &WsSettings) -> Self {
        Self {
            ping_interval: Duration::from_secs(s.ping_interval_secs.max(1)),
            client_timeout: Duration::from_secs(s.client_timeout_secs.max(1)),
            max_text_bytes: s.max_text_bytes,
            max_binary_bytes: s.max_binary_bytes,
            max_errors_per_minute: s.max_errors_per_minute as usize,
            max_chat_chars: s.max_chat_chars,
            outbound_queue: s.outbound_queue,
            chat_per_sec: s.chat_per_sec,
            binary_bytes_per_sec: s.binary_bytes_per_sec,
            agent_frames_per_sec: s.agent_frames_per_sec,
        }
    }
}

/// Counts a connection's refused frames over the last minute.
#[derive(Debug, Default)]
pub struct ErrorBudget(VecDeque<Instant>);

impl ErrorBudget {
    /// Records one refused frame; `true` when that makes more than `per_minute` in a minute,
    /// so the connection is to be closed.
    pub fn spend(&mut self, per_minute: usize) -> bool {
        let now = Instant::now();
        while self
            .0
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60))
        {
            self.0.pop_front();
        }
        self.0.push_back(now);
        self.0.len() > per_minute
    }
}

/// Checked once the session has admitted a technician: whether its credential still holds
/// (a logout, deletion or revoke that landed during the upgrade would otherwise slip past the
/// disconnect that was sent before the participant existed).
pub type Recheck = Box<dyn FnOnce() -> futures_util::future::LocalBoxFuture<'static, bool>>;

pub struct ParticipantActor {
    session: Addr<SessionActor>,
    recheck: Option<Recheck>,
    joiner: Option<Joiner>,
    outlet: Outlet,
    limits: Arc<WsLimits>,
    participant: Option<ParticipantId>,
    last_heard: Instant,
    errors: ErrorBudget,
    /// Chat messages per second (bursts of twice that).
    chat_rate: TokenBucket,
    /// Binary stream bytes per second (bursts of twice that).
    byte_rate: TokenBucket,
    /// Frames refused by the traffic limits within the last minute.
    rate_refusals: ErrorBudget,
    /// Set once the session knows this participant is gone (no second `Departed`).
    done: bool,
}

impl ParticipantActor {
    pub fn new(
        session: Addr<SessionActor>,
        joiner: Joiner,
        outlet: Outlet,
        limits: Arc<WsLimits>,
    ) -> Self {
        let chat_rate = TokenBucket::per_sec_with_double_burst(f64::from(limits.chat_per_sec));
        let byte_rate = TokenBucket::per_sec_with_double_burst(limits.binary_bytes_per_sec as f64);
        Self {
            session,
            recheck: None,
            joiner: Some(joiner),
            outlet,
            limits,
            participant: None,
            last_heard: Instant::now(),
            errors: ErrorBudget::default(),
            chat_rate,
            byte_rate,
            rate_refusals: ErrorBudget::default(),
            done: false,
        }
    }

    /// Re-checks the connection's credential right after it joined.
    pub fn with_recheck(mut self, recheck: Recheck) -> Self {
        self.recheck = Some(recheck);
        self
    }

    /// Tells the session this participant is gone (once) and stops.
    fn depart(&mut self, reason: LeaveReason, ctx: &mut Context<Self>) {
        if !self.done {
            self.done = true;
            if let Some(pid) = self.participant {
                self.session.do_send(Departed {
                    participant: pid,
                    from: ctx.address(),
                    reason,
                });
            }
        }
        ctx.stop();
    }

    /// Closes the socket with a protocol error code and departs.
    fn close_with(&mut self, code: u16, reason: &'static str, ctx: &mut Context<Self>) {
        tracing::info!(participant = ?self.participant, code, reason, "closing connection");
        self.outlet.close(code, reason);
        self.depart(LeaveReason::Disconnected, ctx);
    }

    /// Answers a malformed frame with an `error` frame; too many within a minute close the
    /// connection with 1008.
    fn refuse(&mut self, err: FrameError, ctx: &mut Context<Self>) {
        if self.errors.spend(self.limits.max_errors_per_minute) {
            self.close_with(close_code::POLICY_VIOLATION, "too_many_invalid_frames", ctx);
            return;
        }
        let text = ServerFrame::Error {
            code: err.code(),
            message: &err.message(),
        }
        .encode();
        let _ = self.outlet.text(text);
    }

    /// Refuses a frame beyond the connection's traffic limits with `error` `rate_limited`
    /// (not relayed, not in the report); the 20th refusal within a minute closes with 1008.
    fn refuse_rate(&mut self, ctx: &mut Context<Self>) {
        if self.rate_refusals.spend(self.limits.max_errors_per_minute) {
            self.close_with(close_code::POLICY_VIOLATION, "too_many_refusals", ctx);
            return;
        }
        let text = ServerFrame::Error {
            code: "rate_limited",
            message: "too much traffic on this connection; slow down",
        }
        .encode();
        let _ = self.outlet.text(text);
    }

    fn on_text(&mut self, text: &str, ctx: &mut Context<Self>) {
        if text.len() > self.limits.max_text_bytes {
            self.close_with(close_code::TOO_BIG, "message_too_big", ctx);
            return;
        }
        let Some(pid) = self.participant else { return };
        match parse_client_frame(text) {
            Ok(ClientFrame::Chat { text }) if text.trim().is_empty() => {
                self.refuse(FrameError::Invalid("chat text is empty".into()), ctx)
            }
            Ok(ClientFrame::Chat { text }) if text.chars().count() > self.limits.max_chat_chars => {
                self.refuse(
                    FrameError::Invalid(format!(
                        "chat text is longer than {} characters",
                        self.limits.max_chat_chars
                    )),
                    ctx,
                )
            }
            Ok(ClientFrame::Chat { .. }) if !self.chat_rate.try_spend(1.0) => self.refuse_rate(ctx),
            Ok(frame) => self.session.do_send(FromClient {
                participant: pid,
                frame,
            }),
            Err(err) => self.refuse(err, ctx),
        }
    }

    fn on_binary(&mut self, data: bytes::Bytes, ctx: &mut Context<Self>) {
        if data.len() > self.limits.max_binary_bytes {
            self.close_with(close_code::TOO_BIG, "message_too_big", ctx);
            return;
        }
        let Some(pid) = self.participant else { return };
        if !self.byte_rate.try_spend(data.len() as f64) {
            self.refuse_rate(ctx);
            return;
        }
        match data.first().copied().and_then(Channel::from_byte) {
            Some(channel) => self.session.do_send(StreamFrame {
                participant: pid,
                channel,
                data,
            }),
            None => self.refuse(
                FrameError::Invalid(
                    "a binary frame starts with its channel: 1 screen, 2 input, 3 file".into(),
                ),
                ctx,
            ),
        }
    }
}

impl Actor for ParticipantActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(joiner) = self.joiner.take() else {
            return;
        };
        let join = Join {
            joiner,
            outlet: self.outlet.clone(),
            addr: ctx.address(),
        };
        // Nothing from the client is processed before the session has admitted it.
        ctx.wait(
            self.session
                .send(join)
                .into_actor(self)
                .map(|res, act, ctx| match res {
                    Ok(Ok(pid)) => {
                        act.participant = Some(pid);
                        if let Some(recheck) = act.recheck.take() {
                            ctx.spawn(recheck().into_actor(act).map(|alive, act, ctx| {
                                if !alive {
                                    tracing::info!(participant = ?act.participant, "credential ended during the upgrade; closing with 4003");
                                    act.outlet.close(close_code::ACCESS_REVOKED, "access_revoked");
                                    act.depart(LeaveReason::Revoked, ctx);
                                }
                            }));
                        }
                    }
                    Ok(Err(JoinRefusal::SessionEnded)) => {
                        let _ = act
                            .outlet
                            .text(ServerFrame::SessionEnded { reason: "ended" }.encode());
                        act.outlet.close(close_code::SESSION_ENDED, "session_ended");
                        act.done = true;
                        ctx.stop();
                    }
                    Ok(Err(JoinRefusal::InviterLeft)) => {
                        act.outlet.close(close_code::INVITER_LEFT, "inviter_left");
                        act.done = true;
                        ctx.stop();
                    }
                    Ok(Err(JoinRefusal::NoPlace)) => {
                        act.outlet.close(close_code::NO_PLACE, "no_place");
                        act.done = true;
                        ctx.stop();
                    }
                    Err(_) => {
                        act.outlet
                            .close(close_code::INTERNAL_ERROR, "session_failed");
                        act.done = true;
                        ctx.stop();
                    }
                }),
        );
        ctx.run_interval(self.limits.ping_interval, |act, ctx| {
            if act.last_heard.elapsed() > act.limits.client_timeout {
                tracing::info!(participant = ?act.participant, "client silent too long; dropping");
                act.outlet.force_close(close_code::GOING_AWAY);
                act.depart(LeaveReason::Disconnected, ctx);
            } else if act.outlet.send(Outbound::Ping).is_err() && act.outlet.is_closed() {
                act.depart(LeaveReason::Disconnected, ctx);
            }
        });
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        if !self.done
            && let Some(pid) = self.participant
        {
            self.session.do_send(Departed {
                participant: pid,
                from: ctx.address(),
                reason: LeaveReason::Disconnected,
            });
        }
    }
}

/// The close code and reason for a frame the WebSocket layer refused: too big (1009), not
/// UTF-8 (1007), anything else that breaks the protocol (1002, RFC 6455 7.4.1; it was 1008
/// until the Autobahn cases showed it). One mapping for every WebSocket the broker serves
/// (and for the conformance echo route).
pub fn close_for(err: &ProtocolError) -> (u16, &'static str) {
    match err {
        ProtocolError::Overflow => (close_code::TOO_BIG, "message_too_big"),
        // actix-http reports reserved bits as InvalidData too (its TODO: a variant of its own).
        ProtocolError::Io(err) if err.to_string().contains("reserved bits") => {
            (close_code::PROTOCOL_ERROR, "protocol_error")
        }
        ProtocolError::Io(err) if err.kind() == std::io::ErrorKind::InvalidData => {
            (close_code::INVALID_PAYLOAD, "invalid_utf8")
        }
        ProtocolError::Io(err) if err.to_string().contains("continuation size") => {
            (close_code::TOO_BIG, "message_too_big")
        }
        _ => (close_code::PROTOCOL_ERROR, "protocol_error"),
    }
}

impl StreamHandler<Result<AggregatedMessage, ProtocolError>> for ParticipantActor {
    fn handle(&mut self, item: Result<AggregatedMessage, ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        match item {
            Ok(AggregatedMessage::Text(text)) => self.on_text(&text, ctx),
            Ok(AggregatedMessage::Binary(data)) => self.on_binary(data, ctx),
            Ok(AggregatedMessage::Ping(data)) => {
                let _ = self.outlet.send(Outbound::Pong(data));
            }
            Ok(AggregatedMessage::Pong(_)) => {}
            Ok(AggregatedMessage::Close(reason)) => {
                // Echo the peer's code (RFC 6455 5.5.1): a client that closed with its own
                // code (say, to start over on a new connection) sees that code, not 1000.
                let code = reason.map_or(close_code::NORMAL, |r| u16::from(r.code));
                self.outlet.close(code, "bye");
                self.depart(LeaveReason::Disconnected, ctx);
            }
            Err(err) => {
                tracing::debug!(participant = ?self.participant, error = %err, "websocket protocol error");
                let (code, reason) = close_for(&err);
                self.close_with(code, reason, ctx);
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        self.depart(LeaveReason::Disconnected, ctx);
    }
}

impl Handler<Evicted> for ParticipantActor {
    type Result = ();

    fn handle(&mut self, _: Evicted, ctx: &mut Self::Context) {
        self.done = true;
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_frames_close_with_the_rfc_codes() {
        let io = |msg: &str| {
            ProtocolError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                msg.to_string(),
            ))
        };
        assert_eq!(close_for(&ProtocolError::Overflow).0, 1009);
        assert_eq!(close_for(&io("invalid utf-8 sequence")).0, 1007);
        assert_eq!(
            close_for(&io("Received a frame with non-zero reserved bits")).0,
            1002
        );
        assert_eq!(close_for(&ProtocolError::InvalidOpcode(3)).0, 1002);
        assert_eq!(close_for(&ProtocolError::UnmaskedFrame).0, 1002);
    }
}
