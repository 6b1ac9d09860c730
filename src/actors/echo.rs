//! An echo WebSocket for protocol conformance testing (the Autobahn cases), compiled only with
//! the `ws-echo` feature. It is served exactly like a participant's socket: the same frame and
//! message limits, the same writer task behind the same bounded queue, the same close codes
//! (`close_for`); only what happens to a message differs (it comes back).

use actix::{Actor, ActorContext, AsyncContext, Context, StreamHandler};
use actix_ws::{AggregatedMessage, ProtocolError};

use super::{
    connection::{Outbound, Outlet},
    participant::{WsLimits, close_for},
};
use crate::domain::session::close_code;

pub struct EchoActor {
    outlet: Outlet,
    limits: std::sync::Arc<WsLimits>,
}

impl EchoActor {
    pub fn new(outlet: Outlet, limits: std::sync::Arc<WsLimits>) -> Self {
        EchoActor { outlet, limits }
    }

    fn close(&mut self, code: u16, reason: &'static str, ctx: &mut Context<Self>) {
        self.outlet.close(code, reason);
        ctx.stop();
    }
}

impl Actor for EchoActor {
    type Context = Context<Self>;
}

impl StreamHandler<Result<AggregatedMessage, ProtocolError>> for EchoActor {
    fn handle(&mut self, item: Result<AggregatedMessage, ProtocolError>, ctx: &mut Context<Self>) {
        match item {
            Ok(AggregatedMessage::Text(text)) if text.len() > self.limits.max_text_bytes => {
                self.close(close_code::TOO_BIG, "message_too_big", ctx)
            }
            Ok(AggregatedMessage::Text(text)) => {
                if self.outlet.text(text).is_err() {
                    self.close(close_code::TOO_SLOW, "too_slow", ctx);
                }
            }
            Ok(AggregatedMessage::Binary(data)) if data.len() > self.limits.max_binary_bytes => {
                self.close(close_code::TOO_BIG, "message_too_big", ctx)
            }
            Ok(AggregatedMessage::Binary(data)) => {
                if self.outlet.send(Outbound::Binary(data)).is_err() {
                    self.close(close_code::TOO_SLOW, "too_slow", ctx);
                }
            }
            Ok(AggregatedMessage::Ping(data)) => {
                let _ = self.outlet.send(Outbound::Pong(data));
            }
            Ok(AggregatedMessage::Pong(_)) => {}
            Ok(AggregatedMessage::Close(_)) => self.close(close_code::NORMAL, "bye", ctx),
            Err(err) => {
                let (code, reason) = close_for(&err);
                self.close(code, reason, ctx);
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Starts the echo actor on a configured message stream.
pub fn spawn(
    stream: impl futures_util::Stream<Item = Result<AggregatedMessage, ProtocolError>> + 'static,
    outlet: Outlet,
    limits: std::sync::Arc<WsLimits>,
) {
    EchoActor::create(move |ctx| {
        ctx.add_stream(stream);
        EchoActor::new(outlet, limits)
    });
}
