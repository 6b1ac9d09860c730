-- A guest's way back into its place after its session moved home (docs/cluster.md): the hash
-- of the resume key its `welcome` carried. Bound to `guest_participant_id`.
ALTER TABLE invitations ADD COLUMN guest_resume_hash TEXT;
