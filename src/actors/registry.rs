//! Finds the live actors: session id → session actor, invitation id → invitation actor, and
//! the sessions a credential or a user is connected to.
//! Read-mostly indexes; the state of a session lives only inside its actor.

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use actix::Addr;
use dashmap::DashMap;

use super::{device::DeviceActor, invitation::InvitationActor, session::SessionActor};
use crate::domain::ids::{DeviceId, InvitationId, SessionId, UserId};

#[derive(Default)]
pub struct Registry {
    sessions: DashMap<SessionId, Addr<SessionActor>>,
    invitations: DashMap<InvitationId, Addr<InvitationActor>>,
    devices: DashMap<DeviceId, Addr<DeviceActor>>,
    /// Set by the shutdown: device connections that register afterwards close themselves.
    devices_closed: AtomicBool,
    /// Credential → the sessions a connection opened with it joined (a logout or key deletion
    /// reaches exactly those). Entries are added on join and removed when the session ends;
    /// one left after its participant went is harmless (the session finds nobody to close).
    by_credential: DashMap<Arc<str>, HashSet<SessionId>>,
    /// User → the sessions it joined as a technician (deletion, rights changes).
    by_user: DashMap<UserId, HashSet<SessionId>>,
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

    /// The ids of the live session actors (a cluster node compares them with the store).
    pub fn session_ids(&self) -> Vec<SessionId> {
        self.sessions.iter().map(|e| *e.key()).collect()
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

    /// Records that a technician connection of `user`, opened with `credential`, joined
    /// `session`.
    pub fn index_connection(&self, session: SessionId, user: UserId, credential: &Arc<str>) {
        self.by_credential
            .entry(credential.clone())
            .or_default()
            .insert(session);
        self.by_user.entry(user).or_default().insert(session);
    }

    /// Forgets what an ended session indexed.
    pub fn unindex_session(&self, session: SessionId, users: &[UserId], credentials: &[Arc<str>]) {
        for credential in credentials {
            self.by_credential.remove_if_mut(credential, |_, sessions| {
                sessions.remove(&session);
                sessions.is_empty()
            });
        }
        for user in users {
            self.by_user.remove_if_mut(user, |_, sessions| {
                sessions.remove(&session);
                sessions.is_empty()
            });
        }
    }

    /// The live sessions a connection opened with `credential` joined.
    pub fn sessions_with_credential(&self, credential: &str) -> Vec<Addr<SessionActor>> {
        let ids: Vec<SessionId> = self
            .by_credential
            .get(credential)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        ids.into_iter().filter_map(|id| self.session(id)).collect()
    }

    /// The live sessions `user` joined as a technician.
    pub fn sessions_of_user(&self, user: UserId) -> Vec<Addr<SessionActor>> {
        let ids: Vec<SessionId> = self
            .by_user
            .get(&user)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        ids.into_iter().filter_map(|id| self.session(id)).collect()
    }

    /// How many credentials the index holds (tests: it does not grow with ended sessions).
    pub fn indexed_credentials(&self) -> usize {
        self.by_credential.len()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ended_session_leaves_nothing_in_the_indexes() {
        let registry = Registry::default();
        let (a, b) = (SessionId::new(), SessionId::new());
        let user = UserId::new();
        let key: Arc<str> = "key:abc".into();
        registry.index_connection(a, user, &key);
        registry.index_connection(b, user, &key);
        assert_eq!(registry.indexed_credentials(), 1);
        registry.unindex_session(a, &[user], std::slice::from_ref(&key));
        assert_eq!(registry.by_credential.get(&key).map(|s| s.len()), Some(1));
        registry.unindex_session(b, &[user], std::slice::from_ref(&key));
        assert_eq!(registry.indexed_credentials(), 0);
        assert!(registry.by_user.is_empty());
    }
}
