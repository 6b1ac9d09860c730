//! `DeviceActor`: one per connected device agent (`/ws/device`). It hands the agent its
//! commands (those waiting since it was last online first), records the agent's answers and
//! telemetry through async store tasks, and asks it to join support sessions as the customer.
//! The registry holds at most one per device: a second connection with the same secret
//! replaces the first (close 4009).

use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, Instant},
};

use actix::prelude::*;
use actix_ws::{AggregatedMessage, ProtocolError};
use chrono::Utc;

use super::{
    connection::{Outbound, Outlet},
    participant::{ErrorBudget, WsLimits},
    protocol::{AgentFrame, DeviceFrame, FrameError, parse_agent_frame},
    registry::Registry,
};
use crate::{
    domain::{
        device::{CommandStatus, Effect, Location},
        ids::{CommandId, DeviceId, SessionId},
        rate::TokenBucket,
        session::close_code,
    },
    store::{CommandRecord, Store},
};

/// Sends a command to the connected agent.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deliver(pub CommandRecord);

/// Asks the agent to join a session as its customer.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RequestSession {
    pub session_id: SessionId,
    pub customer_key: String,
}

/// Sends whatever is queued for the device in the store (told by another node of a cluster).
#[derive(Message)]
#[rtype(result = "()")]
pub struct DeliverPending;

/// The reason text of a close that another node asked for (close reasons are static).
pub fn static_reason(reason: &str) -> &'static str {
    match reason {
        "device_deleted" => "device_deleted",
        "device_released" => "device_released",
        "re_enrolled" => "re_enrolled",
        "replaced" => "replaced",
        "access_revoked" => "access_revoked",
        _ => "closed",
    }
}

/// Closes the agent's connection (replaced, device deleted or moved, shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnect {
    pub code: u16,
    pub reason: &'static str,
}

pub struct DeviceActor {
    device: DeviceId,
    /// This node, in a cluster: the store says which node holds the agent, and other nodes'
    /// connections of the same device are told to close.
    cluster: Option<Arc<crate::cluster::Cluster>>,
    outlet: Outlet,
    limits: Arc<WsLimits>,
    store: Store,
    registry: Arc<Registry>,
    last_heard: Instant,
    errors: ErrorBudget,
    /// Commands handed to this connection (a command is never sent twice on one connection).
    sent: HashSet<CommandId>,
    /// Frames per second from the agent (bursts of twice that).
    frame_rate: TokenBucket,
    /// The newest telemetry of this connection (each write carries all of it).
    telemetry: Telemetry,
    /// Whether telemetry arrived since the last write.
    telemetry_dirty: bool,
    /// Whether a telemetry write is scheduled.
    telemetry_due: bool,
    /// When telemetry was last written from this connection.
    telemetry_written: Option<Instant>,
}

/// The newest telemetry of a device, merged field by field (a frame without a battery keeps
/// the battery of an earlier one).
#[derive(Debug, Clone, Default)]
struct Telemetry {
    battery: Option<u8>,
    location: Option<Location>,
}

/// Telemetry of one device is written at most this often; frames in between only update what
/// the next write holds.
pub const TELEMETRY_EVERY: Duration = Duration::from_secs(5);

impl DeviceActor {
    pub fn new(
        device: DeviceId,
        outlet: Outlet,
        limits: Arc<WsLimits>,
        store: Store,
        registry: Arc<Registry>,
    ) -> Self {
        let frame_rate =
            TokenBucket::per_sec_with_double_burst(f64::from(limits.agent_frames_per_sec));
        Self {
            device,
            cluster: None,
            outlet,
            limits,
            store,
            registry,
            last_heard: Instant::now(),
            errors: ErrorBudget::default(),
            sent: HashSet::new(),
            frame_rate,
            telemetry: Telemetry::default(),
            telemetry_dirty: false,
            telemetry_due: false,
            telemetry_written: None,
        }
    }

    /// Keeps the newest telemetry and schedules its write: at once when nothing was written
    /// for `TELEMETRY_EVERY`, else when that much time has passed since the last write.
    fn coalesce_telemetry(
        &mut self,
        battery: Option<u8>,
        location: Option<Location>,
        ctx: &mut Context<Self>,
    ) {
        if battery.is_some() {
            self.telemetry.battery = battery;
        }
        if location.is_some() {
            self.telemetry.location = location;
        }
        self.telemetry_dirty = true;
        if self.telemetry_due {
            return;
        }
        self.telemetry_due = true;
        let wait = self.telemetry_written.map_or(Duration::ZERO, |at| {
            TELEMETRY_EVERY.saturating_sub(at.elapsed())
        });
        ctx.run_later(wait, |act, _| {
            act.telemetry_due = false;
            if act.telemetry_dirty {
                act.write_telemetry();
            }
        });
    }

