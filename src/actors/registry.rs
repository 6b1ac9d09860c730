//! Finds the live actors: session id → session actor, invitation id → invitation actor.
//! Read-mostly indexes; the state of a session lives only inside its actor.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use actix::Addr;
use dashmap::DashMap;

use super::{device::DeviceActor, invitation::InvitationActor, session::SessionActor};
use crate::domain::ids::{DeviceId, InvitationId, SessionId};

#[derive(Default)]
pub struct Registry {
    sessions: DashMap<SessionId, Addr<SessionActor>>,
    invitations: DashMap<InvitationId, Addr<InvitationActor>>,
    devices: DashMap<DeviceId, Addr<DeviceActor>>,
    /// Set by the shutdown: device connections that register afterwards close themselves.
    devices_closed: AtomicBool,
}

impl Registry {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn session(&self, id: SessionId) -> Option<Addr<SessionActor>> {
        self.sessions
            .get(&id)
            .map(|a| a.clone())
            .filter(|a| a.connected())
    }

    pub fn insert_session(&self, id: SessionId, addr: Addr<SessionActor>) {
        self.sessions.insert(id, addr);
        metrics::gauge!("broker_live_sessions").set(self.sessions.len() as f64);
    }

    pub fn remove_session(&self, id: SessionId) {
        self.sessions.remove(&id);
        metrics::gauge!("broker_live_sessions").set(self.sessions.len() as f64);
    }

    /// Every live session actor (for shutdown).
    pub fn all_sessions(&self) -> Vec<Addr<SessionActor>> {
        self.sessions.iter().map(|e| e.value().clone()).collect()
    }

    pub fn live_sessions(&self) -> usize {
        self.sessions.len()
    }

    pub fn invitation(&self, id: InvitationId) -> Option<Addr<InvitationActor>> {
        self.invitations
            .get(&id)
            .map(|a| a.clone())
            .filter(|a| a.connected())
    }

    pub fn insert_invitation(&self, id: InvitationId, addr: Addr<InvitationActor>) {
        self.invitations.insert(id, addr);
    }

    pub fn remove_invitation(&self, id: InvitationId) {
        self.invitations.remove(&id);
    }

    /// The connected agent of a device.
    pub fn device(&self, id: DeviceId) -> Option<Addr<DeviceActor>> {
        self.devices
            .get(&id)
            .map(|a| a.clone())
            .filter(|a| a.connected())
    }

    /// Registers a device's agent connection; answers the one it replaces.
    pub fn insert_device(
        &self,
        id: DeviceId,
        addr: Addr<DeviceActor>,
    ) -> Option<Addr<DeviceActor>> {
        let old = self.devices.insert(id, addr);
        metrics::gauge!("broker_connected_devices").set(self.devices.len() as f64);
        old
    }

    /// Forgets a device's connection, unless a newer one replaced it already.
    pub fn remove_device(&self, id: DeviceId, addr: &Addr<DeviceActor>) {
        self.devices.remove_if(&id, |_, current| current == addr);
        metrics::gauge!("broker_connected_devices").set(self.devices.len() as f64);
    }

    /// For the shutdown: from now on no device connection stays (see `devices_closed`);
    /// returns the ones registered so far, to be closed by the caller.
    ///
    /// The flag is set before the map is read, and a device actor reads it after inserting
    /// itself, so each connection is either in the list or sees the flag (the map's shard lock
    /// orders the two).
    pub fn close_devices(&self) -> Vec<Addr<DeviceActor>> {
        self.devices_closed.store(true, Ordering::SeqCst);
        self.devices.iter().map(|e| e.value().clone()).collect()
    }

    /// Whether the shutdown closed device connections (a device registering now must go).
    pub fn devices_closed(&self) -> bool {
        self.devices_closed.load(Ordering::SeqCst)
    }
}
