//! Sessions and invitations.

use super::db::{Builder, Row, query, query_scalar};
use chrono::{DateTime, Utc};

use super::{Store, StoreResult, get_json, get_opt_uuid, get_uuid, to_json};
use crate::domain::{
    ids::{AccountId, InvitationId, ParticipantId, PolicyId, SessionId, UserId},
    invitation::Outcome,
    permissions::{Permission, PermissionSet},
};

/// What a node that takes a session over starts its actor from (see `claim_session`).
#[derive(Debug, Clone)]
pub struct Recovery {
    pub owner_user: UserId,
    /// The owner's participant, when it was in the session.
    pub owner: Option<ParticipantId>,
    /// The technicians who were in it: their places are kept for the reconnect grace.
    pub technicians: Vec<(ParticipantId, UserId, String)>,
    /// The last chat and ownership numbers stored (the new actor goes on from there).
    pub chat_seq: i64,
    pub ownership_seq: i64,
    /// The guests who were in and whose inviter was: their places are kept too (they come
    /// back with the resume key their `welcome` carried).
    pub guests: Vec<RecoveredGuest>,
    /// The guests who were waiting in the lobby for a decision, whose inviter was in: they
    /// keep their places there (and come back with the resume key of their `lobby` frame).
    pub waiting: Vec<RecoveredWaiting>,
    /// The owner's last switch of the lobby in this session (none: the account's default).
    pub admission_required: Option<bool>,
    /// The pending invitations of technicians who were in: their links keep working (the
    /// new home runs their actors); they are revoked when their inviter's grace runs out.
    pub invitations: Vec<InvitationRecord>,
}

impl Recovery {
    /// Whether `inviter` was in the session, so that what it started (its guests, waiting
    /// guests and links) goes on at the new home.
    fn keeps(&self, inviter: ParticipantId) -> bool {
        self.technicians.iter().any(|(pid, _, _)| *pid == inviter)
    }
}

/// A guest's place, kept by a take-over.
#[derive(Debug, Clone)]
pub struct RecoveredGuest {
    pub id: ParticipantId,
    pub name: String,
    pub inviter: ParticipantId,
    pub permissions: PermissionSet,
}

/// A waiting guest's place in the lobby, kept by a take-over.
#[derive(Debug, Clone)]
pub struct RecoveredWaiting {
    pub id: ParticipantId,
    pub invitation: InvitationRecord,
}

/// What narrows the list of ended sessions (every field optional).
#[derive(Debug, Clone, Default)]
pub struct EndedFilter {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// A user who owned the session or took part in it.
    pub technician: Option<uuid::Uuid>,
    /// Text the subject contains (case-insensitive).
    pub subject: Option<String>,
    /// The device groups the reader sees (`None`: all). A session on a device in another
    /// group, or in none, is left out; a session on no device is always in.
    pub groups: Option<Vec<uuid::Uuid>>,
    /// The single devices the reader is narrowed to (`None`: not narrowed so).
    pub devices: Option<Vec<uuid::Uuid>>,
}

/// Pushes `(?, ?, …)` with `ids` bound; `ids` must not be empty.
fn push_id_list(query: &mut Builder, ids: &[uuid::Uuid]) {
    query.push("(");
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            query.push(", ");
        }
        query.push_bind(id.to_string());
    }
    query.push(")");
}

#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub id: SessionId,
    pub account_id: AccountId,
    pub subject: String,
    pub device_id: Option<uuid::Uuid>,
    pub owner_user_id: UserId,
    pub open: bool,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub end_reason: Option<String>,
    /// Recorded from its start (the account's `record_sessions` when it was made).
    pub recorded: bool,
}

fn session_from_row(row: &Row) -> StoreResult<SessionRecord> {
    let state: String = row.try_get("state")?;
    Ok(SessionRecord {
        id: SessionId(get_uuid(row, "id")?),
        account_id: AccountId(get_uuid(row, "account_id")?),
        subject: row.try_get("subject")?,
        device_id: get_opt_uuid(row, "device_id")?,
        owner_user_id: UserId(get_uuid(row, "owner_user_id")?),
        open: state == "open",
        started_at: row.try_get("started_at")?,
        ended_at: row.try_get("ended_at")?,
        end_reason: row.try_get("end_reason")?,
        recorded: row.try_get("recorded")?,
    })
}

