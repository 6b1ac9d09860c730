//! Session report events (written in batches by the report writer) and the report read back.

use super::db::{Builder, query};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

use bytestring::ByteString;
use uuid::Uuid;

use super::{Store, StoreResult, get_json, get_opt_uuid, get_uuid, sessions::invitation_from_row};
use crate::domain::ids::{InvitationId, ParticipantId, SessionId, UserId};

/// One thing that happened in a live session, to be persisted in order.
#[derive(Debug, Clone)]
pub enum ReportEvent {
    Joined {
        session: SessionId,
        participant: ParticipantId,
        user_id: Option<UserId>,
        name: String,
        role: &'static str,
        at: DateTime<Utc>,
    },
    Left {
        participant: ParticipantId,
        reason: &'static str,
        at: DateTime<Utc>,
    },
    RoleChanged {
        participant: ParticipantId,
        role: &'static str,
    },
    /// A chat message, as the `chat` frame its receivers got (id, from, text, at): the frame
    /// is encoded once and the same text is stored, so nothing is serialised twice.
    Chat {
        session: SessionId,
        seq: i64,
        frame: ByteString,
    },
    OwnerChanged {
        session: SessionId,
        seq: i64,
        from: Option<ParticipantId>,
        to: ParticipantId,
        owner_user_id: UserId,
        at: DateTime<Utc>,
    },
    InvitationRedeemed {
        invitation: InvitationId,
        guest: ParticipantId,
        /// The hash of the guest's resume key (the key itself goes only to the guest).
        resume_hash: String,
    },
    /// A file announced with `file_offer` (its metadata, never its content).
    FileOffered {
        session: SessionId,
        transfer: Uuid,
        participant: ParticipantId,
        name: String,
        size: u64,
        at: DateTime<Utc>,
    },
    Ended {
        session: SessionId,
        reason: &'static str,
        at: DateTime<Utc>,
    },
    /// A guest waits in the lobby.
    AdmissionAsked {
        session: SessionId,
        guest: ParticipantId,
        invitation: InvitationId,
        name: String,
        at: DateTime<Utc>,
    },
    /// What became of it, and who decided (the customer's participant id).
    AdmissionDecided {
        guest: ParticipantId,
        decision: &'static str,
        by: Option<ParticipantId>,
        at: DateTime<Utc>,
    },
    /// The owner switched the lobby on or off.
    AdmissionSwitched {
        session: SessionId,
        required: bool,
        by: ParticipantId,
        at: DateTime<Utc>,
    },
}

/// One chat message as stored inside a chunk: its place in the session and its `chat` frame.
#[derive(Debug, Clone)]
pub struct ChatLine {
    pub seq: i64,
    pub frame: ByteString,
}

/// A stretch of one session's chat, in `seq` order, stored as one row.
#[derive(Debug, Clone)]
pub struct ChatChunk {
    pub session: SessionId,
    pub lines: Vec<ChatLine>,
}

impl ChatLine {
    /// The stored form of a chat event; `None` for any other event.
    pub fn from_event(event: ReportEvent) -> Option<(SessionId, Self)> {
        match event {
            ReportEvent::Chat {
                session,
                seq,
                frame,
            } => Some((session, Self { seq, frame })),
            _ => None,
        }
    }
}

/// How a chunk's lines read back: `[{"s": seq, "m": <chat frame>}, ...]`.
#[derive(Deserialize)]
struct StoredLine {
    s: i64,
    m: ReportChat,
}

