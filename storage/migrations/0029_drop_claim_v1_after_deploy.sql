-- The contract half of 0028 (docs/decisions/0045-acknowledged-offers-in-memory.md): since 0028 this
-- release claims through mailslot_claim_messages_v2 (`claim_messages` and `claim_message_batch` in
-- storage/queries.sql), and nothing calls mailslot_claim_messages_v1 of migration 0027 but a
-- gateway from before 0028, whose every poll would fail if it went while one runs. An after-deploy
-- file: a database in use gets it from `mailslot migrate --after-deploy`, once every gateway runs
-- this release.
DROP FUNCTION IF EXISTS mailslot_claim_messages_v1(bigint, text, text, timestamptz, integer, integer, text);