#[derive(Debug, Clone)]
pub struct NewInvitation {
    pub id: InvitationId,
    pub session_id: SessionId,
    pub inviter_participant_id: ParticipantId,
    pub inviter_user_id: UserId,
    pub token_hash: String,
    pub policy_id: PolicyId,
    pub policy_name: String,
    pub permissions: PermissionSet,
    pub guest_name: String,
    pub comment: String,
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct InvitationRecord {
    pub id: InvitationId,
    pub session_id: SessionId,
    pub account_id: AccountId,
    pub session_subject: String,
    pub inviter_participant_id: ParticipantId,
    pub inviter_user_id: UserId,
    pub policy_id: PolicyId,
    pub policy_name: String,
    pub permissions: PermissionSet,
    pub guest_name: String,
    pub comment: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub outcome: Outcome,
    /// The address the link was mailed to: with one, the link needs a mailed code.
    pub email: Option<String>,
    /// The address proven by a right code.
    pub verified_email: Option<String>,
}

const INVITATION_COLUMNS: &str = "i.id, i.session_id, s.account_id, s.subject AS session_subject,
    i.inviter_participant_id, i.inviter_user_id, i.policy_id, i.policy_name, i.permissions,
    i.guest_name, i.comment, i.created_at, i.expires_at, i.outcome, i.email, i.verified_email";

pub(super) fn invitation_from_row(row: &Row) -> StoreResult<InvitationRecord> {
    let perms: Vec<Permission> = get_json(row, "permissions")?;
    let outcome: String = row.try_get("outcome")?;
    Ok(InvitationRecord {
        id: InvitationId(get_uuid(row, "id")?),
        session_id: SessionId(get_uuid(row, "session_id")?),
        account_id: AccountId(get_uuid(row, "account_id")?),
        session_subject: row.try_get("session_subject")?,
        inviter_participant_id: ParticipantId(get_uuid(row, "inviter_participant_id")?),
        inviter_user_id: UserId(get_uuid(row, "inviter_user_id")?),
        policy_id: PolicyId(get_uuid(row, "policy_id")?),
        policy_name: row.try_get("policy_name")?,
        permissions: perms.into_iter().collect(),
        guest_name: row.try_get("guest_name")?,
        comment: row.try_get("comment")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        outcome: Outcome::parse(&outcome)
            .ok_or_else(|| sqlx::Error::Decode(format!("bad outcome {outcome}").into()))?,
        email: row.try_get("email")?,
        verified_email: row.try_get("verified_email")?,
    })
}

impl Store {
    /// Stores a new open session unless its account holds `cap` live ones already (decided
    /// by the one statement); `false` when the cap refused it.
    pub async fn insert_session(
        &self,
        s: &SessionRecord,
        customer_key_hash: &str,
        customer_key_sealed: &str,
        cap: u32,
        home_node: Option<&str>,
    ) -> StoreResult<bool> {
        let done = self
            .write_one(
                query(
                    "INSERT INTO sessions (id, account_id, subject, device_id, owner_user_id,
                customer_key_hash, customer_key_sealed, state, started_at, home_node, recorded)
             SELECT ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, ?
             WHERE (SELECT COUNT(*) FROM sessions WHERE account_id = ? AND state = 'open') < ?",
                )
                .bind(s.id.to_string())
                .bind(s.account_id.to_string())
                .bind(&s.subject)
                .bind(s.device_id.map(|d| d.to_string()))
                .bind(s.owner_user_id.to_string())
                .bind(customer_key_hash)
                .bind(customer_key_sealed)
                .bind(s.started_at)
                .bind(home_node.map(str::to_string))
                .bind(s.recorded)
                .bind(s.account_id.to_string())
                .bind(i64::from(cap)),
            )
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// How many invitations with an email (so mailed by the broker) `user` made since `since`.
    pub async fn invitation_mails_since(
        &self,
        user: UserId,
        since: DateTime<Utc>,
    ) -> StoreResult<i64> {
        query_scalar(
            "SELECT COUNT(*) FROM invitations
             WHERE inviter_user_id = ? AND email IS NOT NULL AND created_at > ?",
        )
        .bind(user.to_string())
        .bind(since)
        .fetch_one(&self.pool)
        .await
    }