impl ChatChunk {
    /// The chunk's JSON text, built from the frames as they are (each is a JSON object).
    fn encode(&self) -> String {
        let size: usize = self.lines.iter().map(|l| l.frame.len() + 24).sum();
        let mut out = String::with_capacity(size + 2);
        out.push('[');
        for (i, line) in self.lines.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            // Writing to a String cannot fail.
            let _ = write!(out, "{{\"s\":{},\"m\":", line.seq);
            out.push_str(&line.frame);
            out.push('}');
        }
        out.push(']');
        out
    }

    /// Groups chat events by session, keeping their order; other events are returned as they
    /// come.
    pub fn group(events: &[ReportEvent]) -> (Vec<ChatChunk>, Vec<ReportEvent>) {
        let mut chunks: Vec<ChatChunk> = Vec::new();
        let mut rest = Vec::new();
        for event in events {
            if !matches!(event, ReportEvent::Chat { .. }) {
                rest.push(event.clone());
                continue;
            }
            if let Some((session, line)) = ChatLine::from_event(event.clone()) {
                match chunks.iter_mut().find(|c| c.session == session) {
                    Some(chunk) => chunk.lines.push(line),
                    None => chunks.push(ChatChunk {
                        session,
                        lines: vec![line],
                    }),
                }
            }
        }
        (chunks, rest)
    }
}

impl Store {
    /// Writes chat chunks and a batch of events, all in one transaction. Chat events among
    /// `events` are stored as chunks too.
    pub async fn apply_report(
        &self,
        chunks: &[ChatChunk],
        events: &[ReportEvent],
    ) -> StoreResult<()> {
        let (more, events) = ChatChunk::group(events);
        // Every statement below is an insert or a conditional update: no writer lock.
        let mut tx = self.append_tx().await?;
        for rows in chunks.chunks(CHUNK_ROWS_PER_INSERT) {
            insert_chunks(&mut tx, rows).await?;
        }
        for rows in more.chunks(CHUNK_ROWS_PER_INSERT) {
            insert_chunks(&mut tx, rows).await?;
        }
        for event in &events {
            apply(&mut tx, event).await?;
        }
        tx.commit().await
    }

    /// Writes a batch of events in one transaction, in order.
    pub async fn apply_report_events(&self, events: &[ReportEvent]) -> StoreResult<()> {
        self.apply_report(&[], events).await
    }
}

impl Store {
    /// The report of a session (live or ended).
    pub async fn session_report(&self, id: SessionId) -> StoreResult<Option<SessionReport>> {
        let Some(session) = self.session(id).await? else {
            return Ok(None);
        };
        let sid = id.to_string();
        let participants =
            query("SELECT * FROM session_participants WHERE session_id = ? ORDER BY joined_at, id")
                .bind(&sid)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|row| {
                    Ok(ReportParticipant {
                        id: get_uuid(row, "id")?,
                        user_id: get_opt_uuid(row, "user_id")?,
                        name: row.try_get("name")?,
                        role: row.try_get("role")?,
                        joined_at: row.try_get("joined_at")?,
                        left_at: row.try_get("left_at")?,
                        leave_reason: row.try_get("leave_reason")?,
                    })
                })
                .collect::<StoreResult<Vec<_>>>()?;