    /// Writes the newest telemetry with the time now as last seen (detached: a write in flight
    /// survives the connection). Every write carries all of it and the store refuses one older
    /// than what it holds, so writes that land out of order still leave the newest.
    fn write_telemetry(&mut self) {
        self.telemetry_dirty = false;
        self.telemetry_written = Some(Instant::now());
        let t = self.telemetry.clone();
        let seen = Utc::now();
        let store = self.store.clone();
        let device = self.device;
        actix::spawn(async move {
            if let Err(err) = store
                .record_telemetry(device, t.battery, t.location.as_ref(), seen)
                .await
            {
                tracing::error!(device = %device, error = %err, "telemetry not written");
            }
        });
    }

    /// As a node of a cluster.
    pub fn in_cluster(mut self, cluster: Option<Arc<crate::cluster::Cluster>>) -> Self {
        self.cluster = cluster;
        self
    }

    /// Sends what is queued for the device in the store, oldest first.
    fn deliver_pending(&mut self, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        let device = self.device;
        ctx.spawn(
            async move { store.pending_commands(device).await }
                .into_actor(self)
                .map(|res, act, _| act.deliver_read(res)),
        );
    }

    /// Sends what `pending_commands` read, oldest first.
    fn deliver_read(&mut self, read: crate::store::StoreResult<Vec<CommandRecord>>) {
        match read {
            Ok(commands) => {
                for command in &commands {
                    self.deliver(command);
                }
            }
            Err(err) => {
                tracing::error!(device = %self.device, error = %err, "pending commands not read")
            }
        }
    }

    fn deliver(&mut self, command: &CommandRecord) {
        if command.status.is_final() || !self.sent.insert(command.id) {
            return;
        }
        let frame = DeviceFrame::Command {
            id: command.id.0,
            action: command.action.as_str(),
            params: &command.params,
        }
        .encode();
        if self.outlet.text(frame).is_err() {
            // Not sent: it stays queued for the next connection.
            self.sent.remove(&command.id);
            return;
        }
        tracing::info!(device = %self.device, command = %command.id, action = command.action.as_str(), "command sent");
        let store = self.store.clone();
        let id = command.id;
        // Detached from the actor: a write in flight survives the connection's end.
        actix::spawn(async move {
            if let Err(err) = store.mark_command_sent(id).await {
                tracing::error!(command = %id, error = %err, "command state not written");
            }
        });
    }

    fn refuse(&mut self, err: FrameError, ctx: &mut Context<Self>) {
        if self.errors.spend(self.limits.max_errors_per_minute) {
            self.close(close_code::POLICY_VIOLATION, "too_many_invalid_frames", ctx);
            return;
        }
        let message = err.message();
        let _ = self.outlet.text(
            DeviceFrame::Error {
                code: err.code(),
                message: &message,
            }
            .encode(),
        );
    }

    fn close(&mut self, code: u16, reason: &'static str, ctx: &mut Context<Self>) {
        tracing::info!(device = %self.device, code, reason, "closing device connection");
        self.outlet.close(code, reason);
        ctx.stop();
    }

    fn on_frame(&mut self, frame: AgentFrame, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        let device = self.device;
        match frame {
            AgentFrame::Telemetry { battery, location } => {
                let now = Utc::now();
                let location = match location.map(|l| l.stamped(now)) {
                    Some(None) => {
                        self.refuse(FrameError::Invalid("location out of range".into()), ctx);
                        return;
                    }
                    Some(Some(l)) => Some(l),
                    None => None,
                };
                self.coalesce_telemetry(battery, location, ctx);
            }
            AgentFrame::Ack {
                command_id,
                status,
                result,
            } => {
                let status = CommandStatus::from(status);
                let id = CommandId(command_id);
                let work = async move {
                    let finished = store
                        .finish_command(id, device, status, result.as_ref())
                        .await?;
                    let wiped = finished
                        .as_ref()
                        .is_some_and(|(_, changes)| changes.contains(&Effect::SecretEnded));
                    if finished.is_some() {
                        tracing::info!(device = %device, command = %id, status = status.as_str(), "command answered");
                    }
                    Ok::<_, sqlx::Error>(wiped)
                };
                // Detached: an ack followed at once by a close is still recorded. A wiped
                // device's connection is closed once its secret has ended.
                let addr = ctx.address();
                actix::spawn(async move {
                    match work.await {
                        Ok(true) => addr.do_send(Disconnect {
                            code: close_code::ACCESS_REVOKED,
                            reason: "wiped",
                        }),
                        Ok(false) => {}
                        Err(err) => {
                            tracing::error!(device = %device, error = %err, "command answer not written")
                        }
                    }
                });
            }
        }
    }
}