    pub async fn session(&self, id: SessionId) -> StoreResult<Option<SessionRecord>> {
        let row = query("SELECT * FROM sessions WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    /// The sealed customer key of a session (sessions of earlier versions have none).
    pub async fn customer_key_sealed(&self, id: SessionId) -> StoreResult<Option<String>> {
        let sealed: Option<Option<String>> =
            query_scalar("SELECT customer_key_sealed FROM sessions WHERE id = ?")
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await?;
        Ok(sealed.flatten())
    }

    pub async fn session_by_customer_key(
        &self,
        key_hash: &str,
    ) -> StoreResult<Option<SessionRecord>> {
        let row = query("SELECT * FROM sessions WHERE customer_key_hash = ?")
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    /// The open sessions of an account, newest first.
    pub async fn open_sessions_of(&self, account: AccountId) -> StoreResult<Vec<SessionRecord>> {
        let rows = query(
            "SELECT * FROM sessions WHERE account_id = ? AND state = 'open' ORDER BY started_at DESC",
        )
        .bind(account.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(session_from_row).collect()
    }

    /// The most recently started ended sessions of an account that pass `filter` (at most
    /// `limit`), newest first.
    pub async fn ended_sessions_of(
        &self,
        account: AccountId,
        filter: &EndedFilter,
        limit: u32,
    ) -> StoreResult<Vec<SessionRecord>> {
        let mut query =
            Builder::new("SELECT * FROM sessions WHERE state <> 'open' AND account_id = ");
        query.push_bind(account.to_string());
        if let Some(from) = filter.from {
            query.push(" AND started_at >= ").push_bind(from);
        }
        if let Some(to) = filter.to {
            query.push(" AND started_at < ").push_bind(to);
        }
        if let Some(user) = filter.technician {
            query
                .push(" AND (owner_user_id = ")
                .push_bind(user.to_string())
                .push(
                    " OR EXISTS (SELECT 1 FROM session_participants p
                       WHERE p.session_id = sessions.id AND p.user_id = ",
                )
                .push_bind(user.to_string())
                .push("))");
        }
        if let Some(text) = &filter.subject {
            // A position on lower(): no LIKE wildcards to escape in what the user typed.
            let position = if self.pool.is_postgres() {
                " AND strpos(lower(subject), lower("
            } else {
                " AND instr(lower(subject), lower("
            };
            query.push(position).push_bind(text.clone()).push(")) > 0");
        }
        // The reader's scope in the query itself, so that the limit counts only what it sees.
        match filter.groups.as_deref() {
            None => {}
            Some([]) => {
                query.push(" AND device_id IS NULL");
            }
            Some(groups) => {
                query.push(
                    " AND (device_id IS NULL OR EXISTS (SELECT 1 FROM devices d
                       WHERE d.id = sessions.device_id AND d.group_id IN ",
                );
                push_id_list(&mut query, groups);
                query.push("))");
            }
        }
        match filter.devices.as_deref() {
            None => {}
            Some([]) => {
                query.push(" AND device_id IS NULL");
            }
            Some(devices) => {
                query.push(" AND (device_id IS NULL OR device_id IN ");
                push_id_list(&mut query, devices);
                query.push(")");
            }
        }
        query
            .push(" ORDER BY started_at DESC LIMIT ")
            .push_bind(i64::from(limit));
        let rows = query.build().fetch_all(&self.pool).await?;
        rows.iter().map(session_from_row).collect()
    }

    /// Ends every session left open by a broker that stopped without a clean shutdown, and
    /// revokes their pending invitations. Returns how many sessions it closed.
    ///
    /// One node (`node` None): every open session. A node of a cluster: the sessions that
    /// were its own (a restart with the same `cluster.node_id`) and those of no node; the
    /// other nodes' stay (those of dead nodes are the sweep's: `unseen_homes`).
    pub async fn fail_orphaned_sessions(&self, node: Option<&str>) -> StoreResult<u64> {
        match node {
            None => self.fail_sessions_where("state = 'open'", &[], None).await,
            Some(node) => {
                self.fail_sessions_where(
                    "state = 'open' AND (home_node IS NULL OR home_node = ?)",
                    &[node],
                    None,
                )
                .await
            }
        }
    }

    /// The other nodes that hold open sessions and were not seen since `alive_since`: dead,
    /// by their heartbeat (the caller asks NATS before it believes it).
    pub async fn unseen_homes(
        &self,
        node: &str,
        alive_since: DateTime<Utc>,
    ) -> StoreResult<Vec<String>> {
        query_scalar::<String>(
            "SELECT DISTINCT home_node FROM sessions
             WHERE state = 'open' AND home_node IS NOT NULL AND home_node <> ?
               AND home_node NOT IN (SELECT id FROM nodes WHERE seen_at > ?)",
        )
        .bind(node.to_string())
        .bind(alive_since)
        .fetch_all(&self.pool)
        .await
    }

    /// Ends, as `failed`, the open sessions of `dead` if it is still not seen since
    /// `alive_since` (decided by the database in the one transaction).
    pub async fn fail_sessions_of_dead_node(
        &self,
        dead: &str,
        alive_since: DateTime<Utc>,
    ) -> StoreResult<u64> {
        self.fail_sessions_where(
            "state = 'open' AND home_node = ?
                AND home_node NOT IN (SELECT id FROM nodes WHERE seen_at > ?)",
            &[dead],
            Some(alive_since),
        )
        .await
    }

    /// Ends the open sessions that `condition` (over `sessions`, binding `texts` then
    /// `since`) selects, with their participants and pending invitations, in one transaction.
    async fn fail_sessions_where(
        &self,
        condition: &str,
        texts: &[&str],
        since: Option<DateTime<Utc>>,
    ) -> StoreResult<u64> {
        let now = Utc::now();
        let bind_all = |mut q: super::db::Query| {
            for t in texts {
                q = q.bind(t.to_string());
            }
            if let Some(since) = since {
                q = q.bind(since);
            }
            q
        };
        let mut tx = self.write_tx().await?;
        bind_all(
            query(format!(
                "UPDATE invitations SET outcome = 'revoked', outcome_at = ?
                 WHERE outcome = 'pending' AND session_id IN (SELECT id FROM sessions WHERE {condition})"
            ))
            .bind(now),
        )
        .execute(&mut tx)
        .await?;
        bind_all(
            query(format!(
                "UPDATE session_participants SET left_at = ?, leave_reason = 'disconnected'
                 WHERE left_at IS NULL AND session_id IN (SELECT id FROM sessions WHERE {condition})"
            ))
            .bind(now),
        )
        .execute(&mut tx)
        .await?;
        let done = bind_all(
            query(format!(
                "UPDATE sessions SET state = 'ended', ended_at = ?, end_reason = 'failed' WHERE {condition}"
            ))
            .bind(now),
        )
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// Takes a live session over from `from`, a node that is gone: the database decides which
    /// node gets it (one conditional UPDATE). Answers what the new actor starts from, or None
    /// when the session is not open or another node took it first. In the same transaction,
    /// the customer and guests who were in it leave (`disconnected`: their sockets died with
    /// the node; the customer may come back) and pending invitations are revoked (their actors
    /// died too).
    pub async fn claim_session(
        &self,
        id: SessionId,
        from: &str,
        to: &str,
    ) -> StoreResult<Option<Recovery>> {
        let now = Utc::now();
        let mut tx = self.write_tx().await?;
        let claimed = query(
            "UPDATE sessions SET home_node = ? WHERE id = ? AND state = 'open' AND home_node = ?",
        )
        .bind(to.to_string())
        .bind(id.to_string())
        .bind(from.to_string())
        .execute(&mut tx)
        .await?;
        if claimed.rows_affected() != 1 {
            return Ok(None);
        }
        let owner_user: String = query_scalar("SELECT owner_user_id FROM sessions WHERE id = ?")
            .bind(id.to_string())
            .fetch_one(&mut tx)
            .await?;
        let present = query(
            "SELECT id, user_id, name, role FROM session_participants
             WHERE session_id = ? AND left_at IS NULL ORDER BY joined_at",
        )
        .bind(id.to_string())
        .fetch_all(&mut tx)
        .await?;
        let mut recovery = Recovery {
            owner_user: UserId(
                uuid::Uuid::parse_str(&owner_user).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            ),
            owner: None,
            technicians: Vec::new(),
            chat_seq: 0,
            ownership_seq: 0,
            invitations: Vec::new(),
            guests: Vec::new(),
            waiting: Vec::new(),
            admission_required: None,
        };
        for row in &present {
            let role: String = row.try_get("role")?;
            let Some(user) = get_opt_uuid(row, "user_id")? else {
                continue;
            };
            let pid = ParticipantId(get_uuid(row, "id")?);
            if role == "owner" {
                recovery.owner = Some(pid);
                recovery.owner_user = UserId(user);
            }
            if role == "owner" || role == "technician" {
                recovery
                    .technicians
                    .push((pid, UserId(user), row.try_get("name")?));
            }
        }
        query(
            "UPDATE session_participants SET left_at = ?, leave_reason = 'disconnected'
             WHERE session_id = ? AND left_at IS NULL AND role = 'customer'",
        )
        .bind(now)
        .bind(id.to_string())
        .execute(&mut tx)
        .await?;
        // Guests whose inviter was in keep their places; any other guest left with the home.
        let guests = query(
            "SELECT p.id, p.name, i.inviter_participant_id, i.permissions
             FROM session_participants p
             LEFT JOIN invitations i ON i.guest_participant_id = p.id
             WHERE p.session_id = ? AND p.left_at IS NULL AND p.role = 'guest'
             ORDER BY p.joined_at",
        )
        .bind(id.to_string())
        .fetch_all(&mut tx)
        .await?;
        for row in &guests {
            let gid = ParticipantId(get_uuid(row, "id")?);
            let inviter = get_opt_uuid(row, "inviter_participant_id")?.map(ParticipantId);
            let kept = inviter.filter(|inv| recovery.keeps(*inv));
            match kept {
                Some(inviter) => {
                    let perms: Vec<Permission> = get_json(row, "permissions")?;
                    recovery.guests.push(RecoveredGuest {
                        id: gid,
                        name: row.try_get("name")?,
                        inviter,
                        permissions: perms.into_iter().collect(),
                    });
                }
                None => {
                    query(
                        "UPDATE session_participants SET left_at = ?, leave_reason = 'disconnected'
                         WHERE id = ? AND left_at IS NULL",
                    )
                    .bind(now)
                    .bind(gid.to_string())
                    .execute(&mut tx)
                    .await?;
                }
            }
        }
        recovery.admission_required = query_scalar::<bool>(
            "SELECT required FROM admission_switches WHERE session_id = ?
             ORDER BY at DESC LIMIT 1",
        )
        .bind(id.to_string())
        .fetch_optional(&mut tx)
        .await?;
        // Guests waiting in the lobby (no decision stored) whose inviter was in keep their
        // places there; any other one is told by the store that its inviter left.
        let sql = format!(
            "SELECT ga.guest_participant_id, {INVITATION_COLUMNS}
             FROM guest_admissions ga
             JOIN invitations i ON i.id = ga.invitation_id
             JOIN sessions s ON s.id = i.session_id
             WHERE ga.session_id = ? AND ga.decision IS NULL ORDER BY ga.asked_at"
        );
        let waiting = query(sql).bind(id.to_string()).fetch_all(&mut tx).await?;
        for row in &waiting {
            let gid = ParticipantId(get_uuid(row, "guest_participant_id")?);
            let invitation = invitation_from_row(row)?;
            if recovery.keeps(invitation.inviter_participant_id) {
                recovery.waiting.push(RecoveredWaiting {
                    id: gid,
                    invitation,
                });
            } else {
                query(
                    "UPDATE guest_admissions SET decision = 'inviter_left', decided_at = ?
                     WHERE guest_participant_id = ? AND decision IS NULL",
                )
                .bind(now)
                .bind(gid.to_string())
                .execute(&mut tx)
                .await?;
            }
        }
        // Pending links of the technicians who were in go on; any other pending link (its
        // inviter was not in: it cannot be kept by anyone) is revoked. The claim above made
        // this transaction the only one recovering the session.
        let sql = format!(
            "SELECT {INVITATION_COLUMNS} FROM invitations i JOIN sessions s ON s.id = i.session_id
             WHERE i.session_id = ? AND i.outcome = 'pending' ORDER BY i.created_at"
        );
        let pending = query(sql).bind(id.to_string()).fetch_all(&mut tx).await?;
        for row in &pending {
            let invitation = invitation_from_row(row)?;
            if recovery.keeps(invitation.inviter_participant_id) {
                recovery.invitations.push(invitation);
            } else {
                query(
                    "UPDATE invitations SET outcome = 'revoked', outcome_at = ?
                     WHERE id = ? AND outcome = 'pending'",
                )
                .bind(now)
                .bind(invitation.id.to_string())
                .execute(&mut tx)
                .await?;
            }
        }
        let chat: Option<i64> = query_scalar(
            "SELECT MAX(s) FROM (SELECT MAX(seq) AS s FROM chat_messages WHERE session_id = ?
             UNION ALL SELECT MAX(last_seq) AS s FROM chat_chunks WHERE session_id = ?) AS seqs",
        )
        .bind(id.to_string())
        .bind(id.to_string())
        .fetch_one(&mut tx)
        .await?;
        let ownership: Option<i64> =
            query_scalar("SELECT MAX(seq) FROM ownership_changes WHERE session_id = ?")
                .bind(id.to_string())
                .fetch_one(&mut tx)
                .await?;
        recovery.chat_seq = chat.unwrap_or(0);
        recovery.ownership_seq = ownership.unwrap_or(0);
        tx.commit().await?;
        Ok(Some(recovery))
    }

    /// The guest a redeemed invitation let in and the hash of its resume key (both None
    /// until the session's report writer stored the redemption).
    pub async fn guest_resume(
        &self,
        invitation: InvitationId,
    ) -> StoreResult<Option<(ParticipantId, String)>> {
        let row = query(
            "SELECT guest_participant_id, guest_resume_hash FROM invitations
             WHERE id = ? AND outcome = 'redeemed'",
        )
        .bind(invitation.to_string())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let guest = get_opt_uuid(&row, "guest_participant_id")?.map(ParticipantId);
        let hash: Option<String> = row.try_get("guest_resume_hash")?;
        Ok(guest.zip(hash))
    }

    /// The node a session's actor runs on (None: one node, or no such session).
    pub async fn session_home(&self, id: SessionId) -> StoreResult<Option<String>> {
        Ok(
            query_scalar::<Option<String>>("SELECT home_node FROM sessions WHERE id = ?")
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await?
                .flatten(),
        )
    }

    /// The home of a session that is still open (`None` once it ended, wherever it lived:
    /// what a new socket asks, which an ended session refuses on any node alike).
    pub async fn open_session_home(&self, id: SessionId) -> StoreResult<Option<String>> {
        Ok(query_scalar::<Option<String>>(
            "SELECT home_node FROM sessions WHERE id = ? AND state = 'open'",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .flatten())
    }

    /// The open sessions whose home is `node` by the store's word.
    pub async fn sessions_homed_at(&self, node: &str) -> StoreResult<Vec<SessionId>> {
        let ids = query_scalar::<String>(
            "SELECT id FROM sessions WHERE state = 'open' AND home_node = ?",
        )
        .bind(node.to_string())
        .fetch_all(&self.pool)
        .await?;
        Ok(ids.iter().filter_map(|id| id.parse().ok()).collect())
    }

    /// A node says it is alive (at start, and every few seconds after).
    /// One statement, outside the writer lock: a heartbeat must not wait behind other writes
    /// (a node late in the database looks dead to the others' sweeps).
    pub async fn node_seen(&self, node: &str, now: DateTime<Utc>) -> StoreResult<()> {
        query(
            "INSERT INTO nodes (id, started_at, seen_at, wire) VALUES (?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at, wire = excluded.wire",
        )
        .bind(node.to_string())
        .bind(now)
        .bind(now)
        .bind(crate::cluster::WIRE)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The other nodes seen since `since` that speak another version over NATS than `wire`
    /// (or one from before versions were written).
    pub async fn nodes_of_another_wire(
        &self,
        node: &str,
        since: DateTime<Utc>,
        wire: i64,
    ) -> StoreResult<Vec<String>> {
        query_scalar(
            "SELECT id FROM nodes WHERE id <> ? AND seen_at > ? AND (wire IS NULL OR wire <> ?)
             ORDER BY id",
        )
        .bind(node.to_string())
        .bind(since)
        .bind(wire)
        .fetch_all(&self.pool)
        .await
    }

    /// Whether a node other than `node` was seen since `since` (one to hand sessions to).
    pub async fn other_nodes_alive(&self, node: &str, since: DateTime<Utc>) -> StoreResult<bool> {
        let count: i64 = query_scalar("SELECT COUNT(*) FROM nodes WHERE id <> ? AND seen_at > ?")
            .bind(node.to_string())
            .bind(since)
            .fetch_one(&self.pool)
            .await?;
        Ok(count > 0)
    }

    /// A node stopped cleanly: it is no longer counted alive.
    pub async fn node_gone(&self, node: &str) -> StoreResult<()> {
        self.write_one(query("DELETE FROM nodes WHERE id = ?").bind(node.to_string()))
            .await?;
        Ok(())
    }

    /// Stores a pending invitation unless its session holds `cap` pending ones already
    /// (decided by the one statement); `false` when the cap refused it.
    pub async fn insert_invitation(&self, i: &NewInvitation, cap: u32) -> StoreResult<bool> {
        let done = self.write_one(query(
            "INSERT INTO invitations (id, session_id, inviter_participant_id, inviter_user_id,
                token_hash, policy_id, policy_name, permissions, guest_name, comment, email,
                created_at, expires_at, outcome)
             SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending'
             WHERE (SELECT COUNT(*) FROM invitations WHERE session_id = ? AND outcome = 'pending') < ?",
        )
        .bind(i.id.to_string())
        .bind(i.session_id.to_string())
        .bind(i.inviter_participant_id.to_string())
        .bind(i.inviter_user_id.to_string())
        .bind(&i.token_hash)
        .bind(i.policy_id.to_string())
        .bind(&i.policy_name)
        .bind(to_json(&i.permissions.to_vec())?)
        .bind(&i.guest_name)
        .bind(&i.comment)
        .bind(&i.email)
        .bind(i.created_at)
        .bind(i.expires_at)
        .bind(i.session_id.to_string())
        .bind(i64::from(cap))
        )
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn invitation_by_token_hash(
        &self,
        hash: &str,
    ) -> StoreResult<Option<InvitationRecord>> {
        let sql = format!(
            "SELECT {INVITATION_COLUMNS} FROM invitations i JOIN sessions s ON s.id = i.session_id
             WHERE i.token_hash = ?"
        );
        let row = query(sql).bind(hash).fetch_optional(&self.pool).await?;
        row.as_ref().map(invitation_from_row).transpose()
    }

    pub async fn invitation(&self, id: InvitationId) -> StoreResult<Option<InvitationRecord>> {
        let sql = format!(
            "SELECT {INVITATION_COLUMNS} FROM invitations i JOIN sessions s ON s.id = i.session_id
             WHERE i.id = ?"
        );
        let row = query(sql)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(invitation_from_row).transpose()
    }

    /// Moves a pending invitation to `outcome`; `false` when it was no longer pending.
    pub async fn finish_invitation(
        &self,
        id: InvitationId,
        outcome: Outcome,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let done = self.write_one(query(
            "UPDATE invitations SET outcome = ?, outcome_at = ? WHERE id = ? AND outcome = 'pending'",
        )
        .bind(outcome.as_str())
        .bind(at)
        .bind(id.to_string())
        )
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
