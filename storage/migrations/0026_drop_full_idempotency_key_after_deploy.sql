-- The contract half of 0024 (docs/decisions/0035-fewer-message-indexes.md): the full unique
-- constraint on (workspace_id, idempotency_key) indexed every message, keyed or not, and a
-- broadcast's entries have no key. Since 0024 the partial unique index keeps keys unique, but a
-- gateway from before it infers only this constraint in its sends' ON CONFLICT, so dropping it
-- while one runs would fail all of that gateway's sends. An after-deploy file: a database in use
-- gets it from `mailslot migrate --after-deploy`, once every gateway runs this release.
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_idempotency_key;