impl Actor for DeviceActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(old) = self.registry.insert_device(self.device, ctx.address()) {
            old.do_send(Disconnect {
                code: close_code::REPLACED,
                reason: "replaced",
            });
        }
        if self.registry.devices_closed() {
            // Upgraded just before the shutdown began, registered just after its sweep.
            self.close(close_code::GOING_AWAY, "shutdown", ctx);
            return;
        }
        tracing::info!(device = %self.device, "device agent connected");
        let store = self.store.clone();
        let device = self.device;
        let node = self.cluster.as_ref().map(|c| c.node_id().to_string());
        if let (Some(cluster), Some(node)) = (&self.cluster, &node) {
            // A connection of the same device on another node is replaced by this one.
            cluster.publish(crate::cluster::Broadcast::Device {
                device,
                note: crate::cluster::DeviceNote::Replaced { by: node.clone() },
            });
        }
        // Whatever waited while the device was offline goes out first, oldest first.
        ctx.wait(
            async move {
                if let Some(node) = &node
                    && let Err(err) = store.device_agent_at(device, node).await
                {
                    tracing::error!(device = %device, error = %err, "agent's node not written");
                }
                if let Err(err) = store.record_telemetry(device, None, None, Utc::now()).await {
                    tracing::error!(device = %device, error = %err, "last seen not written");
                }
                store.pending_commands(device).await
            }
            .into_actor(self)
            .map(|res, act, _| act.deliver_read(res)),
        );
        ctx.run_interval(self.limits.ping_interval, |act, ctx| {
            if act.last_heard.elapsed() > act.limits.client_timeout {
                tracing::info!(device = %act.device, "agent silent too long; dropping");
                act.outlet.force_close(close_code::GOING_AWAY);
                ctx.stop();
            } else if act.outlet.send(Outbound::Ping).is_err() && act.outlet.is_closed() {
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        self.registry.remove_device(self.device, &ctx.address());
        // Not when a newer connection of the device on this node took its place already.
        if let Some(cluster) = &self.cluster
            && self.registry.device(self.device).is_none()
        {
            let (store, device, node) = (
                self.store.clone(),
                self.device,
                cluster.node_id().to_string(),
            );
            actix::spawn(async move {
                if let Err(err) = store.device_agent_gone(device, &node).await {
                    tracing::error!(device = %device, error = %err, "agent's node not cleared");
                }
            });
        }
        tracing::info!(device = %self.device, "device agent disconnected");
        // Last seen now, with the newest telemetry: nothing is lost with the connection.
        self.write_telemetry();
    }
}

impl StreamHandler<Result<AggregatedMessage, ProtocolError>> for DeviceActor {
    fn handle(&mut self, item: Result<AggregatedMessage, ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        match item {
            Ok(AggregatedMessage::Text(text)) if text.len() > self.limits.max_text_bytes => {
                self.close(close_code::TOO_BIG, "message_too_big", ctx)
            }
            Ok(AggregatedMessage::Text(_)) if !self.frame_rate.try_spend(1.0) => {
                self.refuse(FrameError::RateLimited, ctx)
            }
            Ok(AggregatedMessage::Text(text)) => match parse_agent_frame(&text) {
                Ok(frame) => self.on_frame(frame, ctx),
                Err(err) => self.refuse(err, ctx),
            },
            Ok(AggregatedMessage::Binary(_)) => self.refuse(
                FrameError::Invalid("a device agent sends JSON text frames only".into()),
                ctx,
            ),
            Ok(AggregatedMessage::Ping(data)) => {
                let _ = self.outlet.send(Outbound::Pong(data));
            }
            Ok(AggregatedMessage::Pong(_)) => {}
            Ok(AggregatedMessage::Close(_)) => self.close(close_code::NORMAL, "bye", ctx),
            Err(ProtocolError::Overflow) => self.close(close_code::TOO_BIG, "message_too_big", ctx),
            Err(err) => {
                tracing::debug!(device = %self.device, error = %err, "websocket protocol error");
                self.close(close_code::POLICY_VIOLATION, "protocol_error", ctx);
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Handler<Deliver> for DeviceActor {
    type Result = ();

    fn handle(&mut self, msg: Deliver, _: &mut Self::Context) {
        self.deliver(&msg.0);
    }
}

impl Handler<DeliverPending> for DeviceActor {
    type Result = ();

    fn handle(&mut self, _: DeliverPending, ctx: &mut Self::Context) {
        self.deliver_pending(ctx);
    }
}

impl Handler<RequestSession> for DeviceActor {
    type Result = ();

    fn handle(&mut self, msg: RequestSession, _: &mut Self::Context) {
        tracing::info!(device = %self.device, session = %msg.session_id, "asking the agent to join a session");
        let _ = self.outlet.text(
            DeviceFrame::SessionRequest {
                session_id: msg.session_id.0,
                customer_key: &msg.customer_key,
            }
            .encode(),
        );
    }
}

impl Handler<Disconnect> for DeviceActor {
    type Result = ();

    fn handle(&mut self, msg: Disconnect, ctx: &mut Self::Context) {
        self.close(msg.code, msg.reason, ctx);
    }
}