        let invitations = query(
            "SELECT i.id, i.session_id, s.account_id, s.subject AS session_subject,
                i.inviter_participant_id, i.inviter_user_id, i.policy_id, i.policy_name,
                i.permissions, i.guest_name, i.comment, i.created_at, i.expires_at, i.outcome,
                i.email, i.verified_email
             FROM invitations i JOIN sessions s ON s.id = i.session_id
             WHERE i.session_id = ? ORDER BY i.created_at, i.id",
        )
        .bind(&sid)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            let inv = invitation_from_row(row)?;
            Ok(ReportInvitation {
                id: inv.id.0,
                inviter_id: inv.inviter_participant_id.0,
                guest_name: inv.guest_name,
                policy: PolicyRef {
                    id: inv.policy_id.0,
                    name: inv.policy_name,
                },
                comment: inv.comment,
                created_at: inv.created_at,
                outcome: inv.outcome.as_str(),
                verified_email: inv.verified_email,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;

        // Rows of earlier versions (one per message) and chunks, merged in the session's order.
        let mut chat = query("SELECT * FROM chat_messages WHERE session_id = ? ORDER BY seq")
            .bind(&sid)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                Ok((
                    row.try_get::<i64, _>("seq")?,
                    ReportChat {
                        id: get_uuid(row, "id")?,
                        from: ReportSpeaker {
                            id: get_uuid(row, "participant_id")?,
                            name: row.try_get("name")?,
                            role: row.try_get("role")?,
                        },
                        text: row.try_get("text")?,
                        at: row.try_get("sent_at")?,
                    },
                ))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let chunks = query("SELECT lines FROM chat_chunks WHERE session_id = ? ORDER BY first_seq")
            .bind(&sid)
            .fetch_all(&self.pool)
            .await?;
        for row in &chunks {
            let lines: Vec<StoredLine> = get_json(row, "lines")?;
            chat.extend(lines.into_iter().map(|l| (l.s, l.m)));
        }
        chat.sort_by_key(|(seq, _)| *seq);
        // A message stored twice (by the home that lost the session and, from the chat
        // journal, by the one that took it over) is one message.
        let mut seen = std::collections::HashSet::new();
        let chat = chat
            .into_iter()
            .filter(|(_, c)| seen.insert(c.id))
            .map(|(_, c)| c)
            .collect();

        let ownership = query("SELECT * FROM ownership_changes WHERE session_id = ? ORDER BY seq")
            .bind(&sid)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                Ok(ReportOwnership {
                    from: get_opt_uuid(row, "from_participant_id")?,
                    to: get_uuid(row, "to_participant_id")?,
                    at: row.try_get("changed_at")?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;

        let files = query(
            "SELECT f.id, f.participant_id, f.name, f.size, f.offered_at,
                    p.name AS from_name, p.role AS from_role
             FROM file_transfers f LEFT JOIN session_participants p ON p.id = f.participant_id
             WHERE f.session_id = ? ORDER BY f.offered_at, f.id",
        )
        .bind(&sid)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(ReportFile {
                id: get_uuid(row, "id")?,
                from: ReportSpeaker {
                    id: get_uuid(row, "participant_id")?,
                    name: row
                        .try_get::<Option<String>, _>("from_name")?
                        .unwrap_or_default(),
                    role: row
                        .try_get::<Option<String>, _>("from_role")?
                        .unwrap_or_default(),
                },
                name: row.try_get("name")?,
                size: u64::try_from(row.try_get::<i64, _>("size")?).unwrap_or(0),
                at: row.try_get("offered_at")?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;

        let admissions = query(
            "SELECT * FROM guest_admissions WHERE session_id = ? ORDER BY asked_at, guest_participant_id",
        )
        .bind(&sid)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(ReportAdmission {
                guest_id: get_uuid(row, "guest_participant_id")?,
                invitation_id: get_uuid(row, "invitation_id")?,
                guest_name: row.try_get("guest_name")?,
                asked_at: row.try_get("asked_at")?,
                decision: row
                    .try_get::<Option<String>, _>("decision")?
                    .unwrap_or_else(|| "pending".into()),
                decided_by: get_opt_uuid(row, "decided_by")?,
                decided_at: row.try_get("decided_at")?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;

        Ok(Some(SessionReport {
            session: ReportSession {
                id: session.id.0,
                subject: session.subject,
                state: if session.open { "open" } else { "ended" },
                started_at: session.started_at,
                ended_at: session.ended_at,
                end_reason: session.end_reason,
            },
            participants,
            invitations,
            chat,
            ownership,
            files,
            admissions,
        }))
    }
}

/// Chunks per INSERT: 4 parameters each, well below SQLite's and PostgreSQL's limits.
const CHUNK_ROWS_PER_INSERT: usize = 500;

async fn insert_chunks(tx: &mut super::WriteTx, chunks: &[ChatChunk]) -> StoreResult<()> {
    let mut encoded = Vec::with_capacity(chunks.len());
    for chunk in chunks {
        let (Some(first), Some(last)) = (chunk.lines.first(), chunk.lines.last()) else {
            continue;
        };
        encoded.push((
            chunk.session.to_string(),
            first.seq,
            last.seq,
            chunk.encode(),
        ));
    }
    if encoded.is_empty() {
        return Ok(());
    }
    let mut query =
        Builder::new("INSERT INTO chat_chunks (session_id, first_seq, last_seq, lines) VALUES ");
    for (i, (session, first, last, lines)) in encoded.into_iter().enumerate() {
        if i > 0 {
            query.push(", ");
        }
        query
            .push("(")
            .push_bind(session)
            .push(", ")
            .push_bind(first)
            .push(", ")
            .push_bind(last)
            .push(", ")
            .push_bind(lines)
            .push(")");
    }
    // A chunk that starts where a stored one does: a session that moved home, whose new home
    // stored the lines it read from the chat journal while the old home still stored its
    // last chunk. Both are kept (the two JSON arrays joined); the report reads each message
    // once (by its id). Without this the whole batch, other sessions' events with it, failed.
    query.push(
        " ON CONFLICT (session_id, first_seq) DO UPDATE SET
            last_seq = CASE WHEN excluded.last_seq > chat_chunks.last_seq
                THEN excluded.last_seq ELSE chat_chunks.last_seq END,
            lines = substr(chat_chunks.lines, 1, length(chat_chunks.lines) - 1)
                || ',' || substr(excluded.lines, 2)",
    );
    query.build().execute(&mut *tx).await.map(|_| ())
}

async fn apply(tx: &mut super::WriteTx, event: &ReportEvent) -> StoreResult<()> {
    match event {
        ReportEvent::Joined {
            session,
            participant,
            user_id,
            name,
            role,
            at,
        } => {
            // A technician who reconnects within the grace keeps its row: only clear the leave.
            query(
                "INSERT INTO session_participants (id, session_id, user_id, name, role, joined_at)
                 VALUES (?, ?, ?, ?, ?, ?)
                 ON CONFLICT (id) DO UPDATE SET left_at = NULL, leave_reason = NULL",
            )
            .bind(participant.to_string())
            .bind(session.to_string())
            .bind(user_id.map(|u| u.to_string()))
            .bind(name)
            .bind(role)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        ReportEvent::Left {
            participant,
            reason,
            at,
        } => {
            query(
                "UPDATE session_participants SET left_at = ?, leave_reason = ? WHERE id = ? AND left_at IS NULL",
            )
            .bind(at)
            .bind(reason)
            .bind(participant.to_string())
            .execute(&mut *tx)
            .await?;
        }
        ReportEvent::RoleChanged { participant, role } => {
            query("UPDATE session_participants SET role = ? WHERE id = ?")
                .bind(role)
                .bind(participant.to_string())
                .execute(&mut *tx)
                .await?;
        }
        // Grouped into chunks by `apply_report` before it gets here.
        ReportEvent::Chat { .. } => {}
        ReportEvent::OwnerChanged {
            session,
            seq,
            from,
            to,
            owner_user_id,
            at,
        } => {
            query(
                "INSERT INTO ownership_changes (session_id, seq, from_participant_id, to_participant_id, changed_at)
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(session.to_string())
            .bind(seq)
            .bind(from.map(|f| f.to_string()))
            .bind(to.to_string())
            .bind(at)
            .execute(&mut *tx)
            .await?;
            query("UPDATE sessions SET owner_user_id = ? WHERE id = ?")
                .bind(owner_user_id.to_string())
                .bind(session.to_string())
                .execute(&mut *tx)
                .await?;
        }
        ReportEvent::FileOffered {
            session,
            transfer,
            participant,
            name,
            size,
            at,
        } => {
            // A repeated id (a client reusing one after completion) keeps the first record.
            query(
                "INSERT INTO file_transfers (id, session_id, participant_id, name, size, offered_at)
                 VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            )
            .bind(transfer.to_string())
            .bind(session.to_string())
            .bind(participant.to_string())
            .bind(name)
            .bind(i64::try_from(*size).unwrap_or(i64::MAX))
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        ReportEvent::AdmissionAsked {
            session,
            guest,
            invitation,
            name,
            at,
        } => {
            query(
                "INSERT INTO guest_admissions (guest_participant_id, session_id, invitation_id,
                    guest_name, asked_at) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(guest.to_string())
            .bind(session.to_string())
            .bind(invitation.to_string())
            .bind(name)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        ReportEvent::AdmissionDecided {
            guest,
            decision,
            by,
            at,
        } => {
            query(
                "UPDATE guest_admissions SET decision = ?, decided_by = ?, decided_at = ?
                 WHERE guest_participant_id = ? AND decision IS NULL",
            )
            .bind(decision)
            .bind(by.map(|b| b.to_string()))
            .bind(at)
            .bind(guest.to_string())
            .execute(&mut *tx)
            .await?;
        }
        ReportEvent::AdmissionSwitched {
            session,
            required,
            by,
            at,
        } => {
            query(
                "INSERT INTO admission_switches (session_id, required, by_participant_id, at)
                 VALUES (?, ?, ?, ?)",
            )
            .bind(session.to_string())
            .bind(required)
            .bind(by.to_string())
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        ReportEvent::InvitationRedeemed {
            invitation,
            guest,
            resume_hash,
        } => {
            query(
                "UPDATE invitations SET guest_participant_id = ?, guest_resume_hash = ?
                 WHERE id = ?",
            )
            .bind(guest.to_string())
            .bind(resume_hash.clone())
            .bind(invitation.to_string())
            .execute(&mut *tx)
            .await?;
        }
        ReportEvent::Ended {
            session,
            reason,
            at,
        } => {
            query(
                "UPDATE invitations SET outcome = 'revoked', outcome_at = ?
                 WHERE session_id = ? AND outcome = 'pending'",
            )
            .bind(at)
            .bind(session.to_string())
            .execute(&mut *tx)
            .await?;
            query(
                "UPDATE session_participants SET left_at = ?, leave_reason = 'session_ended'
                 WHERE session_id = ? AND left_at IS NULL",
            )
            .bind(at)
            .bind(session.to_string())
            .execute(&mut *tx)
            .await?;
            query(
                "UPDATE sessions SET state = 'ended', ended_at = ?, end_reason = ? WHERE id = ? AND state = 'open'",
            )
            .bind(at)
            .bind(reason)
            .bind(session.to_string())
            .execute(&mut *tx)
            .await?;
        }
    }
    Ok(())
}

/// The report in the contract's shape.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionReport {
    pub session: ReportSession,
    pub participants: Vec<ReportParticipant>,
    pub invitations: Vec<ReportInvitation>,
    pub chat: Vec<ReportChat>,
    pub ownership: Vec<ReportOwnership>,
    /// Files sent in the session (extension): who, what, how big, when; never the content.
    pub files: Vec<ReportFile>,
    /// Guests who waited in the lobby (extension): asked when, decided what (`admitted`,
    /// `refused`, `timed_out`, `withdrawn`, `inviter_left`, `session_ended`), by whom, when.
    pub admissions: Vec<ReportAdmission>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReportAdmission {
    /// The guest's participant id (a participant only if admitted).
    pub guest_id: Uuid,
    pub invitation_id: Uuid,
    pub guest_name: String,
    pub asked_at: DateTime<Utc>,
    pub decision: String,
    /// The customer's participant id when it decided.
    pub decided_by: Option<Uuid>,
    pub decided_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReportFile {
    pub id: Uuid,
    pub from: ReportSpeaker,
    pub name: String,
    pub size: u64,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReportSession {
    pub id: Uuid,
    pub subject: String,
    pub state: &'static str,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub end_reason: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReportParticipant {
    pub id: Uuid,
    pub user_id: Option<Uuid>,
    pub name: String,
    pub role: String,
    pub joined_at: DateTime<Utc>,
    pub left_at: Option<DateTime<Utc>>,
    pub leave_reason: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReportInvitation {
    pub id: Uuid,
    pub inviter_id: Uuid,
    pub guest_name: String,
    pub policy: PolicyRef,
    pub comment: String,
    pub created_at: DateTime<Utc>,
    pub outcome: &'static str,
    /// The guest's address, proven by the code mailed to it (invitations with an email).
    pub verified_email: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PolicyRef {
    pub id: Uuid,
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReportChat {
    pub id: Uuid,
    pub from: ReportSpeaker,
    pub text: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReportSpeaker {
    pub id: Uuid,
    pub name: String,
    pub role: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReportOwnership {
    pub from: Option<Uuid>,
    pub to: Uuid,
    pub at: DateTime<Utc>,
}
