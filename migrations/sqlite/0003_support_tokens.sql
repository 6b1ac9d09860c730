-- A token obtained through vendor support records which staff member acts through it.
ALTER TABLE auth_tokens ADD COLUMN on_behalf_of TEXT;
